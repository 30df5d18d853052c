// A read sends each statement in one round trip (BEGIN READ ONLY, timeouts, statement, ROLLBACK, Sync),
// on PostgreSQL 15 and 17, without weakening it: it never writes, the server's timeouts apply to every
// statement, nothing it sets outlives it, and what needs one transaction across statements still has it.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Limits, ResolvedTarget } from '../src/config/schema.js';
import { needsTransaction } from '../src/engine/one-flight.js';
import { TargetPools } from '../src/engine/target-db.js';
import type { Session, TargetDb } from '../src/engine/types.js';
import { adminQuery, createDatabase as createDb, majors, openClient } from './helpers/db.js';
import type { Major } from './setup/postgres.js';

const LIMITS: Limits = {
  statement_timeout: 5,
  lock_timeout: 1,
  row_cap: 200,
  pool_max: 1,
  pool_idle: 30,
  connect_timeout: 2,
};

const SETUP = `
CREATE TABLE t (id int PRIMARY KEY);
INSERT INTO t SELECT generate_series(1, 1000);
CREATE SEQUENCE s;
`;

type Client = pg.Client & { _handleReadyForQuery(msg: unknown): void; _handleNotice(msg: unknown): void };
const clientProto = pg.Client.prototype as unknown as Client;
const originalReady = clientProto._handleReadyForQuery;
const originalNotice = clientProto._handleNotice;
/** Notices and warnings the server sent (each also a line in the server's log at the default settings). */
const notices: string[] = [];
const originalQuery = pg.Client.prototype.query;
/** Round trips (ReadyForQuery messages) by client, and every client that sent a query. */
const roundTrips = new Map<object, number>();
const clients = new Set<pg.Client>();

beforeAll(() => {
  clientProto._handleReadyForQuery = function (this: Client, msg: unknown) {
    roundTrips.set(this, (roundTrips.get(this) ?? 0) + 1);
    originalReady.call(this, msg);
  };
  clientProto._handleNotice = function (this: Client, msg: unknown) {
    notices.push(String((msg as { message?: unknown }).message));
    originalNotice.call(this, msg);
  };
  (pg.Client.prototype as unknown as { query: unknown }).query = function (
    this: pg.Client,
    ...args: unknown[]
  ) {
    clients.add(this);
    return (originalQuery as (...a: unknown[]) => unknown).apply(this, args);
  };
});

const open: TargetPools[] = [];
const created: { name: string; major: Major }[] = [];

/** A database for this file, dropped at its end. */
async function createDatabase(prefix: string, setup: string, major: Major = 15): Promise<{ url: string }> {
  const db = await createDb(prefix, setup, major);
  created.push({ name: db.name, major });
  return db;
}

afterAll(async () => {
  clientProto._handleReadyForQuery = originalReady;
  clientProto._handleNotice = originalNotice;
  pg.Client.prototype.query = originalQuery;
  await Promise.all(open.map((p) => p.closeAll()));
  for (const db of created) {
    await adminQuery(`DROP DATABASE IF EXISTS "${db.name}" WITH (FORCE)`, [], 'postgres', db.major);
  }
});

function pool(url: string, extra: Partial<ResolvedTarget> = {}): TargetDb {
  const target: ResolvedTarget = { name: 't', url, environment: 'test', packs: [], limits: LIMITS, ...extra };
  const created = new TargetPools({ t: target });
  open.push(created);
  return created.get('t');
}

/** Round trips every client made while `work` ran. */
async function counted<T>(work: () => Promise<T>): Promise<{ value: T; trips: number }> {
  const total = () => [...roundTrips.values()].reduce((a, b) => a + b, 0);
  const before = total();
  const value = await work();
  return { value, trips: total() - before };
}

async function failure(
  promise: Promise<unknown>,
): Promise<{ code?: string; detail?: { sqlstate?: string } }> {
  try {
    await promise;
  } catch (err) {
    return err as { code?: string; detail?: { sqlstate?: string } };
  }
  throw new Error('expected the promise to reject');
}

