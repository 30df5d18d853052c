// A target that stops answering after login (a half-open proxy in front of a real PostgreSQL): client-side
// deadlines answer clearly and drop the connection; cancellation through an AbortSignal reaches the backend.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../src/config/load.js';
import { isUserError } from '../src/core/errors.js';
import { isCancelled } from '../src/engine/cancel.js';
import { TargetPools } from '../src/engine/target-db.js';
import { PgStateStore } from '../src/state/pg-store.js';
import { adminQuery, createDatabase } from './helpers/db.js';
import { HalfOpenProxy } from './helpers/proxy.js';

let proxy: HalfOpenProxy;
let pools: TargetPools;
let dbName: string;

const YAML = `
state: { url: "\${STATE_URL}" }
limits: { statement_timeout: 2s, lock_timeout: 1s, connect_timeout: 2s, row_cap: 50 }
targets:
  sick: { url: "\${SICK_URL}", environment: staging }
  well: { url: "\${WELL_URL}", environment: staging }
people:
  alice: { cli: alice, roles: [dba] }
policy:
  staging: { read: [everyone], write: [dba], request: [dba], approve: [dba] }
`;

beforeAll(async () => {
  const db = await createDatabase('faults', 'CREATE TABLE t AS SELECT i FROM generate_series(1, 3000) i');
  dbName = db.name;
  proxy = await HalfOpenProxy.start(db.url);
  const config = loadConfigText(YAML, 'faults.yaml', {
    STATE_URL: db.url,
    SICK_URL: proxy.url(),
    WELL_URL: db.url,
  });
  pools = new TargetPools(config.targets);
});

afterAll(async () => {
  proxy.heal();
  await pools?.closeAll();
  await proxy?.close();
});

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return await promise.then(
    () => new Error('expected a failure'),
    (err: unknown) => err,
  );
}

describe('a target that stops answering after login', () => {
  it('a read answers within a generous bound with a clear message, and the connection is dropped', async () => {
    const sick = pools.get('sick');
    expect(await sick.read((s) => s.query<{ n: number }>('SELECT count(*)::int AS n FROM t'))).toEqual([
      { n: 3000 },
    ]);
    expect(pools.stats().sick?.total).toBe(1);
    proxy.freeze();
    const started = Date.now();
    const err = await failure(sick.read((s) => s.query('SELECT 1')));
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(isUserError(err) && err.code).toBe('target_unresponsive');
    expect((err as Error).message).toMatch(
      /^sick stopped answering: no reply to (BEGIN|a query) within \d+s/,
    );
    // The hung connection is gone from the pool, not waiting to be handed out again.
    expect(pools.stats().sick).toMatchObject({ total: 0, inFlight: 0 });
  }, 60_000);

  it('a cursor read and a new connection on the frozen target are bounded too; the healthy target is untouched', async () => {
    const sick = pools.get('sick');
    proxy.heal();
    const started = Date.now();
    const cursorErr = await failure(
      sick.read(async (s) => {
        await s.query('SELECT 1');
        proxy.freeze(); // the server goes silent between two statements of one unit of work
        return await s.cursor('SELECT i FROM t ORDER BY i', [], 2000);
      }),
    );
    expect(isUserError(cursorErr) && cursorErr.code).toBe('target_unresponsive');
    // A read opens its transaction just before its first cursor: the silence meets that BEGIN or the read.
    expect((cursorErr as Error).message).toMatch(/no reply to (BEGIN before )?a cursor read/);
    // New connection: login hangs (the proxy accepts, then silence).
    const connectErr = await failure(sick.read((s) => s.query('SELECT 1')));
    expect(isUserError(connectErr)).toBe(true);
    expect((connectErr as Error).message).toMatch(/sick did not give dbops a connection/);
    expect(Date.now() - started).toBeLessThan(60_000);
    const well = pools.get('well');
    const rows = await well.read((s) => s.cursor<{ i: number }>('SELECT i FROM t ORDER BY i', [], 10));
    expect(rows.rows).toHaveLength(10);
  }, 90_000);

  it('eight reads on the frozen target all end, and report themselves in flight while they wait', async () => {
    const sick = pools.get('sick');
    const reads = Array.from({ length: 8 }, () => failure(sick.read((s) => s.query('SELECT 1'))));
    await new Promise((r) => setTimeout(r, 500));
    const during = pools.stats().sick;
    expect(during?.inFlight).toBe(8);
    expect(during?.oldestMs).toBeGreaterThan(0);
    const errors = await Promise.all(reads);
    for (const err of errors) expect(isUserError(err)).toBe(true);
    expect(pools.stats().sick?.inFlight).toBe(0);
  }, 120_000);

  it('after the proxy heals, the target works again', async () => {
    proxy.heal();
    const rows = await pools.get('sick').read((s) => s.query<{ n: number }>('SELECT 41 + 1 AS n'));
    expect(rows).toEqual([{ n: 42 }]);
  }, 30_000);

  it('a read without a statement timeout (no client deadline per statement) is still bounded', async () => {
    const sick = pools.get('sick');
    proxy.heal();
    const ok = await sick.read(
      (s) => s.query<{ ro: string }>("SELECT current_setting('transaction_read_only') AS ro"),
      {
        statementTimeoutMs: 0,
      },
    );
    expect(ok).toEqual([{ ro: 'on' }]);
    proxy.freeze();
    const started = Date.now();
    const err = await failure(sick.read((s) => s.query('SELECT 1'), { statementTimeoutMs: 0 }));
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(isUserError(err) && err.code).toBe('target_unresponsive');
    expect((err as Error).message).toMatch(/no reply to BEGIN within/);
    proxy.heal();
  }, 60_000);
});

