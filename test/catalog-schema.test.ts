// `tables` and `describe` against real PostgreSQL 15 and 17: every answer held against pg_catalog and
// information_schema read in the test, hostile names (quotes, spaces, unicode, mixed case), 80 columns.
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import describeOp from '../commands/describe.js';
import { catalog } from '../commands/index.js';
import tables, { searchPattern } from '../commands/tables.js';
import { Catalog } from '../src/core/catalog.js';
import { UserError } from '../src/core/errors.js';
import { renderResult } from '../src/core/render.js';
import type { OperationResult } from '../src/core/types.js';
import { adminQuery, createDatabase, majors, openClient } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';

const LONG_DEFAULT = `'${'a long default value that will not fit on one line of chat '.repeat(3)}'::text`;
const LONG_NAME = `t_${'x'.repeat(61)}`; // 63 characters: the longest name PostgreSQL keeps

const SCHEMA = `
CREATE TABLE customers (
  id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text NOT NULL UNIQUE,
  name text COLLATE "C",
  note text DEFAULT ${LONG_DEFAULT},
  created timestamptz NOT NULL DEFAULT now(),
  doc text,
  name_upper text GENERATED ALWAYS AS (upper(name)) STORED
);
ALTER TABLE customers ALTER COLUMN doc SET STORAGE EXTERNAL;
ALTER TABLE customers ALTER COLUMN note SET COMPRESSION pglz;
CREATE TABLE base (a int);
CREATE TABLE derived (b int) INHERITS (base);
COMMENT ON TABLE customers IS 'people who pay';
COMMENT ON COLUMN customers.email IS 'the login';
CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  customer_id int NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
  total numeric(10, 2) CONSTRAINT orders_total_positive CHECK (total >= 0),
  during int4range,
  CONSTRAINT orders_no_overlap EXCLUDE USING gist (during WITH &&)
);
CREATE INDEX orders_customer ON orders (customer_id DESC) WHERE total > 0;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER orders_off AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION touch();
ALTER TABLE orders DISABLE TRIGGER orders_off;
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."My ""Quoted"" Table ü" (
  id int PRIMARY KEY, "Mixed Col" text, order_ref bigint REFERENCES orders (id)
);
CREATE TABLE "MixedCase" (x int);
CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100;
CREATE TABLE ${LONG_NAME} (x int);
CREATE TABLE measurements (id int, at date) PARTITION BY RANGE (at);
CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO customers (email, name, doc) SELECT 'c' || g || '@x.org', 'n' || g, repeat('d', 3000)
  FROM generate_series(1, 500) g;
INSERT INTO measurements SELECT g, date '2024-06-01' + g FROM generate_series(1, 400) g;
INSERT INTO orders (customer_id, total) SELECT 1 + g % 500, g FROM generate_series(1, 2000) g;
ANALYZE;
`;

function lines(result: OperationResult): string[] {
  return renderResult(result).split('\n');
}

/** One value of `data` (for `--json`), which must be there. */
function field<T>(result: OperationResult, key: string): T {
  const value = result.data?.[key];
  if (value === undefined) throw new Error(`no data.${key}`);
  return value as T;
}

