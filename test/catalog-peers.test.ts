// Catalog answers held against exact figures the peers only estimate (bloat against pgstattuple, on
// tables bloated on purpose) and against the peers' false alarms, on PostgreSQL 15 and 17.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import bloat from '../commands/bloat.js';
import indexUsage from '../commands/index-usage.js';
import vacuumStats from '../commands/vacuum-stats.js';
import type { OperationResult, Row } from '../src/core/types.js';
import { adminQuery, createDatabase, majors } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';

const PAGE = 8192;
/** MaxHeapTuplesPerPage for 8 kB pages: no more line pointers fit, however small the tuples. */
const MAX_HEAP_TUPLES_PER_PAGE = 291;

/*
 * Every table has rows of one on-disk width, so pgstattuple's tuple_len / tuple_count is each row's exact
 * length and the size a fresh copy would take follows from it exactly. Shapes: alignment padding
 * (bool before bigint and timestamptz), short varlena text, a fillfactor, rows deleted, the smallest row
 * there is (a null bitmap and no data: 291 to a page), and TOASTed values (the heap keeps an 18-byte
 * pointer). Deletes leave their holes before the last page, which VACUUM would otherwise truncate away.
 */
const SETUP = `
CREATE EXTENSION pgstattuple;
CREATE TABLE ints_t (id int PRIMARY KEY, a int, b int) WITH (autovacuum_enabled = false);
INSERT INTO ints_t SELECT g, g, g FROM generate_series(1, 30000) g;
CREATE TABLE padded_t (id int PRIMARY KEY, flag bool, big bigint, at timestamptz, small smallint)
  WITH (autovacuum_enabled = false);
INSERT INTO padded_t SELECT g, g % 2 = 0, g * 1000, now(), 1 FROM generate_series(1, 30000) g;
CREATE TABLE text_t (id int PRIMARY KEY, v text, n int) WITH (autovacuum_enabled = false);
INSERT INTO text_t SELECT g, md5(g::text), 0 FROM generate_series(1, 30000) g;
CREATE TABLE filled_t (id int PRIMARY KEY, v text, n int) WITH (autovacuum_enabled = false, fillfactor = 70);
INSERT INTO filled_t SELECT g, md5(g::text), 0 FROM generate_series(1, 30000) g;
CREATE TABLE deleted_t (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false);
INSERT INTO deleted_t SELECT g, md5(g::text) FROM generate_series(1, 30000) g;
CREATE TABLE tiny_t (n int) WITH (autovacuum_enabled = false);
INSERT INTO tiny_t SELECT NULL FROM generate_series(1, 30000) g;
CREATE TABLE toasted_t (id int PRIMARY KEY, doc text) WITH (autovacuum_enabled = false);
ALTER TABLE toasted_t ALTER COLUMN doc SET STORAGE EXTERNAL;
INSERT INTO toasted_t SELECT g, repeat(md5(g::text), 100) FROM generate_series(1, 3000) g;

CREATE TABLE tuned_t (id int PRIMARY KEY, n int) WITH (autovacuum_enabled = false,
  autovacuum_analyze_threshold = 10, autovacuum_analyze_scale_factor = 0.5,
  autovacuum_vacuum_insert_threshold = -1, autovacuum_vacuum_threshold = 7, autovacuum_vacuum_scale_factor = 0.25);
INSERT INTO tuned_t SELECT g, 0 FROM generate_series(1, 100) g;
CREATE TABLE calm_t (id int PRIMARY KEY, n int) WITH (autovacuum_enabled = false,
  autovacuum_analyze_threshold = 10, autovacuum_analyze_scale_factor = 0.5);
INSERT INTO calm_t SELECT g, 0 FROM generate_series(1, 100) g;

UPDATE ints_t SET a = a + 1;
UPDATE ints_t SET b = b + 1;
UPDATE padded_t SET small = 2;
UPDATE text_t SET n = 1;
UPDATE text_t SET n = 2;
UPDATE filled_t SET n = 1;
UPDATE filled_t SET n = 2;
DELETE FROM deleted_t WHERE id % 3 <> 0;
DELETE FROM tiny_t WHERE ctid < '(60,0)';
UPDATE toasted_t SET id = id + 100000;
`;

