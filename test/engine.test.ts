// TargetPools and the read / write / direct sessions against a real PostgreSQL server.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Limits, ResolvedTarget } from '../src/config/schema.js';
import { UserError } from '../src/core/errors.js';
import { toUserError } from '../src/engine/pg-errors.js';
import { TargetPools } from '../src/engine/target-db.js';
import { adminQuery, adminUrl, createDatabase, openClient } from './helpers/db.js';

const LIMITS: Limits = {
  statement_timeout: 5,
  lock_timeout: 1,
  row_cap: 200,
  pool_max: 4,
  pool_idle: 30,
  connect_timeout: 2,
};

function makeTarget(name: string, url: string, limits: Partial<Limits> = {}): ResolvedTarget {
  return { name, url, environment: 'test', packs: [], limits: { ...LIMITS, ...limits } };
}

/** A URL for the same server and database, logging in as another role. */
function urlAs(url: string, user: string, password: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = password;
  return u.toString();
}

async function closedPort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Polls until `done` holds or the time is up; returns the last value so the assertion shows it. */
async function waitFor<T>(
  probe: () => Promise<T> | T,
  done: (value: T) => boolean,
  timeoutMs = 8000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await probe();
  while (!done(value) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    value = await probe();
  }
  return value;
}

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the promise to reject');
}

let dbName: string;
let dbUrl: string;
let otherName: string;
let otherUrl: string;
const suffix = randomBytes(4).toString('hex');
const roles = {
  plain: `dbops_plain_${suffix}`,
  app: `dbops_app_${suffix}`,
  none: `dbops_none_${suffix}`,
};
const PASSWORD = 'pw-Secret-42';
const openPools: TargetPools[] = [];

function pools(targets: ResolvedTarget[], applicationName?: string): TargetPools {
  const byName = Object.fromEntries(targets.map((t) => [t.name, t]));
  const created = new TargetPools(byName, applicationName ? { applicationName } : {});
  openPools.push(created);
  return created;
}

async function dbopsPids(database: string, app = 'dbops'): Promise<number[]> {
  const rows = await adminQuery<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 ORDER BY pid',
    [database, app],
  );
  return rows.map((r) => r.pid);
}

beforeAll(async () => {
  ({ name: dbName, url: dbUrl } = await createDatabase(
    'engine',
    'CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE secret (v text);',
  ));
  ({ name: otherName, url: otherUrl } = await createDatabase('engine_other'));
  await adminQuery(`CREATE ROLE ${roles.plain} LOGIN PASSWORD '${PASSWORD}'`);
  await adminQuery(`CREATE ROLE ${roles.app} LOGIN PASSWORD '${PASSWORD}'`);
  await adminQuery(`CREATE ROLE ${roles.none} LOGIN PASSWORD '${PASSWORD}' CONNECTION LIMIT 0`);
});

afterAll(async () => {
  await Promise.all(openPools.map((p) => p.closeAll()));
  await adminQuery('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY($1)', [
    Object.values(roles),
  ]);
  await adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await adminQuery(`DROP DATABASE IF EXISTS "${otherName}" WITH (FORCE)`);
  for (const role of Object.values(roles)) await adminQuery(`DROP ROLE IF EXISTS ${role}`);
});

