// Request numbers mean requests: only approval requests take a number; every other reply carries a
// reference (`r7f3kq`) that cannot be read as one, that approve refuses clearly and the audit finds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { isRef, newRef, REF_PATTERN } from '../src/core/refs.js';
import { as, type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery } from './helpers/db.js';

let fx: Fixture;
let app: App;

beforeAll(async () => {
  fx = await makeFixture();
  app = await startApp(fx.config);
});

afterAll(async () => {
  await app?.close();
});

describe('reply references', () => {
  it('are short, never all digits, and recognised however they are typed', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i += 1) {
      const ref = newRef();
      expect(ref).toMatch(REF_PATTERN);
      expect(ref).not.toMatch(/^#?\d+$/);
      seen.add(ref);
    }
    expect(seen.size).toBeGreaterThan(1990);
    expect(newRef(() => new Uint8Array([0, 1, 2, 3, 4]))).toBe('rabcde');
    expect(isRef('R7F3KQ')).toBe(true);
    for (const notRef of ['12345', '#12', 'r1234', 'r7f3k', 'rabcdef', 'r0o1lq', 'kasm']) {
      expect(isRef(notRef), notRef).toBe(false);
    }
  });
});

describe('request numbers', () => {
  it('a typo, help, a read and a refusal take no number; only approval requests do', async () => {
    const first = await as(app, 'bob')('/db vacuum staging exams --full');
    expect(first.status).toBe('pending');
    const n = first.requestId ?? -1;
    expect(n).toBeGreaterThan(0);

    const typo = await as(app, 'alice')('/db sizez staging');
    const help = await as(app, 'alice')('/db help');
    const read = await as(app, 'alice')('/db sizes staging');
    const refusal = await as(app, 'carol')('/db vacuum staging exams --full');
    expect([typo.status, help.status, read.status, refusal.status]).toEqual([
      'invalid',
      'ok',
      'ok',
      'refused',
    ]);
    for (const r of [typo, help, read, refusal]) {
      expect(r.requestId).toBeNull();
      expect(r.ref).toMatch(REF_PATTERN);
      // Nothing in what they say looks like a request number.
      expect(r.text).not.toMatch(/#\d/);
    }
    expect(refusal.text).toContain(`(ref ${refusal.ref})`);
    expect(typo.text).toContain(`(ref ${typo.ref})`);
    expect(read.text).toContain(`ref ${read.ref}`);

    const second = await as(app, 'bob')('/db vacuum staging exams --analyze --full');
    expect(second.status).toBe('pending');
    expect(second.requestId).toBe(n + 1);
    await as(app, 'bob')(`/db cancel ${n}`);
    await as(app, 'bob')(`/db cancel ${n + 1}`);
  });

  it('approve with a reply reference says it is not an approval request', async () => {
    const read = await as(app, 'alice')('/db sizes staging');
    for (const typed of [read.ref ?? '', (read.ref ?? '').toUpperCase()]) {
      const answer = await as(app, 'dave')(`/db approve ${typed}`);
      expect(answer.status).toBe('refused');
      expect(answer.message).toContain(`${read.ref} is the reference of a reply, not an approval request`);
      expect(answer.message).toContain('only requests that wait for approval have numbers');
    }
    const status = await as(app, 'dave')(`/db status ${read.ref}`);
    expect(status.message).toContain('nothing to look up under it');
  });

  it('approve with a number no request has says only approval requests have numbers', async () => {
    const answer = await as(app, 'dave')('/db approve 987654');
    expect(answer.status).toBe('refused');
    expect(answer.message).toContain('there is no approval request #987654');
    expect(answer.message).toContain('only requests that wait for approval get numbers');
    expect(answer.text).toContain(`(ref ${answer.ref})`);
  });

  it('the audit keeps each reply under its reference, and `audit <ref>` finds it', async () => {
    const read = await as(app, 'alice')('/db sizes staging');
    const rows = await adminQuery<{ event: string; request_id: string | null }>(
      'SELECT event, request_id FROM dbops_audit WHERE ref = $1 ORDER BY id',
      [read.ref],
      fx.state.name,
    );
    expect(rows).toEqual([
      { event: 'requested', request_id: null },
      { event: 'executed', request_id: null },
    ]);
    const found = await as(app, 'alice')(`/db audit ${read.ref}`);
    expect(found.status).toBe('ok');
    expect(found.result?.rows.map((r) => [r.request, r.event, r.operation])).toEqual([
      [read.ref, 'executed', 'sizes'],
      [read.ref, 'requested', 'sizes'],
    ]);
  });

  it('an approval request keeps its number in the audit, with the reference of each invocation', async () => {
    const pending = await as(app, 'bob')('/db vacuum staging exams --full');
    const id = pending.requestId ?? -1;
    const cancelled = await as(app, 'bob')(`/db cancel ${id}`);
    const rows = await adminQuery<{ event: string; ref: string }>(
      'SELECT event, ref FROM dbops_audit WHERE request_id = $1 ORDER BY id',
      [id],
      fx.state.name,
    );
    expect(rows.map((r) => r.event)).toEqual(['pending', 'cancelled']);
    expect(rows.map((r) => r.ref)).toEqual([pending.ref, cancelled.ref]);
  });
});