interface Exact {
  relname: string;
  table_len: number;
  tuple_count: number;
  tuple_len: number;
  fillfactor: number;
}

/** Pages a freshly written copy of the live rows takes, from pgstattuple's exact tuple lengths. */
function freshPages(t: Exact): number {
  const perTuple = Math.ceil(t.tuple_len / t.tuple_count / 8) * 8 + 4; // MAXALIGNed tuple + line pointer
  const usable = PAGE - 24 - Math.floor((PAGE * (100 - t.fillfactor)) / 100);
  const perPage = Math.min(Math.floor(usable / perTuple), MAX_HEAP_TUPLES_PER_PAGE);
  return Math.ceil(t.tuple_count / perPage);
}

function rowOf(result: OperationResult, relation: string): Row {
  const row = result.rows.find((r) => r.relation === relation);
  if (!row) throw new Error(`no row for ${relation}`);
  return row;
}

describe.each(majors())('PostgreSQL %i', (major) => {
  let db: { name: string; url: string } | undefined;
  let h: OpHarness | undefined;

  beforeAll(async () => {
    db = await createDatabase('catalog_peers', SETUP, major);
    // VACUUM turns dead rows into free space and sets relpages; ANALYZE gives the column widths.
    await adminQuery('VACUUM ANALYZE', [], db.name, major);
    h = new OpHarness([testTarget('t', db.url)]);
  });

  afterAll(async () => {
    await h?.close();
    if (db) await adminQuery(`DROP DATABASE IF EXISTS "${db.name}" WITH (FORCE)`, [], 'postgres', major);
  });

  it('bloat is within a page of pgstattuple’s exact figure on every bloated table', async () => {
    if (!db || !h) throw new Error('no database');
    const exact = await adminQuery<Exact>(
      `SELECT c.relname, s.table_len::float8 AS table_len, s.tuple_count::float8 AS tuple_count,
              s.tuple_len::float8 AS tuple_len,
              COALESCE((SELECT o.option_value FROM pg_options_to_table(c.reloptions) o
                        WHERE o.option_name = 'fillfactor')::int, 100) AS fillfactor
       FROM pg_class c CROSS JOIN LATERAL pgstattuple(c.oid) s
       WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
         AND c.relname NOT IN ('tuned_t', 'calm_t')
       ORDER BY 1`,
      [],
      db.name,
      major,
    );
    expect(exact.map((t) => t.relname)).toEqual([
      'deleted_t',
      'filled_t',
      'ints_t',
      'padded_t',
      'text_t',
      'tiny_t',
      'toasted_t',
    ]);
    const result = await h.run(bloat, 't', '--limit 100');
    for (const t of exact) {
      const row = rowOf(result, `public.${t.relname}`);
      const exactBloat = t.table_len - freshPages(t) * PAGE;
      expect(row.status, t.relname).toBe('estimated');
      expect(row.size_bytes, t.relname).toBe(t.table_len);
      // every table here was bloated to at least a fifth of its size: the figure matters
      expect(exactBloat / t.table_len, t.relname).toBeGreaterThan(0.2);
      expect(Math.abs(Number(row.bloat_bytes) - exactBloat), t.relname).toBeLessThanOrEqual(PAGE);
    }
  });

  it('index-usage does not call 30,000-row tables badly indexed after a couple of sequential scans', async () => {
    if (!db || !h) throw new Error('no database');
    const truth = await adminQuery<{ relname: string; scans: number; idx: number | null; live: number }>(
      `SELECT relname, (seq_scan + COALESCE(idx_scan, 0))::float8 AS scans, idx_scan::float8 AS idx,
              n_live_tup::float8 AS live
       FROM pg_stat_user_tables WHERE relname = 'ints_t'`,
      [],
      db.name,
      major,
    );
    // The UPDATEs scanned it sequentially, no query used its index: 0% index use on 30,000 rows, which a
    // ratio alone calls "low index usage" (pg-extras prints 0, PgHero's share is 0 too).
    expect(truth[0]).toMatchObject({ idx: 0, live: 30000 });
    expect(truth[0]?.scans).toBeGreaterThan(0);
    expect(truth[0]?.scans).toBeLessThan(100);
    const result = await h.run(indexUsage, 't');
    const ints = result.rows.find((r) => r.table === 'public.ints_t');
    expect(ints).toMatchObject({ index_percent: 0, verdict: `insufficient data (${truth[0]?.scans} scans)` });
    expect(result.headline).toBe('insufficient data: no table was scanned 100 times yet');
    expect(result.data).toMatchObject({ lowUsage: [], lowUsageCount: 0 });
  });

  it('vacuum-stats applies each table’s own autovacuum settings as relation_needs_vacanalyze does', async () => {
    if (!db || !h) throw new Error('no database');
    const name = db.name;
    // 70 of 100 rows changed: past tuned_t's analyze threshold (10 + 0.5 * 100 = 60); 50 of calm_t's are not.
    await adminQuery('UPDATE tuned_t SET n = 1 WHERE id <= 70', [], name, major);
    await adminQuery('UPDATE calm_t SET n = 1 WHERE id <= 50', [], name, major);
    type Truth = {
      relname: string;
      reltuples: number;
      modified: number;
      dead: number;
      options: string[] | null;
    };
    let truth: Truth[] = [];
    for (let i = 0; i < 100; i++) {
      truth = await adminQuery<Truth>(
        `SELECT c.relname, c.reltuples::float8 AS reltuples, s.n_mod_since_analyze::float8 AS modified,
                s.n_dead_tup::float8 AS dead, c.reloptions AS options
         FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
         WHERE c.relname IN ('calm_t', 'tuned_t') ORDER BY 1`,
        [],
        name,
        major,
      );
      if (truth.map((t) => t.modified).join() === '50,70') break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(truth.map((t) => [t.relname, t.reltuples, t.modified])).toEqual([
      ['calm_t', 100, 50],
      ['tuned_t', 100, 70],
    ]);
    const [server] = await adminQuery<{ ins_base: number; ins_scale: number }>(
      `SELECT current_setting('autovacuum_vacuum_insert_threshold')::float8 AS ins_base,
              current_setting('autovacuum_vacuum_insert_scale_factor')::float8 AS ins_scale`,
      [],
      name,
      major,
    );
    const option = (t: Truth | undefined, key: string) =>
      Number(t?.options?.find((o) => o.startsWith(`${key}=`))?.split('=')[1]);
    const tuned = truth.find((t) => t.relname === 'tuned_t');
    const calm = truth.find((t) => t.relname === 'calm_t');

    const result = await h.run(vacuumStats, 't', '--limit 100');
    const row = (relation: string) => result.rows.find((r) => r.relation === relation);
    const tunedVacuum =
      option(tuned, 'autovacuum_vacuum_threshold') + option(tuned, 'autovacuum_vacuum_scale_factor') * 100;
    expect(row('public.tuned_t')).toMatchObject({
      analyze_threshold:
        option(tuned, 'autovacuum_analyze_threshold') +
        option(tuned, 'autovacuum_analyze_scale_factor') * 100,
      analyze_due: true,
      // -1 turns insert-driven vacuum off for the table
      insert_threshold: null,
      vacuum_threshold: Math.floor(tunedVacuum),
      vacuum_due: (tuned?.dead ?? 0) > tunedVacuum,
    });
    expect(row('public.calm_t')).toMatchObject({
      analyze_threshold: 60,
      analyze_due: false,
      insert_threshold: Math.floor((server?.ins_base ?? 0) + (server?.ins_scale ?? 0) * 100),
    });
    expect(option(calm, 'autovacuum_analyze_threshold')).toBe(10);
  });
});