describe('transactions', () => {
  it('read() is read-only: an INSERT fails with the read-only code and inserts nothing', async () => {
    const db = pools([makeTarget('ro', dbUrl)]).get('ro');
    const err = await caught(db.read((s) => s.query('INSERT INTO t VALUES (1)')));
    expect(err).toBeInstanceOf(UserError);
    expect(err).toMatchObject({ code: 'query_failed', detail: { sqlstate: '25006' } });
    expect((err as UserError).message).toContain('this operation runs read-only');
    expect(await adminQuery('SELECT count(*)::int AS n FROM t', [], dbName)).toEqual([{ n: 0 }]);
  });

  it('read() rolls back and runs the timeouts as local settings', async () => {
    const db = pools([makeTarget('local', dbUrl)]).get('local');
    const settings = await db.read(
      (s) =>
        s.query<{ st: string; lt: string; ro: string }>(
          "SELECT current_setting('statement_timeout') AS st, current_setting('lock_timeout') AS lt, " +
            "current_setting('transaction_read_only') AS ro",
        ),
      { statementTimeoutMs: 1234 },
    );
    expect(settings).toEqual([{ st: '1234ms', lt: '1s', ro: 'on' }]);
    // Durations in seconds times 1000 are not always whole (0.9 s can come out as 899.9999999999999 ms):
    // they still set a valid timeout, on both paths (PostgreSQL would round them too).
    const written = await db.write(
      (s) =>
        s.query<{ st: string; lt: string }>(
          "SELECT current_setting('statement_timeout') AS st, current_setting('lock_timeout') AS lt",
        ),
      { statementTimeoutMs: 899.9999999999999, lockTimeoutMs: 70.4 },
    );
    expect(written).toEqual([{ st: '900ms', lt: '70ms' }]);
    const direct = await db.direct(
      (s) => s.query<{ st: string }>("SELECT current_setting('statement_timeout') AS st"),
      { statementTimeoutMs: 899.9999999999999 },
    );
    expect(direct).toEqual([{ st: '900ms' }]);
  });

  it('write() commits when fn resolves and rolls back when it throws, passing non-pg errors through', async () => {
    const db = pools([makeTarget('rw', dbUrl)]).get('rw');
    await db.write((s) => s.query('INSERT INTO t VALUES (10)'));
    const bug = new TypeError('a bug in an operation');
    const err = await caught(
      db.write(async (s) => {
        await s.query('INSERT INTO t VALUES (11)');
        throw bug;
      }),
    );
    expect(err).toBe(bug);
    const rows = await adminQuery<{ id: number }>('SELECT id FROM t WHERE id >= 10 ORDER BY id', [], dbName);
    expect(rows).toEqual([{ id: 10 }]);
    await adminQuery('DELETE FROM t WHERE id >= 10', [], dbName);
  });

  it('a query holds one statement: a second one is refused', async () => {
    const db = pools([makeTarget('single', dbUrl)]).get('single');
    const err = await caught(db.write((s) => s.query('SELECT 1; DELETE FROM t')));
    expect(err).toMatchObject({ code: 'query_failed', detail: { sqlstate: '42601' } });
  });

  it('direct() runs outside a transaction with session timeouts and returns the connection idle', async () => {
    const db = pools([makeTarget('direct', dbUrl, { pool_max: 1 })]).get('direct');
    const inside = await db.direct(
      (s) =>
        s.query<{ st: string; lt: string }>(
          "SELECT current_setting('statement_timeout') AS st, current_setting('lock_timeout') AS lt",
        ),
      { statementTimeoutMs: 4321, lockTimeoutMs: 250 },
    );
    expect(inside).toEqual([{ st: '4321ms', lt: '250ms' }]);
    // VACUUM refuses to run inside a transaction block: only direct() can run it.
    await db.direct((s) => s.query('VACUUM t'));
    const inRead = await caught(db.read((s) => s.query('VACUUM t')));
    expect(inRead).toMatchObject({ code: 'query_failed', detail: { sqlstate: '25001' } });
    const pid = await db.direct((s) => Promise.resolve(s.backendPid));
    const rows = await adminQuery('SELECT state FROM pg_stat_activity WHERE pid = $1', [pid]);
    expect(rows).toEqual([{ state: 'idle' }]);
  });
});

