// `sizes` against a real database: exact sizes, the heap / index / TOAST split, --limit and DDL locks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sizes, { DATABASE_SIZE_SQL, RELATION_SIZES_SQL } from '../commands/sizes.js';
import type { Limits, ResolvedTarget } from '../src/config/schema.js';
import type { OperationContext } from '../src/core/operation.js';
import { formatBytes } from '../src/core/render.js';
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

const NO_AUTOVACUUM = 'WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false)';
const SETUP = `
CREATE TABLE small (id int PRIMARY KEY, v text) ${NO_AUTOVACUUM};
INSERT INTO small SELECT g, 'x' FROM generate_series(1, 100) g;
CREATE TABLE big (id int PRIMARY KEY, v text) ${NO_AUTOVACUUM};
INSERT INTO big SELECT g, repeat('y', 200) FROM generate_series(1, 20000) g;
CREATE INDEX big_v ON big (v);
CREATE TABLE toasty (id int, doc text) ${NO_AUTOVACUUM};
ALTER TABLE toasty ALTER COLUMN doc SET STORAGE EXTERNAL;
INSERT INTO toasty SELECT g, repeat(md5(g::text), 200) FROM generate_series(1, 50) g;
CREATE SCHEMA other;
CREATE TABLE other.mid (id int, v text) ${NO_AUTOVACUUM};
INSERT INTO other.mid SELECT g, repeat('z', 50) FROM generate_series(1, 3000) g;
CREATE MATERIALIZED VIEW mv ${NO_AUTOVACUUM.replace(', toast.autovacuum_enabled = false', '')}
  AS SELECT id, v FROM big WHERE id <= 5000;
CREATE VIEW just_a_view AS SELECT 1 AS one;
`;

let dbName: string;
let dbUrl: string;
let pools: TargetPools;
let target: ResolvedTarget;

function context(args: Record<string, unknown> = {}): OperationContext<{ limit: number }> {
  return {
    args: sizes.args.parse(args),
    target,
    db: pools.get(target.name),
    limits: target.limits,
    now: new Date(),
    requestId: 'test-sizes',
    backupsDir: '/tmp',
    progress: () => {},
  };
}

async function runSizes(args: Record<string, unknown> = {}): Promise<OperationResult> {
  const run = sizes.run;
  if (!run) throw new Error('sizes has no run()');
  return await run(context(args));
}

interface Expected {
  relation: string;
  total: number;
  indexes: number;
}

