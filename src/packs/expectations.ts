// Checks a pack's `expects.tables` against a target's schema, for `dbops check-config`.
import pg from 'pg';
import type { LoadedPack } from './load.js';

/** What is needed of a pack: its name and its manifest's expectations. */
export type PackExpectations = Pick<LoadedPack, 'name'> & {
  manifest: Pick<LoadedPack['manifest'], 'expects'>;
};

/**
 * One row per expected (table, column) pair — column NULL for a table expected without columns — saying
 * whether the table and the column exist. An unqualified table is looked up along the session's
 * search_path (its existing schemas, in order, as PostgreSQL resolves names; `public` when none
 * exists); `schema.table` is looked up in that schema. Views and partitioned tables count as tables.
 */
const EXPECTATIONS_SQL = `
WITH wanted AS (
  SELECT w.ord, w.nsp, w.rel, w.col
    FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS w (nsp, rel, col, ord)
), path AS (
  SELECT p.nspname, p.pos
    FROM unnest(CASE WHEN cardinality(current_schemas(false)) > 0 THEN current_schemas(false)
                     ELSE ARRAY['public']::name[] END) WITH ORDINALITY AS p (nspname, pos)
), found AS (
  SELECT DISTINCT ON (w.ord) w.ord, c.oid
    FROM wanted w
    JOIN pg_class c ON c.relname = w.rel AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN path p ON p.nspname = n.nspname
   WHERE CASE WHEN w.nsp IS NULL THEN p.pos IS NOT NULL ELSE n.nspname = w.nsp END
   ORDER BY w.ord, p.pos
)
SELECT w.ord::int AS ord,
       f.oid IS NOT NULL AS table_found,
       w.col IS NULL OR EXISTS (
         SELECT 1 FROM pg_attribute a
          WHERE a.attrelid = f.oid AND a.attname = w.col AND a.attnum > 0 AND NOT a.attisdropped
       ) AS column_found
  FROM wanted w
  LEFT JOIN found f ON f.ord = w.ord
 ORDER BY w.ord`;

interface Wanted {
  table: string;
  column: string | null;
}

interface ExpectationRow {
  ord: number;
  table_found: boolean;
  column_found: boolean;
}

/** Anything that runs a query: a connected pg.Client, a PoolClient or a Pool. */
type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * The pack's unmet schema expectations on one database, in the order the pack lists them, e.g.
 * "pack kasm expects table session_tokens, not found" or
 * "pack kasm expects column expiration in table session_tokens, not found"; empty when all are met.
 * Takes a connected client (used as is) or a connection URL (a client is opened and closed). Throws when
 * the database cannot be reached or queried; the caller says so.
 */
export async function checkPackExpectations(
  db: Queryable | string,
  pack: PackExpectations,
): Promise<string[]> {
  const wanted = Object.entries(pack.manifest.expects.tables).flatMap(([table, columns]): Wanted[] =>
    columns.length > 0 ? columns.map((column) => ({ table, column })) : [{ table, column: null }],
  );
  if (wanted.length === 0) return [];
  const schemas = wanted.map((w) => (w.table.includes('.') ? w.table.slice(0, w.table.indexOf('.')) : null));
  const tables = wanted.map((w) =>
    w.table.includes('.') ? w.table.slice(w.table.indexOf('.') + 1) : w.table,
  );
  const params = [schemas, tables, wanted.map((w) => w.column)];

  let rows: ExpectationRow[];
  if (typeof db === 'string') {
    const client = new pg.Client({ connectionString: db, application_name: 'dbops check-config' });
    client.on('error', () => {});
    await client.connect();
    try {
      rows = (await client.query<ExpectationRow>(EXPECTATIONS_SQL, params)).rows;
    } finally {
      await client.end().catch(() => {});
    }
  } else {
    rows = (await db.query<ExpectationRow>(EXPECTATIONS_SQL, params)).rows;
  }

  const problems: string[] = [];
  const missingTables = new Set<string>();
  for (const row of rows) {
    const want = wanted[row.ord - 1];
    if (!want) continue;
    if (!row.table_found) {
      if (!missingTables.has(want.table))
        problems.push(`pack ${pack.name} expects table ${want.table}, not found`);
      missingTables.add(want.table);
    } else if (!row.column_found && want.column !== null) {
      problems.push(`pack ${pack.name} expects column ${want.column} in table ${want.table}, not found`);
    }
  }
  return problems;
}
