// Session operations against real sessions on both majors: activity, idle, connections, locks, blocking,
// health, terminate and cancel-query, each checked against pg_stat_activity / pg_locks ground truth.
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import activity from '../commands/activity.js';
import blocking from '../commands/blocking.js';
import cancelQuery from '../commands/cancel-query.js';
import connections from '../commands/connections.js';
import health from '../commands/health.js';
import idle from '../commands/idle.js';
import type { SignalState } from '../commands/lib/signals.js';
import locks from '../commands/locks.js';
import longRunning from '../commands/long-running.js';
import terminate from '../commands/terminate.js';
import { Catalog } from '../src/core/catalog.js';
import { UserError } from '../src/core/errors.js';
import type { AnyOperation } from '../src/core/operation.js';
import type { Row } from '../src/core/types.js';
import { adminQuery, createDatabase, majors, openClient } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';
import type { Major } from './setup/postgres.js';

const PASSWORD = 'pw-sessions-3';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function urlAs(url: string, user: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = PASSWORD;
  return u.toString();
}

async function waitFor<T>(
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 8000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await probe();
  while (!done(value) && Date.now() < deadline) {
    await sleep(25);
    value = await probe();
  }
  return value;
}

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection(promise: Promise<unknown>): Promise<UserError> {
  const outcome = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(outcome).toBeInstanceOf(UserError);
  return outcome as UserError;
}

const byNumber = (a: number, b: number) => a - b;
const pidsOf = (rows: readonly Row[], key = 'pid') => rows.map((r) => Number(r[key])).sort(byNumber);

interface Held {
  client: pg.Client;
  pid: number;
  ended: boolean;
  /** A query sent without waiting for it (a sleep, a lock wait), settled as its outcome. */
  pending?: Promise<unknown>;
}

it('the session operations pass the catalog checks, with their risks', () => {
  const specs = [connections, activity, longRunning, idle, locks, blocking, health, terminate, cancelQuery];
  const catalog = new Catalog(specs);
  expect(catalog.all().map((spec) => [spec.name, spec.risk])).toEqual([
    ['connections', 'read'],
    ['activity', 'read'],
    ['long-running', 'read'],
    ['idle', 'read'],
    ['locks', 'read'],
    ['blocking', 'read'],
    ['health', 'read'],
    ['terminate', 'destructive'],
    ['cancel-query', 'destructive'],
  ]);
  expect(longRunning.args.parse({}).older_than).toBe(60);
  expect(activity.args.parse({}).older_than).toBe(0);
  expect(health.args.parse({})).toEqual({ long_query: 60, blocked: 60, idle_in_transaction: 300 });
  expect(() => terminate.args.parse({ pid: '12; DROP' })).toThrow();
});