/** A query on a client directly, around the counting wrapper. */
/** What pg_stat_activity says a backend is doing (`{ state: 'idle' }` after a clean read). */
async function stateOf(pid: number, major: Major): Promise<unknown> {
  const [row] = await adminQuery(
    'SELECT state FROM pg_stat_activity WHERE pid = $1',
    [pid],
    'postgres',
    major,
  );
  return row;
}

function rawQuery(client: pg.Client, sql: string): Promise<pg.QueryResult> {
  return (originalQuery as unknown as (this: pg.Client, text: string) => Promise<pg.QueryResult>).call(
    client,
    sql,
  );
}

/** The pooled pg client whose backend is `pid` (the pool has one connection). */
async function clientOf(pid: number): Promise<pg.Client> {
  for (const client of clients) {
    const { rows } = await rawQuery(client, 'SELECT pg_backend_pid() AS pid').catch(() => ({ rows: [] }));
    if (rows[0]?.pid === pid) return client;
  }
  throw new Error(`no client for backend ${pid}`);
}

describe.each(majors())('PostgreSQL %i', (major) => {
  let url: string;
  let db: TargetDb;

  beforeAll(async () => {
    ({ url } = await createDatabase(`flight_${major}`, SETUP, major));
    db = pool(url);
    await db.read((s) => s.query('SELECT 1')); // the pool's connection is open from here on
  });

  it('a read statement is one round trip, read-only, with its timeouts, and leaves the connection idle', async () => {
    const one = await counted(() =>
      db.read(
        (s) =>
          s.query<{ st: string; lt: string; ro: string }>(
            "SELECT current_setting('statement_timeout') AS st, current_setting('lock_timeout') AS lt, " +
              "current_setting('transaction_read_only') AS ro",
          ),
        { statementTimeoutMs: 1234, lockTimeoutMs: 250 },
      ),
    );
    expect(one.value).toEqual([{ st: '1234ms', lt: '250ms', ro: 'on' }]);
    expect(one.trips).toBe(1);
    const two = await counted(() =>
      db.read(async (s) => [await s.query('SELECT 1 AS a'), await s.query('SELECT $1::int AS b', [2])]),
    );
    expect(two.value).toEqual([[{ a: 1 }], [{ b: 2 }]]);
    expect(two.trips).toBe(2);
    // No "there is no transaction in progress" or the like: nothing for the server's log per read.
    notices.length = 0;
    await db.read(async (s) => {
      await s.query('SELECT 1');
      await s.query("SELECT set_config('work_mem', '8MB', true)");
      await s.cursor('SELECT 2');
    });
    expect(notices).toEqual([]);
    const pid = await db.read((s) => Promise.resolve(s.backendPid));
    expect(await stateOf(pid, major)).toEqual({ state: 'idle' });
  });

  it('the result is the statement’s alone: fields, rowCount, types, empty statements', async () => {
    const rows = await db.read((s) =>
      s.query<{ n: number; id: number }>('SELECT count(*) AS n, max(id) AS id FROM t'),
    );
    expect(rows).toEqual([{ n: 1000, id: 1000 }]);
    const cursor = await db.read((s) => s.cursor<{ id: number }>('SELECT id FROM t ORDER BY id', [], 3));
    expect(cursor).toMatchObject({ rows: [{ id: 1 }, { id: 2 }, { id: 3 }], truncated: true });
    expect(cursor.fields?.map((f) => f.name)).toEqual(['id']);
    expect(await db.read((s) => s.execute('SELECT id FROM t WHERE id <= 7'))).toEqual({ rowCount: 7 });
    expect(await db.read((s) => s.query(''))).toEqual([]);
    expect(await db.read((s) => s.query('SELECT FROM t WHERE false'))).toEqual([]);
  });

  it('a read can never write, even after ending its transaction itself', async () => {
    for (const sql of [
      'INSERT INTO t VALUES (-1)',
      'UPDATE t SET id = -id WHERE id = 1',
      "SELECT nextval('s')",
      'CREATE TABLE made_by_a_read (x int)',
    ]) {
      expect(await failure(db.read((s) => s.query(sql)))).toMatchObject({
        code: 'query_failed',
        detail: { sqlstate: '25006' },
      });
    }
    // Read-write cannot be switched on once the transaction has run a query (the timeouts did).
    for (const sql of [
      'SET TRANSACTION READ WRITE',
      "SELECT set_config('transaction_read_only', 'off', true)",
    ]) {
      expect(await failure(db.read((s) => s.query(sql)))).toMatchObject({ code: 'query_failed' });
    }
    // COMMIT inside a read ends that statement's transaction; the next statement is read-only again.
    const after = await failure(
      db.read(async (s) => {
        await s.query('COMMIT');
        await s.query('INSERT INTO t VALUES (-2)');
      }),
    );
    expect(after).toMatchObject({ detail: { sqlstate: '25006' } });
    const [counts] = await adminQuery(
      "SELECT (SELECT count(*)::int FROM t) AS n, (SELECT last_value::int FROM s) AS seq, to_regclass('made_by_a_read') AS made",
      [],
      url.split('/').pop(),
      major,
    );
    expect(counts).toEqual({ n: 1000, seq: 1, made: null });
    expect(await db.write((s) => s.query("SELECT current_setting('transaction_read_only') AS ro"))).toEqual([
      { ro: 'off' },
    ]);
  });

  it('the server cancels every statement past statement_timeout and gives up on a lock after lock_timeout', async () => {
    const limits = { statementTimeoutMs: 200, lockTimeoutMs: 200 };
    const started = Date.now();
    const slow = await failure(
      db.read(async (s) => {
        await s.query('SELECT 1');
        await s.query('SELECT pg_sleep(3)');
      }, limits),
    );
    // The server's own cancel (57014), long before the client's deadline (2.2 s) would drop the connection.
    expect(slow).toMatchObject({ code: 'timeout', detail: { sqlstate: '57014' } });
    expect(Date.now() - started).toBeLessThan(2000);
    const holder = await openClient(url);
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
      const locked = await failure(
        db.read((s) => s.query('SELECT count(*) FROM t'), { statementTimeoutMs: 3000, lockTimeoutMs: 200 }),
      );
      expect(locked).toMatchObject({ code: 'timeout', detail: { sqlstate: '55P03' } });
    } finally {
      await holder.end();
    }
    expect(await db.read((s) => s.query('SELECT count(*)::int AS n FROM t'))).toEqual([{ n: 1000 }]);
  });

  it('nothing a read sets outlives it on the pooled connection', async () => {
    const settings =
      "SELECT current_setting('statement_timeout') AS st, current_setting('lock_timeout') AS lt, " +
      "current_setting('search_path') AS sp, current_setting('transaction_read_only') AS ro";
    // What a new connection to the same database starts with.
    const defaults = await adminQuery(settings, [], url.split('/').pop(), major);
    expect(defaults[0]).toMatchObject({ ro: 'off' });
    const reads = [
      // Statements in their own flights (each rolled back before the Sync).
      async (s: Session) => {
        await s.query('SET statement_timeout = 4321');
        await s.query("SET search_path = 'nowhere'");
        return s.backendPid;
      },
      // A read that keeps one transaction (rolled back at its end).
      async (s: Session) => {
        await s.query("SELECT set_config('lock_timeout', '4321', false)");
        await s.query('SET statement_timeout = 4321');
        return s.backendPid;
      },
    ];
    for (const read of reads) {
      const pid = await db.read(read, { statementTimeoutMs: 1234, lockTimeoutMs: 250 });
      const shown = await rawQuery(await clientOf(pid), settings);
      expect(shown.rows).toEqual(defaults);
    }
  });

  it('what needs one transaction across statements keeps it: set_config, savepoints, cursors', async () => {
    const { value, trips } = await counted(() =>
      db.read(async (s) => {
        await s.query("SELECT set_config('statement_timeout', '111', true)");
        await s.query('SAVEPOINT p');
        const bad = await failure(s.query('SELECT 1/0'));
        await s.query('ROLLBACK TO SAVEPOINT p');
        const [row] = await s.query<{ st: string; ro: string }>(
          "SELECT current_setting('statement_timeout') AS st, current_setting('transaction_read_only') AS ro",
        );
        return { bad: bad.detail?.sqlstate ?? (bad as { code?: string }).code, row };
      }),
    );
    expect(value).toEqual({ bad: '22012', row: { st: '111ms', ro: 'on' } });
    // BEGIN rides with the first statement; the ROLLBACK at the end is one more round trip.
    expect(trips).toBe(6);
    const cursorRead = await counted(() =>
      db.read(
        async (s) => {
          const got = await s.cursor<{ id: number }>('SELECT id FROM t ORDER BY id', [], 2);
          const [row] = await s.query<{ ro: string; st: string }>(
            "SELECT current_setting('transaction_read_only') AS ro, current_setting('statement_timeout') AS st",
          );
          const write = await failure(s.query('INSERT INTO t VALUES (-3)'));
          return { rows: got.rows, row, write: write.code };
        },
        { statementTimeoutMs: 2345 },
      ),
    );
    expect(cursorRead.value).toEqual({
      rows: [{ id: 1 }, { id: 2 }],
      row: { ro: 'on', st: '2345ms' },
      write: '25006',
    });
  });

  it('statements are prepared once per connection, or never with prepared_statements: false', async () => {
    const names = async (target: TargetDb) =>
      (
        await target.read((s) =>
          s.query<{ statement: string }>(
            "SELECT statement FROM pg_prepared_statements WHERE name LIKE 'dbops\\_%' ORDER BY statement",
          ),
        )
      ).map((r) => r.statement);
    await db.read((s) => s.query('SELECT 1'));
    const mine = await names(db);
    for (const text of ['BEGIN READ ONLY', 'ROLLBACK'])
      expect(mine.filter((t) => t === text)).toHaveLength(1);
    expect(mine.filter((t) => t.includes("set_config('statement_timeout', $1, true)"))).toHaveLength(1);
    const pooler = pool(url, { preparedStatements: false });
    expect(await names(pooler)).toEqual([]);
    expect(
      await pooler.read((s) => s.query('SELECT $1::int AS x', [5]), { statementTimeoutMs: 999 }),
    ).toEqual([{ x: 5 }]);
  });

  it('a failed flight leaves pg’s record of prepared statements right, and the connection usable', async () => {
    const fresh = pool(url);
    // A statement that does not parse, in the first flight of a connection (its BEGIN and timeouts parse).
    expect(await failure(fresh.read((s) => s.query('SELEC 1')))).toMatchObject({
      detail: { sqlstate: '42601' },
    });
    expect(await fresh.read((s) => s.query('SELECT 1 AS one'))).toEqual([{ one: 1 }]);
    // Timeouts the server refuses: the flight fails before its statement, which was never prepared.
    const refused = await failure(fresh.read((s) => s.query('SELECT 2 AS two'), { lockTimeoutMs: 3e9 }));
    expect(refused).toMatchObject({ detail: { sqlstate: '22023' } });
    expect(await fresh.read((s) => s.query('SELECT 2 AS two'))).toEqual([{ two: 2 }]);
  });
});

