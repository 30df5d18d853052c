// What tables and columns a target has, read from its catalog once per connection pool, for pack variants.
import type pg from 'pg';
import type { TargetDb } from '../engine/types.js';
import type { PackRequires } from './schema.js';

/**
 * Every table, view, materialized view, foreign and partitioned table outside the system schemas, with
 * its columns and whether an unqualified name reaches it through the session's search_path
 * (pg_table_is_visible: the first relation of that name along the path). One query.
 */
export const CATALOG_SQL = `
SELECT n.nspname AS schema,
       c.relname AS name,
       pg_catalog.pg_table_is_visible(c.oid) AS visible,
       coalesce(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attnum IS NOT NULL),
                '{}'::text[]) AS columns
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_attribute a
         ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND n.nspname <> 'information_schema'
   AND n.nspname NOT LIKE 'pg\\_%'
 GROUP BY n.nspname, c.relname, c.oid`;

interface CatalogRow {
  schema: string;
  name: string;
  visible: boolean;
  columns: string[];
}

/** The target's relations as SQL sees them: unqualified names through the search_path, or `schema.table`. */
export class TargetSchema {
  readonly #visible = new Map<string, ReadonlySet<string>>();
  readonly #qualified = new Map<string, ReadonlySet<string>>();

  constructor(rows: readonly CatalogRow[]) {
    for (const row of rows) {
      const columns = new Set(row.columns);
      this.#qualified.set(`${row.schema}.${row.name}`, columns);
      if (row.visible) this.#visible.set(row.name, columns);
    }
  }

  /** The columns of a table (`name` through the search_path, `schema.name` in that schema), if it exists. */
  columnsOf(table: string): ReadonlySet<string> | undefined {
    return table.includes('.') ? this.#qualified.get(table) : this.#visible.get(table);
  }

  /** What is missing of the requirements, in their order: "table sessions", "column images.name". */
  missing(requires: PackRequires): string[] {
    const out: string[] = [];
    for (const [table, columns] of Object.entries(requires)) {
      const found = this.columnsOf(table);
      if (!found) out.push(`table ${table}`);
      else for (const column of columns) if (!found.has(column)) out.push(`column ${table}.${column}`);
    }
    return out;
  }
}

type Queryable = Pick<pg.ClientBase, 'query'>;

/** Reads the catalog through a connected client (check-config has its own). */
export async function readTargetSchema(db: Queryable): Promise<TargetSchema> {
  const { rows } = await db.query<CatalogRow>(CATALOG_SQL);
  return new TargetSchema(rows);
}

interface CacheEntry {
  /** The pool's generation the schema was read in; undefined while the read is under way. */
  generation: number | undefined;
  schema: Promise<TargetSchema>;
}

/** Per pool: a wrapper of a pool's handle (TargetDb.base) shares its entry. */
const cache = new WeakMap<TargetDb, CacheEntry>();

function load(db: TargetDb): Promise<TargetSchema> {
  const key = db.base ?? db;
  const entry: CacheEntry = { generation: undefined, schema: Promise.resolve(new TargetSchema([])) };
  entry.schema = db
    .read(async (session) => new TargetSchema(await session.query<CatalogRow>(CATALOG_SQL)))
    .then(
      (schema) => {
        // Read after the catalog query: the connection it opened is not a reason to read it again.
        entry.generation = db.generation?.() ?? 0;
        return schema;
      },
      (err: unknown) => {
        if (cache.get(key) === entry) cache.delete(key);
        throw err;
      },
    );
  cache.set(key, entry);
  return entry.schema;
}

/**
 * The target's schema, read once per connection pool and again whenever the pool reconnected (after
 * having no connection, or after losing one to an error). A failed read is not cached.
 */
export function targetSchemaOf(db: TargetDb): Promise<TargetSchema> {
  const entry = cache.get(db.base ?? db);
  if (entry && (entry.generation === undefined || entry.generation === (db.generation?.() ?? 0))) {
    return entry.schema;
  }
  return load(db);
}

/** Reads the target's schema now, whatever is cached (after a migration, or when asked to). */
export function refreshTargetSchema(db: TargetDb): Promise<TargetSchema> {
  return load(db);
}

/**
 * Forgets what was read of the target's schema, so the next operation reads it again: after PostgreSQL
 * said a table or column does not exist (a migration dropped it since the catalog was read).
 */
export function forgetTargetSchema(db: TargetDb): void {
  cache.delete(db.base ?? db);
}
