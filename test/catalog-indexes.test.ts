// Table and index statistics reads against real PostgreSQL 15 and 17: a known workload after a stats
// reset, so every count, ratio and size is compared with ground truth the test measures itself.
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import cacheHit from '../commands/cache-hit.js';
import duplicateIndexes from '../commands/duplicate-indexes.js';
import indexSizes from '../commands/index-sizes.js';
import indexUsage from '../commands/index-usage.js';
import seqScans from '../commands/seq-scans.js';
import tableSizes from '../commands/table-sizes.js';
import unusedIndexes from '../commands/unused-indexes.js';
import { UserError } from '../src/core/errors.js';
import type { AnyOperation } from '../src/core/operation.js';
import { formatTime } from '../src/core/time-format.js';
import type { OperationResult, Row } from '../src/core/types.js';
import { adminQuery, createDatabase, majors, openClient } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';

const NO_AUTOVACUUM = 'WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false)';

/** Tables and indexes only: created before the stats reset, so index builds do not count as scans. */
const SCHEMA = `
CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, code text NOT NULL UNIQUE, note text) ${NO_AUTOVACUUM};
CREATE INDEX orders_customer ON orders (customer);
CREATE INDEX orders_note_unused ON orders (note);
CREATE TABLE accounts (id int PRIMARY KEY, name text) ${NO_AUTOVACUUM};
CREATE TABLE events (id int, payload text) ${NO_AUTOVACUUM};
CREATE TABLE bookings (id int PRIMARY KEY, during int4range, EXCLUDE USING gist (during WITH &&)) ${NO_AUTOVACUUM};

CREATE TABLE dups (id int PRIMARY KEY, a int, b int, c int, s text, u int, v int) ${NO_AUTOVACUUM};
CREATE INDEX dups_ab ON dups (a, b);
CREATE INDEX dups_ab_twin ON dups (a, b);
CREATE INDEX dups_a ON dups (a);
CREATE INDEX dups_a_partial ON dups (a) WHERE b > 0;
CREATE INDEX dups_a_incl ON dups (a) INCLUDE (c);
CREATE INDEX dups_a_hash ON dups USING hash (a);
CREATE INDEX dups_b ON dups (b);
CREATE INDEX dups_b_desc ON dups (b DESC);
CREATE INDEX dups_lower_1 ON dups (lower(s));
CREATE INDEX dups_lower_2 ON dups (lower( s ));
CREATE INDEX dups_u_plain ON dups (u);
CREATE UNIQUE INDEX dups_u_unique ON dups (u);
CREATE INDEX dups_ua ON dups (u, a);
CREATE INDEX dups_id ON dups (id);
ALTER TABLE dups ADD CONSTRAINT dups_id_key UNIQUE (id);
ALTER TABLE dups ADD CONSTRAINT dups_c_key UNIQUE (c);
CREATE UNIQUE INDEX dups_c_unique ON dups (c);
CREATE UNIQUE INDEX dups_v_unique ON dups (v);
CREATE UNIQUE INDEX dups_v_nnd ON dups (v) NULLS NOT DISTINCT;
CREATE INDEX dups_s_desc ON dups (s DESC);
CREATE INDEX dups_s_c ON dups (s, c);
CREATE INDEX dups_vc_mixed ON dups (v DESC, c);
CREATE INDEX dups_vc_mixed_rev ON dups (v, c DESC);
CREATE INDEX dups_vc ON dups (v, c);
CREATE INDEX dups_c_nulls_last ON dups (c DESC NULLS LAST);

CREATE TABLE measurements (id int, at date) PARTITION BY RANGE (at);
CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') ${NO_AUTOVACUUM};
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') ${NO_AUTOVACUUM};
CREATE INDEX measurements_at ON measurements (at);

CREATE TABLE broken (x int) ${NO_AUTOVACUUM};
INSERT INTO broken VALUES (0);

CREATE SCHEMA other;
CREATE TABLE other.archive (id int, doc text) ${NO_AUTOVACUUM};
ALTER TABLE other.archive ALTER COLUMN doc SET STORAGE EXTERNAL;
`;