describe('timeouts', () => {
  it('statement_timeout cancels a long query with code timeout and names the limit', async () => {
    const db = pools([makeTarget('slow', dbUrl)]).get('slow');
    const err = await caught(db.read((s) => s.query('SELECT pg_sleep(5)'), { statementTimeoutMs: 200 }));
    expect(err).toMatchObject({ code: 'timeout', detail: { sqlstate: '57014' } });
    expect((err as UserError).message).toContain('statement_timeout of 200ms');
    // The connection came back clean and is usable.
    expect(await db.read((s) => s.query('SELECT 1 AS one'))).toEqual([{ one: 1 }]);
  });

  it('lock_timeout gives up on a lock held by another session with code timeout', async () => {
    const db = pools([makeTarget('locked', dbUrl)]).get('locked');
    const holder = await openClient(dbUrl, 'lock-holder');
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
      const err = await caught(db.read((s) => s.query('SELECT count(*) FROM t')));
      expect(err).toMatchObject({ code: 'timeout', detail: { sqlstate: '55P03' } });
      expect((err as UserError).message).toBe(
        'the query on locked waited for a lock held by another session (lock_timeout of 1s) and gave up; ' +
          'try `/db blocking locked`',
      );
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
  });
});

describe('cursor', () => {
  it('stops at the cap on a million-row query and reports truncation', async () => {
    const db = pools([makeTarget('cur', dbUrl)]).get('cur');
    const big = await db.read((s) =>
      s.cursor<{ g: number }>('SELECT g FROM generate_series(1, 1000000) g', [], 100),
    );
    expect(big.truncated).toBe(true);
    expect(big.rows.map((r) => r.g)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));

    const exact = await db.read((s) =>
      s.cursor<{ g: number }>('SELECT g FROM generate_series(1, $1::int) g', [100], 100),
    );
    expect(exact.truncated).toBe(false);
    expect(exact.rows).toHaveLength(100);

    // Default cap is the row cap; several batches when the cap exceeds one batch.
    const byDefault = await db.read((s) => s.cursor('SELECT g FROM generate_series(1, 1000) g'));
    expect(byDefault).toMatchObject({ truncated: true });
    expect(byDefault.rows).toHaveLength(200);
    const multi = await db.read((s) =>
      s.cursor<{ g: number }>('SELECT g FROM generate_series(1, 1201) g', [], 1200),
    );
    expect(multi.truncated).toBe(true);
    expect(multi.rows.at(-1)).toEqual({ g: 1200 });
    const fits = await db.read((s) => s.cursor('SELECT g FROM generate_series(1, 1200) g', [], 1200));
    expect(fits.truncated).toBe(false);
    expect(fits.rows).toHaveLength(1200);
  });

  it('a failing cursor query leaves the connection usable', async () => {
    const db = pools([makeTarget('curerr', dbUrl, { pool_max: 1 })]).get('curerr');
    const err = await caught(
      db.read((s) => s.cursor('SELECT 1 / (g - 3) FROM generate_series(1, 10) g', [], 5)),
    );
    expect(err).toMatchObject({ code: 'query_failed', detail: { sqlstate: '22012' } });
    expect(await db.read((s) => s.cursor('SELECT 7 AS n'))).toEqual({
      rows: [{ n: 7 }],
      truncated: false,
      fields: [{ name: 'n', tableID: 0, columnID: 0 }],
    });
  });
});

