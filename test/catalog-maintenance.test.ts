// The maintenance reads against real PostgreSQL 15 and 17: each condition is made to happen, then the
// answer is compared with ground truth the test measures on its own.

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import bloat from '../commands/bloat.js';
import extensions from '../commands/extensions.js';
import replication, { STANDBY_SQL, type StandbyRow } from '../commands/replication.js';
import sequences from '../commands/sequences.js';
import settings, { SETTINGS, showValue } from '../commands/settings.js';
import slowQueries, { statementColumns } from '../commands/slow-queries.js';
import vacuumStats from '../commands/vacuum-stats.js';
import wraparound, { ageLevel, WRAPAROUND_LIMIT } from '../commands/wraparound.js';
import { Catalog } from '../src/core/catalog.js';
import { jsonRows } from '../src/core/json-rows.js';
import type { AnyOperation } from '../src/core/operation.js';
import type { OperationResult, Row } from '../src/core/types.js';
import { adminQuery, createDatabase, majors, openClient } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';
import type { Major } from './setup/postgres.js';

const PASSWORD = 'pw-maintenance-5';
const suffix = randomBytes(4).toString('hex');
const botRole = `maint_bot_${suffix}`;

const NO_AUTOVACUUM = 'WITH (autovacuum_enabled = false)';

/** The database most operations read: dead tuples, bloat, sequences, pg_stat_statements. */
const MAIN_SETUP = `
CREATE TABLE dead_t (id int PRIMARY KEY, v text) ${NO_AUTOVACUUM};
INSERT INTO dead_t SELECT g, 'row ' || g FROM generate_series(1, 1000) g;
CREATE TABLE override_t (id int PRIMARY KEY, v text)
  WITH (autovacuum_enabled = false, autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_scale_factor = 0);
INSERT INTO override_t SELECT g, 'row ' || g FROM generate_series(1, 1000) g;
CREATE TABLE scaled_t (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = off, autovacuum_vacuum_scale_factor = 0.9);
INSERT INTO scaled_t SELECT g, 'row ' || g FROM generate_series(1, 1000) g;
CREATE TABLE insert_t (id int, v text) ${NO_AUTOVACUUM};

CREATE TABLE churn_t (id int PRIMARY KEY, v text, n int) ${NO_AUTOVACUUM};
INSERT INTO churn_t SELECT g, md5(g::text), 0 FROM generate_series(1, 20000) g;
UPDATE churn_t SET n = n + 1;
UPDATE churn_t SET n = n + 1;
CREATE TABLE fresh_t (id int PRIMARY KEY, v text) ${NO_AUTOVACUUM};
INSERT INTO fresh_t SELECT g, md5(g::text) FROM generate_series(1, 20000) g;
CREATE TABLE nostats_t (id int, v text) ${NO_AUTOVACUUM};

CREATE TABLE serial_t (id serial PRIMARY KEY);
CREATE TABLE ident_t (id smallint GENERATED ALWAYS AS IDENTITY);
CREATE SEQUENCE wide_seq;
CREATE TABLE narrow_t (id int DEFAULT nextval('wide_seq'));
CREATE SEQUENCE restarted_seq AS smallint;
CREATE SEQUENCE private_seq;
CREATE SEQUENCE big_seq;
SELECT setval('serial_t_id_seq', 2040109464), setval('ident_t_id_seq', 30000), setval('wide_seq', 2000000000);
SELECT setval('big_seq', 9007199254740993);
ALTER SEQUENCE restarted_seq RESTART WITH 32000;

CREATE EXTENSION pg_stat_statements;
`;

/** A database without pg_stat_statements, whose tables the wraparound test ages. */
const BARE_SETUP = `
CREATE TABLE old_t (id int) ${NO_AUTOVACUUM};
CREATE TABLE toast_t (id int, doc text) ${NO_AUTOVACUUM};
ALTER TABLE toast_t ALTER COLUMN doc SET STORAGE EXTERNAL;
INSERT INTO toast_t SELECT g, repeat(md5(g::text), 100) FROM generate_series(1, 20) g;
CREATE TABLE young_t (id int) ${NO_AUTOVACUUM};
`;

/** An older pg_stat_statements: before 1.8 on 15 (total_time), before 1.11 on 17 (blk_read_time). */
const OLD_STATEMENTS_VERSION: Record<Major, string> = { 15: '1.7', 17: '1.10' };