describe.each(majors())('a cursor in a read, PostgreSQL %i', (major) => {
  let url: string;
  let db: TargetDb;

  beforeAll(async () => {
    ({ url } = await createDatabase(`flight_cursor_${major}`, SETUP, major));
    db = pool(url);
    await db.read((s) => s.query('SELECT 1'));
  });

  it('has its own read-only transaction with the timeouts, opened and ended without round trips of their own', async () => {
    notices.length = 0;
    const limits = { statementTimeoutMs: 2345, lockTimeoutMs: 250 };
    const whole = await counted(() =>
      db.read(
        (s) =>
          s.cursor(
            "SELECT current_setting('transaction_read_only') AS ro, current_setting('statement_timeout') AS st, " +
              "current_setting('lock_timeout') AS lt",
          ),
        limits,
      ),
    );
    expect(whole.value.rows).toEqual([{ ro: 'on', st: '2345ms', lt: '250ms' }]);
    // One Sync: the Close, ROLLBACK and Sync follow the rows (before: BEGIN, the cursor, ROLLBACK apart).
    expect(whole.trips).toBe(1);
    const cut = await counted(() => db.read((s) => s.cursor('SELECT id FROM t ORDER BY id', [], 3), limits));
    expect(cut.value).toMatchObject({ rows: [{ id: 1 }, { id: 2 }, { id: 3 }], truncated: true });
    expect(cut.trips).toBe(1);
    const pid = await db.read(async (s) => {
      await s.cursor('SELECT 1');
      expect(await s.cursor('')).toMatchObject({ rows: [], truncated: false });
      return s.backendPid;
    });
    expect(notices).toEqual([]);
    expect(await stateOf(pid, major)).toEqual({ state: 'idle' });
  });

  it('can never write, is cancelled past statement_timeout, and leaves the connection clean', async () => {
    for (const sql of ['INSERT INTO t VALUES (-5) RETURNING id', "SELECT nextval('s')"]) {
      expect(await failure(db.read((s) => s.cursor(sql)))).toMatchObject({ detail: { sqlstate: '25006' } });
    }
    const slow = await failure(db.read((s) => s.cursor('SELECT pg_sleep(3)'), { statementTimeoutMs: 200 }));
    expect(slow).toMatchObject({ code: 'timeout', detail: { sqlstate: '57014' } });
    const settings =
      "SELECT current_setting('statement_timeout') AS st, current_setting('search_path') AS sp, " +
      "current_setting('transaction_read_only') AS ro";
    const defaults = await adminQuery(settings, [], url.split('/').pop(), major);
    const pid = await db.read(async (s) => {
      await s.cursor("SELECT set_config('search_path', 'nowhere', false)");
      const [row] = (await s.cursor<{ sp: string }>("SELECT current_setting('search_path') AS sp")).rows;
      expect(row).toEqual({ sp: (defaults[0] as { sp: string }).sp });
      return s.backendPid;
    });
    expect((await rawQuery(await clientOf(pid), settings)).rows).toEqual(defaults);
    const [counts] = await adminQuery(
      'SELECT (SELECT count(*)::int FROM t) AS n, (SELECT last_value::int FROM s) AS seq',
      [],
      url.split('/').pop(),
      major,
    );
    expect(counts).toEqual({ n: 1000, seq: 1 });
  });
});