describe('pools', () => {
  it('are lazy: 200 configured targets open nothing until one is used', async () => {
    const targets = Array.from({ length: 200 }, (_, i) => makeTarget(`lazy${i}`, dbUrl));
    const app = `dbops-lazy-${suffix}`;
    const many = pools(targets, app);
    many.get('lazy7');
    expect(await dbopsPids(dbName, app)).toEqual([]);
    expect(Object.keys(many.stats())).toHaveLength(200);
    expect(many.stats().lazy7).toMatchObject({ total: 0, idle: 0, waiting: 0 });
    await many.get('lazy7').read((s) => s.query('SELECT 1'));
    expect(await dbopsPids(dbName, app)).toHaveLength(1);
    expect(many.stats().lazy7).toMatchObject({ total: 1, idle: 1, waiting: 0 });
    expect(many.stats().lazy8).toMatchObject({ total: 0, idle: 0, waiting: 0 });
  });

  it("uses application_name 'dbops' by default and opens no connection before first use", async () => {
    const { name, url } = await createDatabase('engine_app');
    try {
      const own = pools([makeTarget('appname', url)]);
      own.get('appname');
      expect(await dbopsPids(name)).toEqual([]);
      const pid = await own.get('appname').read((s) => Promise.resolve(s.backendPid));
      expect(await dbopsPids(name)).toEqual([pid]);
    } finally {
      await adminQuery(`DROP DATABASE "${name}" WITH (FORCE)`);
    }
  });

  it('are bounded by pool_max: extra callers wait for a connection', async () => {
    const app = `dbops-bounded-${suffix}`;
    const bounded = pools([makeTarget('bounded', dbUrl)], app);
    const db = bounded.get('bounded');
    const gate = await openClient(dbUrl, 'gate');
    await gate.query('SELECT pg_advisory_lock(4242)');
    const calls = Array.from({ length: 6 }, () =>
      db.read((s) => s.query<{ ok: number }>('SELECT pg_advisory_xact_lock_shared(4242), 1 AS ok'), {
        lockTimeoutMs: 20_000,
      }),
    );
    try {
      // The pool counts a connection as soon as it starts opening: wait until all four really wait on the gate.
      const waiting = await waitFor(
        () =>
          adminQuery<{ pid: number }>(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
            [app],
          ),
        (rows) => rows.length >= 4,
      );
      expect(waiting).toHaveLength(4);
      expect(bounded.stats().bounded).toMatchObject({ total: 4, idle: 0, waiting: 2, inFlight: 6 });
      expect(await dbopsPids(dbName, app)).toHaveLength(4);
    } finally {
      await gate.query('SELECT pg_advisory_unlock(4242)');
      await gate.end();
    }
    const results = await Promise.all(calls);
    expect(results.map((r) => r[0]?.ok)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(await dbopsPids(dbName, app)).toHaveLength(4);
  });

  it('close idle connections after pool_idle', async () => {
    const app = `dbops-idle-${suffix}`;
    const idle = pools([makeTarget('idle', dbUrl, { pool_idle: 0.3 })], app);
    const db = idle.get('idle');
    const pid = await db.read((s) => Promise.resolve(s.backendPid));
    expect(db.ownPids()).toEqual([pid]);
    const left = await waitFor(
      () => dbopsPids(dbName, app),
      (pids) => pids.length === 0,
    );
    expect(left).toEqual([]);
    expect(idle.stats().idle).toMatchObject({ total: 0, idle: 0, waiting: 0 });
    expect(
      await waitFor(
        () => db.ownPids(),
        (p) => p.length === 0,
      ),
    ).toEqual([]);
  });

  it('ownPids lists every backend dbops holds on the server, across targets sharing it', async () => {
    const app = `dbops-own-${suffix}`;
    const shared = pools([makeTarget('a', dbUrl), makeTarget('b', otherUrl)], app);
    const a = shared.get('a');
    const b = shared.get('b');
    const gate = await openClient(dbUrl, 'gate');
    await gate.query('SELECT pg_advisory_lock(77)');
    const held = Array.from({ length: 3 }, () =>
      a.read(
        async (s) => {
          await s.query('SELECT pg_advisory_xact_lock_shared(77)');
          const [row] = await s.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
          return { reported: s.backendPid, actual: row?.pid };
        },
        { lockTimeoutMs: 20_000 },
      ),
    );
    await waitFor(
      () => shared.stats().a?.total ?? 0,
      (n) => n === 3,
    );
    await gate.query('SELECT pg_advisory_unlock(77)');
    await gate.end();
    const seen = await Promise.all(held);
    for (const s of seen) expect(s.reported).toBe(s.actual);
    const bPid = await b.read((s) => Promise.resolve(s.backendPid));

    const inA = await dbopsPids(dbName, app);
    const inB = await dbopsPids(otherName, app);
    expect(inA).toHaveLength(3);
    expect(inB).toEqual([bPid]);
    const expected = [...inA, ...inB].sort((x, y) => x - y);
    expect([...a.ownPids()].sort((x, y) => x - y)).toEqual(expected);
    expect([...b.ownPids()].sort((x, y) => x - y)).toEqual(expected);
  });

  it('an unreachable target answers target_down while another target keeps answering', async () => {
    const port = await closedPort();
    const downUrl = `postgres://someone:${PASSWORD}@127.0.0.1:${port}/nowhere`;
    const mixed = pools([makeTarget('down', downUrl), makeTarget('up', dbUrl)]);
    const [down, up] = await Promise.allSettled([
      mixed.get('down').read((s) => s.query('SELECT 1')),
      mixed.get('up').read((s) => s.query<{ one: number }>('SELECT 1 AS one')),
    ]);
    expect(up).toEqual({ status: 'fulfilled', value: [{ one: 1 }] });
    expect(down.status).toBe('rejected');
    const err = down.status === 'rejected' ? down.reason : undefined;
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).code).toBe('target_down');
    expect((err as UserError).message).toBe(
      'target down is unreachable: connection refused. Other targets are unaffected; check that the server is up',
    );
    expect((err as UserError).message).not.toContain(PASSWORD);
    expect(mixed.stats().down).toMatchObject({ total: 0, idle: 0, waiting: 0 });
  });

  it('a connection terminated by the server does not crash the process; the pool recovers', async () => {
    const app = `dbops-drop-${suffix}`;
    const dropping = pools([makeTarget('drop', dbUrl)], app);
    const db = dropping.get('drop');
    // An idle pooled connection killed from outside.
    const idlePid = await db.read((s) => Promise.resolve(s.backendPid));
    await adminQuery('SELECT pg_terminate_backend($1)', [idlePid]);
    expect(
      await waitFor(
        () => dropping.stats().drop?.total,
        (n) => n === 0,
      ),
    ).toBe(0);
    // The pool forgets the pid when it removes the client, which can trail the size it reports.
    expect(
      await waitFor(
        () => db.ownPids(),
        (pids) => pids.length === 0,
      ),
    ).toEqual([]);

    // A checked-out connection killed mid-query.
    const running = caught(db.read((s) => s.query('SELECT pg_sleep(20)'), { statementTimeoutMs: 30_000 }));
    const victim = await waitFor(
      () =>
        adminQuery<{ pid: number }>(
          "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'",
          [app],
        ),
      (rows) => rows.length === 1,
    );
    expect(victim).toHaveLength(1);
    await adminQuery('SELECT pg_terminate_backend($1)', [victim[0]?.pid]);
    expect(await running).toMatchObject({ code: 'target_down', detail: { sqlstate: '57P01' } });
    expect(await db.read((s) => s.query('SELECT 2 AS two'))).toEqual([{ two: 2 }]);
    expect(db.ownPids()).not.toContain(idlePid);
    expect(db.ownPids()).not.toContain(victim[0]?.pid);
  });

  it('get() refuses a target that is not configured', () => {
    const few = pools([makeTarget('known', dbUrl)]);
    expect(() => few.get('unknown')).toThrow(UserError);
    try {
      few.get('unknown');
    } catch (err) {
      expect(err).toMatchObject({ code: 'unknown_target', message: 'unknown target "unknown"' });
    }
  });
});