describe('an AbortSignal cancels running work', () => {
  it('rejects at once with a cancellation error and cancels the backend', async () => {
    const well = pools.get('well');
    const controller = new AbortController();
    let pid = 0;
    const started = Date.now();
    const run = well.read(
      async (s) => {
        pid = s.backendPid;
        await s.query('SELECT pg_sleep(60)');
      },
      { statementTimeoutMs: 120_000 },
      controller.signal,
    );
    await new Promise((r) => setTimeout(r, 500));
    controller.abort();
    const err = await failure(run);
    expect(isCancelled(err)).toBe(true);
    expect(Date.now() - started).toBeLessThan(30_000);
    // The backend stops sleeping (pg_cancel_backend), it is not left running on the server.
    let sleeping = 1;
    for (let i = 0; i < 100 && sleeping > 0; i++) {
      const [row] = await adminQuery<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE '%pg_sleep%'",
        [pid],
        dbName,
      );
      sleeping = row?.n ?? 0;
      if (sleeping > 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(sleeping).toBe(0);
  }, 60_000);

  it('an already aborted signal touches nothing', async () => {
    const err = await failure(pools.get('well').write(async () => {}, undefined, AbortSignal.abort()));
    expect(isCancelled(err)).toBe(true);
  });
});

describe('the state database behind a half-open proxy', () => {
  it('a call fails within a generous bound instead of hanging, and works again after healing', async () => {
    const stateDb = await createDatabase('faults_state');
    const stateProxy = await HalfOpenProxy.start(stateDb.url);
    const store = await PgStateStore.open(stateProxy.url());
    try {
      await store.migrate();
      expect(await store.getRequest(1)).toBeUndefined();
      stateProxy.freeze();
      const started = Date.now();
      const err = await failure(store.getRequest(1));
      expect(err).toBeInstanceOf(Error);
      expect(Date.now() - started).toBeLessThan(30_000);
      stateProxy.heal();
      expect(await store.getRequest(1)).toBeUndefined();
    } finally {
      stateProxy.heal();
      await store.close();
      await stateProxy.close();
    }
  }, 60_000);
});