describe('a bind value pg cannot encode', () => {
  it('fails before anything is sent: the connection stays idle and clean', async () => {
    const { url } = await createDatabase('flight_encode', SETUP);
    const db = pool(url);
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    await db.read((s) => s.query('SELECT 1')); // the pool's one connection is open from here on
    const { trips } = await counted(async () => {
      const err = await failure(db.read((s) => s.query('SELECT $1::text AS v', [loop])));
      expect(err).toBeInstanceOf(TypeError);
    });
    expect(trips).toBe(0); // nothing of the read went out
    const after = await db.read(async (s) => ({
      rows: await s.query<{ v: string }>('SELECT $1::text AS v', ['fine']),
      pid: s.backendPid,
    }));
    expect(after.rows).toEqual([{ v: 'fine' }]);
    const shown = await rawQuery(
      await clientOf(after.pid),
      "SELECT current_setting('transaction_read_only') AS ro",
    );
    expect(shown.rows).toEqual([{ ro: 'off' }]);
  });
});

describe('needsTransaction', () => {
  it('names the statements that need a transaction outliving them', () => {
    for (const sql of [
      'SAVEPOINT x',
      '  set local work_mem = 1',
      "SELECT set_config('a', 'b', true)",
      'PREPARE p AS SELECT 1',
      'DECLARE c CURSOR FOR SELECT 1',
      'SELECT pg_advisory_xact_lock(1)',
      'select pg_try_advisory_xact_lock_shared(1, 2)',
    ]) {
      expect(needsTransaction(sql), sql).toBe(true);
    }
    for (const sql of [
      'SELECT 1',
      'SELECT savepoints FROM t',
      'SHOW statement_timeout',
      'SELECT pg_advisory_lock(1)',
    ]) {
      expect(needsTransaction(sql), sql).toBe(false);
    }
  });
});