describe('types', () => {
  it('int8 and numeric come back as numbers when exact, as text otherwise, without touching pg globals', async () => {
    const db = pools([makeTarget('types', dbUrl)]).get('types');
    const [row] = await db.read((s) =>
      s.query(
        'SELECT 9007199254740991::int8 AS safe, 9007199254740993::int8 AS unsafe, -42::int8 AS neg, ' +
          "12.5::numeric AS num, 'NaN'::numeric AS nan, 123456789012345678901234::numeric AS huge, " +
          'ARRAY[1, 2]::int8[] AS arr, count(*) AS n FROM generate_series(1, 3)',
      ),
    );
    expect(row).toEqual({
      safe: 9007199254740991,
      unsafe: '9007199254740993',
      neg: -42,
      num: 12.5,
      nan: 'NaN',
      huge: '123456789012345678901234',
      arr: [1, 2],
      n: 3,
    });
    const cursor = await db.read((s) => s.cursor('SELECT 5::int8 AS five'));
    expect(cursor.rows).toEqual([{ five: 5 }]);
    expect(pg.types.getTypeParser(20, 'text')('5')).toBe('5');
  });
});

describe('server version', () => {
  it('is server_version_num as a number, read once and cached', async () => {
    const db = pools([makeTarget('version', dbUrl)]).get('version');
    const [expected] = await adminQuery<{ v: number }>(
      "SELECT current_setting('server_version_num')::int AS v",
    );
    const first = db.serverVersion();
    expect(db.serverVersion()).toBe(first);
    expect(await first).toBe(expected?.v);
    expect(await first).toBeGreaterThanOrEqual(150000);
  });
});