/** The answer with wrapped lines joined again, to look for a whole value. */
function flat(result: OperationResult): string {
  return lines(result)
    .map((l) => l.trim())
    .join(' ');
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

describe('the catalog', () => {
  it('holds tables, describe, check-indexes and privileges as valid read operations', () => {
    const built = new Catalog([...catalog]);
    for (const name of ['tables', 'describe', 'check-indexes', 'privileges']) {
      const spec = built.get(name);
      expect(spec?.risk).toBe('read');
      expect(spec?.usage.startsWith(`${name} <target>`)).toBe(true);
    }
  });
});

describe('searchPattern', () => {
  it('matches anywhere without wildcards, and LIKE characters match themselves', () => {
    expect(searchPattern('user')).toBe('%user%');
    expect(searchPattern('user*')).toBe('user%');
    expect(searchPattern('a?c')).toBe('a_c');
    expect(searchPattern('50%_off')).toBe('%50\\%\\_off%');
  });
});

describe.each(majors())('PostgreSQL %i', (major) => {
  const suffix = randomBytes(4).toString('hex');
  const plainRole = `catschema_plain_${suffix}`;
  let db: string;
  let url: string;
  let harness: OpHarness;
  const sql = <T extends pg.QueryResultRow>(text: string, params: unknown[] = []) =>
    adminQuery<T>(text, params, db, major);

  beforeAll(async () => {
    ({ name: db, url } = await createDatabase('catschema', SCHEMA, major));
    // Vacuumed and analyzed now, so autovacuum does not add a table's free-space or visibility map
    // (8 KiB) between the truth read and the tool's read (seen once in a full run).
    await adminQuery('VACUUM ANALYZE', [], db, major);
    await adminQuery(`CREATE ROLE ${plainRole} LOGIN PASSWORD 'pw-${suffix}'`, [], 'postgres', major);
    const plain = new URL(url);
    plain.username = plainRole;
    plain.password = `pw-${suffix}`;
    harness = new OpHarness([
      testTarget('t', url),
      testTarget('paged', url, { limits: { row_cap: 3 } }),
      testTarget('plain', plain.toString()),
    ]);
  }, 60_000);

  afterAll(async () => {
    await harness?.close();
    await adminQuery(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`, [], 'postgres', major);
    await adminQuery(`DROP ROLE IF EXISTS ${plainRole}`, [], 'postgres', major);
  });

  it('tables lists every user table with owner, estimate and size, as the catalog has them', async () => {
    const truth = await sql<{ q: string; raw: string; owner: string; rows: string; bytes: string }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS q, n.nspname || '.' || c.relname AS raw, pg_get_userbyid(c.relowner) AS owner,
              c.reltuples::bigint AS rows,
              CASE WHEN c.relkind = 'p'
                   THEN (SELECT sum(pg_total_relation_size(t.relid)) FROM pg_partition_tree(c.oid) t WHERE t.isleaf)
                   ELSE pg_total_relation_size(c.oid) END AS bytes
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p', 'f') AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
       ORDER BY n.nspname, c.relname`,
    );
    const result = await harness.run(tables, 't');
    const got = (result.data?.tables ?? []) as {
      schema: string;
      name: string;
      owner: string;
      rows: number | null;
      totalBytes: number;
    }[];
    expect(got.map((t) => `${t.schema}.${t.name}`)).toEqual(truth.map((t) => t.raw));
    expect(got.map((t) => [t.owner, t.rows, t.totalBytes])).toEqual(
      truth.map((t) => [t.owner, Math.max(-1, Number(t.rows)) < 0 ? null : Number(t.rows), Number(t.bytes)]),
    );
    expect(result.headline).toBe(`${truth.length} tables outside the system schemas`);
    // A partitioned table weighs what its partitions weigh.
    expect(got.find((t) => t.name === 'measurements')?.totalBytes).toBeGreaterThan(0);
    const text = lines(result);
    for (const t of truth) expect(text.some((l) => l.includes(t.q))).toBe(true);
    for (const l of text) expect(l.length).toBeLessThanOrEqual(80);
    // The 63-character name is whole, on a line of its own.
    expect(text.some((l) => l.includes(`public.${LONG_NAME}`))).toBe(true);
    expect(text.join('\n')).not.toContain('…');
  });

  it('tables pages by the row cap, filters by schema and pattern, and leaves system schemas out', async () => {
    const [{ n } = { n: '0' }] = await sql<{ n: string }>(
      `SELECT count(*) AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p', 'f') AND s.nspname NOT LIKE 'pg\\_%' AND s.nspname <> 'information_schema'`,
    );
    const total = Number(n);
    const pages = Math.ceil(total / 3);
    const seen: string[] = [];
    for (let page = 1; page <= pages; page++) {
      const result = await harness.run(tables, 'paged', `--page ${page}`);
      const names = field<{ name: string }[]>(result, 'tables').map((t) => t.name);
      expect(names.length).toBe(page < pages ? 3 : total - 3 * (pages - 1));
      expect(result.truncated).toBe(page < pages);
      seen.push(...names);
    }
    expect(new Set(seen).size).toBe(total);
    expect((await harness.run(tables, 'paged', '--page 1')).notes).toContain(
      `page 1 of ${pages} (3 a page); --page 2 shows the next`,
    );

    const odd = await harness.run(tables, 't', "'Odd Schema'");
    expect(field<{ name: string }[]>(odd, 'tables').map((t) => t.name)).toEqual(['My "Quoted" Table ü']);
    expect(lines(odd).join('\n')).toContain('"Odd Schema"."My ""Quoted"" Table ü"');

    const search = await harness.run(tables, 't', '--search MEASURE*');
    expect(field<{ name: string }[]>(search, 'tables').map((t) => t.name)).toEqual([
      'measurements',
      'measurements_2024',
      'measurements_2025',
    ]);
    const catalog = await harness.run(tables, 't', 'pg_catalog --search pg_class');
    expect(field<{ name: string }[]>(catalog, 'tables').map((t) => t.name)).toEqual(['pg_class']);
    const unknown = await failure(harness.run(tables, 't', 'pubilc'));
    expect(unknown.message).toBe('no schema matching pubilc — did you mean `public`?');
  });

  it('describe lists the columns information_schema has, with types, nullability and defaults', async () => {
    const truth = await sql<{
      column_name: string;
      is_nullable: string;
      column_default: string | null;
      type: string;
    }>(
      `SELECT c.column_name, c.is_nullable, c.column_default,
              format_type(a.atttypid, a.atttypmod) AS type
       FROM information_schema.columns c
       JOIN pg_attribute a ON a.attrelid = 'customers'::regclass AND a.attname = c.column_name
       WHERE c.table_schema = 'public' AND c.table_name = 'customers' ORDER BY c.ordinal_position`,
    );
    const result = await harness.run(describeOp, 't', 'customers');
    const cols = result.data?.columns as {
      name: string;
      type: string;
      nullable: boolean;
      default: string | null;
      generated: string | null;
      identity: string | null;
      collation: string | null;
      storage: string | null;
      comment: string | null;
    }[];
    expect(cols.map((c) => [c.name, c.type, c.nullable ? 'YES' : 'NO'])).toEqual(
      truth.map((t) => [t.column_name, t.type, t.is_nullable]),
    );
    // information_schema shows the default expression; generated columns have none there.
    expect(cols.map((c) => c.default)).toEqual(
      truth.map((t) => (t.column_name === 'name_upper' ? null : t.column_default)),
    );
    const byName = new Map(cols.map((c) => [c.name, c]));
    expect(byName.get('id')?.identity).toBe('always');
    expect(byName.get('name')?.collation).toBe('"C"');
    expect(byName.get('doc')?.storage).toBe('external');
    expect(byName.get('email')?.collation).toBeNull();
    expect(byName.get('note')).toMatchObject({ compression: 'pglz', storage: null });
    expect(byName.get('doc')).toMatchObject({ compression: null });
    expect(byName.get('email')?.comment).toBe('the login');
    expect(byName.get('name_upper')?.generated).toBe('upper(name)');

    const text = lines(result);
    for (const l of text) expect(l.length).toBeLessThanOrEqual(80);
    // The long default wraps onto following lines, whole.
    const joined = text.map((l) => l.trim()).join(' ');
    expect(joined).toContain(LONG_DEFAULT);
    expect(text.join('\n')).not.toContain('…');
    expect(text).toContain('comment: people who pay');
    const [size] = await sql<{ total: string; rows: string }>(
      `SELECT pg_total_relation_size('customers') AS total, reltuples::bigint AS rows FROM pg_class WHERE oid = 'customers'::regclass`,
    );
    expect(result.data?.sizes).toMatchObject({ totalBytes: Number(size?.total) });
    expect(result.data?.rows).toBe(Number(size?.rows));
    expect(result.headline).toBe(`public.customers: ${truth.length} columns, 2 indexes`);
  });

  it('describe shows indexes, constraints, foreign keys both ways and triggers as pg_catalog has them', async () => {
    const result = await harness.run(describeOp, 't', 'orders');
    const indexes = await sql<{ indexname: string }>(
      `SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'orders' ORDER BY 1`,
    );
    expect(((result.data?.indexes ?? []) as { name: string }[]).map((i) => i.name).sort()).toEqual(
      indexes.map((i) => i.indexname),
    );
    const text = lines(result).join('\n');
    expect(text).toContain('  orders_pkey: PRIMARY KEY, btree (id)');
    expect(text).toContain('  orders_customer: btree (customer_id DESC) WHERE (total > (0)::numeric)');
    expect(text).toContain('  orders_no_overlap: EXCLUSION CONSTRAINT, gist (during)');
    expect(text).toContain('  orders_total_positive: CHECK (total >= 0::numeric)');
    expect(flat(result)).toContain(
      'orders_customer_id_fkey: FOREIGN KEY (customer_id) REFERENCES customers(id) ON DELETE CASCADE',
    );
    expect(text).toContain(
      'Referenced by\n  "Odd Schema"."My ""Quoted"" Table ü" "My ""Quoted"" Table ü_order_ref_fkey":',
    );
    expect(text).toMatch(/\[disabled\] orders_off AFTER INSERT ON (public\.)?orders FOR EACH ROW/);
    expect(text).toMatch(/\[enabled\] orders_touch BEFORE UPDATE ON (public\.)?orders FOR EACH ROW/);
    const triggers = await sql<{ tgname: string }>(
      `SELECT tgname FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal ORDER BY 1`,
    );
    expect(field<{ name: string }[]>(result, 'triggers').map((t) => t.name)).toEqual(
      triggers.map((t) => t.tgname),
    );
    const referencing = await sql<{ conname: string }>(
      `SELECT conname FROM pg_constraint WHERE contype = 'f' AND confrelid = 'orders'::regclass`,
    );
    expect(field<{ name: string }[]>(result, 'referencedBy').length).toBe(referencing.length);
    for (const l of lines(result)) expect(l.length).toBeLessThanOrEqual(80);
  });

  it('describe shows partitions and the partition a table belongs to', async () => {
    const parent = await harness.run(describeOp, 't', 'measurements');
    const text = flat(parent);
    expect(text).toContain('partition key: RANGE (at)');
    expect(text).toContain("public.measurements_2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')");
    expect(parent.headline).toBe('public.measurements: 2 columns, 0 indexes, 2 partitions');
    const child = await harness.run(describeOp, 't', 'measurements_2025');
    expect(flat(child)).toContain(
      "partition of public.measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
    );
  });

  it('describe shows a view with its columns and definition, and no size', async () => {
    const view = await harness.run(describeOp, 't', 'big_orders');
    expect(view.headline).toBe('public.big_orders: 2 columns, 0 indexes');
    const text = lines(view);
    expect(text[1]).toBe('public.big_orders: view, owner postgres');
    expect(text).toContain('Definition');
    expect(flat(view)).toMatch(/FROM orders WHERE \(?(orders\.)?total > 100::numeric\)?;/);
    expect(view.data?.sizes).toBeNull();
  });

  it('describe shows plain inheritance both ways', async () => {
    expect(flat(await harness.run(describeOp, 't', 'derived'))).toContain('inherits from public.base');
    const base = await harness.run(describeOp, 't', 'base');
    expect(flat(base)).toContain('child tables: 1 public.derived');
    expect(base.data?.children).toEqual([{ table: 'public.derived', bound: null }]);
  });

  it('describe finds quoted, spaced, unicode and mixed-case names, and suggests close ones', async () => {
    const quoted = await harness.run(describeOp, 't', `'"Odd Schema"."My ""Quoted"" Table ü"'`);
    expect(quoted.data?.relation).toBe('"Odd Schema"."My ""Quoted"" Table ü"');
    expect(field<{ name: string }[]>(quoted, 'columns').map((c) => c.name)).toEqual([
      'id',
      'Mixed Col',
      'order_ref',
    ]);
    // Typed without SQL quotes, exactly as stored: still found.
    const literal = await harness.run(describeOp, 't', `'Odd Schema.My "Quoted" Table ü'`);
    expect(literal.data?.relation).toBe('"Odd Schema"."My ""Quoted"" Table ü"');
    expect((await harness.run(describeOp, 't', 'MixedCase')).data?.relation).toBe('public."MixedCase"');
    const typo = await failure(harness.run(describeOp, 't', 'custmers'));
    expect(typo.message).toBe('no table matching custmers — did you mean `customers`?');
    const odd = await failure(harness.run(describeOp, 't', `'"unclosed'`));
    expect(odd.message).toMatch(/^no table matching "unclosed/);
    for (const name of ['other_db.public.orders', 'w.x.y.z', 'public.']) {
      const bad = await failure(harness.run(describeOp, 't', name));
      expect(bad.message).toMatch(/^no table matching /);
    }
    const index = await failure(harness.run(describeOp, 't', 'orders_pkey'));
    expect(index.message).toBe('"public"."orders_pkey" is an index, not a table');
    // A hostile name is data, never SQL.
    const hostile = await failure(harness.run(describeOp, 't', `'x); DROP TABLE orders; --'`));
    expect(hostile.message).toMatch(/^no table matching x\); DROP TABLE orders; --/);
    const [{ n } = { n: '0' }] = await sql<{ n: string }>(`SELECT count(*) AS n FROM orders`);
    expect(Number(n)).toBe(2000);
  });

  it('a table locked by a migration is described and listed without waiting, its size marked', async () => {
    const holder = await openClient(url, 'migration');
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
      const started = Date.now();
      const described = await harness.run(describeOp, 't', 'orders');
      expect(described.data?.sizes).toBeNull();
      expect(lines(described)).toContain(
        '2,000 rows (est.); size not read: a DDL lock is held or awaited on it',
      );
      expect(field<unknown[]>(described, 'columns').length).toBe(4);
      const text = flat(described);
      expect(text).toMatch(/ id +bigint +not null, default \(not read: DDL lock\)/);
      expect(text).toContain('orders_pkey: PRIMARY KEY, btree, definition not read');
      expect(text).toContain('orders_total_positive: (not read: DDL lock)');
      expect(text).toContain('orders_customer_id_fkey: FOREIGN KEY (customer_id) REFERENCES customers(id)');
      expect(described.notes?.[0]).toMatch(/^a DDL lock is held or awaited on this table/);
      const listed = await harness.run(tables, 't', '--search orders');
      expect(
        field<{ name: string; lockedByDdl: boolean; totalBytes: number | null }[]>(listed, 'tables'),
      ).toEqual([expect.objectContaining({ name: 'orders', lockedByDdl: true, totalBytes: null })]);
      expect(lines(listed).some((l) => /^public\.orders\s.*\slocked$/.test(l))).toBe(true);
      // Far below the lock_timeout a size function would have waited for, times two reads.
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await holder.end();
    }
  });

  it('a role without rights on the table still gets the description (catalog reads only)', async () => {
    const result = await harness.run(describeOp, 'plain', 'orders');
    expect(field<unknown[]>(result, 'columns').length).toBe(4);
    const listed = await harness.run(tables, 'plain');
    expect(Number(listed.data?.matching)).toBeGreaterThan(5);
  });
});
