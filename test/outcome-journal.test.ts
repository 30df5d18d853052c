// The truth of a run is never lost: the state database drops just as an approved run finishes.
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { silentLogger } from '../src/core/log.js';
import { OutcomeJournal } from '../src/state/journal.js';
import { as, type Fixture, makeFixture } from './helpers/app.js';
import { adminQuery, openClient } from './helpers/db.js';
import { type CuttableProxy, cuttableProxy } from './helpers/state-proxy.js';

let fx: Fixture;
let proxy: CuttableProxy;
let app: App;
let backups: string;
let offsetMs = 0;
const held: pg.Client[] = [];

beforeAll(async () => {
  fx = await makeFixture();
  proxy = await cuttableProxy(fx.state.url);
  backups = mkdtempSync(join(tmpdir(), 'dbops-journal-'));
  const yaml = fx.yaml
    .replace('statement_timeout: 5s', 'statement_timeout: 120s')
    .replace('lock_timeout: 1s', 'lock_timeout: 120s')
    .replace('targets:\n', `backups:\n  dir: ${backups}\ntargets:\n`);
  const config = loadConfigText(yaml, 'journal.yaml', { ...fx.env, STATE_URL: proxy.url });
  app = await createApp({
    config,
    log: silentLogger(),
    clock: () => new Date(Date.now() + offsetMs),
    outcomeRetryDelaysMs: [50, 100],
  });
});

afterAll(async () => {
  await Promise.all(held.map((c) => c.end().catch(() => {})));
  await app?.close().catch(() => {});
  await proxy?.close();
});

async function audit(id: number): Promise<string[]> {
  const rows = await adminQuery<{ event: string; outcome: string }>(
    'SELECT event, outcome FROM dbops_audit WHERE request_id = $1 ORDER BY id',
    [id],
    fx.state.name,
  );
  return rows.map((r) => `${r.event}:${r.outcome}`);
}

async function statusOf(id: number): Promise<string | undefined> {
  const rows = await adminQuery<{ status: string }>(
    'SELECT status FROM dbops_requests WHERE id = $1',
    [id],
    fx.state.name,
  );
  return rows[0]?.status;
}

function journalFiles(): string[] {
  try {
    return readdirSync(join(backups, '.dbops-journal')).filter((n) => n.endsWith('.jsonl'));
  } catch {
    return [];
  }
}

describe('a state database that drops as an approved run finishes', () => {
  it('answers that the operation succeeded, journals the outcome, and records it when the database is back', async () => {
    // The run waits for a lock the test holds, so the state database can be cut while it runs.
    const holder = await openClient(fx.staging.url, 'lock-holder');
    held.push(holder);
    await holder.query('BEGIN');
    await holder.query('SELECT count(*) FROM exams');
    const request = await as(app, 'bob')('/db vacuum staging exams --full');
    expect(request.status).toBe('pending');
    const id = request.requestId ?? -1;
    const approval = as(app, 'alice')(`/db approve ${id}`);
    await expect
      .poll(
        async () => {
          const rows = await adminQuery<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'VACUUM%FULL%'`,
            [fx.staging.name],
          );
          return rows[0]?.n;
        },
        { timeout: 30_000 },
      )
      .toBe(1);

    proxy.drop();
    await holder.query('COMMIT');
    const done = await approval;
    expect(done.status).toBe('ok');
    expect(done.code).toBeUndefined();
    expect(done.text).toContain('The operation succeeded.');
    expect(done.text).toContain('recording it is delayed');
    expect(done.request?.status).toBe('succeeded');

    // Both what happened and its audit record wait, fsynced, in the journal.
    const [file] = journalFiles();
    expect(file).toBeDefined();
    const entries = readFileSync(join(backups, '.dbops-journal', file ?? ''), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { kind: string; id?: number; outcome?: { status: string } });
    expect(entries.map((e) => e.kind)).toEqual(['finish', 'audit']);
    expect(entries[0]).toMatchObject({ id, outcome: { status: 'succeeded' } });
    expect(await statusOf(id)).toBe('running');

    // The database is back; the next sweep comes after the run's lease ran out.
    proxy.restore();
    offsetMs = 10 * 60_000;
    await app.core.sweepExpired();
    expect(await statusOf(id)).toBe('succeeded');
    const events = await audit(id);
    expect(events).toContain('executed:ok');
    expect(events.some((e) => e.startsWith('interrupted'))).toBe(false);
    expect(journalFiles()).toEqual([]);
    const status = await as(app, 'alice')(`/db status ${id}`);
    expect(status.request?.status).toBe('succeeded');
  });

  it('records what a stopped dbops left in its journal when the next one starts', async () => {
    // A run that ended while the state database was away, in a dbops that then stopped: its outcome is
    // only in the journal it left behind.
    const request = await as(app, 'bob')('/db vacuum staging exams --full');
    const id = request.requestId ?? -1;
    await app.state.approve(id, { person: 'alice', identity: 'cli:alice', surface: 'cli' }, new Date());
    expect(
      (await app.state.startRun(id, new Date(), { runner: 'gone', until: new Date(Date.now() + 60_000) })).ok,
    ).toBe(true);
    new OutcomeJournal(backups).append({
      kind: 'finish',
      id,
      outcome: { status: 'succeeded', result: { columns: [], rows: [], truncated: false } },
      at: new Date().toISOString(),
      runner: 'gone',
    });
    expect(journalFiles()).toHaveLength(1);
    const next = await createApp({ config: app.core.config, log: silentLogger() });
    try {
      await expect.poll(() => statusOf(id), { timeout: 30_000 }).toBe('succeeded');
      await expect.poll(journalFiles, { timeout: 30_000 }).toEqual([]);
    } finally {
      await next.close();
    }
  });
});