function urlAs(url: string, user: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = PASSWORD;
  return u.toString();
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

function rowOf(result: OperationResult, value: string, key = 'relation'): Row {
  const row = result.rows.find((r) => r[key] === value);
  if (!row)
    throw new Error(`no row with ${key} = ${value} in ${JSON.stringify(result.rows.map((r) => r[key]))}`);
  return row;
}

function num(value: Row[string] | undefined): number {
  if (typeof value !== 'number') throw new Error(`expected a number, got ${JSON.stringify(value)}`);
  return value;
}

describe('pure rules', () => {
  it('every operation here is a valid read operation of the catalog', () => {
    const specs: AnyOperation[] = [
      bloat,
      vacuumStats,
      wraparound,
      sequences,
      settings,
      extensions,
      replication,
      slowQueries,
    ];
    const catalog = new Catalog(specs);
    for (const spec of specs) {
      expect(catalog.get(spec.name)).toBe(spec);
      expect(spec.risk).toBe('read');
    }
  });

  it('wraparound levels: ok up to the freeze max age, warn past it, fail from half the 2^31 limit', () => {
    expect(ageLevel(199_999_999, 200_000_000)).toBe('ok');
    expect(ageLevel(200_000_000, 200_000_000)).toBe('ok');
    expect(ageLevel(200_000_001, 200_000_000)).toBe('warn');
    expect(ageLevel(WRAPAROUND_LIMIT / 2 - 1, 200_000_000)).toBe('warn');
    expect(ageLevel(WRAPAROUND_LIMIT / 2, 200_000_000)).toBe('fail');
    expect(ageLevel(WRAPAROUND_LIMIT / 2, 2_000_000_000)).toBe('fail');
  });

  it('pg_stat_statements columns follow the extension version, compared as numbers, within the server', () => {
    expect(statementColumns(150_000, '1.7').total).toBe('s.total_time');
    expect(statementColumns(150_000, '1.10').total).toBe('s.total_exec_time');
    expect(statementColumns(170_000, '1.10').io).toBe('(s.blk_read_time + s.blk_write_time)');
    expect(statementColumns(170_000, '1.11').io).toContain('s.shared_blk_read_time');
    expect(statementColumns(120_000, '1.8').total).toBe('s.total_time');
    expect(statementColumns(160_000, '1.11').io).toBe('(s.blk_read_time + s.blk_write_time)');
    expect(statementColumns(170_000, '1.9').plan).toBe('s.total_plan_time');
  });

  it('settings print like SHOW: the largest exact unit, none for 0 and -1', () => {
    expect(showValue('16384', '8kB', 'integer')).toBe('128MB');
    expect(showValue('4096', 'kB', 'integer')).toBe('4MB');
    expect(showValue('5000', 'ms', 'integer')).toBe('5s');
    expect(showValue('1500', 'ms', 'integer')).toBe('1500ms');
    expect(showValue('300', 's', 'integer')).toBe('5min');
    expect(showValue('0', 'ms', 'integer')).toBe('0');
    expect(showValue('-1', 'ms', 'integer')).toBe('-1');
    expect(showValue('1024', 'MB', 'integer')).toBe('1GB');
  });
});

describe.each(majors())('PostgreSQL %i', (major) => {
  let main: { name: string; url: string };
  let bare: { name: string; url: string };
  let old: { name: string; url: string };
  let h: OpHarness;
  const admin = <T extends object = Record<string, unknown>>(
    sql: string,
    params: unknown[] = [],
    db = main.name,
  ) => adminQuery(sql, params, db, major) as Promise<T[]>;

  beforeAll(async () => {
    [main, bare, old] = await Promise.all([
      createDatabase('maint', MAIN_SETUP, major),
      createDatabase('maint_bare', BARE_SETUP, major),
      createDatabase(
        'maint_old',
        `CREATE EXTENSION pg_stat_statements VERSION '${OLD_STATEMENTS_VERSION[major]}'`,
        major,
      ),
    ]);
    await adminQuery(`CREATE ROLE ${botRole} LOGIN PASSWORD '${PASSWORD}'`, [], 'postgres', major);
    await admin(`GRANT SELECT ON fresh_t TO ${botRole}`);
    await admin(`GRANT SELECT ON SEQUENCE serial_t_id_seq TO ${botRole}`);
    // reltuples = 1000 exactly, counters since vacuum / analyze at zero; then the condition is made.
    await admin('VACUUM ANALYZE dead_t, override_t, scaled_t, insert_t');
    await admin('DELETE FROM dead_t WHERE id <= 600');
    await admin('DELETE FROM override_t WHERE id <= 600');
    await admin('DELETE FROM scaled_t WHERE id <= 600');
    await admin("INSERT INTO insert_t SELECT g, 'x' FROM generate_series(1, 1500) g");
    await admin("INSERT INTO nostats_t SELECT g, 'x' FROM generate_series(1, 500) g");
    // What a freshly written copy of the churned table and its key index measure.
    await admin(`CREATE TABLE churn_copy ${NO_AUTOVACUUM} AS SELECT * FROM churn_t`);
    await admin('CREATE INDEX churn_copy_id ON churn_copy (id)');
    await admin('ANALYZE churn_t, churn_copy, fresh_t');
    await admin(`ALTER DATABASE "${main.name}" SET lock_timeout = '3s'`);

    h = new OpHarness([
      testTarget('t', main.url),
      testTarget('bot', urlAs(main.url, botRole)),
      testTarget('bare', bare.url),
      testTarget('old', old.url),
    ]);
  });

  afterAll(async () => {
    await h?.close();
    for (const db of [main, bare, old]) {
      if (db) await adminQuery(`DROP DATABASE IF EXISTS "${db.name}" WITH (FORCE)`, [], 'postgres', major);
    }
    await adminQuery(`DROP ROLE IF EXISTS ${botRole}`, [], 'postgres', major);
  });

  describe('vacuum-stats', () => {
    it('counts dead tuples and says autovacuum is due exactly when they pass the effective threshold', async () => {
      type Truth = { relname: string; dead: number; live: number; reltuples: number; ins: number };
      const truth = await waitFor(
        () =>
          admin<Truth>(
            `SELECT s.relname, s.n_dead_tup::int AS dead, s.n_live_tup::int AS live, c.reltuples::float8 AS reltuples,
                    s.n_ins_since_vacuum::int AS ins
             FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
             WHERE s.relname IN ('dead_t', 'override_t', 'scaled_t', 'insert_t') ORDER BY 1`,
          ),
        (rows) =>
          rows.filter((r) => r.dead === 600).length === 3 &&
          rows.some((r) => r.relname === 'insert_t' && r.ins === 1500),
      );
      const [server] = await admin<{ base: number; scale: number; ins_base: number; ins_scale: number }>(
        `SELECT current_setting('autovacuum_vacuum_threshold')::float8 AS base,
                current_setting('autovacuum_vacuum_scale_factor')::float8 AS scale,
                current_setting('autovacuum_vacuum_insert_threshold')::float8 AS ins_base,
                current_setting('autovacuum_vacuum_insert_scale_factor')::float8 AS ins_scale`,
      );
      if (!server) throw new Error('no settings');
      const reltuples = (name: string) => truth.find((t) => t.relname === name)?.reltuples ?? Number.NaN;
      expect(reltuples('dead_t')).toBe(1000);
      // The thresholds the test expects, from the table definitions above.
      const expected = {
        'public.dead_t': server.base + server.scale * 1000,
        'public.override_t': 5000 + 0 * 1000,
        'public.scaled_t': server.base + 0.9 * 1000,
        'public.insert_t': server.base + server.scale * 0,
      };

      const result = await h.run(vacuumStats, 't', '--limit 100');
      for (const [relation, threshold] of Object.entries(expected)) {
        const row = rowOf(result, relation);
        expect(row.vacuum_threshold).toBe(Math.floor(threshold));
        if (relation !== 'public.insert_t') {
          expect(row).toMatchObject({ dead: 600, live: 400, dead_percent: 60 });
          expect(row.vacuum_due).toBe(600 > threshold);
        }
      }
      expect(rowOf(result, 'public.dead_t')).toMatchObject({
        vacuum_due: true,
        vacuum_reason: 'dead_tuples',
        autovacuum_enabled: false,
        due: 'vacuum (dead) + analyze, table off',
      });
      expect(rowOf(result, 'public.override_t')).toMatchObject({ vacuum_due: false, vacuum_reason: null });
      expect(rowOf(result, 'public.scaled_t')).toMatchObject({ vacuum_due: false });
      // 1500 inserts since VACUUM of an empty table: past the insert threshold (PostgreSQL 13+).
      expect(rowOf(result, 'public.insert_t')).toMatchObject({
        dead: 0,
        inserts_since_vacuum: 1500,
        insert_threshold: Math.floor(server.ins_base + server.ins_scale * 0),
        vacuum_due: 1500 > server.ins_base,
        vacuum_reason: 'inserts',
      });
      // Due tables first.
      const dueFlags = result.rows.map((r) => r.vacuum_due);
      expect(dueFlags).toEqual([...dueFlags].sort((a, b) => Number(b) - Number(a)));
      expect(result.headline).toMatch(/^\d+ of \d+ tables due for vacuum, \d+ for analyze$/);
      const [ran] = await admin<{ at: Date }>(
        "SELECT last_vacuum AS at FROM pg_stat_user_tables WHERE relname = 'dead_t'",
      );
      expect(rowOf(result, 'public.dead_t').last_vacuum).toBe(ran?.at.toISOString());
      expect(rowOf(result, 'public.dead_t').last_autovacuum).toBeNull();
    });
  });

  describe('bloat', () => {
    it('estimates the churned table and its index against freshly written copies, and a fresh table at ~0', async () => {
      const [truth] = await admin<{
        actual: number;
        copy: number;
        index_actual: number;
        index_copy: number;
        fresh_index: number;
      }>(
        `SELECT pg_relation_size('churn_t')::float8 AS actual, pg_relation_size('churn_copy')::float8 AS copy,
                pg_relation_size('churn_t_pkey')::float8 AS index_actual,
                pg_relation_size('churn_copy_id')::float8 AS index_copy,
                pg_relation_size('fresh_t_pkey')::float8 AS fresh_index`,
      );
      if (!truth) throw new Error('no sizes');
      const result = await h.run(bloat, 't', '--limit 100');

      const churn = rowOf(result, 'public.churn_t');
      expect(churn).toMatchObject({ kind: 'table', status: 'estimated', size_bytes: truth.actual });
      // Two full-table updates without vacuum: about two thirds of the table is dead space.
      expect(num(churn.expected_bytes)).toBeGreaterThan(truth.copy * 0.97);
      expect(num(churn.expected_bytes)).toBeLessThan(truth.copy * 1.03);
      expect(num(churn.bloat_percent)).toBeCloseTo(100 * (1 - truth.copy / truth.actual), -0.5);
      expect(num(churn.bloat_percent)).toBeGreaterThan(60);

      const index = rowOf(result, 'public.churn_t_pkey');
      expect(index).toMatchObject({ kind: 'index', table: 'public.churn_t', size_bytes: truth.index_actual });
      expect(Math.abs(num(index.expected_bytes) - truth.index_copy)).toBeLessThanOrEqual(2 * 8192);
      expect(num(index.bloat_percent)).toBeGreaterThan(30);

      for (const fresh of [
        'public.fresh_t',
        'public.churn_copy',
        'public.fresh_t_pkey',
        'public.churn_copy_id',
      ]) {
        expect(num(rowOf(result, fresh).bloat_percent)).toBeLessThan(3);
      }
      expect(rowOf(result, 'public.nostats_t')).toMatchObject({
        status: 'not estimated: no statistics (run ANALYZE)',
        bloat_bytes: null,
      });
      expect(result.notes?.join('\n')).toContain('estimate');
      expect(result.notes?.join('\n')).toMatch(
        /statistics are missing or incomplete for .*public\.nostats_t.*: run ANALYZE/,
      );
      // Most bloated first.
      expect(result.rows[0]?.relation).toBe('public.churn_t');
    });

    it('without SELECT on a table, says the bot role cannot read its statistics and which GRANT fixes it', async () => {
      const result = await h.run(bloat, 'bot', '--limit 100');
      expect(rowOf(result, 'public.fresh_t')).toMatchObject({ status: 'estimated' });
      expect(rowOf(result, 'public.churn_t')).toMatchObject({
        status: 'not estimated: no SELECT on the table',
        bloat_bytes: null,
      });
      expect(rowOf(result, 'public.churn_t_pkey').reason).toBe('no_privilege');
      expect(result.notes?.join('\n')).toContain(`GRANT SELECT ON public.churn_t TO "${botRole}"`);
    });
  });

  describe('sequences', () => {
    it('measures sequences against the column type they feed and their own max', async () => {
      const result = await h.run(sequences, 't');
      const pct = (last: number, max: number) => (100 * last) / max;

      const serial = rowOf(result, 'public.serial_t_id_seq', 'sequence');
      expect(serial).toMatchObject({
        columns: 'public.serial_t.id',
        column_type: 'integer',
        last_value: '2040109464',
      });
      expect(num(serial.column_percent)).toBeCloseTo(pct(2040109464, 2147483647), 2);
      expect(num(serial.sequence_percent)).toBeCloseTo(pct(2040109464, 2147483647), 2);
      expect(serial).toMatchObject({
        remaining: String(2147483647 - 2040109464),
        level: 'fail',
        cycle: false,
      });

      const ident = rowOf(result, 'public.ident_t_id_seq', 'sequence');
      expect(ident.column_type).toBe('smallint');
      expect(num(ident.column_percent)).toBeCloseTo(pct(30000, 32767), 2);

      // A bigint sequence feeding an integer column through its default: the column is the limit.
      const wide = rowOf(result, 'public.wide_seq', 'sequence');
      expect(wide).toMatchObject({ columns: 'public.narrow_t.id', column_type: 'integer', level: 'fail' });
      expect(num(wide.column_percent)).toBeCloseTo(pct(2000000000, 2147483647), 2);
      expect(num(wide.sequence_percent)).toBeLessThan(0.001);

      // RESTART WITH 32000: nothing handed out since, yet 31,999 values are behind it.
      const restarted = rowOf(result, 'public.restarted_seq', 'sequence');
      expect(num(restarted.sequence_percent)).toBeCloseTo(pct(31999, 32767), 2);
      expect(restarted.remaining).toBe(String(32767 - 31999));

      // 2^53 + 1 handed out: past what a JS number holds exactly; the digits stay exact.
      const big = rowOf(result, 'public.big_seq', 'sequence');
      expect(big).toMatchObject({
        last_value: '9007199254740993',
        remaining: (9223372036854775807n - 9007199254740993n).toString(),
        start_value: '1',
        increment: '1',
      });
      // One JSON type per column, whatever the sequence's type or size: text for the sequence values.
      for (const key of ['last_value', 'remaining', 'start_value', 'increment']) {
        const types = new Set(result.rows.map((r) => (r[key] === null ? 'null' : typeof r[key])));
        expect(
          [...types].filter((t) => t !== 'null'),
          key,
        ).toEqual(['string']);
      }
      expect(jsonRows(result.rows)).toEqual(result.rows);

      const unused = rowOf(result, 'public.private_seq', 'sequence');
      expect(unused).toMatchObject({ sequence_percent: 0, level: 'ok', columns: null });
      expect(result.rows[0]?.sequence).toBe('public.restarted_seq');
      expect(result.headline).toMatch(/^4 sequences over 90% used — most: public\.restarted_seq at 97\.7%$/);
    });

    it('lists sequences the bot role cannot read, with the GRANT that fixes it', async () => {
      const result = await h.run(sequences, 'bot');
      expect(rowOf(result, 'public.serial_t_id_seq', 'sequence')).toMatchObject({ level: 'fail' });
      expect(rowOf(result, 'public.private_seq', 'sequence')).toMatchObject({
        level: 'no privilege',
        last_value: null,
        sequence_percent: null,
      });
      const note = result.notes?.find((n) => n.includes('cannot read')) ?? '';
      expect(note).toContain('GRANT SELECT ON SEQUENCE "public"."big_seq", "public"."ident_t_id_seq"');
      expect(note).toContain(`TO "${botRole}"`);
      expect(note).not.toContain('serial_t_id_seq');
    });
  });

  describe('wraparound', () => {
    it('reports age(datfrozenxid) per database and the oldest tables, TOAST included', async () => {
      const db = bare.name;
      // Freeze everything, let transactions pass, then freeze all but old_t and toast_t's TOAST table.
      await admin('VACUUM (FREEZE)', [], db);
      await admin('DO $$ BEGIN FOR i IN 1..25 LOOP PERFORM txid_current(); COMMIT; END LOOP; END $$', [], db);
      const others = await admin<{ name: string }>(
        `SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'm') AND c.relname NOT IN ('old_t', 'toast_t')`,
        [],
        db,
      );
      await admin(`VACUUM (FREEZE) ${others.map((o) => o.name).join(', ')}`, [], db);
      await admin('VACUUM (FREEZE, PROCESS_TOAST false) toast_t', [], db);
      await admin('ALTER TABLE old_t SET (autovacuum_freeze_max_age = 100000)', [], db);

      const ages = () =>
        admin<{ datname: string; age: number; old_t: number; toast: number; toast_heap: number }>(
          `SELECT d.datname, age(d.datfrozenxid) AS age,
                  (SELECT age(relfrozenxid) FROM pg_class WHERE relname = 'old_t') AS old_t,
                  (SELECT age(t.relfrozenxid) FROM pg_class c JOIN pg_class t ON t.oid = c.reltoastrelid
                   WHERE c.relname = 'toast_t') AS toast,
                  (SELECT age(relfrozenxid) FROM pg_class WHERE relname = 'toast_t') AS toast_heap
           FROM pg_database d WHERE d.datname = current_database()`,
          [],
          db,
        );
      const [before] = await ages();
      // --system: the database's age is its oldest relation's, which may be a catalog.
      const result = await h.run(wraparound, 'bare', '--limit 5 --system');
      const [after] = await ages();
      if (!before || !after) throw new Error('no ages');

      const database = rowOf(result, db, 'name');
      expect(database.scope).toBe('database (this one)');
      expect(num(database.xid_age)).toBeGreaterThanOrEqual(before.age);
      expect(num(database.xid_age)).toBeLessThanOrEqual(after.age);
      expect(database.limit_percent).toBeCloseTo((100 * num(database.xid_age)) / 2 ** 31, 3);
      expect(database.level).toBe('ok');

      const tables = result.rows.filter((r) => r.scope === 'table');
      // Shared catalogs (pg_auth_members…) freeze only up to the whole server's horizon, which other test
      // files' open transactions hold back: they may rank above; the test's own tables lead the rest.
      expect(
        tables
          .filter((r) => !String(r.name).startsWith('pg_catalog.'))
          .slice(0, 2)
          .map((r) => r.name)
          .sort(),
      ).toEqual(['public.old_t', 'public.toast_t']);
      // The database is exactly as old as its oldest relation, read in the same transaction.
      expect(tables[0]?.xid_age).toBe(database.xid_age);
      const toast = rowOf(result, 'public.toast_t', 'name');
      expect(num(toast.toast_xid_age)).toBeGreaterThan(num(toast.heap_xid_age));
      expect(toast.xid_age).toBe(toast.toast_xid_age);
      expect(num(toast.xid_age)).toBeGreaterThanOrEqual(before.toast);
      expect(num(toast.xid_age)).toBeLessThanOrEqual(after.toast);
      expect(before.toast - before.toast_heap).toBeGreaterThanOrEqual(25);
      // A per-table autovacuum_freeze_max_age lowers the table's own yardstick.
      expect(rowOf(result, 'public.old_t', 'name')).toMatchObject({ freeze_max_age: 100000 });

      const allDatabases = await admin<{ datname: string }>('SELECT datname FROM pg_database');
      expect(result.rows.filter((r) => String(r.scope).startsWith('database')).length).toBe(
        allDatabases.length,
      );
      expect(result.data).toMatchObject({ level: 'ok', limit: 2 ** 31 });
      expect(result.headline).toMatch(/^wraparound: ok — oldest database /);
    });
  });

  describe('settings', () => {
    it('shows each setting exactly as current_setting() does for a new session, with its source', async () => {
      const names = SETTINGS.map((s) => s.name);
      const truth = await admin<{ name: string; value: string; source: string; bytes: number | null }>(
        `SELECT name, current_setting(name) AS value, source,
                CASE WHEN unit IN ('kB', '8kB', 'MB', 'B') THEN pg_size_bytes(current_setting(name))::float8 END AS bytes
         FROM pg_settings WHERE name = ANY ($1)`,
        [names],
      );
      const result = await h.run(settings, 't');
      expect(result.rows.map((r) => r.name)).toEqual(names);
      for (const t of truth) {
        const row = rowOf(result, t.name, 'name');
        expect({ name: t.name, value: row.value, source: row.source }).toEqual({
          name: t.name,
          value: t.value,
          source: t.source,
        });
        if (t.bytes !== null && t.bytes >= 0) expect(row.bytes).toBe(t.bytes);
      }
      // dbops runs with its own lock_timeout (1s): the database's 3s is what sessions get.
      expect(rowOf(result, 'lock_timeout', 'name')).toMatchObject({
        value: '3s',
        source: 'database',
        seconds: 3,
      });
      expect(rowOf(result, 'checkpoint_timeout', 'name')).toMatchObject({ seconds: 300 });
      const [pending] = await admin<{ names: string[] | null }>(
        'SELECT array_agg(name::text ORDER BY name) AS names FROM pg_settings WHERE pending_restart',
      );
      expect(result.data?.pendingRestart).toEqual(pending?.names ?? []);
    });

    it('says which change waits for a restart', async () => {
      const setting = 'max_pred_locks_per_transaction';
      const system = (sql: string) => adminQuery(sql, [], 'postgres', major);
      const pending = async (want: boolean) =>
        await waitFor(
          () =>
            admin<{ p: boolean }>('SELECT pending_restart AS p FROM pg_settings WHERE name = $1', [setting]),
          (rows) => rows[0]?.p === want,
        );
      const [current] = await admin<{ value: string }>(
        'SELECT setting AS value FROM pg_settings WHERE name = $1',
        [setting],
      );
      await system(`ALTER SYSTEM SET ${setting} = ${Number(current?.value) + 16}`);
      try {
        await system('SELECT pg_reload_conf()');
        await pending(true);
        const result = await h.run(settings, 't');
        expect(result.data?.pendingRestart).toContain(setting);
        expect(result.headline).toMatch(/\d+ settings? waits? for a restart$/);
        const waiting = result.notes?.find((n) => n.startsWith('changed in the configuration but waiting'));
        expect(waiting).toContain(setting);
      } finally {
        // Back to the running value first: only that clears the flag without a restart.
        await system(`ALTER SYSTEM SET ${setting} = ${Number(current?.value)}`);
        await system('SELECT pg_reload_conf()');
        await pending(false);
        await system(`ALTER SYSTEM RESET ${setting}`);
        await system('SELECT pg_reload_conf()');
      }
    });

    it('names pg_read_all_settings for a setting the bot role cannot see', async () => {
      const result = await h.run(settings, 'bot');
      expect(rowOf(result, 'shared_preload_libraries', 'name')).toMatchObject({
        value: null,
        visible: false,
      });
      expect(result.notes?.join('\n')).toMatch(
        /shared_preload_libraries(, primary_conninfo)? (is|are) hidden from the bot role/,
      );
      expect(result.notes?.join('\n')).toContain('pg_read_all_settings');
      expect(rowOf(result, 'work_mem', 'name').visible).toBe(true);
    });
  });

  describe('extensions', () => {
    it('shows installed versions against the default, and the useful ones not installed', async () => {
      const available = await admin<{ name: string; default_version: string }>(
        "SELECT name, default_version FROM pg_available_extensions WHERE name IN ('pg_stat_statements', 'pgstattuple', 'pg_buffercache')",
        [],
        old.name,
      );
      const defaults = Object.fromEntries(available.map((a) => [a.name, a.default_version]));
      const result = await h.run(extensions, 'old');
      expect(rowOf(result, 'pg_stat_statements', 'name')).toMatchObject({
        installed_version: OLD_STATEMENTS_VERSION[major],
        default_version: defaults.pg_stat_statements,
        update_available: true,
        schema: 'public',
      });
      expect(rowOf(result, 'plpgsql', 'name')).toMatchObject({
        update_available: false,
        status: 'up to date',
      });
      expect(rowOf(result, 'pgstattuple', 'name')).toMatchObject({
        installed: false,
        default_version: defaults.pgstattuple,
        status: 'available, not installed',
      });
      expect(result.notes?.join('\n')).toContain('ALTER EXTENSION pg_stat_statements UPDATE');
      expect(result.notes?.join('\n')).toContain('CREATE EXTENSION pg_buffercache');

      const current = await h.run(extensions, 't');
      expect(rowOf(current, 'pg_stat_statements', 'name')).toMatchObject({
        installed_version: defaults.pg_stat_statements,
        update_available: false,
      });
    });
  });

  describe('replication', () => {
    it('answers "no replicas" on a primary without WAL senders, and lists a slot with the WAL it retains', async () => {
      const slot = `maint_slot_${suffix}_${major}`;
      const none = await h.run(replication, 't');
      const others = await admin<{ n: number }>('SELECT count(*)::int AS n FROM pg_replication_slots');
      if ((others[0]?.n ?? 0) === 0) {
        expect(none.headline).toBe(
          'no replicas: this primary has no WAL senders in pg_stat_replication, and no replication slots',
        );
        expect(none.rows).toEqual([]);
      } else expect(none.headline).toMatch(/^no replicas: /);

      await admin('SELECT pg_create_physical_replication_slot($1, true)', [slot]);
      try {
        const result = await h.run(replication, 't');
        const [truth] = await admin<{ retained: number }>(
          'SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 AS retained FROM pg_replication_slots WHERE slot_name = $1',
          [slot],
        );
        expect(result.headline).toMatch(/^no replicas: .*replication slot/);
        const row = rowOf(result, slot, 'name');
        expect(row).toMatchObject({ kind: 'physical slot', active: false, state: 'reserved' });
        expect(num(row.retained_bytes)).toBeGreaterThanOrEqual(0);
        expect(num(row.retained_bytes)).toBeLessThanOrEqual(truth?.retained ?? -1);
        expect(result.notes?.join('\n')).toContain(`slot ${slot} is inactive`);
      } finally {
        await admin('SELECT pg_drop_replication_slot($1)', [slot]);
      }
    });

    it('runs the standby query on a primary: planned and executed, every standby function guarded', async () => {
      // No standby exists in the suite; the statement still has to parse, plan and run, returning NULLs here.
      const client = await openClient(main.url, 'maint-standby-sql');
      try {
        await client.query('BEGIN READ ONLY');
        const plan = await client.query(`EXPLAIN ${STANDBY_SQL}`);
        expect(plan.rows.length).toBeGreaterThan(0);
        const { rows } = await client.query<StandbyRow>(STANDBY_SQL);
        expect(rows).toHaveLength(1);
        expect(rows[0]).toMatchObject({
          in_recovery: false,
          receive_lsn: null,
          replay_lag_bytes: null,
          replay_lag_seconds: null,
          replay_paused: null,
          receiver_pid: null,
        });
        await client.query('ROLLBACK');
      } finally {
        await client.end();
      }
    });

    const receivewal = '/usr/lib/postgresql/15/bin/pg_receivewal';
    // pg_receivewal of the Debian client (15) refuses newer servers, so a real WAL sender exists only on 15.
    it.runIf(major === 15 && existsSync(receivewal))(
      'shows a streaming replica with byte lag, and hides its details from a role without pg_monitor',
      async () => {
        const dir = await mkdtemp(join(tmpdir(), 'dbops-receivewal-'));
        const app = `maint_receiver_${suffix}`;
        const url = new URL(main.url);
        url.pathname = '/';
        url.searchParams.set('application_name', app);
        const child = execa(receivewal, ['-d', url.toString(), '-D', dir, '-n', '-s', '1'], {
          reject: false,
          timeout: 20_000,
        });
        try {
          const streaming = await waitFor(
            () =>
              admin<{ pid: number; state: string }>(
                'SELECT pid, state FROM pg_stat_replication WHERE application_name = $1',
                [app],
              ),
            (rows) => rows[0]?.state === 'streaming',
          );
          const result = await h.run(replication, 't');
          const row = rowOf(result, app, 'name');
          expect(row).toMatchObject({
            kind: 'replica',
            state: 'streaming',
            pid: streaming[0]?.pid,
            client: '127.0.0.1',
          });
          expect(num(row.sent_lag_bytes)).toBeGreaterThanOrEqual(0);
          expect(result.headline).toMatch(/^primary with \d+ replicas?/);

          const hidden = await h.run(replication, 'bot');
          expect(rowOf(hidden, app, 'name')).toMatchObject({
            state: 'hidden (needs pg_monitor)',
            sent_lag_bytes: null,
          });
          expect(hidden.notes?.join('\n')).toContain('pg_monitor');
        } finally {
          child.kill();
          await child;
          await rm(dir, { recursive: true, force: true });
        }
      },
    );
  });

  describe('slow-queries', () => {
    it('shows a slow statement of this database with its calls and times, by total and by mean', async () => {
      const client = await openClient(main.url, 'maint-sleeper');
      try {
        for (let i = 0; i < 3; i += 1) await client.query('SELECT pg_sleep(0.1)');
      } finally {
        await client.end();
      }
      // The same statement in another database must not count here.
      await admin('SELECT pg_sleep(0.01)', [], old.name);

      const [truth] = await admin<{ calls: number; total: number; mean: number }>(
        `SELECT s.calls::int AS calls, s.total_exec_time / 1000 AS total, s.mean_exec_time / 1000 AS mean
         FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
         WHERE d.datname = current_database() AND s.query = 'SELECT pg_sleep($1)'
           AND s.userid = (SELECT oid FROM pg_roles WHERE rolname = current_user)`,
      );
      expect(truth?.calls).toBe(3);
      const byTotal = await h.run(slowQueries, 't', '--limit 100 --include-dbops');
      const sleeper = rowOf(byTotal, 'SELECT pg_sleep($1)', 'query');
      expect(sleeper).toMatchObject({ calls: 3, user: 'postgres', text_hidden: false });
      expect(sleeper.total_seconds).toBeCloseTo(truth?.total ?? -1, 6);
      expect(sleeper.mean_seconds).toBeCloseTo(truth?.mean ?? -1, 6);
      expect(num(sleeper.total_seconds)).toBeGreaterThanOrEqual(0.3);
      const totals = byTotal.rows.map((r) => num(r.total_seconds));
      expect(totals).toEqual([...totals].sort((a, b) => b - a));
      expect(byTotal.data).toMatchObject({
        totalColumn: 'total_exec_time',
        hiddenStatements: 0,
        extensionVersion: major === 17 ? '1.11' : '1.10',
      });
      expect(String(byTotal.data?.ioColumns)).toContain(
        major === 17 ? 'shared_blk_read_time' : 's.blk_read_time',
      );

      // By mean: exactly as many statements of this database are slower on average as the test counts.
      const [slower] = await admin<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
         WHERE d.datname = current_database() AND s.mean_exec_time / 1000 > $1`,
        [truth?.mean ?? 0],
      );
      const byMean = await h.run(slowQueries, 't', '--by mean --limit 100 --include-dbops');
      const means = byMean.rows.map((r) => num(r.mean_seconds));
      expect(means).toEqual([...means].sort((a, b) => b - a));
      expect(byMean.rows.findIndex((r) => r.query === 'SELECT pg_sleep($1)')).toBe(slower?.n ?? -1);
      const byCalls = await h.run(slowQueries, 't', '--by calls --limit 5 --include-dbops');
      const calls = byCalls.rows.map((r) => num(r.calls));
      expect(calls).toEqual([...calls].sort((a, b) => b - a));
    });

    it('reads the columns of an older extension version (total_time / blk_read_time)', async () => {
      await admin('SELECT pg_sleep(0.05)', [], old.name);
      const result = await h.run(slowQueries, 'old', '--limit 100 --include-dbops');
      expect(result.data).toMatchObject({
        extensionVersion: OLD_STATEMENTS_VERSION[major],
        totalColumn: major === 15 ? 'total_time' : 'total_exec_time',
        ioColumns: '(s.blk_read_time + s.blk_write_time)',
      });
      const sleeper = result.rows.filter((r) => r.query === 'SELECT pg_sleep($1)' && r.user === 'postgres');
      expect(sleeper.map((r) => r.calls)).toEqual([2]);
      expect(num(sleeper[0]?.total_seconds)).toBeGreaterThanOrEqual(0.06);
    });

    it("leaves out dbops' own statements unless asked, and says so", async () => {
      // The harness connects as postgres, like the statements the test ran: they count as dbops' own.
      const own = await h.run(slowQueries, 't', '--limit 100');
      expect(own.rows.filter((r) => r.user === 'postgres')).toEqual([]);
      expect(own.notes?.join('\n')).toContain("statements of dbops' own role (postgres) are left out");
      const all = await h.run(slowQueries, 't', '--limit 100 --include-dbops');
      expect(all.rows.some((r) => r.user === 'postgres')).toBe(true);
    });

    it('answers plainly when the extension is not installed in the database', async () => {
      const result = await h.run(slowQueries, 'bare');
      expect(result.headline).toBe(`pg_stat_statements is not installed in database ${bare.name}`);
      expect(result.rows).toEqual([]);
      expect(result.notes?.join('\n')).toContain('CREATE EXTENSION pg_stat_statements');
      // The suite's servers preload the library, so only CREATE EXTENSION is missing.
      expect(result.notes?.join('\n')).toContain('already in shared_preload_libraries');
      expect(result.data).toMatchObject({ installed: false, preloaded: true });
    });

    it("says pg_read_all_stats would show other users' statements to a plain role", async () => {
      const bot = await openClient(urlAs(main.url, botRole), 'maint-bot-sleeper');
      try {
        await bot.query('SELECT pg_sleep(0.02)');
      } finally {
        await bot.end();
      }
      const result = await h.run(slowQueries, 'bot', '--limit 100 --include-dbops');
      const sleepers = result.rows.filter((r) => r.calls === 3 && r.user === 'postgres');
      expect(sleepers.length).toBeGreaterThan(0);
      expect(sleepers.every((r) => r.query === '<insufficient privilege>' && r.text_hidden === true)).toBe(
        true,
      );
      expect(rowOf(result, 'SELECT pg_sleep($1)', 'query').user).toBe(botRole);
      expect(result.data?.hiddenStatements).toBeGreaterThan(0);
      expect(result.notes?.join('\n')).toContain(`GRANT pg_read_all_stats TO "${botRole}"`);
    });
  });
});