describe('errors', () => {
  it('a wrong password is auth_failed and the message carries no secret', async () => {
    const db = pools([makeTarget('badpw', urlAs(dbUrl, roles.plain, 'not-the-password'))]).get('badpw');
    const err = await caught(db.read((s) => s.query('SELECT 1')));
    expect(err).toMatchObject({ code: 'auth_failed', detail: { sqlstate: '28P01' } });
    expect((err as UserError).message).toBe(
      `target badpw refused dbops' login: password authentication failed for user "${roles.plain}". ` +
        "Check the credentials in the target's configuration",
    );
  });

  it('a missing database and a connection limit are target_down', async () => {
    const missing = adminUrl(`missing_${suffix}`);
    const set = pools([makeTarget('nodb', missing), makeTarget('full', urlAs(dbUrl, roles.none, PASSWORD))]);
    const nodb = await caught(set.get('nodb').read((s) => s.query('SELECT 1')));
    expect(nodb).toMatchObject({ code: 'target_down', detail: { sqlstate: '3D000' } });
    expect((nodb as UserError).message).toContain(`database "missing_${suffix}" does not exist`);
    const full = await caught(set.get('full').read((s) => s.query('SELECT 1')));
    expect(full).toMatchObject({ code: 'target_down', detail: { sqlstate: '53300' } });
  });

  it('missing privileges are permission errors naming the role that fixes them', async () => {
    const victim = await openClient(urlAs(dbUrl, roles.app, PASSWORD), 'victim');
    try {
      const [{ pid } = { pid: 0 }] = (await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))
        .rows;
      const db = pools([makeTarget('weak', urlAs(dbUrl, roles.plain, PASSWORD))]).get('weak');
      const kill = await caught(db.write((s) => s.query('SELECT pg_terminate_backend($1)', [pid])));
      expect(kill).toMatchObject({ code: 'permission', detail: { sqlstate: '42501' } });
      expect((kill as UserError).message).toContain('the bot role needs pg_signal_backend');
      const table = await caught(db.read((s) => s.query('SELECT * FROM secret')));
      expect(table).toMatchObject({ code: 'permission' });
      expect((table as UserError).message).toBe(
        'permission denied on target weak: permission denied for table secret. ' +
          'grant the bot role the privilege named above, or ask a DBA to run this by hand',
      );
    } finally {
      await victim.end();
    }
  });

  it('toUserError leaves programming errors alone and maps socket errors by code', () => {
    expect(toUserError(new TypeError('x is not a function'), 'kasm')).toBeUndefined();
    expect(toUserError('a string', 'kasm')).toBeUndefined();
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' });
    expect(toUserError(refused, 'kasm')?.message).toBe(
      'target kasm is unreachable: connection refused. Other targets are unaffected; check that the server is up',
    );
    const dns = Object.assign(new Error('getaddrinfo ENOTFOUND db.internal'), { code: 'ENOTFOUND' });
    expect(toUserError(dns, 'kasm')?.code).toBe('target_down');
    const slow = new Error('timeout exceeded when trying to connect');
    expect(toUserError(slow, 'kasm', { connectTimeoutMs: 2000, poolMax: 4 })?.message).toContain('within 2s');
    const existing = new UserError('denied', 'no');
    expect(toUserError(existing, 'kasm')).toBe(existing);
  });
});