describe.each(majors())('PostgreSQL %i', (major: Major) => {
  const suffix = randomBytes(3).toString('hex');
  const nopriv = `sess_nopriv_${suffix}`;
  const stats = `sess_stats_${suffix}`;
  const app = `sess_app_${suffix}`;
  const held: Held[] = [];
  let db: { name: string; url: string };
  let other: { name: string; url: string };
  let quiet: { name: string; url: string };
  let h: OpHarness;
  const scene = {} as Record<
    | 'sleeper'
    | 'idler'
    | 'iit'
    | 'aborted'
    | 'holderA'
    | 'holderB'
    | 'waiter'
    | 'queued'
    | 'elsewhere'
    | 'replica',
    Held
  >;

  const admin = <T extends pg.QueryResultRow>(sql: string, params: unknown[] = [], database = db.name) =>
    adminQuery<T>(sql, params, database, major);

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

  /** Sends a query and keeps its outcome (rows, or the error) without waiting for it. */
  function send(session: Held, sql: string): void {
    session.pending = session.client.query(sql).then(
      (r) => r.rows,
      (err: unknown) => err,
    );
  }

  async function stateOf(pid: number): Promise<string | undefined> {
    const [row] = await admin<{ state: string }>('SELECT state FROM pg_stat_activity WHERE pid = $1', [pid]);
    return row?.state;
  }

  async function alive(pid: number): Promise<boolean> {
    return (await admin('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid], 'postgres')).length === 1;
  }

  /** Terminates a held session and waits until the server has forgotten it. */
  async function endSession(session: Held): Promise<void> {
    await admin('SELECT pg_terminate_backend($1)', [session.pid]);
    await waitFor(
      () => alive(session.pid),
      (up) => !up,
    );
  }

  beforeAll(async () => {
    db = await createDatabase(
      'sessions',
      'CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 1)',
      major,
    );
    other = await createDatabase('sessions_other', undefined, major);
    quiet = await createDatabase('sessions_quiet', undefined, major);
    await adminQuery(`CREATE ROLE ${nopriv} LOGIN PASSWORD '${PASSWORD}'`, [], 'postgres', major);
    await adminQuery(
      `CREATE ROLE ${stats} LOGIN PASSWORD '${PASSWORD}' IN ROLE pg_read_all_stats`,
      [],
      'postgres',
      major,
    );
    await adminQuery(`CREATE ROLE ${app} LOGIN PASSWORD '${PASSWORD}'`, [], 'postgres', major);
    // One check of health must fail for this role on the quiet database; the others must still answer.
    await adminQuery('REVOKE SELECT ON pg_catalog.pg_database FROM PUBLIC', [], quiet.name, major);

    h = new OpHarness(
      [
        testTarget('t', db.url),
        testTarget('quiet', quiet.url),
        testTarget('nopriv', urlAs(db.url, nopriv)),
        testTarget('stats', urlAs(db.url, stats)),
        testTarget('quiet-nopriv', urlAs(quiet.url, nopriv)),
        testTarget('down', 'postgres://nobody:nothing@127.0.0.1:1/none'),
      ],
      {
        // Another dbops replica's connection, known by its pid (as published in the state database).
        sharedPids: {
          others: () => (scene.replica ? [scene.replica.pid] : []),
          changed: () => {},
          refresh: async () => {},
        },
      },
    );

    scene.sleeper = await hold(db.url, 'sleeper');
    send(scene.sleeper, 'SELECT pg_sleep(60)');
    scene.idler = await hold(db.url, 'idler');
    scene.iit = await hold(db.url, 'iit');
    await scene.iit.client.query('BEGIN');
    await scene.iit.client.query('SELECT 1');
    scene.aborted = await hold(db.url, 'aborted');
    await scene.aborted.client.query('BEGIN');
    await scene.aborted.client.query('SELECT 1 / 0').catch(() => {});
    // Two holders of SHARE on t; an UPDATE waits for both; a SHARE request queues behind the UPDATE.
    scene.holderA = await hold(db.url, 'holder-a');
    scene.holderB = await hold(db.url, 'holder-b');
    for (const holder of [scene.holderA, scene.holderB]) {
      await holder.client.query('BEGIN');
      await holder.client.query('LOCK TABLE t IN SHARE MODE');
    }
    scene.waiter = await hold(db.url, 'waiter');
    send(scene.waiter, 'UPDATE t SET v = v + 1');
    await waitFor(
      () => admin('SELECT 1 FROM pg_locks WHERE NOT granted AND pid = $1', [scene.waiter.pid]),
      (rows) => rows.length === 1,
    );
    scene.queued = await hold(db.url, 'queued');
    await scene.queued.client.query('BEGIN');
    send(scene.queued, 'LOCK TABLE t IN SHARE MODE');
    scene.elsewhere = await hold(other.url, 'elsewhere');
    send(scene.elsewhere, 'SELECT pg_sleep(60)');
    // Another dbops replica (known by pid, whatever its application_name): never listed, never signalled.
    scene.replica = await hold(db.url, 'other-replica');
    await scene.replica.client.query('BEGIN');
    await scene.replica.client.query('SELECT 1');
    await waitFor(
      () =>
        admin(`SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                   WHERE NOT l.granted AND a.datname = current_database()`),
      (rows) => rows.length === 2,
    );
    // Every scene session is now older than the 1s thresholds used below.
    await sleep(1100);
  });

  afterAll(async () => {
    await h?.close();
    const pids = held.map((s) => s.pid);
    await adminQuery(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY($1)',
      [pids],
      'postgres',
      major,
    );
    await Promise.all(held.map((s) => s.client.end().catch(() => {})));
    for (const database of [db, other, quiet]) {
      if (database)
        await adminQuery(`DROP DATABASE IF EXISTS "${database.name}" WITH (FORCE)`, [], 'postgres', major);
    }
    for (const role of [nopriv, stats, app])
      await adminQuery(`DROP ROLE IF EXISTS ${role}`, [], 'postgres', major);
  });

  /** Client sessions of the test database as the superuser sees them, dbops and this query excluded. */
  async function truth<T extends pg.QueryResultRow>(where: string, columns = 'pid'): Promise<T[]> {
    return await admin<T>(
      `SELECT ${columns} FROM pg_stat_activity
       WHERE backend_type = 'client backend' AND datname = current_database()
         AND pid <> pg_backend_pid() AND pid <> ALL ($1::int[]) AND ${where}
       ORDER BY pid`,
      [h.pools.get('t').ownPids()],
    );
  }

  it('activity lists exactly the non-idle client sessions of the database, with durations', async () => {
    const result = await h.run(activity, 't');
    const expected = (await truth<{ pid: number }>("state <> 'idle'")).map((r) => r.pid);
    const s = scene;
    expect(expected).toEqual(
      [s.sleeper, s.iit, s.aborted, s.holderA, s.holderB, s.waiter, s.queued]
        .map((x) => x.pid)
        .sort(byNumber),
    );
    expect(pidsOf(result.rows)).toEqual(expected);
    const own = h.pools.get('t').ownPids();
    expect(own.length).toBeGreaterThan(0);
    for (const pid of [...own, s.idler.pid, s.elsewhere.pid, s.replica.pid]) {
      expect(result.rows.some((r) => r.pid === pid)).toBe(false);
    }
    expect(result.columns.map((c) => [c.key, c.kind])).toEqual([
      ['pid', 'id'],
      ['user', 'text'],
      ['application', 'text'],
      ['client_address', 'text'],
      ['state', 'text'],
      ['wait_event', 'text'],
      ['query_seconds', 'seconds'],
      ['xact_seconds', 'seconds'],
      ['query', 'text'],
    ]);
    const [waits] = await admin<{ sleeper: string; waiter: string }>(
      `SELECT max(wait_event_type || ': ' || wait_event) FILTER (WHERE pid = $1) AS sleeper,
              max(wait_event_type || ': ' || wait_event) FILTER (WHERE pid = $2) AS waiter
       FROM pg_stat_activity`,
      [s.sleeper.pid, s.waiter.pid],
    );
    const sleeperRow = result.rows.find((r) => r.pid === s.sleeper.pid);
    expect(sleeperRow).toMatchObject({
      user: 'postgres',
      application: 'sleeper',
      client_address: '127.0.0.1',
      state: 'active',
      wait_event: waits?.sleeper,
      query: 'SELECT pg_sleep(60)',
    });
    expect(Number(sleeperRow?.query_seconds)).toBeGreaterThanOrEqual(1);
    expect(result.rows.find((r) => r.pid === s.waiter.pid)).toMatchObject({
      state: 'active',
      wait_event: 'Lock: relation',
      query: 'UPDATE t SET v = v + 1',
    });
    const iitRow = result.rows.find((r) => r.pid === s.iit.pid);
    expect(iitRow).toMatchObject({ state: 'idle in transaction', query: 'SELECT 1' });
    expect(Number(iitRow?.xact_seconds)).toBeGreaterThanOrEqual(1);
    expect(result.rows.find((r) => r.pid === s.aborted.pid)?.state).toBe('idle in transaction (aborted)');
    // Longest query first.
    const seconds = result.rows.map((r) => Number(r.query_seconds));
    expect(seconds).toEqual([...seconds].sort((a, b) => b - a));
    expect(result.headline).toMatch(
      new RegExp(
        `^7 non-idle sessions on t \\(3 active, 4 idle in transaction\\); longest .+ \\(pid ${s.sleeper.pid}\\)$`,
      ),
    );
    expect(result.data).toEqual({
      olderThanSeconds: 0,
      sessions: 7,
      active: 3,
      idleInTransaction: 4,
      hiddenSessions: 0,
    });
  });

  it('long-running is activity with a 1m default threshold; --older-than filters on the query start', async () => {
    const none = await h.run(longRunning, 't');
    expect(none.rows).toEqual([]);
    expect(none.headline).toBe('no non-idle sessions with a query started more than 1m ago on t');
    expect(none.data).toMatchObject({ olderThanSeconds: 60 });

    const fresh = await hold(db.url, 'fresh');
    send(fresh, 'SELECT pg_sleep(60)');
    await waitFor(
      () => stateOf(fresh.pid),
      (state) => state === 'active',
    );
    const result = await h.run(longRunning, 't', '--older-than 1s');
    const expected = (
      await truth<{ pid: number }>(
        "state <> 'idle' AND query_start <= clock_timestamp() - interval '1 second'",
      )
    ).map((r) => r.pid);
    expect(expected).not.toContain(fresh.pid);
    expect(pidsOf(result.rows)).toEqual(expected);
    expect(pidsOf((await h.run(activity, 't')).rows)).toContain(fresh.pid);
    expect((await h.run(activity, 't', '--older-than 1h')).rows).toEqual([]);
    await endSession(fresh);
  });

  it('idle lists idle and idle-in-transaction sessions, holding a transaction first', async () => {
    const result = await h.run(idle, 't', '--older-than 1s');
    const expected = await truth<{ pid: number; state: string }>(
      "state LIKE 'idle%' AND state_change <= clock_timestamp() - interval '1 second'",
      'pid, state',
    );
    const s = scene;
    expect(expected.map((r) => r.pid)).toEqual(
      [s.idler, s.iit, s.aborted, s.holderA, s.holderB].map((x) => x.pid).sort(byNumber),
    );
    expect(pidsOf(result.rows)).toEqual(expected.map((r) => r.pid));
    const states = result.rows.map((r) => r.state);
    expect(states.slice(0, 4).every((st) => String(st).startsWith('idle in transaction'))).toBe(true);
    expect(states[4]).toBe('idle');
    for (const row of result.rows) {
      expect(row.state).toBe(expected.find((e) => e.pid === row.pid)?.state);
      expect(Number(row.idle_seconds)).toBeGreaterThanOrEqual(1);
    }
    expect(Number(result.rows[0]?.xact_seconds)).toBeGreaterThanOrEqual(1);
    expect(result.rows.find((r) => r.pid === s.holderA.pid)?.last_query).toBe('LOCK TABLE t IN SHARE MODE');
    expect(result.rows.find((r) => r.pid === s.idler.pid)?.xact_seconds).toBeNull();
    // dbops' pool connections sit idle between operations: never listed.
    const own = h.pools.get('t').ownPids();
    expect(own.length).toBeGreaterThan(0);
    for (const pid of [...own, s.replica.pid]) expect(result.rows.some((r) => r.pid === pid)).toBe(false);
    expect(result.data).toMatchObject({ idleInTransaction: 4, idle: 1 });
    expect(result.headline).toMatch(
      /^4 sessions idle in transaction \(pid \d+, longest .+\) and 1 session idle for more than 1s on t$/,
    );
    expect((await h.run(idle, 't', '--older-than 1h')).headline).toBe(
      'no idle sessions for more than 1h on t',
    );
  });

  it('connections: headroom equals max_connections minus reserved slots, counted over client backends', async () => {
    const [settings] = await admin<{ max: number; su: number; reserved: number }>(
      `SELECT current_setting('max_connections')::int AS max,
              current_setting('superuser_reserved_connections')::int AS su,
              COALESCE(current_setting('reserved_connections', true)::int, 0) AS reserved`,
    );
    if (!settings) throw new Error('no settings');
    const usable = settings.max - settings.su - settings.reserved;
    const meter = await openClient(db.url, 'meter');
    const clients = async () =>
      Number(
        (
          await meter.query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend'",
          )
        ).rows[0]?.n,
      );
    try {
      // Other test files open connections too: compare when the count held still across the run.
      let compared = false;
      for (let attempt = 0; attempt < 50 && !compared; attempt++) {
        const before = await clients();
        const result = await h.run(connections, 't');
        // Without pg_read_all_stats other roles' sessions have no backend_type: they still count.
        const blind = await h.run(connections, 'nopriv');
        const after = await clients();
        if (before !== after) continue;
        compared = true;
        expect(result.data).toMatchObject({
          inUse: before,
          usable,
          maxConnections: settings.max,
          superuserReservedConnections: settings.su,
          reservedConnections: settings.reserved,
          hiddenSessions: 0,
          percent: Math.round((before / usable) * 1000) / 10,
        });
        expect(result.headline).toBe(
          `${before.toLocaleString('en-US')} of ${usable.toLocaleString('en-US')} usable connections in use ` +
            `(${Math.round((before / usable) * 100)}%)`,
        );
        expect(blind.data).toMatchObject({ inUse: before, usable });
        expect(Number(blind.data?.hiddenSessions)).toBeGreaterThan(0);
        expect(blind.notes?.join('\n')).toContain('pg_read_all_stats');
        // Background processes are not client backends: the raw pg_stat_activity count is larger.
        const [all] = await admin<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity');
        expect(Number(all?.n)).toBeGreaterThan(before);

        // Groups of this database, by user, application and client, equal the ground truth.
        const groups = await admin<{
          user: string;
          application: string;
          total: string;
          active: string;
          idle: string;
          iit: string;
        }>(
          `SELECT usename AS "user", application_name AS application, count(*) AS total,
                  count(*) FILTER (WHERE state = 'active') AS active, count(*) FILTER (WHERE state = 'idle') AS idle,
                  count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS iit
           FROM pg_stat_activity
           WHERE backend_type = 'client backend' AND datname = current_database()
             AND pid <> pg_backend_pid() AND pid <> ALL ($1::int[])
           GROUP BY 1, 2`,
          [h.pools.get('t').ownPids()],
        );
        const mine = result.rows
          .filter((r) => r.database === db.name)
          .map((r) => [r.user, r.application, r.total, r.active, r.idle, r.idle_in_transaction])
          .sort();
        expect(mine).toEqual(
          groups
            .map((g) => [
              g.user,
              g.application,
              Number(g.total),
              Number(g.active),
              Number(g.idle),
              Number(g.iit),
            ])
            .sort(),
        );
        expect(mine.length).toBeGreaterThanOrEqual(9);
        expect(result.rows.find((r) => r.database === db.name && r.application === 'sleeper')).toMatchObject({
          client_address: '127.0.0.1',
          total: 1,
          active: 1,
        });
        expect(result.rows.some((r) => String(r.application).startsWith('dbops'))).toBe(false);
        // Another database is counted, but its users, applications and clients are not this target's to show.
        expect(result.rows.filter((r) => r.database === other.name)).toEqual([
          expect.objectContaining({ user: null, application: null, client_address: null }),
        ]);
        expect(result.rows.some((r) => r.application === 'elsewhere')).toBe(false);
        expect(Number(result.data?.dbopsConnections)).toBeGreaterThanOrEqual(2);
      }
      expect(compared).toBe(true);
    } finally {
      await meter.end();
    }
  });

  it('locks lists the lock requests not granted, with relation, mode, wait time and blockers', async () => {
    const result = await h.run(locks, 't');
    const expected = await admin<{ pid: number; mode: string; relation: string; locktype: string }>(
      `SELECT l.pid, l.mode, l.relation::regclass::text AS relation, l.locktype
       FROM pg_locks l JOIN pg_stat_activity a USING (pid)
       WHERE NOT l.granted AND a.datname = current_database() ORDER BY l.pid`,
    );
    expect(expected.map((e) => e.pid)).toEqual([scene.waiter.pid, scene.queued.pid].sort(byNumber));
    expect(
      result.rows
        .map((r) => ({ pid: r.pid, mode: r.mode, relation: r.relation, locktype: r.locktype }))
        .sort((a, b) => Number(a.pid) - Number(b.pid)),
    ).toEqual(expected);
    expect(result.rows.find((r) => r.pid === scene.waiter.pid)).toMatchObject({
      mode: 'RowExclusiveLock',
      relation: 't',
      user: 'postgres',
      query: 'UPDATE t SET v = v + 1',
    });
    const blockers = (pid: number) =>
      String(result.rows.find((r) => r.pid === pid)?.blocked_by)
        .split(', ')
        .map(Number)
        .sort(byNumber);
    expect(blockers(scene.waiter.pid)).toEqual([scene.holderA.pid, scene.holderB.pid].sort(byNumber));
    expect(blockers(scene.queued.pid)).toEqual([scene.waiter.pid]);
    // The waiter has waited since the scene was set up (> 1 s), longer than the request queued behind it.
    expect(result.rows[0]?.pid).toBe(scene.waiter.pid);
    expect(Number(result.rows[0]?.waited_seconds)).toBeGreaterThanOrEqual(1);
    expect(result.headline).toMatch(
      new RegExp(`^2 lock requests waiting on t; longest .+ \\(pid ${scene.waiter.pid}\\)$`),
    );
  });

  it('blocking shows one row per (blocked, blocker) pair, both blockers of one waiter, roots flagged', async () => {
    const result = await h.run(blocking, 't');
    const s = scene;
    const [a, b] = [s.holderA.pid, s.holderB.pid].sort(byNumber);
    const truthPairs = await admin<{ blocked: number; blocker: number }>(
      `SELECT w.pid AS blocked, unnest(pg_blocking_pids(w.pid)) AS blocker
       FROM pg_stat_activity w WHERE w.datname = current_database() ORDER BY 1, 2`,
    );
    const pairs = result.rows.map((r) => ({ blocked: r.blocked_pid, blocker: r.blocking_pid }));
    expect(
      [...pairs].sort(
        (x, y) => Number(x.blocked) - Number(y.blocked) || Number(x.blocker) - Number(y.blocker),
      ),
    ).toEqual(truthPairs);
    expect(pairs).toEqual([
      { blocked: s.waiter.pid, blocker: a },
      { blocked: s.waiter.pid, blocker: b },
      { blocked: s.queued.pid, blocker: s.waiter.pid },
    ]);
    expect(result.rows.map((r) => r.root)).toEqual([true, true, false]);
    expect(result.rows[0]).toMatchObject({
      blocked_user: 'postgres',
      blocked_query: 'UPDATE t SET v = v + 1',
      blocking_state: 'idle in transaction',
      blocking_query: 'LOCK TABLE t IN SHARE MODE',
    });
    expect(Number(result.rows[0]?.waiting_seconds)).toBeGreaterThanOrEqual(1);
    expect(Number(result.rows[0]?.blocking_xact_seconds)).toBeGreaterThanOrEqual(1);
    expect(result.rows[2]).toMatchObject({
      blocking_state: 'active',
      blocking_query: 'UPDATE t SET v = v + 1',
    });
    expect(result.headline).toBe(`2 sessions blocked by 3 sessions (root pids ${a}, ${b})`);
    expect(result.data).toEqual({
      blocked: [s.waiter.pid, s.queued.pid],
      blockers: [a, b, s.waiter.pid],
      roots: [a, b],
    });
    expect((await h.run(blocking, 'quiet')).headline).toBe('no blocked sessions on quiet');
  });

  it('health warns and fails on the conditions it checks, and is all ok on a quiet database', async () => {
    const statuses = (rows: readonly Row[]) => Object.fromEntries(rows.map((r) => [r.check, r.status]));
    const strict = await h.run(health, 't', '--long-query 1s --blocked 1s --idle-in-transaction 1s');
    expect(statuses(strict.rows)).toEqual({
      connects: 'ok',
      'round-trip': 'ok',
      connections: 'ok',
      'long-running queries': 'warn',
      blocking: 'fail',
      'idle in transaction': 'warn',
      wraparound: 'ok',
    });
    expect(strict.headline).toBe(
      'health of t: FAIL (fail: blocking; warn: long-running queries, idle in transaction)',
    );
    const detail = (rows: readonly Row[], check: string) =>
      String(rows.find((r) => r.check === check)?.detail);
    // The scene: 2 blocked (root pids of the two holders), 4 idle in transaction, 3 long queries (the
    // sleeper, and the two blocked statements, active since the scene began), the sleeper first.
    const [a, b] = [scene.holderA.pid, scene.holderB.pid].sort(byNumber);
    expect(detail(strict.rows, 'blocking')).toMatch(
      new RegExp(`^2 blocked, longest .+, root pid ${a}, ${b}$`),
    );
    expect(detail(strict.rows, 'idle in transaction')).toMatch(/^4 > 1s, longest .+ \(pid \d+\)$/);
    expect(detail(strict.rows, 'long-running queries')).toMatch(
      new RegExp(`^3 > 1s, longest .+ \\(pid ${scene.sleeper.pid}\\)$`),
    );
    // The table lines are short; each check that is not ok has a note with the whole story and what to type.
    expect(strict.notes).toEqual([
      expect.stringMatching(
        new RegExp(
          `^long-running queries: 3 queries running for more than 1s, the longest for .+ \\(pid ${scene.sleeper.pid}\\); \`/db long-running t --older-than 1s\` lists them`,
        ),
      ),
      expect.stringMatching(
        new RegExp(
          `^blocking: 2 sessions blocked, longest .+ \\(fails beyond 1s\\); \`/db blocking t\` shows the chains, and ending root pid ${a}, ${b} \\(\`terminate\`\\) releases them$`,
        ),
      ),
      expect.stringMatching(/^idle in transaction: 4 sessions idle in transaction for more than 1s, /),
      'thresholds: long-running > 1s warns, blocked > 1s fails, idle in transaction > 1s warns',
    ]);
    for (const row of strict.rows) expect(String(row.detail).length).toBeLessThanOrEqual(48);
    expect(detail(strict.rows, 'connects')).toMatch(new RegExp(`^PostgreSQL ${major}\\.\\d+, connected in `));
    expect(strict.data).toMatchObject({
      status: 'fail',
      checks: {
        blocking: { status: 'fail', blocked: 2, roots: [a, b] },
        'idle in transaction': { count: 4 },
      },
    });

    // Runbook defaults: blocked (for less than 1m) only warns, nothing is a long query or long idle yet.
    const defaults = await h.run(health, 't');
    expect(statuses(defaults.rows)).toMatchObject({
      blocking: 'warn',
      'long-running queries': 'ok',
      'idle in transaction': 'ok',
    });
    expect(defaults.headline).toBe('health of t: WARN (warn: blocking)');

    const calm = await h.run(health, 'quiet', '--long-query 1s --blocked 1s --idle-in-transaction 1s');
    expect(calm.rows.map((r) => r.status)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
    expect(calm.headline).toBe('health of quiet: OK (all 7 checks ok)');
    const [age] = await admin<{ pct: number }>(
      `SELECT max(age(datfrozenxid)::float8 / current_setting('autovacuum_freeze_max_age')::float8 * 100) AS pct
       FROM pg_database`,
    );
    expect(calm.data).toMatchObject({
      checks: { wraparound: { status: 'ok', percent: expect.closeTo(Number(age?.pct), 0) } },
    });
  });

  it('health still answers when one check fails, and when the target is down', async () => {
    // pg_database is not readable by this role on the quiet database: only the wraparound check fails.
    const partial = await h.run(health, 'quiet-nopriv');
    expect(partial.rows.map((r) => [r.check, r.status])).toEqual([
      ['connects', 'ok'],
      ['round-trip', 'ok'],
      ['connections', 'ok'],
      ['long-running queries', 'ok'],
      ['blocking', 'ok'],
      ['idle in transaction', 'ok'],
      ['wraparound', 'fail'],
    ]);
    expect(partial.rows[6]?.detail).toBe('check failed: permission denied for table pg_database');
    expect(partial.notes?.[0]).toMatch(
      /^sessions of other roles could not be inspected \(connections [\d,]+, counted as client connections/,
    );
    expect(partial.notes?.[1]).toMatch(
      /^wraparound: permission denied on target quiet-nopriv: permission denied for table pg_database\. /,
    );
    expect(partial.headline).toBe('health of quiet-nopriv: FAIL (fail: wraparound)');

    // Without pg_read_all_stats the session checks cannot see other roles' sessions: not ok, and why.
    const others = await truth<{ pid: number }>(`usename <> '${nopriv}'`);
    const blind = await h.run(health, 'nopriv');
    const iit = blind.rows.find((r) => r.check === 'idle in transaction');
    expect(iit).toMatchObject({ status: 'warn', detail: `none for more than 5m (${others.length} hidden)` });
    // Said once for every check that could not see them, not once per check.
    const unseen = (blind.notes ?? []).filter((n) => n.includes('could not be inspected'));
    expect(unseen).toHaveLength(1);
    expect(unseen[0]).toMatch(
      /^sessions of other roles could not be inspected \(connections [\d,]+, counted as client connections; /,
    );
    expect(unseen[0]).toContain(
      `; idle in transaction ${others.length.toLocaleString('en-US')}): the bot role needs pg_read_all_stats ` +
        '(or pg_monitor) to see sessions of other roles',
    );

    const down = await h.run(health, 'down');
    expect(down.rows).toEqual([
      { check: 'connects', status: 'fail', detail: 'cannot connect (target down)' },
    ]);
    expect(down.notes?.[0]).toMatch(/^connects: target down is unreachable: connection refused\./);
    expect(down.headline).toBe('health of down: FAIL (fail: connects)');
  });

  it('the SQL for older servers (no pg_locks.waitstart before 14, no reserved_connections before 16) agrees', async () => {
    const asVersion = (spec: AnyOperation, version: number) => {
      const ctx = h.context(spec, 't');
      const db = { ...ctx.db, serverVersion: async () => version };
      const run = spec.run;
      if (!run) throw new Error(`${spec.name} has no run()`);
      return run({ ...ctx, db });
    };
    const now = await h.run(blocking, 't');
    const old = await asVersion(blocking, 130000);
    expect(old.headline).toBe(now.headline);
    expect(old.rows.map((r) => [r.blocked_pid, r.blocking_pid, r.root])).toEqual(
      now.rows.map((r) => [r.blocked_pid, r.blocking_pid, r.root]),
    );
    // Measured from the waiting query's start instead: here the same moment, give or take.
    expect(Number(old.rows[0]?.waiting_seconds)).toBeGreaterThanOrEqual(1);
    expect(old.notes).toContain(
      'PostgreSQL before 14 does not record when a wait began: "waiting" counts from the query start',
    );
    const oldLocks = await asVersion(locks, 130000);
    expect(pidsOf(oldLocks.rows)).toEqual(pidsOf((await h.run(locks, 't')).rows));
    const oldConnections = await asVersion(connections, 150000);
    expect(oldConnections.data).toMatchObject({ reservedConnections: 0 });
  });

  it('without pg_read_all_stats, activity and idle say how many sessions they cannot show and which role fixes it', async () => {
    const others = await truth<{ pid: number }>(`usename <> '${nopriv}'`);
    const result = await h.run(activity, 'nopriv');
    expect(result.rows).toEqual([]);
    expect(result.data).toMatchObject({ hiddenSessions: others.length });
    expect(result.notes).toContain(
      `${others.length} sessions of other roles are not shown: the bot role needs pg_read_all_stats (or pg_monitor) to see sessions of other roles`,
    );
    const idleResult = await h.run(idle, 'nopriv');
    expect(idleResult.data).toMatchObject({ hiddenSessions: others.length });
    // With pg_read_all_stats everything is visible again.
    expect(pidsOf((await h.run(activity, 'stats')).rows)).toEqual(pidsOf((await h.run(activity, 't')).rows));
  });

  it('terminate and cancel-query refuse pids that are not client sessions of this database, or are dbops', async () => {
    const [checkpointer] = await admin<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'",
    );
    const [launcher] = await admin<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE backend_type = 'autovacuum launcher'",
    );
    const poolPid = await h.pools.get('t').read(async (session) => session.backendPid);
    const cases: [number | undefined, RegExp][] = [
      [scene.elsewhere.pid, new RegExp(`it is connected to database ${other.name}, not to ${db.name}`)],
      [checkpointer?.pid, /it is not a client backend but the checkpointer/],
      [launcher?.pid, /it is not a client backend but the autovacuum launcher/],
      [poolPid, /it is dbops' own connection/],
      [scene.replica.pid, /it is dbops' own connection/],
      [2147483646, /no session matching pid 2147483646/],
    ];
    for (const [pid, why] of cases) {
      expect(pid).toBeTypeOf('number');
      for (const spec of [terminate, cancelQuery]) {
        const err = await rejection(h.preview(spec, 't', String(pid)));
        expect(err.code).toBe('invalid_argument');
        expect(err.message).toMatch(why);
      }
    }
    // Nothing was signalled.
    expect(await alive(scene.elsewhere.pid)).toBe(true);
    expect(await alive(scene.replica.pid)).toBe(true);
    const err = await rejection(h.preview(cancelQuery, 't', String(scene.idler.pid)));
    expect(err.message).toBe(
      `refusing to cancel pid ${scene.idler.pid}: it is idle, so there is no running query to cancel (terminate ends the session instead)`,
    );
  });

  it('terminate and cancel-query name the role that is missing', async () => {
    const victim = await hold(urlAs(db.url, app), 'app-session');
    // pg_read_all_stats but not pg_signal_backend.
    for (const spec of [terminate, cancelQuery]) {
      const err = await rejection(h.preview(spec, 'stats', String(victim.pid)));
      expect(err.code).toBe('permission');
      if (spec === terminate) expect(err.message).toContain('pg_signal_backend');
    }
    const superuserSession = await rejection(h.preview(terminate, 'stats', String(scene.idler.pid)));
    expect(superuserSession).toMatchObject({ code: 'permission' });
    expect(superuserSession.message).toContain('only a superuser can signal a superuser session');
    // Neither: the session cannot even be checked.
    const blind = await rejection(h.preview(terminate, 'nopriv', String(victim.pid)));
    expect(blind.code).toBe('permission');
    expect(blind.message).toContain('pg_read_all_stats');
    expect(await alive(victim.pid)).toBe(true);
  });

  it('terminate previews the session, re-checks its backend start, and ends it', async () => {
    const victim = await hold(db.url, 'victim');
    await victim.client.query('BEGIN');
    await victim.client.query('SELECT 42');
    const preview = await h.preview(terminate, 't', String(victim.pid));
    expect(preview.empty).toBeUndefined();
    const [start] = await admin<{ iso: string }>(
      `SELECT to_char(backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS iso
       FROM pg_stat_activity WHERE pid = $1`,
      [victim.pid],
    );
    expect(preview.state).toEqual({ pid: victim.pid, backendStart: start?.iso });
    expect(preview.result.rows).toEqual([
      {
        pid: victim.pid,
        user: 'postgres',
        application: 'victim',
        client_address: '127.0.0.1',
        state: 'idle in transaction',
        state_seconds: expect.any(Number),
        query: 'SELECT 42',
        backend_start: start?.iso,
      },
    ]);
    expect(preview.result.headline).toMatch(
      new RegExp(
        `^pid ${victim.pid} \\(postgres, victim, idle in transaction for .+\\) on t would be terminated$`,
      ),
    );

    // A pid whose backend_start changed is another session: refused, and it lives on.
    const reused: SignalState = { pid: victim.pid, backendStart: '2001-02-03T04:05:06.000007Z' };
    const err = await rejection(h.execute(terminate, 't', String(victim.pid), reused));
    expect(err.code).toBe('invalid_argument');
    expect(err.message).toContain('it is now a different session');
    expect(await alive(victim.pid)).toBe(true);
    await expect(h.execute(terminate, 't', String(victim.pid), { pid: 'x' })).rejects.toThrow(
      'malformed preview state',
    );

    const result = await h.execute(terminate, 't', String(victim.pid), preview.state);
    expect(result.headline).toBe(`terminated pid ${victim.pid} (postgres, victim): the backend is gone`);
    expect(result.rows).toEqual([
      {
        pid: victim.pid,
        user: 'postgres',
        application: 'victim',
        state: 'idle in transaction',
        outcome: 'terminated',
      },
    ]);
    expect(result.data).toEqual({ pid: victim.pid, terminated: true, gone: true });
    expect(await alive(victim.pid)).toBe(false);
    await expect(victim.client.query('SELECT 1')).rejects.toThrow();
    expect(victim.ended).toBe(true);

    // Executing the same approval again: the session is gone, nothing to do.
    const again = await h.execute(terminate, 't', String(victim.pid), preview.state);
    expect(again.headline).toBe(`pid ${victim.pid} had already ended; nothing to terminate`);
  });

  it('cancel-query cancels the running query (the client gets 57014) and the session stays', async () => {
    const busy = await hold(db.url, 'busy');
    send(busy, 'SELECT pg_sleep(30)');
    await waitFor(
      () => stateOf(busy.pid),
      (state) => state === 'active',
    );
    const preview = await h.preview(cancelQuery, 't', String(busy.pid));
    expect(preview.result.rows[0]).toMatchObject({
      pid: busy.pid,
      state: 'active',
      query: 'SELECT pg_sleep(30)',
    });
    expect(preview.result.headline).toMatch(
      new RegExp(
        `^the query of pid ${busy.pid} \\(postgres, busy\\) on t, running for .+, would be cancelled$`,
      ),
    );
    const result = await h.execute(cancelQuery, 't', String(busy.pid), preview.state);
    expect(result.headline).toBe(
      `cancelled the query of pid ${busy.pid} (postgres, busy); the session stays connected`,
    );
    expect(result.data).toEqual({ pid: busy.pid, cancelled: true, stopped: true });
    expect(await busy.pending).toMatchObject({ code: '57014' });
    expect((await busy.client.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    expect(await alive(busy.pid)).toBe(true);

    // The approved query ended and another one runs: cancelling would hit the wrong query.
    const second = await h.preview(cancelQuery, 't', String(busy.pid)).catch(() => undefined);
    expect(second).toBeUndefined(); // idle now: nothing to cancel
    send(busy, 'SELECT pg_sleep(30)');
    await waitFor(
      () => stateOf(busy.pid),
      (state) => state === 'active',
    );
    const approved = await h.preview(cancelQuery, 't', String(busy.pid));
    await admin('SELECT pg_cancel_backend($1)', [busy.pid]);
    expect(await busy.pending).toMatchObject({ code: '57014' });
    // The client hears the error before the backend reports itself idle: wait until it has.
    await waitFor(
      () => stateOf(busy.pid),
      (state) => state !== 'active',
    );
    const finished = await h.execute(cancelQuery, 't', String(busy.pid), approved.state);
    expect(finished.headline).toBe(
      `the query of pid ${busy.pid} (postgres, busy) had already finished; nothing was cancelled`,
    );
    send(busy, 'SELECT pg_sleep(30)');
    await waitFor(
      () => stateOf(busy.pid),
      (state) => state === 'active',
    );
    const wrong = await rejection(h.execute(cancelQuery, 't', String(busy.pid), approved.state));
    expect(wrong.message).toContain('the previewed query finished and the session now runs another one');
    expect(await stateOf(busy.pid)).toBe('active');
    await admin('SELECT pg_cancel_backend($1)', [busy.pid]);
  });
});