/** Rows, loaded after the reset (pg_stat_reset also zeroes n_live_tup). */
const DATA = `
INSERT INTO orders SELECT g, g % 500, 'c' || g, md5(g::text) FROM generate_series(1, 20000) g;
INSERT INTO accounts SELECT g, 'acct ' || g FROM generate_series(1, 12000) g;
INSERT INTO events SELECT g, 'e' FROM generate_series(1, 50) g;
INSERT INTO bookings SELECT g, int4range(g * 10, g * 10 + 5) FROM generate_series(1, 10) g;
INSERT INTO dups SELECT g, g % 7, g % 11, g, 'S' || g, g, g FROM generate_series(1, 200) g;
INSERT INTO measurements SELECT g, date '2024-06-01' + g FROM generate_series(1, 400) g;
INSERT INTO other.archive SELECT g, repeat(md5(g::text), 100) FROM generate_series(1, 40) g;
`;

/** The workload the counters must show: exact numbers of sequential and index scans per table. */
const SEQ_SCANS = { events: 7, orders: 6, accounts: 3 } as const;
const INDEX_LOOKUPS = { orders: 100, ordersByCustomer: 5, accounts: 40 } as const;

async function runWorkload(client: pg.Client): Promise<void> {
  await client.query('SET max_parallel_workers_per_gather = 0');
  await client.query(
    'SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off',
  );
  for (const [table, times] of Object.entries(SEQ_SCANS)) {
    for (let i = 0; i < times; i++) await client.query(`SELECT count(*) FROM ${table}`);
  }
  await client.query('SET enable_seqscan = off; SET enable_indexscan = on');
  for (let i = 1; i <= INDEX_LOOKUPS.orders; i++)
    await client.query('SELECT * FROM orders WHERE id = $1', [i]);
  for (let i = 1; i <= INDEX_LOOKUPS.ordersByCustomer; i++) {
    await client.query('SELECT id FROM orders WHERE customer = $1', [i]);
  }
  for (let i = 1; i <= INDEX_LOOKUPS.accounts; i++) {
    await client.query('SELECT * FROM accounts WHERE id = $1', [i]);
  }
}

/** Stats are flushed by a backend when it goes idle; this makes the flush certain (PostgreSQL 15+). */
async function flushStats(client: pg.Client): Promise<void> {
  await client.query('SELECT pg_stat_force_next_flush()');
}

function urlAs(url: string, user: string, password: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = password;
  return u.toString();
}

function column(result: OperationResult, key: string): Row[string][] {
  return result.rows.map((r) => r[key] ?? null);
}

function byKey(result: OperationResult, key: string): Map<string, Row> {
  return new Map(result.rows.map((r) => [String(r[key]), r]));
}

async function failure(promise: Promise<unknown>): Promise<UserError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof UserError) return err;
    throw err;
  }
  throw new Error('expected a UserError');
}

