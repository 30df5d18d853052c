// `kill-idle` against real sessions: the preview lists exactly who, execute re-checks and spares the rest.
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import killIdle, { type KillIdleState } from '../commands/kill-idle.js';
import type { Limits, ResolvedTarget } from '../src/config/schema.js';
import { UserError } from '../src/core/errors.js';
import type { OperationContext, Preview } from '../src/core/operation.js';
import type { OperationResult } from '../src/core/types.js';
import { TargetPools } from '../src/engine/target-db.js';
import { adminQuery, createDatabase, openClient } from './helpers/db.js';

const LIMITS: Limits = {
  statement_timeout: 5,
  lock_timeout: 1,
  row_cap: 200,
  pool_max: 4,
  pool_idle: 30,
  connect_timeout: 2,
};

const suffix = randomBytes(4).toString('hex');
const botRole = `kill_bot_${suffix}`;
const appRole = `kill_app_${suffix}`;
const PASSWORD = 'pw-kill-idle-7';

let dbName: string;
let dbUrl: string;
let otherName: string;
let otherUrl: string;

function urlAs(url: string, user: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = PASSWORD;
  return u.toString();
}

interface Harness {
  pools: TargetPools;
  target: ResolvedTarget;
  preview(olderThan: string): Promise<Preview>;
  execute(olderThan: string, state: unknown): Promise<OperationResult>;
  close(): Promise<void>;
}

function harness(url = dbUrl): Harness {
  const target: ResolvedTarget = { name: 'killtest', url, environment: 'test', packs: [], limits: LIMITS };
  const pools = new TargetPools({ killtest: target });
  const context = (olderThan: string): OperationContext<{ older_than: number }> => ({
    args: killIdle.args.parse({ older_than: olderThan }),
    target,
    db: pools.get('killtest'),
    limits: target.limits,
    now: new Date(),
    requestId: 'test-kill-idle',
    backupsDir: '/tmp',
    progress: () => {},
  });
  return {
    pools,
    target,
    async preview(olderThan) {
      if (!killIdle.preview) throw new Error('kill-idle has no preview()');
      return await killIdle.preview(context(olderThan));
    },
    async execute(olderThan, state) {
      if (!killIdle.execute) throw new Error('kill-idle has no execute()');
      return await killIdle.execute(context(olderThan), state);
    },
    close: () => pools.closeAll(),
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 8000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await probe();
  while (!done(value) && Date.now() < deadline) {
    await sleep(50);
    value = await probe();
  }
  return value;
}

/** A session the test holds open, with its backend pid. */
interface Held {
  client: pg.Client;
  pid: number;
  /** Set when the client saw its connection end. */
  ended: boolean;
}

const held: Held[] = [];

async function hold(url: string, application: string): Promise<Held> {
  const client = await openClient(url, application);
  const [row] = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows;
  if (!row) throw new Error('no pid');
  const session: Held = { client, pid: row.pid, ended: false };
  client.on('end', () => {
    session.ended = true;
  });
  held.push(session);
  return session;
}

async function releaseAll(): Promise<void> {
  const pids = held.map((h) => h.pid);
  await adminQuery('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY($1)', [pids]);
  await Promise.all(held.splice(0).map((h) => h.client.end().catch(() => {})));
  await waitFor(
    () => adminQuery('SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1)', [pids]),
    (rows) => rows.length === 0,
  );
}

async function livePids(pids: number[]): Promise<number[]> {
  const rows = await adminQuery<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE pid = ANY($1) ORDER BY pid',
    [pids],
  );
  return rows.map((r) => r.pid);
}

/** Opens `n` pool connections at once (they then sit idle in the pool, as in production). */
async function warmPool(h: Harness, n: number): Promise<number[]> {
  const db = h.pools.get('killtest');
  return await Promise.all(
    Array.from({ length: n }, () =>
      db.read(async (s) => {
        await s.query('SELECT pg_sleep(0.2)');
        return s.backendPid;
      }),
    ),
  );
}

beforeAll(async () => {
  ({ name: dbName, url: dbUrl } = await createDatabase('kill_idle'));
  ({ name: otherName, url: otherUrl } = await createDatabase('kill_idle_other'));
  await adminQuery(`CREATE ROLE ${botRole} LOGIN PASSWORD '${PASSWORD}' IN ROLE pg_read_all_stats`);
  await adminQuery(`CREATE ROLE ${appRole} LOGIN PASSWORD '${PASSWORD}'`);
});

afterAll(async () => {
  await releaseAll();
  await adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await adminQuery(`DROP DATABASE IF EXISTS "${otherName}" WITH (FORCE)`);
  await adminQuery(`DROP ROLE IF EXISTS ${botRole}`);
  await adminQuery(`DROP ROLE IF EXISTS ${appRole}`);
});