/** The sizes as the test measures them, independently of the operation's SQL. */
async function measured(): Promise<Expected[]> {
  return await adminQuery<Expected>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS relation,
            pg_total_relation_size(c.oid)::float8 AS total,
            pg_indexes_size(c.oid)::float8 AS indexes
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname IN ('public', 'other') AND c.relkind IN ('r', 'm')
     ORDER BY 2 DESC, 1`,
    [],
    dbName,
  );
}

beforeAll(async () => {
  ({ name: dbName, url: dbUrl } = await createDatabase('sizes', SETUP));
  // Settles visibility maps and statistics (exact reltuples), including the catalogs', so sizes stay put.
  await adminQuery('VACUUM ANALYZE', [], dbName);
  target = { name: 'sizes', url: dbUrl, environment: 'test', packs: [], limits: LIMITS };
  pools = new TargetPools({ sizes: target });
});

afterAll(async () => {
  await pools.closeAll();
  await adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
});

describe('sizes', () => {
  it('headline and data carry exactly pg_database_size of the target database', async () => {
    const meter = await openClient(dbUrl, 'meter');
    try {
      // Open the pool's connection first: a new backend may write the relcache init file into the database.
      await pools.get('sizes').read((s) => s.query('SELECT 1'));
      const sizeNow = async () =>
        (await meter.query<{ b: number }>('SELECT pg_database_size(current_database())::float8 AS b')).rows[0]
          ?.b;
      const before = await sizeNow();
      const result = await runSizes();
      const after = await sizeNow();
      expect(before).toBe(after);
      expect(result.data).toEqual({ database: dbName, databaseBytes: after, skippedLocked: [] });
      expect(result.headline).toBe(`Database ${dbName}: ${formatBytes(after ?? -1)}`);
    } finally {
      await meter.end();
    }
  });

  it('lists tables and materialized views of user schemas, largest first, with a split that adds up', async () => {
    const expected = await measured();
    const result = await runSizes();
    expect(result.columns.map((c) => [c.key, c.kind])).toEqual([
      ['relation', 'text'],
      ['kind', 'text'],
      ['total_bytes', 'bytes'],
      ['table_bytes', 'bytes'],
      ['index_bytes', 'bytes'],
      ['toast_bytes', 'bytes'],
      ['rows', 'count'],
    ]);
    expect(result.rows.map((r) => r.relation)).toEqual(expected.map((e) => e.relation));
    expect(result.rows.map((r) => r.relation).sort()).toEqual(
      ['other.mid', 'public.big', 'public.mv', 'public.small', 'public.toasty'].sort(),
    );
    expect(result.rows.map((r) => r.total_bytes)).toEqual(expected.map((e) => e.total));
    expect(result.rows.map((r) => r.index_bytes)).toEqual(expected.map((e) => e.indexes));
    for (const row of result.rows) {
      expect(row.total_bytes).toBe(
        Number(row.table_bytes) + Number(row.index_bytes) + Number(row.toast_bytes),
      );
      expect(typeof row.total_bytes).toBe('number');
    }
    const totals = result.rows.map((r) => Number(r.total_bytes));
    expect(totals).toEqual([...totals].sort((a, b) => b - a));
    const byName = new Map(result.rows.map((r) => [r.relation, r]));
    expect(byName.get('public.big')).toMatchObject({ kind: 'table', rows: 20000 });
    expect(byName.get('public.mv')).toMatchObject({ kind: 'materialized view', rows: 5000 });
    expect(result.truncated).toBe(false);
    expect(result.notes).toEqual([]);
  });

  it('shows TOAST bytes for a table with big values, and heap bytes without them', async () => {
    const [heap] = await adminQuery<{ main: number; toast: number }>(
      `SELECT (pg_table_size(c.oid) - pg_total_relation_size(c.reltoastrelid))::float8 AS main,
              pg_total_relation_size(c.reltoastrelid)::float8 AS toast
       FROM pg_class c WHERE c.oid = 'public.toasty'::regclass`,
      [],
      dbName,
    );
    const result = await runSizes();
    const toasty = result.rows.find((r) => r.relation === 'public.toasty');
    // 50 values of 6,400 bytes stored out of line, uncompressed.
    expect(Number(toasty?.toast_bytes)).toBeGreaterThan(50 * 6400);
    expect(toasty?.toast_bytes).toBe(heap?.toast);
    expect(toasty?.table_bytes).toBe(heap?.main);
    expect(Number(toasty?.table_bytes)).toBeLessThan(Number(toasty?.toast_bytes));
  });

  it('honours --limit and says how many relations there are', async () => {
    const expected = await measured();
    const result = await runSizes({ limit: '2' });
    expect(result.rows.map((r) => r.relation)).toEqual(expected.slice(0, 2).map((e) => e.relation));
    expect(result.notes).toEqual([
      '5 tables and materialized views in all, largest first; --limit (up to 100) shows more',
    ]);
    expect(sizes.args.parse({}).limit).toBe(10);
    expect(() => sizes.args.parse({ limit: '101' })).toThrow();
    expect(() => sizes.args.parse({ limit: '0' })).toThrow();
    expect(() => sizes.args.parse({ limit: '5; DROP TABLE big' })).toThrow();
  });

  it('skips a relation locked by DDL, names it in notes, and does not wait for the lock', async () => {
    const ddl = await openClient(dbUrl, 'ddl');
    try {
      await ddl.query('BEGIN');
      await ddl.query('LOCK TABLE big IN ACCESS EXCLUSIVE MODE');
      // With lock_timeout 1s, waiting behind the lock would fail this call with a timeout error.
      const result = await runSizes();
      expect(result.rows.map((r) => r.relation).sort()).toEqual(
        ['other.mid', 'public.mv', 'public.small', 'public.toasty'].sort(),
      );
      expect(result.notes).toEqual(['skipped 1 relation locked by DDL: public.big']);
      expect(result.data).toMatchObject({ skippedLocked: ['public.big'] });
    } finally {
      await ddl.query('ROLLBACK');
      await ddl.end();
    }
    const unlocked = await runSizes();
    expect(unlocked.rows.map((r) => r.relation)).toContain('public.big');
  });

  it('skips a table whose index is being rebuilt under an exclusive lock', async () => {
    const ddl = await openClient(dbUrl, 'ddl-index');
    try {
      await ddl.query('BEGIN');
      await ddl.query('REINDEX INDEX big_v');
      const result = await runSizes();
      expect(result.notes).toEqual(['skipped 1 relation locked by DDL: public.big']);
    } finally {
      await ddl.query('ROLLBACK');
      await ddl.end();
    }
  });

  it('one statement answers as the two it joins did: order, skipped names, database size', async () => {
    const ddl = await openClient(dbUrl, 'ddl-two');
    try {
      await ddl.query('BEGIN');
      await ddl.query('LOCK TABLE small IN ACCESS EXCLUSIVE MODE');
      await ddl.query('LOCK TABLE other.mid IN ACCESS EXCLUSIVE MODE');
      const result = await runSizes({ limit: 2 });
      const [db] = await adminQuery<{ database: string; bytes: number }>(DATABASE_SIZE_SQL, [], dbName);
      const apart = await adminQuery<{ relation: string; locked: boolean; total_bytes: number }>(
        RELATION_SIZES_SQL,
        [2, null],
        dbName,
      );
      expect(result.headline).toBe(`Database ${dbName}: ${formatBytes(Number(db?.bytes ?? -1))}`);
      expect(result.rows.map((r) => [r.relation, r.total_bytes])).toEqual(
        apart.filter((r) => !r.locked).map((r) => [r.relation, Number(r.total_bytes)]),
      );
      expect(result.rows.map((r) => r.relation)).toEqual(['public.big', 'public.mv']);
      expect(result.notes).toEqual([
        '3 tables and materialized views in all, largest first; --limit (up to 100) shows more',
        'skipped 2 relations locked by DDL: other.mid, public.small',
      ]);
    } finally {
      await ddl.query('ROLLBACK');
      await ddl.end();
    }
  });

  it('a database without tables still has its size, and says there is nothing to list', async () => {
    const empty = await createDatabase('sizes_empty');
    const emptyTarget: ResolvedTarget = { ...target, name: 'empty', url: empty.url };
    const emptyPools = new TargetPools({ empty: emptyTarget });
    try {
      const run = sizes.run;
      if (!run) throw new Error('sizes has no run()');
      const result = await run({ ...context(), target: emptyTarget, db: emptyPools.get('empty') });
      expect(result.headline).toMatch(new RegExp(`^Database ${empty.name}: \\d`));
      expect(result.rows).toEqual([]);
      expect(result.notes).toEqual(['no tables or materialized views outside the system schemas']);
      expect(result.data).toMatchObject({ database: empty.name, skippedLocked: [] });
    } finally {
      await emptyPools.closeAll();
      await adminQuery(`DROP DATABASE IF EXISTS "${empty.name}" WITH (FORCE)`);
    }
  });
});