describe.each(majors())('PostgreSQL %i', (major) => {
  const suffix = randomBytes(4).toString('hex');
  const plainRole = `catidx_plain_${suffix}`;
  const password = `pw-${suffix}`;
  let db: string;
  let url: string;
  let cacheDb: string;
  let cacheUrl: string;
  let harness: OpHarness;
  let statsReset: string;

  const sql = <T extends pg.QueryResultRow>(text: string, params: unknown[] = []) =>
    adminQuery<T>(text, params, db, major);
  const run = (spec: AnyOperation, args = '', target = 't') => harness.run(spec, target, args);

  beforeAll(async () => {
    ({ name: db, url } = await createDatabase('catidx', undefined, major));
    ({ name: cacheDb, url: cacheUrl } = await createDatabase('catidx_cache', undefined, major));
    await adminQuery(
      `CREATE ROLE ${plainRole} LOGIN PASSWORD '${password}' NOSUPERUSER`,
      [],
      'postgres',
      major,
    );
    // One held connection does everything, so no other backend can flush old counts after the reset.
    const setup = await openClient(url, 'setup');
    try {
      await setup.query(SCHEMA);
      // A failed CREATE INDEX CONCURRENTLY leaves an invalid index behind (1/0 on the only row).
      await expect(
        setup.query('CREATE INDEX CONCURRENTLY broken_inverse ON broken ((1 / x))'),
      ).rejects.toThrow(/division by zero/);
      await flushStats(setup);
      await setup.query('SELECT pg_stat_reset()');
      await setup.query(DATA);
      // Counted inserts must reach the shared counters before VACUUM sets n_live_tup, or they add up twice.
      await flushStats(setup);
      await setup.query('VACUUM ANALYZE');
      await runWorkload(setup);
      await flushStats(setup);
    } finally {
      await setup.end();
    }
    const [reset] = await sql<{ at: Date }>(
      'SELECT stats_reset AS at FROM pg_stat_database WHERE datname = current_database()',
    );
    statsReset = reset?.at.toISOString() ?? 'missing';
    harness = new OpHarness([
      testTarget('t', url),
      testTarget('plain', urlAs(url, plainRole, password)),
      testTarget('cache', cacheUrl),
    ]);
  }, 60_000);

  afterAll(async () => {
    await harness?.close();
    await adminQuery(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`, [], 'postgres', major);
    await adminQuery(`DROP DATABASE IF EXISTS "${cacheDb}" WITH (FORCE)`, [], 'postgres', major);
    await adminQuery(`DROP ROLE IF EXISTS ${plainRole}`, [], 'postgres', major);
  });

  it('the counters hold exactly the workload (ground truth for the rest)', async () => {
    const rows = await sql<{ relname: string; seq_scan: string; idx_scan: string | null }>(
      `SELECT relname, seq_scan, idx_scan FROM pg_stat_user_tables
       WHERE relname IN ('events', 'orders', 'accounts') ORDER BY relname`,
    );
    expect(
      rows.map((r) => [r.relname, Number(r.seq_scan), r.idx_scan === null ? null : Number(r.idx_scan)]),
    ).toEqual([
      ['accounts', SEQ_SCANS.accounts, INDEX_LOOKUPS.accounts],
      ['events', SEQ_SCANS.events, null],
      ['orders', SEQ_SCANS.orders, INDEX_LOOKUPS.orders + INDEX_LOOKUPS.ordersByCustomer],
    ]);
  });

  describe('table-sizes', () => {
    interface Truth {
      relation: string;
      total: number;
      heap: number;
      indexes: number;
      toast: number;
      rows: number;
    }
    const truth = async (schema?: string): Promise<Truth[]> =>
      await sql<Truth>(
        `SELECT format('%I.%I', n.nspname, c.relname) AS relation,
                pg_total_relation_size(c.oid)::float8 AS total,
                (pg_relation_size(c.oid, 'main') + pg_relation_size(c.oid, 'fsm')
                 + pg_relation_size(c.oid, 'vm') + pg_relation_size(c.oid, 'init'))::float8 AS heap,
                pg_indexes_size(c.oid)::float8 AS indexes,
                COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0)::float8 AS toast,
                c.reltuples::float8 AS rows
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('public', 'other') AND c.relkind IN ('r', 'm')
           AND ($1::text IS NULL OR n.nspname = $1)
         ORDER BY 2 DESC, 1`,
        [schema ?? null],
      );

    it('lists every table with exact total / heap / index / TOAST bytes and row estimates', async () => {
      const expected = await truth();
      const result = await run(tableSizes, '--limit 100');
      expect(column(result, 'relation')).toEqual(expected.map((e) => e.relation));
      expect(column(result, 'total_bytes')).toEqual(expected.map((e) => e.total));
      expect(column(result, 'table_bytes')).toEqual(expected.map((e) => e.heap));
      expect(column(result, 'index_bytes')).toEqual(expected.map((e) => e.indexes));
      expect(column(result, 'toast_bytes')).toEqual(expected.map((e) => e.toast));
      expect(column(result, 'rows')).toEqual(expected.map((e) => e.rows));
      expect(byKey(result, 'relation').get('other.archive')?.toast_bytes).toBeGreaterThan(40 * 3200);
      expect(result.data).toMatchObject({
        relations: expected.length,
        totalBytes: expected.reduce((sum, e) => sum + e.total, 0),
        skippedLocked: [],
      });
      expect(result.notes).toEqual([]);
      expect(result.truncated).toBe(false);
    });

    it('honours --limit and --schema, and suggests a schema for a typo', async () => {
      const expected = await truth();
      const two = await run(tableSizes, '--limit 2');
      expect(column(two, 'relation')).toEqual(expected.slice(0, 2).map((e) => e.relation));
      expect(two.notes).toEqual([
        `${expected.length} tables and materialized views in all, largest first; --limit (up to 1000) shows more`,
      ]);

      const other = await run(tableSizes, '--schema other');
      expect(column(other, 'relation')).toEqual(['other.archive']);
      expect(other.headline).toMatch(/^1 table or materialized view in schema other: /);

      const typo = await failure(run(tableSizes, '--schema othr'));
      expect(typo.code).toBe('invalid_argument');
      expect(typo.message).toMatch(/no schema matching othr .*did you mean `other`\?/);
    });
  });

  describe('index-sizes', () => {
    const truth = async (table: string) =>
      await sql<{ index: string; bytes: number; unique: boolean; primary: boolean; scans: number }>(
        `SELECT format('%I.%I', n.nspname, c.relname) AS index, pg_total_relation_size(i.indexrelid)::float8 AS bytes,
                i.indisunique AS unique, i.indisprimary AS primary, s.idx_scan::float8 AS scans
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
         WHERE i.indrelid = $1::regclass ORDER BY 2 DESC, 1`,
        [table],
      );

    it('lists a table’s indexes with exact sizes, uniqueness and scans; --table is resolved', async () => {
      const expected = await truth('orders');
      const result = await run(indexSizes, '--table ORDERS');
      expect(result.rows.map((r) => [r.index, r.table, r.bytes, r.unique, r.primary, r.scans])).toEqual(
        expected.map((e) => [e.index, 'public.orders', e.bytes, e.unique, e.primary, e.scans]),
      );
      const [indexes] = await sql<{ b: number }>("SELECT pg_indexes_size('orders')::float8 AS b");
      expect(result.data).toMatchObject({ table: 'public.orders', indexes: 4, totalBytes: indexes?.b });
      const scans = byKey(result, 'index');
      expect(scans.get('public.orders_pkey')?.scans).toBe(INDEX_LOOKUPS.orders);
      expect(scans.get('public.orders_customer')?.scans).toBe(INDEX_LOOKUPS.ordersByCustomer);
      expect(scans.get('public.orders_note_unused')?.scans).toBe(0);
      if (major >= 16) {
        expect(result.columns.map((c) => c.key)).toContain('last_scan');
        const last = Date.parse(String(scans.get('public.orders_pkey')?.last_scan));
        expect(Date.now() - last).toBeLessThan(120_000);
        expect(scans.get('public.orders_note_unused')?.last_scan).toBeNull();
      } else {
        expect(result.columns.map((c) => c.key)).not.toContain('last_scan');
      }
    });

    it('honours --limit over all indexes, covers partitions, and suggests a table for a typo', async () => {
      const [all] = await sql<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'other') AND c.relkind <> 'p'`,
      );
      const two = await run(indexSizes, '--limit 2');
      expect(two.rows).toHaveLength(2);
      expect(two.data).toMatchObject({ indexes: all?.n });
      const [largest] = await sql<{ index: string }>(
        `SELECT format('%I.%I', n.nspname, c.relname) AS index FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'i' AND n.nspname IN ('public', 'other')
         ORDER BY pg_total_relation_size(c.oid) DESC, 1 LIMIT 1`,
      );
      expect(two.rows[0]?.index).toBe(largest?.index);

      const parts = await run(indexSizes, '--table measurements');
      expect(column(parts, 'index').sort()).toEqual([
        'public.measurements_2024_at_idx',
        'public.measurements_2025_at_idx',
      ]);

      const broken = await run(indexSizes, '--table broken');
      expect(column(broken, 'index')).toEqual(['public.broken_inverse']);
      expect(broken.notes).toEqual([
        'invalid (being built, or left by a failed CREATE INDEX CONCURRENTLY / REINDEX; never used by queries): public.broken_inverse',
      ]);

      const typo = await failure(run(indexSizes, '--table ordrs'));
      expect(typo.code).toBe('invalid_argument');
      expect(typo.message).toMatch(/did you mean `orders`/);
    });
  });

  describe('index-usage', () => {
    it('gives each table its share of index scans, flags the big one that mostly scans sequentially', async () => {
      const truth = await sql<{ table: string; seq: number; idx: number | null; live: number }>(
        `SELECT format('%I.%I', schemaname, relname) AS table, seq_scan::float8 AS seq,
                idx_scan::float8 AS idx, n_live_tup::float8 AS live
         FROM pg_stat_user_tables WHERE relname <> 'measurements'`,
      );
      const result = await run(indexUsage);
      const rows = byKey(result, 'table');
      expect([...rows.keys()].sort()).toEqual(truth.map((t) => t.table).sort());
      for (const t of truth) {
        const scans = t.seq + (t.idx ?? 0);
        expect(rows.get(t.table)).toMatchObject({
          seq_scans: t.seq,
          index_scans: t.idx ?? 0,
          live_rows: t.live,
          // rounded down to a tenth, never up
          index_percent: scans === 0 ? null : Math.floor((1000 * (t.idx ?? 0)) / scans) / 10,
        });
      }
      // 105 index scans of 111 on 20,000 rows: 94.59% reads 94.5% (not 94.6%), under 95%: flagged.
      expect(rows.get('public.orders')).toMatchObject({ index_percent: 94.5, verdict: 'low index usage' });
      // 40 of 43 on 12,000 rows is 93.0%, but 43 scans are too few to judge the table's indexes by.
      expect(rows.get('public.accounts')).toMatchObject({
        index_percent: 93,
        verdict: 'insufficient data (43 scans)',
      });
      expect(rows.get('public.events')).toMatchObject({
        index_percent: 0,
        verdict: 'insufficient data (7 scans)',
      });
      expect(rows.get('public.dups')).toMatchObject({
        index_percent: null,
        verdict: 'insufficient data (0 scans)',
      });
      expect(result.rows[0]?.table).toBe('public.orders');
      expect(result.headline).toBe('1 table has low index usage: public.orders');
      expect(result.data).toMatchObject({ lowUsage: ['public.orders'], minScans: 100, statsReset });
    });
  });

  describe('unused-indexes', () => {
    it('lists never-scanned droppable indexes with sizes, and none that is used, unique or a constraint’s', async () => {
      const result = await run(unusedIndexes);
      const rows = byKey(result, 'index');
      const [note] = await sql<{ b: number }>(
        "SELECT pg_total_relation_size('orders_note_unused')::float8 AS b",
      );
      expect(rows.get('public.orders_note_unused')).toMatchObject({
        table: 'public.orders',
        bytes: note?.b,
        table_writes: 20000,
        note: null,
      });
      for (const kept of [
        'public.orders_pkey', // used
        'public.orders_customer', // used
        'public.orders_code_key', // unique constraint
        'public.bookings_during_excl', // exclusion constraint
        'public.dups_u_unique', // unique index
        'public.dups_pkey',
      ]) {
        expect(rows.has(kept), kept).toBe(false);
      }
      expect(rows.get('public.broken_inverse')?.note).toBe(
        'invalid: being built, or left by a failed CREATE INDEX CONCURRENTLY / REINDEX',
      );
      expect(rows.get('public.measurements_2024_at_idx')?.note).toBe(
        'attached to partitioned index public.measurements_at: cannot be dropped on its own',
      );
      // Ground truth, measured independently: never scanned, not unique or exclusion.
      const expected = await sql<{ index: string; bytes: number }>(
        `SELECT format('%I.%I', n.nspname, c.relname) AS index, pg_total_relation_size(s.indexrelid)::float8 AS bytes
         FROM pg_stat_user_indexes s JOIN pg_index i USING (indexrelid)
         JOIN pg_class c ON c.oid = s.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisexclusion
         ORDER BY 2 DESC, 1`,
      );
      expect(result.rows.map((r) => [r.index, r.bytes])).toEqual(expected.map((e) => [e.index, e.bytes]));
      expect(result.data).toMatchObject({
        unusedIndexes: expected.length,
        totalBytes: expected.reduce((sum, e) => sum + e.bytes, 0),
        statsReset,
        inRecovery: false,
      });
      // One statistics disclaimer: since when (the one time format, with its age) and which server.
      const disclaimers = (result.notes ?? []).filter((n) => /statistic|counters/.test(n));
      expect(disclaimers).toHaveLength(1);
      expect(disclaimers[0]).toContain(`statistics since ${formatTime(new Date(statsReset))} (`);
      expect(disclaimers[0]).toMatch(
        / \((\d+[smhd] ago|just now)\), on this server only \(replicas keep their own\)$/,
      );
    });

    it('--min-size hides smaller indexes and takes units', async () => {
      const big = await run(unusedIndexes, '--min-size 100kB');
      expect(column(big, 'index')).toEqual(['public.orders_note_unused']);
      expect(big.headline).toMatch(/^1 unused index of at least 100 kB: /);
      const same = await run(unusedIndexes, '--min-size 102400');
      expect(same.rows).toEqual(big.rows);
      const none = await run(unusedIndexes, '--min-size 1GB');
      expect(none.rows).toEqual([]);
      expect(none.headline).toBe('no unused indexes of at least 1.0 GB');
      await expect(run(unusedIndexes, '--min-size lots')).rejects.toThrow(/--min-size: expected a size like/);
    });

    it('--max-scans N adds the almost unused indexes, with their scan counts, as PgHero does', async () => {
      const expected = await sql<{ index: string; bytes: number; scans: number }>(
        `SELECT format('%I.%I', n.nspname, c.relname) AS index,
                pg_total_relation_size(s.indexrelid)::float8 AS bytes, s.idx_scan::float8 AS scans
         FROM pg_stat_user_indexes s JOIN pg_index i USING (indexrelid)
         JOIN pg_class c ON c.oid = s.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE s.idx_scan <= 10 AND NOT i.indisunique AND NOT i.indisexclusion
         ORDER BY 2 DESC, 1`,
      );
      const almost = await run(unusedIndexes, '--max-scans 10');
      expect(almost.rows.map((r) => [r.index, r.bytes, r.scans])).toEqual(
        expected.map((e) => [e.index, e.bytes, e.scans]),
      );
      // orders_customer was scanned 5 times: almost unused; never scanned ones are still there.
      expect(byKey(almost, 'index').get('public.orders_customer')?.scans).toBe(
        INDEX_LOOKUPS.ordersByCustomer,
      );
      expect(byKey(almost, 'index').get('public.orders_note_unused')?.scans).toBe(0);
      expect(almost.columns.map((c) => c.key)).toContain('scans');
      expect(almost.headline).toMatch(/^\d+ almost unused indexes \(at most 10 scans\): /);
      const four = await run(unusedIndexes, '--max-scans 4');
      expect(column(four, 'index')).not.toContain('public.orders_customer');
      // the default stays "never scanned", without the scans column
      const never = await run(unusedIndexes);
      expect(column(never, 'index')).not.toContain('public.orders_customer');
      expect(never.columns.map((c) => c.key)).not.toContain('scans');
      await expect(run(unusedIndexes, '--max-scans -1')).rejects.toThrow(/--max-scans/);
    });
  });

  describe('duplicate-indexes', () => {
    it('finds exact duplicates and left-prefix b-tree indexes, and keeps the right one', async () => {
      const result = await run(duplicateIndexes);
      const found = result.rows
        .map((r) => [r.index, r.reason, r.keep])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0])));
      expect(found).toEqual([
        ['public.dups_a', 'prefix', 'public.dups_ab'],
        ['public.dups_ab_twin', 'duplicate', 'public.dups_ab'],
        // a b-tree reads both ways: (b DESC) is (b) backwards, (v, c DESC) is (v DESC, c) backwards
        ['public.dups_b_desc', 'duplicate', 'public.dups_b'],
        ['public.dups_c_unique', 'duplicate', 'public.dups_c_key'],
        ['public.dups_id', 'duplicate', 'public.dups_pkey'],
        ['public.dups_id_key', 'duplicate', 'public.dups_pkey'],
        ['public.dups_lower_2', 'duplicate', 'public.dups_lower_1'],
        ['public.dups_s_desc', 'prefix', 'public.dups_s_c'],
        ['public.dups_u_plain', 'duplicate', 'public.dups_u_unique'],
        ['public.dups_v_unique', 'duplicate', 'public.dups_v_nnd'],
        ['public.dups_vc_mixed_rev', 'duplicate', 'public.dups_vc_mixed'],
      ]);
      // (v, c) is not (v DESC, c) in either direction; (c DESC NULLS LAST) puts NULLs where (c) backwards
      // does not: neither is redundant.
      expect(found.map((f) => f[0])).not.toContain('public.dups_vc');
      expect(found.map((f) => f[0])).not.toContain('public.dups_c_nulls_last');
      expect(byKey(result, 'index').get('public.dups_id_key')?.note).toBe(
        'backs constraint dups_id_key: drop the constraint instead (foreign keys may need it)',
      );
      const sizes = await sql<{ index: string; bytes: number }>(
        `SELECT format('%I.%I', n.nspname, c.relname) AS index, pg_total_relation_size(c.oid)::float8 AS bytes
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relname = ANY ($1) ORDER BY 1`,
        [found.map((f) => String(f[0]).replace('public.', ''))],
      );
      const wasted = sizes.reduce((sum, s) => sum + s.bytes, 0);
      expect(Object.fromEntries(result.rows.map((r) => [r.index, r.bytes]))).toEqual(
        Object.fromEntries(sizes.map((s) => [s.index, s.bytes])),
      );
      expect(result.data).toMatchObject({ redundantIndexes: 11, exactDuplicates: 9, wastedBytes: wasted });
      expect(result.headline).toMatch(/^11 redundant indexes \(9 duplicate, 2 prefix\): .* could be freed$/);
    });
  });

  describe('cache-hit', () => {
    const truth = async (database: string) => {
      const [row] = await adminQuery<{ th: number; tr: number; ih: number; ir: number }>(
        `SELECT (SELECT COALESCE(sum(heap_blks_hit), 0) FROM pg_statio_user_tables)::float8 AS th,
                (SELECT COALESCE(sum(heap_blks_read), 0) FROM pg_statio_user_tables)::float8 AS tr,
                (SELECT COALESCE(sum(idx_blks_hit), 0) FROM pg_statio_user_indexes)::float8 AS ih,
                (SELECT COALESCE(sum(idx_blks_read), 0) FROM pg_statio_user_indexes)::float8 AS ir`,
        [],
        database,
        major,
      );
      if (!row) throw new Error('no statio row');
      return row;
    };
    const verdict = (hit: number, read: number) =>
      hit + read < 1000 ? 'not enough reads yet' : (100 * hit) / (hit + read) > 99 ? 'ok' : 'warn';

    it('computes both ratios from pg_statio and calls a well-cached database ok', async () => {
      const result = await run(cacheHit);
      const t = await truth(db);
      expect(result.rows.map((r) => [r.kind, r.hit_blocks, r.read_blocks, r.hit_percent, r.verdict])).toEqual(
        [
          ['tables', t.th, t.tr, (100 * t.th) / (t.th + t.tr), verdict(t.th, t.tr)],
          ['indexes', t.ih, t.ir, (100 * t.ih) / (t.ih + t.ir), verdict(t.ih, t.ir)],
        ],
      );
      expect(result.rows.map((r) => r.verdict)).toEqual(['ok', 'ok']);
      expect(result.headline).toMatch(/^cache hit ok: tables \d+\.\d\d% \(ok\), indexes \d+\.\d\d% \(ok\)$/);
    });

    it('says "not enough reads yet", then warns when a table no longer fits its buffers', async () => {
      const quiet = await run(cacheHit, '', 'cache');
      expect(quiet.rows.map((r) => [r.kind, r.hit_percent, r.verdict])).toEqual([
        ['tables', null, 'not enough reads yet'],
        ['indexes', null, 'not enough reads yet'],
      ]);
      expect(quiet.headline).toBe(
        'cache hit not enough reads yet: tables n/a (not enough reads yet), indexes n/a (not enough reads yet)',
      );

      // A temporary table three times the size of this session's 800 kB of local buffers: scans miss.
      const session = await openClient(cacheUrl, 'temp-reader');
      try {
        await session.query('SET temp_buffers = 100');
        await session.query(
          "CREATE TEMP TABLE scratch AS SELECT repeat('x', 700) AS pad FROM generate_series(1, 3000)",
        );
        for (let i = 0; i < 5; i++) await session.query('SELECT count(*) FROM scratch');
        await flushStats(session);
        const result = await run(cacheHit, '', 'cache');
        const t = await truth(cacheDb);
        expect(t.tr + t.th).toBeGreaterThan(1000);
        const tables = result.rows[0];
        expect(tables).toMatchObject({
          kind: 'tables',
          hit_blocks: t.th,
          read_blocks: t.tr,
          hit_percent: (100 * t.th) / (t.th + t.tr),
          verdict: 'warn',
        });
        expect(verdict(t.th, t.tr)).toBe('warn');
        expect(String(tables?.why)).toMatch(
          /^\d+\.\d\d% is not above 99%: [\d,]+ blocks were not in PostgreSQL's buffers$/,
        );
      } finally {
        await session.end();
      }
    });
  });

  describe('seq-scans', () => {
    it('ranks tables by sequential scans with the exact counts and rows read', async () => {
      const result = await run(seqScans);
      expect(
        result.rows.map((r) => [r.table, r.seq_scans, r.seq_rows_read, r.index_scans, r.live_rows]),
      ).toEqual([
        ['public.events', 7, 7 * 50, null, 50],
        ['public.orders', 6, 6 * 20000, 105, 20000],
        ['public.accounts', 3, 3 * 12000, 40, 12000],
      ]);
      expect(result.headline).toBe('16 sequential scans on 3 tables');
      if (major >= 16) {
        const last = Date.parse(String(result.rows[0]?.last_seq_scan));
        expect(Date.now() - last).toBeLessThan(120_000);
      } else {
        expect(result.columns.map((c) => c.key)).not.toContain('last_seq_scan');
      }
      const one = await run(seqScans, '--limit 1');
      expect(column(one, 'table')).toEqual(['public.events']);
      expect(one.notes?.[0]).toBe('showing the 1 most scanned of 3 tables; --limit (up to 1000) shows more');
    });
  });

  it('skips relations locked by DDL instead of waiting behind them', async () => {
    const ddl = await openClient(url, 'ddl');
    try {
      await ddl.query('BEGIN');
      await ddl.query('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
      await ddl.query('REINDEX INDEX dups_a');
      // lock_timeout is 1s: waiting for either lock would fail these with a timeout instead.
      const tables = await run(tableSizes);
      expect(column(tables, 'relation')).not.toContain('public.orders');
      expect(column(tables, 'relation')).not.toContain('public.dups');
      expect(tables.notes).toContain('skipped 2 relations locked by DDL: public.dups, public.orders');

      const indexes = await run(indexSizes, '--limit 100');
      expect(indexes.notes).toContain(
        'skipped 5 indexes locked by DDL: public.dups_a, public.orders_code_key, public.orders_customer, ' +
          'public.orders_note_unused, public.orders_pkey',
      );
      const unused = byKey(await run(unusedIndexes), 'index');
      for (const index of ['public.orders_note_unused', 'public.dups_a']) {
        expect(unused.get(index)).toMatchObject({ bytes: null, note: 'locked by DDL: size not measured' });
      }

      const duplicates = await run(duplicateIndexes);
      expect(duplicates.rows).toHaveLength(11);
      expect(byKey(duplicates, 'index').get('public.dups_a')).toMatchObject({
        bytes: null,
        keep: 'public.dups_ab',
        note: 'locked by DDL: size not measured',
      });
      expect(duplicates.notes).toContain('skipped 1 table locked by DDL: public.orders');
      expect(duplicates.data).toMatchObject({
        skippedTables: ['public.orders'],
        sizeNotMeasured: ['public.dups_a'],
      });
    } finally {
      await ddl.query('ROLLBACK');
      await ddl.end();
    }
  });

  it('needs no privilege: a plain role without grants sees the same answers', async () => {
    for (const [spec, args] of [
      [tableSizes, '--limit 100'],
      [indexSizes, '--limit 100'],
      [unusedIndexes, ''],
      [duplicateIndexes, ''],
      [indexUsage, ''],
      [seqScans, ''],
    ] as const) {
      const asPlain = await run(spec, args, 'plain');
      const asSuper = await run(spec, args);
      expect(asPlain.rows, spec.name).toEqual(asSuper.rows);
      expect(asPlain.notes, spec.name).toEqual(asSuper.notes);
    }
  });
});
