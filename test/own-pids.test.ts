// dbops' own connections are recognised by backend pid, of this replica and of every other one (published
// in the state database), never by application_name: a client calling itself "dbops-evil" is shown,
// named as the blocker and can be terminated; a real connection of another replica is still dbops'.
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import type { Logger } from '../src/core/log.js';
import { ReplicaPids } from '../src/state/backends.js';
import { as, type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery, openClient } from './helpers/db.js';
import { freePort } from './setup/postgres.js';

let fx: Fixture;
let replicaA: App;
let replicaB: App;
let evil: pg.Client;
let evilPid: number;
let waiter: pg.Client;
let waiterPid: number;
let waiting: Promise<unknown>;

async function until<T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  for (let waited = 0; ; waited += 100) {
    const value = await probe();
    if (done(value)) return value;
    if (waited > 20_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  fx = await makeFixture();
  evil = await openClient(fx.staging.url, 'dbops-evil');
  evilPid = (await evil.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid ?? 0;
  await evil.query('BEGIN');
  await evil.query('LOCK TABLE exams IN ACCESS EXCLUSIVE MODE');
  waiter = await openClient(fx.staging.url, 'app-waiter');
  waiterPid = (await waiter.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid ?? 0;
  waiting = waiter.query('SELECT count(*) FROM exams').catch((err: unknown) => err);
  await until(
    'the waiter to wait for the lock',
    () => adminQuery('SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted', [waiterPid], fx.staging.name),
    (rows) => rows.length > 0,
  );
  replicaA = await startApp(fx.config);
  replicaB = await startApp(fx.config);
});

afterAll(async () => {
  await replicaA?.close();
  await replicaB?.close();
  await evil?.end().catch(() => {});
  await waiter?.end().catch(() => {});
});

describe("dbops' own connections, by pid", () => {
  it('shows a session named dbops-evil in activity and names it as the blocker', async () => {
    const activity = await as(replicaA, 'carol')('/db activity staging --older-than 0s');
    expect(activity.status).toBe('ok');
    const pids = (activity.result?.rows ?? []).map((r) => r.pid);
    expect(pids).toContain(evilPid);
    expect(pids).toContain(waiterPid);

    const blocking = await as(replicaA, 'carol')('/db blocking staging');
    expect(blocking.result?.rows).toEqual([
      expect.objectContaining({ blocked_pid: waiterPid, blocking_pid: evilPid, root: true }),
    ]);
    expect(blocking.text).not.toContain("dbops' own");
  });

  it("recognises another replica's connection by the pid it published", async () => {
    const b = replicaB.pools.get('staging');
    let bPid = 0;
    // Replica B holds a connection busy for a while; replica A must treat it as dbops' own.
    const busy = b.read(async (session) => {
      bPid = session.backendPid;
      await session.query('SELECT pg_sleep(4)');
    });
    await until(
      'replica B to be busy',
      async () => bPid,
      (pid) => pid > 0,
    );
    await until(
      "replica B's pid in the state database",
      () => adminQuery('SELECT 1 FROM dbops_backends WHERE pid = $1', [bPid], fx.state.name),
      (rows) => rows.length > 0,
    );
    // Replica A re-reads the registry at most a second later.
    const refused = await until(
      'replica A to recognise it',
      () => as(replicaA, 'alice')(`/db terminate staging ${bPid}`),
      (reply) => reply.status !== 'pending',
    );
    expect(refused.text).toContain("it is dbops' own connection");
    const activity = await as(replicaA, 'carol')('/db activity staging --older-than 0s');
    const pids = (activity.result?.rows ?? []).map((r) => r.pid);
    expect(pids).not.toContain(bPid);
    expect(pids).toContain(evilPid);
    await busy;
    const alive = await adminQuery('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [bPid]);
    expect(alive).toHaveLength(1);
  });

  it('terminates dbops-evil after approval, which releases the waiter', async () => {
    const request = await as(replicaA, 'alice')(`/db terminate staging ${evilPid}`);
    expect(request.status).toBe('pending');
    const approved = await as(replicaA, 'bob')(`/db approve ${request.requestId}`);
    expect(approved.status).toBe('ok');
    await until(
      'dbops-evil to be gone',
      () => adminQuery('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [evilPid]),
      (rows) => rows.length === 0,
    );
    expect(await waiting).toMatchObject({ rows: [{ count: '2000' }] });
  });

  it('keeps working on what it knows when the state database is unreachable, without retrying each time', async () => {
    const warnings: string[] = [];
    const log = { warn: (_: unknown, message: string) => warnings.push(message) } as unknown as Logger;
    const registry = new ReplicaPids({
      url: `postgres://nobody:secret@127.0.0.1:${await freePort()}/none`,
      local: () => [{ server: 'x:1', pid: 1 }],
      log,
      timeoutMs: 500,
    });
    try {
      await registry.refresh();
      expect(registry.others('x:1')).toEqual([]);
      expect(warnings).toEqual(["could not read other replicas' pids; the last ones read stay in use"]);
      // The failed read is not tried again for every transaction.
      await registry.refresh();
      await registry.refresh();
      expect(warnings).toHaveLength(1);
      expect(JSON.stringify(warnings)).not.toContain('secret');
    } finally {
      await registry.close();
    }
  });
});
