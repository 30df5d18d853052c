// Cancelling a running operation: the requester or an approver stops it, on this replica or another.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { as, type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery, openClient } from './helpers/db.js';

let fx: Fixture;
let config: Config;
let app: App;
let replica: App;
const held: pg.Client[] = [];

beforeAll(async () => {
  fx = await makeFixture();
  // Long enough that only a cancel ends the wait for the lock the test holds.
  const yaml = fx.yaml
    .replace('statement_timeout: 5s', 'statement_timeout: 120s')
    .replace('lock_timeout: 1s', 'lock_timeout: 120s');
  // Backups (the restore test's) go to a directory of the test's own, never into the repository.
  const backups = mkdtempSync(join(tmpdir(), 'dbops-cancel-backups-'));
  config = loadConfigText(`${yaml}\nbackups:\n  dir: ${backups}\n`, 'cancel.yaml', fx.env);
  app = await startApp(config);
  replica = await startApp(config);
});

afterAll(async () => {
  await Promise.all(held.map((c) => c.end().catch(() => {})));
  await app?.close();
  await replica?.close();
});

/** Holds a lock on exams (a reader in an open transaction) until the returned release is called. */
async function holdExams(): Promise<() => Promise<void>> {
  const client = await openClient(fx.staging.url, 'lock-holder');
  held.push(client);
  await client.query('BEGIN');
  await client.query('SELECT count(*) FROM exams');
  return async () => {
    await client.query('COMMIT');
  };
}

async function vacuumWaiting(): Promise<number> {
  const rows = await adminQuery<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = $1 AND query ILIKE 'VACUUM%FULL%' AND wait_event_type = 'Lock'`,
    [fx.staging.name],
  );
  return rows[0]?.n ?? -1;
}

async function audit(id: number): Promise<string[]> {
  const rows = await adminQuery<{ event: string; outcome: string; person: string | null }>(
    'SELECT event, outcome, person FROM dbops_audit WHERE request_id = $1 ORDER BY id',
    [id],
    fx.state.name,
  );
  return rows.map((r) => `${r.event}:${r.outcome}:${r.person ?? 'dbops'}`);
}

/** Requests VACUUM FULL of exams as bob, has alice approve it, and waits until it waits for the lock. */
async function runningVacuum(on: App): Promise<{ id: number; approval: ReturnType<ReturnType<typeof as>> }> {
  const request = await as(on, 'bob')('/db vacuum staging exams --full');
  expect(request.status).toBe('pending');
  const id = request.requestId ?? -1;
  const approval = as(on, 'alice')(`/db approve ${id}`);
  await expect.poll(vacuumWaiting, { timeout: 30_000 }).toBe(1);
  expect((await on.state.getRequest(id))?.status).toBe('running');
  return { id, approval };
}

describe('/db cancel of a running request', () => {
  it('lets the requester stop a VACUUM FULL waiting for a lock; a third party may not', async () => {
    const release = await holdExams();
    const { id, approval } = await runningVacuum(app);

    const thirdParty = await as(app, 'carol')(`/db cancel ${id}`);
    expect(thirdParty).toMatchObject({ status: 'refused', code: 'not_requester' });
    expect(thirdParty.message).toContain('only bob, who requested it, or an approver');
    expect(await vacuumWaiting()).toBe(1);

    const stop = await as(app, 'bob')(`/db cancel ${id}`);
    expect(stop.status).toBe('ok');
    expect(stop.text).toContain(`Stopped #${id}: cancelled by bob while running`);
    expect(stop.text).toContain('nothing had been committed');

    const approved = await approval;
    expect(approved).toMatchObject({ status: 'failed', code: 'cancelled' });
    const request = await app.state.getRequest(id);
    expect(request?.status).toBe('cancelled');
    expect(request?.error).toContain('its transaction rolled back');
    expect(await audit(id)).toEqual(
      expect.arrayContaining(['cancelled:stop requested:bob', 'cancelled:stopped while running:alice']),
    );
    expect(await vacuumWaiting()).toBe(0);
    await release();

    // The target is free again: the next destructive request runs.
    const again = await as(app, 'bob')('/db vacuum staging exams --full');
    const ran = await as(app, 'alice')(`/db approve ${again.requestId}`);
    expect(ran.status).toBe('ok');
  });

  it('stops a run on another replica: an approver asks there, the running replica notices', async () => {
    const release = await holdExams();
    const { id, approval } = await runningVacuum(app);
    // dave is an approver on staging; he talks to the other replica.
    const stop = await as(replica, 'dave')(`/db cancel ${id}`);
    expect(stop.status).toBe('ok');
    expect(stop.text).toContain(`Stopped #${id}: cancelled by dave while running`);
    expect(await approval).toMatchObject({ status: 'failed', code: 'cancelled' });
    expect((await replica.state.getRequest(id))?.status).toBe('cancelled');
    expect(await vacuumWaiting()).toBe(0);
    await release();
  });

  it('stops an external tool: a restore whose psql waits for a lock is killed, nothing of it stays', async () => {
    const backup = await as(app, 'bob')('/db backup staging --table exams --format plain');
    expect(backup.status).toBe('ok');
    const listed = await as(app, 'bob')('/db backups staging');
    const name = String(
      (listed.result?.rows ?? []).map((r) => r.name).find((n) => String(n).includes('exams')) ?? '',
    );
    expect(name).not.toBe('');
    const release = await holdExams();
    const request = await as(app, 'bob')(`/db restore staging ${name} --table exams`);
    expect(request.status).toBe('pending');
    const id = request.requestId ?? -1;
    const approval = as(app, 'alice')(`/db approve ${id}`);
    const toolWaiting = async () => {
      const rows = await adminQuery<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = $1 AND application_name = 'dbops' AND wait_event_type = 'Lock'`,
        [fx.staging.name],
      );
      return rows[0]?.n ?? -1;
    };
    await expect.poll(toolWaiting, { timeout: 60_000 }).toBe(1);

    const tools = () =>
      execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => /\b(psql|pg_restore)\b/.test(l) && l.includes(fx.staging.name));
    expect(tools().length).toBeGreaterThan(0);
    const stop = await as(app, 'bob')(`/db cancel ${id}`);
    expect(stop.status).toBe('ok');
    expect(await approval).toMatchObject({ status: 'failed', code: 'cancelled' });
    expect((await app.state.getRequest(id))?.status).toBe('cancelled');
    // The tool's process group was stopped: no process of it remains. (Its backend, waiting for the lock,
    // notices the closed connection only when its lock_timeout ends: PostgreSQL does not poll the client.)
    await expect.poll(tools, { timeout: 10_000 }).toEqual([]);
    await release();
  }, 120_000);
});