describe('kill-idle', () => {
  it('previews exactly the idle sessions of the target database and terminates exactly those', async () => {
    const h = harness();
    try {
      const idle1 = await hold(dbUrl, 'victim-idle-1');
      const idle2 = await hold(dbUrl, 'victim-idle-2');
      const inTxn = await hold(dbUrl, 'victim-idle-in-txn');
      await inTxn.client.query('BEGIN');
      await inTxn.client.query('SELECT 1');
      const aborted = await hold(dbUrl, 'victim-aborted');
      await aborted.client.query('BEGIN');
      await aborted.client.query('SELECT 1 / 0').catch(() => {});
      const active = await hold(dbUrl, 'busy');
      const sleeping = active.client.query('SELECT pg_sleep(30)').catch(() => 'cancelled');
      const elsewhere = await hold(otherUrl, 'other-db-idle');
      const ours = await warmPool(h, 3);
      await sleep(1300);

      const preview = await h.preview('1s');
      const victims = [idle1, idle2, inTxn, aborted];
      expect(preview.empty).toBeUndefined();
      expect(preview.result.rows.map((r) => r.pid)).toEqual(victims.map((v) => v.pid));
      expect(preview.result.rows.map((r) => [r.application, r.state])).toEqual([
        ['victim-idle-1', 'idle'],
        ['victim-idle-2', 'idle'],
        ['victim-idle-in-txn', 'idle in transaction'],
        ['victim-aborted', 'idle in transaction (aborted)'],
      ]);
      expect(preview.result.headline).toBe(
        '4 sessions on killtest idle for more than 1s would be terminated',
      );
      expect(preview.result.columns.map((c) => [c.key, c.kind])).toEqual([
        ['pid', 'id'],
        ['user', 'text'],
        ['application', 'text'],
        ['client_address', 'text'],
        ['state', 'text'],
        ['idle_seconds', 'seconds'],
        ['backend_start', 'timestamp'],
      ]);
      for (const row of preview.result.rows) {
        expect(row.user).toBe('postgres');
        expect(row.client_address).toBe('127.0.0.1');
        expect(Number(row.idle_seconds)).toBeGreaterThanOrEqual(1);
      }
      // The state names each session by pid and its exact backend_start.
      const state = preview.state as KillIdleState;
      expect(state.map((s) => s.pid)).toEqual(victims.map((v) => v.pid));
      const sameStart = await adminQuery<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity a
         JOIN unnest($1::int[], $2::timestamptz[]) AS p(pid, started) ON a.pid = p.pid AND a.backend_start = p.started`,
        [state.map((s) => s.pid), state.map((s) => s.backendStart)],
      );
      expect(sameStart).toEqual([{ n: 4 }]);
      expect(JSON.parse(JSON.stringify(preview.state))).toEqual(preview.state);

      const result = await h.execute('1s', preview.state);
      expect(result.headline).toBe('all 4 previewed sessions were still idle and were terminated');
      expect(result.rows.map((r) => [r.pid, r.outcome])).toEqual(victims.map((v) => [v.pid, 'terminated']));
      expect(result.data).toEqual({ previewed: 4, terminated: 4 });
      expect(result.notes).toEqual([]);

      const victimPids = victims.map((v) => v.pid);
      expect(
        await waitFor(
          () => livePids(victimPids),
          (p) => p.length === 0,
        ),
      ).toEqual([]);
      for (const v of victims) await expect(v.client.query('SELECT 1')).rejects.toThrow();
      expect(victims.map((v) => v.ended)).toEqual([true, true, true, true]);

      const spared = [active.pid, elsewhere.pid, ...ours].sort((a, b) => a - b);
      expect(await livePids(spared)).toEqual(spared);
      expect(await adminQuery('SELECT state FROM pg_stat_activity WHERE pid = $1', [active.pid])).toEqual([
        { state: 'active' },
      ]);
      expect((await elsewhere.client.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
      expect(ours.every((pid) => h.pools.get('killtest').ownPids().includes(pid))).toBe(true);
      await adminQuery('SELECT pg_cancel_backend($1)', [active.pid]);
      expect(await sleeping).toBe('cancelled');
    } finally {
      await h.close();
      await releaseAll();
    }
  });

  it('spares a previewed session that became active before execute and says so', async () => {
    const h = harness();
    try {
      const a = await hold(dbUrl, 'a');
      const b = await hold(dbUrl, 'b');
      const c = await hold(dbUrl, 'c');
      await sleep(1300);
      const preview = await h.preview('1s');
      expect(preview.result.rows.map((r) => r.pid)).toEqual([a.pid, b.pid, c.pid]);

      const busy = b.client.query('SELECT pg_sleep(30)').catch(() => 'cancelled');
      await waitFor(
        () => adminQuery<{ state: string }>('SELECT state FROM pg_stat_activity WHERE pid = $1', [b.pid]),
        (rows) => rows[0]?.state === 'active',
      );
      const result = await h.execute('1s', preview.state);
      expect(result.headline).toBe('2 of the 3 previewed sessions were still idle and were terminated');
      expect(result.rows.map((r) => [r.pid, r.state, r.outcome])).toEqual([
        [a.pid, 'idle', 'terminated'],
        [b.pid, 'active', 'spared: now active'],
        [c.pid, 'idle', 'terminated'],
      ]);
      expect(result.notes).toEqual([`1 spared: now active (pid ${b.pid})`]);
      expect(
        await waitFor(
          () => livePids([a.pid, b.pid, c.pid]),
          (p) => p.length === 1,
        ),
      ).toEqual([b.pid]);
      await adminQuery('SELECT pg_cancel_backend($1)', [b.pid]);
      expect(await busy).toBe('cancelled');
    } finally {
      await h.close();
      await releaseAll();
    }
  });

  it('spares sessions that are gone, reconnected under the same pid, or were active since the preview', async () => {
    const h = harness();
    try {
      const gone = await hold(dbUrl, 'gone');
      const reused = await hold(dbUrl, 'reused');
      const recent = await hold(dbUrl, 'recent');
      const still = await hold(dbUrl, 'still');
      await sleep(1300);
      const preview = await h.preview('1s');
      const state = preview.state as KillIdleState;
      expect(state.map((s) => s.pid)).toEqual([gone.pid, reused.pid, recent.pid, still.pid]);

      await gone.client.end();
      await waitFor(
        () => livePids([gone.pid]),
        (p) => p.length === 0,
      );
      await recent.client.query('SELECT 1');
      // A new backend that got the same pid has another backend_start.
      const tampered = state.map((s) =>
        s.pid === reused.pid ? { pid: s.pid, backendStart: '2001-02-03T04:05:06.000007Z' } : s,
      );
      const result = await h.execute('1s', tampered);
      expect(result.headline).toBe('1 of the 4 previewed sessions was still idle and was terminated');
      expect(result.rows.map((r) => [r.pid, r.outcome])).toEqual([
        [gone.pid, 'spared: gone'],
        [reused.pid, 'spared: reconnected (new backend)'],
        [recent.pid, 'spared: active since the preview'],
        [still.pid, 'terminated'],
      ]);
      expect(result.data).toEqual({ previewed: 4, terminated: 1 });
      expect(
        await waitFor(
          () => livePids([reused.pid, recent.pid, still.pid]),
          (p) => p.length === 2,
        ),
      ).toEqual([reused.pid, recent.pid].sort((x, y) => x - y));
    } finally {
      await h.close();
      await releaseAll();
    }
  });

  it("is empty when only dbops' own pool connections are idle", async () => {
    const h = harness();
    try {
      const ours = await warmPool(h, 3);
      expect(new Set(ours).size).toBe(3);
      await sleep(1300);
      const preview = await h.preview('1s');
      expect(preview).toMatchObject({ empty: true, state: [] });
      expect(preview.result.rows).toEqual([]);
      expect(preview.result.headline).toBe(
        'no client sessions on killtest idle for more than 1s; nothing to terminate',
      );
      expect(await livePids(ours)).toEqual([...ours].sort((a, b) => a - b));
    } finally {
      await h.close();
    }
  });

  it('uses the threshold: sessions idle for less than --older-than are not listed', async () => {
    const h = harness();
    try {
      const fresh = await hold(dbUrl, 'fresh');
      await sleep(1300);
      expect((await h.preview('1h')).empty).toBe(true);
      expect((await h.preview('1s')).result.rows.map((r) => r.pid)).toEqual([fresh.pid]);
      expect(killIdle.args.parse({}).older_than).toBe(300);
      expect(() => killIdle.args.parse({ older_than: 'soon' })).toThrow();
    } finally {
      await h.close();
      await releaseAll();
    }
  });

  it('a bot role without pg_signal_backend gets a permission error naming it, and nobody is terminated', async () => {
    const h = harness(urlAs(dbUrl, botRole));
    try {
      const x = await hold(urlAs(dbUrl, appRole), 'app-x');
      const y = await hold(urlAs(dbUrl, appRole), 'app-y');
      await sleep(1300);
      const preview = await h.preview('1s');
      expect(preview.result.rows.map((r) => [r.pid, r.user])).toEqual([
        [x.pid, appRole],
        [y.pid, appRole],
      ]);
      const err = await h.execute('1s', preview.state).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(UserError);
      expect(err).toMatchObject({ code: 'permission' });
      expect((err as UserError).message).toContain('the bot role needs pg_signal_backend');
      expect(await livePids([x.pid, y.pid])).toEqual([x.pid, y.pid].sort((a, b) => a - b));
    } finally {
      await h.close();
      await releaseAll();
    }
  });

  it('rejects a malformed preview state instead of guessing', async () => {
    const h = harness();
    try {
      await expect(h.execute('1s', [{ pid: 'x' }])).rejects.toThrow('malformed preview state');
      await expect(h.execute('1s', [{ pid: 1, backendStart: "now'; --" }])).rejects.toThrow(
        'malformed preview state',
      );
    } finally {
      await h.close();
    }
  });
});
