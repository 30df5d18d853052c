// vacuum, analyze, reindex and export against real PostgreSQL 15 and 17: dead tuples, bloat, rebuilt indexes, CSV.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import analyze from '../commands/analyze.js';
import exportOp, { EXPORT_BYTE_BUDGET } from '../commands/export.js';
import { maintenanceLimits } from '../commands/lib/maintenance.js';
import reindex from '../commands/reindex.js';
import vacuum from '../commands/vacuum.js';
import { Catalog } from '../src/core/catalog.js';
import { csvField } from '../src/core/csv.js';
import { UserError } from '../src/core/errors.js';
import type { AnyOperation } from '../src/core/operation.js';
import { formatBytes } from '../src/core/render.js';
import type { OperationResult, Row } from '../src/core/types.js';
import { adminQuery, createDatabase, majors, openClient } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';

const PASSWORD = 'pw-maintenance-3';
const NO_AUTOVACUUM = 'WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false)';

const SETUP = `
CREATE EXTENSION pgstattuple;
CREATE TABLE churn (id int PRIMARY KEY, v text) ${NO_AUTOVACUUM};
INSERT INTO churn SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;
CREATE TABLE bloated (id int PRIMARY KEY, v text) ${NO_AUTOVACUUM};
INSERT INTO bloated SELECT g, repeat('y', 200) FROM generate_series(1, 20000) g;
CREATE TABLE recreated (id int) ${NO_AUTOVACUUM};
CREATE TABLE stats_target (id int, v text) ${NO_AUTOVACUUM};
INSERT INTO stats_target SELECT g, md5(g::text) FROM generate_series(1, 5000) g;
CREATE TABLE foreign_owned (id int) ${NO_AUTOVACUUM};
INSERT INTO foreign_owned SELECT generate_series(1, 100);
CREATE TABLE bot_owned (id int) ${NO_AUTOVACUUM};
INSERT INTO bot_owned SELECT generate_series(1, 1000);
CREATE TABLE idx (id int PRIMARY KEY, email text, v int) ${NO_AUTOVACUUM};
INSERT INTO idx SELECT g, 'u' || g || '@example.com', g % 50 FROM generate_series(1, 5000) g;
CREATE INDEX idx_v ON idx (v);
CREATE UNIQUE INDEX idx_email ON idx (email);
CREATE TABLE dup (id int PRIMARY KEY, code int);
INSERT INTO dup VALUES (1, 7), (2, 7), (3, 8);
CREATE TABLE people (id int PRIMARY KEY, name text, note text, score numeric);
INSERT INTO people VALUES
  (1, 'Smith, John', 'said "hi"', 1.5),
  (2, E'multi\\nline', NULL, -42),
  (3, 'Zoë 日本 🎉', '', NULL),
  (4, '=HYPERLINK("http://evil.example")', '@SUM(A1)', 0),
  (5, '+1+1', E'-cmd\\r', 3),
  (6, 'plain', E'tab\\there', NULL);
CREATE TABLE many (id int PRIMARY KEY, v text);
-- Inserted backwards: an export without --order follows the primary key, not the physical order.
INSERT INTO many SELECT g, 'row ' || g FROM generate_series(30, 1, -1) g;
CREATE TABLE events (id int, v text) PARTITION BY RANGE (id);
CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (1000) ${NO_AUTOVACUUM};
CREATE TABLE events_2 PARTITION OF events FOR VALUES FROM (1000) TO (2000) ${NO_AUTOVACUUM};
INSERT INTO events SELECT g, 'e' FROM generate_series(0, 1999) g;
CREATE TABLE wide (id int PRIMARY KEY, blob text);
INSERT INTO wide SELECT g, repeat(chr(96 + g), 1000000) FROM generate_series(1, 6) g;
`;

function urlAs(url: string, user: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = PASSWORD;
  return u.toString();
}

async function rejection(promise: Promise<unknown>): Promise<UserError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof UserError) return err;
    throw err;
  }
  throw new Error('expected a UserError, got a result');
}

function row(result: OperationResult, key: string, value: string): Row {
  const found = result.rows.find((r) => r[key] === value);
  if (!found) throw new Error(`no row with ${key} = ${value} in ${JSON.stringify(result.rows)}`);
  return found;
}

/** An independent RFC 4180 reader, to check the CSV rather than trust the writer. */
function parseCsv(text: string): (string | null)[][] {
  const records: (string | null)[][] = [];
  let record: (string | null)[] = [];
  let i = 0;
  while (i < text.length) {
    let field: string | null;
    if (text[i] === '"') {
      let value = '';
      i += 1;
      for (;;) {
        const quote = text.indexOf('"', i);
        if (quote < 0) throw new Error('unterminated quoted field');
        value += text.slice(i, quote);
        if (text[quote + 1] === '"') {
          value += '"';
          i = quote + 2;
        } else {
          i = quote + 1;
          break;
        }
      }
      field = value;
    } else {
      let end = i;
      while (end < text.length && text[end] !== ',' && text[end] !== '\r') end += 1;
      field = end === i ? null : text.slice(i, end);
      i = end;
    }
    record.push(field);
    if (text[i] === ',') {
      i += 1;
    } else if (text.startsWith('\r\n', i)) {
      records.push(record);
      record = [];
      i += 2;
    } else if (i < text.length) {
      throw new Error(`unexpected character at ${i}`);
    }
  }
  return records;
}

describe.each(majors())('PostgreSQL %i', (major) => {
  const suffix = randomBytes(3).toString('hex');
  const bot = `maint_bot_${suffix}`;
  let dbName: string;
  let dbUrl: string;
  let harness: OpHarness;
  let botHarness: OpHarness;
  const sql = <T extends Record<string, unknown>>(text: string, params: unknown[] = []) =>
    adminQuery<T>(text, params, dbName, major);

  beforeAll(async () => {
    ({ name: dbName, url: dbUrl } = await createDatabase('maint_writes', SETUP, major));
    await adminQuery(`CREATE ROLE ${bot} LOGIN PASSWORD '${PASSWORD}'`, [], 'postgres', major);
    await sql(`ALTER TABLE bot_owned OWNER TO ${bot}`);
    await sql(`GRANT SELECT (id, name) ON people TO ${bot}`);
    harness = new OpHarness([testTarget('t', dbUrl)]);
    botHarness = new OpHarness([testTarget('t', urlAs(dbUrl, bot))]);
  });

  afterAll(async () => {
    await harness?.close();
    await botHarness?.close();
    await adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`, [], 'postgres', major);
    await adminQuery(`DROP ROLE IF EXISTS ${bot}`, [], 'postgres', major);
  });

  it('runs on the major it claims', async () => {
    const [server] = await sql<{ version: number }>(
      "SELECT current_setting('server_version_num')::int AS version",
    );
    expect(Math.floor((server?.version ?? 0) / 10000)).toBe(major);
  });

  it('is a valid catalog: vacuum may be destructive, so it has preview and execute', () => {
    expect(() => new Catalog([vacuum, analyze, reindex, exportOp] as AnyOperation[])).not.toThrow();
    expect(vacuum.riskFor?.(vacuum.args.parse({}))).toBe('write');
    expect(vacuum.riskFor?.(vacuum.args.parse({ analyze: true }))).toBe('write');
    expect(vacuum.riskFor?.(vacuum.args.parse({ full: true }))).toBe('destructive');
    expect(analyze.risk).toBe('write');
    expect(reindex.risk).toBe('destructive');
    expect(exportOp.risk).toBe('read');
  });

  it('gives maintenance statements an hour, and a short lock wait where a queued lock blocks everyone', () => {
    const target = { statement_timeout: 5, lock_timeout: 1 };
    expect(maintenanceLimits(target, 'patient')).toEqual({
      statementTimeoutMs: 3_600_000,
      lockTimeoutMs: 30_000,
    });
    expect(maintenanceLimits(target, 'short')).toEqual({
      statementTimeoutMs: 3_600_000,
      lockTimeoutMs: 1000,
    });
    expect(maintenanceLimits({ statement_timeout: 7200, lock_timeout: 60 }, 'patient')).toEqual({
      statementTimeoutMs: 7_200_000,
      lockTimeoutMs: 60_000,
    });
  });

  describe('vacuum', () => {
    it('removes the dead tuples of a table and reports them before and after', async () => {
      const deleter = await openClient(dbUrl);
      try {
        await deleter.query('DELETE FROM churn WHERE id > 5000');
        // Statistics reach shared memory when the session goes idle; force it instead of waiting a second.
        await deleter.query('SELECT pg_stat_force_next_flush()');
      } finally {
        await deleter.end();
      }
      const [exact] = await sql<{ dead: number }>(
        "SELECT dead_tuple_count::int AS dead FROM pgstattuple('churn')",
      );
      expect(exact?.dead).toBe(15000);

      const result = await harness.run(vacuum, 't', 'churn');

      const [after] = await sql<{ dead: number; stat_dead: number; size: string; vacuumed: boolean }>(
        `SELECT (SELECT dead_tuple_count::int FROM pgstattuple('churn')) AS dead,
                s.n_dead_tup::int AS stat_dead, pg_total_relation_size('churn')::text AS size,
                s.last_vacuum IS NOT NULL AS vacuumed
         FROM pg_stat_user_tables s WHERE s.relid = 'churn'::regclass`,
      );
      expect(after).toEqual({ dead: 0, stat_dead: 0, size: expect.any(String), vacuumed: true });
      const line = row(result, 'relation', 'public.churn');
      expect(line.dead_tuples_before).toBe(15000);
      expect(line.dead_tuples_after).toBe(0);
      expect(line.total_bytes_after).toBe(Number(after?.size));
      expect(line.outcome).toBe('vacuumed');
      expect(typeof line.seconds).toBe('number');
      expect(result.headline).toMatch(/^VACUUM of public\.churn done in .*dead tuples 15,000 → 0$/);
      expect(result.data).toMatchObject({ scope: 'table', deadTuplesBefore: 15000, deadTuplesAfter: 0 });
    });

    it('--full: destructive, previews the exclusive lock, then shrinks the bloated table', async () => {
      await sql('DELETE FROM bloated WHERE id > 2000');
      const [before] = await sql<{ oid: number; heap: string; total: string; filenode: string }>(
        `SELECT 'bloated'::regclass::oid::int AS oid, pg_relation_size('bloated')::text AS heap,
                pg_total_relation_size('bloated')::text AS total, pg_relation_filenode('bloated')::text AS filenode`,
      );

      const preview = await harness.preview(vacuum, 't', 'bloated --full');
      expect(preview.empty).toBeUndefined();
      expect(preview.state).toEqual({ oid: before?.oid, relation: '"public"."bloated"' });
      expect(preview.result.headline).toMatch(/VACUUM FULL would rewrite public\.bloated .*ACCESS EXCLUSIVE/);
      expect(preview.result.notes?.join('\n')).toMatch(
        /every read and every write on it blocks for the whole duration/,
      );
      expect(row(preview.result, 'relation', 'public.bloated').total_bytes).toBe(Number(before?.total));

      const result = await harness.execute(vacuum, 't', 'bloated --full', preview.state);
      const [after] = await sql<{ heap: string; total: string; filenode: string; rows: number }>(
        `SELECT pg_relation_size('bloated')::text AS heap, pg_total_relation_size('bloated')::text AS total,
                pg_relation_filenode('bloated')::text AS filenode, (SELECT count(*)::int FROM bloated) AS rows`,
      );
      expect(after?.rows).toBe(2000);
      expect(after?.filenode).not.toBe(before?.filenode);
      expect(Number(after?.heap)).toBeLessThan(Number(before?.heap) / 5);
      const line = row(result, 'relation', 'public.bloated');
      expect(line).toMatchObject({
        total_bytes_before: Number(before?.total),
        total_bytes_after: Number(after?.total),
        outcome: 'rewritten',
      });
      expect(result.headline).toMatch(/^VACUUM FULL of public\.bloated done/);
    });

    it('--full needs a table, and refuses a table re-created since the preview', async () => {
      const err = await rejection(harness.preview(vacuum, 't', '--full'));
      expect(err.code).toBe('invalid_argument');
      expect(err.message).toMatch(/needs a table/);

      const preview = await harness.preview(vacuum, 't', 'recreated --full');
      await sql(`DROP TABLE recreated; CREATE TABLE recreated (id int)`);
      const stale = await rejection(harness.execute(vacuum, 't', 'recreated --full', preview.state));
      expect(stale.code).toBe('invalid_argument');
      expect(stale.message).toMatch(/not the table that was previewed.*nothing was done/);
    });

    it('refuses a table the bot role may not vacuum instead of letting PostgreSQL skip it', async () => {
      const err = await rejection(botHarness.run(vacuum, 't', 'foreign_owned'));
      expect(err.code).toBe('permission');
      expect(err.message).toContain('public.foreign_owned');
      if (major >= 17) {
        expect(err.message).toContain(`GRANT MAINTAIN ON TABLE public.foreign_owned TO ${bot}`);
        await sql(`GRANT MAINTAIN ON foreign_owned TO ${bot}`);
        try {
          const result = await botHarness.run(vacuum, 't', 'foreign_owned');
          expect(row(result, 'relation', 'public.foreign_owned').outcome).toBe('vacuumed');
          const [stat] = await sql<{ vacuumed: boolean }>(
            "SELECT last_vacuum IS NOT NULL AS vacuumed FROM pg_stat_user_tables WHERE relid = 'foreign_owned'::regclass",
          );
          expect(stat?.vacuumed).toBe(true);
        } finally {
          await sql(`REVOKE MAINTAIN ON foreign_owned FROM ${bot}`);
        }
      } else {
        expect(err.message).toMatch(
          /only its owner \(postgres\).*belongs to a superuser.*17 adds GRANT MAINTAIN/,
        );
      }
    });

    it('whole database as a non-owner: vacuums what it may and names every table it skipped', async () => {
      const result = await botHarness.run(vacuum, 't', '');
      expect(result.rows.map((r) => r.relation)).toEqual(['public.bot_owned']);
      const expected = await sql<{ relation: string }>(
        `SELECT format('%I.%I', n.nspname, c.relname) AS relation
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'm') AND c.relowner <> $1::regrole
         ORDER BY 1`,
        [bot],
      );
      const skipped = ((result.data?.skipped ?? []) as string[])
        .filter((r) => r.startsWith('public.'))
        .sort();
      expect(skipped).toEqual(expected.map((e) => e.relation));
      const note = result.notes?.find((n) => n.startsWith('skipped')) ?? '';
      expect(note).toMatch(/may not vacuum \(PostgreSQL would only have warned\)/);
      expect(note).toContain('public.foreign_owned');
      const [stat] = await sql<{ vacuumed: boolean }>(
        "SELECT last_vacuum IS NOT NULL AS vacuumed FROM pg_stat_user_tables WHERE relid = 'bot_owned'::regclass",
      );
      expect(stat?.vacuumed).toBe(true);
    });
  });

  describe('analyze', () => {
    it('sets last_analyze and reports the new row estimate', async () => {
      const [before] = await sql<{ analyzed: boolean }>(
        "SELECT last_analyze IS NOT NULL AS analyzed FROM pg_stat_user_tables WHERE relid = 'stats_target'::regclass",
      );
      expect(before?.analyzed).toBe(false);
      const result = await harness.run(analyze, 't', 'stats_target');
      const [after] = await sql<{ last: string; reltuples: number }>(
        `SELECT to_char(s.last_analyze AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS last,
                c.reltuples::int AS reltuples
         FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid WHERE s.relid = 'stats_target'::regclass`,
      );
      expect(after?.reltuples).toBe(5000);
      const line = row(result, 'relation', 'public.stats_target');
      expect(line).toMatchObject({
        rows_estimate: 5000,
        last_analyze: after?.last,
        last_analyze_before: null,
      });
      expect(result.headline).toMatch(/^ANALYZE of public\.stats_target done in .*: ~5,000 rows$/);
    });

    it('whole database: a partitioned table once through its parent, partitions included', async () => {
      const result = await harness.run(analyze, 't', '');
      expect(row(result, 'relation', 'public.events').outcome).toBe('analyzed (with 2 partitions)');
      expect(result.rows.some((r) => String(r.relation).startsWith('public.events_'))).toBe(false);
      expect(row(result, 'relation', 'public.churn').outcome).toBe('analyzed');
      const stats = await sql<{ relname: string; analyzed: boolean }>(
        `SELECT relname, last_analyze IS NOT NULL AS analyzed FROM pg_stat_user_tables
         WHERE relname IN ('events', 'events_1', 'events_2', 'wide') ORDER BY relname`,
      );
      expect(stats).toEqual([
        { relname: 'events', analyzed: true },
        { relname: 'events_1', analyzed: true },
        { relname: 'events_2', analyzed: true },
        { relname: 'wide', analyzed: true },
      ]);
      expect(result.data?.skipped).toEqual([]);
    });

    it('refuses a table the bot role may not analyze; MAINTAIN fixes it on 17', async () => {
      const err = await rejection(botHarness.run(analyze, 't', 'foreign_owned'));
      expect(err.code).toBe('permission');
      expect(err.message).toMatch(/may not analyze public\.foreign_owned/);
      if (major < 17) return;
      await sql(`GRANT MAINTAIN ON foreign_owned TO ${bot}`);
      try {
        const result = await botHarness.run(analyze, 't', 'foreign_owned');
        expect(row(result, 'relation', 'public.foreign_owned').rows_estimate).toBe(100);
      } finally {
        await sql(`REVOKE MAINTAIN ON foreign_owned FROM ${bot}`);
      }
    });
  });

  describe('reindex', () => {
    const filenodes = async (table: string) =>
      Object.fromEntries(
        (
          await sql<{ index: string; filenode: string }>(
            `SELECT format('%I.%I', n.nspname, c.relname) AS index, pg_relation_filenode(c.oid)::text AS filenode
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE i.indrelid IN ($1::regclass, (SELECT t.reltoastrelid FROM pg_class t WHERE t.oid = $1::regclass))`,
            [table],
          )
        ).map((r) => [r.index, r.filenode]),
      );

    for (const concurrently of [false, true]) {
      it(`rebuilds every index of the table${concurrently ? ' concurrently' : ''}`, async () => {
        const flag = concurrently ? ' --concurrently' : '';
        const before = await filenodes('idx');
        const preview = await harness.preview(reindex, 't', `idx${flag}`);
        expect(preview.result.rows.map((r) => r.index).sort()).toEqual(Object.keys(before).sort());
        expect(row(preview.result, 'index', 'public.idx_email')).toMatchObject({
          valid: true,
          unique: true,
          primary: false,
          action: 'rebuild',
        });
        expect(row(preview.result, 'index', 'public.idx_pkey').primary).toBe(true);
        const notes = preview.result.notes?.join('\n') ?? '';
        if (concurrently) {
          expect(notes).toMatch(/cannot run inside a transaction block/);
          expect(notes).toMatch(/INVALID index named like <name>_ccnew/);
        } else {
          expect(notes).toMatch(/locks out writes to public\.idx \(SHARE lock\).*reads included/);
        }

        const result = await harness.execute(reindex, 't', `idx${flag}`, preview.state);
        const after = await filenodes('idx');
        expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
        for (const [index, filenode] of Object.entries(after)) {
          expect(filenode, index).not.toBe(before[index]);
          expect(row(result, 'index', index)).toMatchObject({
            rebuilt: true,
            valid: true,
            outcome: 'rebuilt',
          });
        }
        // Four: the primary key, idx_v, idx_email and the TOAST table's index.
        const n = Object.keys(before).length;
        expect(n).toBe(4);
        expect(result.headline).toMatch(
          new RegExp(
            `^REINDEX TABLE ${concurrently ? 'CONCURRENTLY ' : ''}"public"\\."idx": rebuilt ${n} of ${n} indexes`,
          ),
        );
      });
    }

    it('rebuilds one index by name and leaves the others alone', async () => {
      const before = await filenodes('idx');
      const preview = await harness.preview(reindex, 't', 'idx_v');
      expect(preview.result.rows.map((r) => r.index)).toEqual(['public.idx_v']);
      expect(preview.result.headline).toBe(
        `REINDEX INDEX "public"."idx_v" would rebuild 1 index (${formatBytes(Number(preview.result.rows[0]?.bytes))})`,
      );
      const result = await harness.execute(reindex, 't', 'idx_v', preview.state);
      const after = await filenodes('idx');
      for (const [index, filenode] of Object.entries(after)) {
        if (index === 'public.idx_v') expect(filenode).not.toBe(before[index]);
        else expect(filenode, index).toBe(before[index]);
      }
      expect(result.rows).toEqual([
        expect.objectContaining({ index: 'public.idx_v', rebuilt: true, valid: true, outcome: 'rebuilt' }),
      ]);
    });

    it('detects an invalid index and gives the exact DROP command that removes it', async () => {
      await expect(sql('CREATE UNIQUE INDEX CONCURRENTLY dup_code_uniq ON dup (code)')).rejects.toThrow(
        /could not create unique index/,
      );
      const preview = await harness.preview(reindex, 't', 'dup --concurrently');
      expect(row(preview.result, 'index', 'public.dup_code_uniq')).toMatchObject({
        valid: false,
        action: 'skipped: CONCURRENTLY does not rebuild invalid indexes',
      });
      expect(preview.result.notes?.join('\n')).toContain('`DROP INDEX CONCURRENTLY public.dup_code_uniq;`');

      const result = await harness.execute(reindex, 't', 'dup --concurrently', preview.state);
      expect(row(result, 'index', 'public.dup_pkey').rebuilt).toBe(true);
      expect(result.data?.invalidIndexes).toEqual([
        { index: 'public.dup_code_uniq', drop: 'DROP INDEX CONCURRENTLY public.dup_code_uniq;' },
      ]);
      expect(result.headline).toMatch(/1 index on the table is INVALID/);

      // Rebuilding the invalid unique index itself fails on the duplicates and leaves a _ccnew copy behind.
      const again = await harness.preview(reindex, 't', 'dup_code_uniq --concurrently');
      const err = await rejection(harness.execute(reindex, 't', 'dup_code_uniq --concurrently', again.state));
      expect(err.message).toMatch(/REINDEX INDEX CONCURRENTLY "public"\."dup_code_uniq" failed/);
      expect(err.message).toContain('`DROP INDEX CONCURRENTLY public.dup_code_uniq_ccnew;`');
      const invalid = await sql<{ index: string }>(
        `SELECT format('%I.%I', n.nspname, c.relname) AS index
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE i.indrelid = 'dup'::regclass AND NOT i.indisvalid ORDER BY 1`,
      );
      expect(invalid.map((i) => i.index)).toEqual(['public.dup_code_uniq', 'public.dup_code_uniq_ccnew']);
      const drops = ((err.detail?.invalidIndexes ?? []) as { drop: string }[]).map((i) => i.drop);
      for (const drop of drops) await sql(drop);
      const [left] = await sql<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_index WHERE indrelid = 'dup'::regclass AND NOT indisvalid",
      );
      expect(left?.n).toBe(0);
    });

    it('refuses --concurrently on a system catalog', async () => {
      const err = await rejection(harness.preview(reindex, 't', 'pg_catalog.pg_class --concurrently'));
      expect(err.code).toBe('invalid_argument');
      expect(err.message).toMatch(/system catalog.*cannot reindex system catalogs concurrently/);
    });
  });

  describe('export', () => {
    it('writes RFC 4180 CSV: quotes, newlines, NULL, unicode, and formula-looking values defused', async () => {
      const result = await harness.run(exportOp, 't', 'people');
      const attachment = result.attachments?.[0];
      expect(attachment?.contentType).toBe('text/csv');
      expect(attachment?.filename).toMatch(/^people-\d{4}-\d\d-\d\d\.csv$/);
      expect(attachment?.content).toBe(
        'id,name,note,score\r\n' +
          '1,"Smith, John","said ""hi""",1.5\r\n' +
          '2,"multi\nline",,-42\r\n' +
          '3,Zoë 日本 🎉,"",\r\n' +
          `4,"'=HYPERLINK(""http://evil.example"")",'@SUM(A1),0\r\n` +
          `5,'+1+1,"'-cmd\r",3\r\n` +
          '6,plain,tab\there,\r\n',
      );
      // Read back independently: every value equals the database's text, with the formula guard as the only change.
      const truth = await sql<{ id: string; name: string; note: string | null; score: string | null }>(
        'SELECT id::text, name, note, score::text FROM people ORDER BY id',
      );
      const parsed = parseCsv(attachment?.content ?? '');
      const guard = (v: string | null) => (v !== null && /^[=+@\t\r]|^-\D/.test(v) ? `'${v}` : v);
      expect(parsed.slice(1)).toEqual(
        truth.map((t) => [t.id, guard(t.name), t.note === '' ? '' : guard(t.note), t.score]),
      );
      expect(result.headline).toBe('exported 6 rows of public.people');
      expect(result.truncated).toBe(false);
      expect(result.rows[0]).toEqual({ c0: '1', c1: 'Smith, John', c2: 'said "hi"', c3: '1.5' });
      expect(csvField('-42')).toBe('-42');
    });

    it('--where binds its values: commas inside values work, an injection attempt matches nothing', async () => {
      const one = await harness.run(exportOp, 't', 'people --where "name=Smith, John"');
      expect(one.rows.map((r) => r.c0)).toEqual(['1']);
      const two = await harness.run(exportOp, 't', 'people --where "id=2,score=-42" --columns id,name');
      expect(two.attachments?.[0]?.content).toBe('id,name\r\n2,"multi\nline"\r\n');
      for (const attack of ["x' OR '1'='1", "x'; DROP TABLE people; --", '1 OR 1=1']) {
        const result = await harness.run(exportOp, 't', `people --where "name=${attack}"`);
        expect(result.headline).toBe('exported 0 rows of public.people');
        expect(result.attachments?.[0]?.content).toBe('id,name,note,score\r\n');
      }
      const [count] = await sql<{ n: number }>('SELECT count(*)::int AS n FROM people');
      expect(count?.n).toBe(6);
    });

    it('--columns checks names against the table with did-you-mean', async () => {
      const err = await rejection(harness.run(exportOp, 't', 'people --columns id,nmae'));
      expect(err.code).toBe('invalid_argument');
      expect(err.message).toMatch(/public\.people has no column "nmae" — did you mean `name`/);
      const where = await rejection(harness.run(exportOp, 't', 'people --where "scroe=1"'));
      expect(where.message).toMatch(/did you mean `score`/);
    });

    it('leaves out and names the columns the bot role may not read', async () => {
      const result = await botHarness.run(exportOp, 't', 'people --order -id --limit 2');
      expect(result.attachments?.[0]?.content).toBe("id,name\r\n6,plain\r\n5,'+1+1\r\n");
      expect(result.notes?.join('\n')).toMatch(
        /left out columns note, score: the bot role has no SELECT privilege/,
      );
      const err = await rejection(botHarness.run(exportOp, 't', 'people --columns id,score'));
      expect(err.code).toBe('permission');
      expect(err.message).toContain(`GRANT SELECT ("score") ON public.people TO "${bot}"`);
    });

    it('states truncation at --limit and at the size budget', async () => {
      const limited = await harness.run(exportOp, 't', 'many --limit 10');
      expect(limited.headline).toBe('exported 10 rows of public.many (truncated at --limit)');
      expect(limited.truncated).toBe(true);
      const lines = (limited.attachments?.[0]?.content ?? '').split('\r\n').filter((l) => l !== '');
      expect(lines).toEqual(['id,v', ...Array.from({ length: 10 }, (_, i) => `${i + 1},row ${i + 1}`)]);

      const all = await harness.run(exportOp, 't', 'many --limit 30');
      expect(all.headline).toBe('exported 30 rows of public.many');
      expect(all.truncated).toBe(false);

      // Six rows of ~1 MB: five fit in the 5 MB budget, the sixth is not even sent.
      const big = await harness.run(exportOp, 't', 'wide');
      expect(big.headline).toBe('exported 5 rows of public.wide (truncated at the 5.0 MB size limit)');
      expect(big.truncated).toBe(true);
      const content = big.attachments?.[0]?.content ?? '';
      expect(Buffer.byteLength(content)).toBeLessThanOrEqual(EXPORT_BYTE_BUDGET);
      expect(parseCsv(content).map((r) => r[0])).toEqual(['id', '1', '2', '3', '4', '5']);
    });
  });
});
