// `/db sizes <target>`: the database size, then its largest tables with heap / index / TOAST split.
import { z } from 'zod';
import { intArg } from '../src/core/args.js';
import { defineOperation } from '../src/core/operation.js';
import { formatBytes } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';

export const DATABASE_SIZE_SQL =
  'SELECT current_database() AS database, pg_database_size(current_database()) AS bytes';

/** Relations whose name is listed when they are skipped for a DDL lock. */
const LOCKED_LISTED = 20;

/*
 * Size functions take AccessShareLock on the table and its indexes, so they would queue behind DDL:
 * relations with an AccessExclusiveLock held or awaited (on the table, its TOAST table or an index)
 * are skipped and listed instead. lock_timeout still bounds a lock taken between the check and the call.
 * total = pg_table_size (heap + TOAST, all forks) + pg_indexes_size, so the split always adds up.
 */
export const RELATION_SIZES_SQL = `
WITH ddl_locked AS (
  SELECT l.relation
  FROM pg_locks l
  WHERE l.locktype = 'relation'
    AND l.mode = 'AccessExclusiveLock'
    AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
),
relations AS (
  SELECT c.oid, c.relkind, c.reltoastrelid, c.reltuples,
         format('%I.%I', n.nspname, c.relname) AS relation,
         (c.oid IN (SELECT relation FROM ddl_locked)
          OR c.reltoastrelid IN (SELECT relation FROM ddl_locked)
          OR EXISTS (SELECT 1 FROM pg_index i
                     WHERE i.indrelid = c.oid AND i.indexrelid IN (SELECT relation FROM ddl_locked))) AS locked
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'm')
    AND n.nspname NOT LIKE 'pg\\_%'
    AND n.nspname <> 'information_schema'
),
sized AS (
  SELECT r.relation, r.relkind, r.reltuples,
         pg_table_size(r.oid) AS table_size,
         pg_indexes_size(r.oid) AS index_bytes,
         CASE WHEN r.reltoastrelid = 0 THEN 0 ELSE pg_total_relation_size(r.reltoastrelid) END AS toast_bytes
  FROM relations r
  WHERE NOT r.locked
)
(SELECT s.relation,
        CASE s.relkind WHEN 'm' THEN 'materialized view' ELSE 'table' END AS kind,
        s.table_size + s.index_bytes AS total_bytes,
        s.table_size - s.toast_bytes AS table_bytes,
        s.index_bytes,
        s.toast_bytes,
        CASE WHEN s.reltuples < 0 THEN NULL ELSE s.reltuples::bigint END AS rows,
        false AS locked,
        count(*) OVER () AS matching
 FROM sized s
 ORDER BY total_bytes DESC, s.relation
 LIMIT $1)
UNION ALL
(SELECT r.relation, NULL, NULL, NULL, NULL, NULL, NULL, true, count(*) OVER ()
 FROM relations r
 WHERE r.locked
 ORDER BY r.relation
 LIMIT ${LOCKED_LISTED})
`;

interface RelationRow {
  relation: string;
  kind: string | null;
  total_bytes: number | null;
  table_bytes: number | null;
  index_bytes: number | null;
  toast_bytes: number | null;
  rows: number | null;
  locked: boolean;
  matching: number;
}

const COLUMNS: Column[] = [
  { key: 'relation', label: 'relation', kind: 'text' },
  { key: 'kind', label: 'kind', kind: 'text' },
  { key: 'total_bytes', label: 'total', kind: 'bytes' },
  { key: 'table_bytes', label: 'table', kind: 'bytes' },
  { key: 'index_bytes', label: 'indexes', kind: 'bytes' },
  { key: 'toast_bytes', label: 'toast', kind: 'bytes' },
  { key: 'rows', label: 'rows (est.)', kind: 'count' },
];

function skippedNote(names: readonly string[], count: number): string {
  const more = count > names.length ? ` and ${count - names.length} more` : '';
  const noun = count === 1 ? 'relation' : 'relations';
  return `skipped ${count} ${noun} locked by DDL: ${names.join(', ')}${more}`;
}

export default defineOperation({
  name: 'sizes',
  summary: 'Database size and the largest tables, with table / index / TOAST split',
  usage: 'sizes <target> [--limit 10]',
  description:
    'Shows pg_database_size of the target database, then its largest tables and materialized views ' +
    '(system schemas excluded) with total, heap, index and TOAST bytes and estimated rows. ' +
    'Relations locked by DDL are skipped and named, so the command never waits behind a migration.',
  args: z.object({ limit: intArg({ min: 1, max: 100, default: 10 }) }),
  risk: 'read',
  async run(ctx) {
    return await ctx.db.read(async (session) => {
      const [db] = await session.query<{ database: string; bytes: number }>(DATABASE_SIZE_SQL);
      if (!db) throw new Error('pg_database_size returned no row');
      const found = await session.query<RelationRow>(RELATION_SIZES_SQL, [ctx.args.limit]);
      const sized = found.filter((r) => !r.locked);
      const locked = found.filter((r) => r.locked);

      const rows: Row[] = sized.map((r) => ({
        relation: r.relation,
        kind: r.kind,
        total_bytes: r.total_bytes,
        table_bytes: r.table_bytes,
        index_bytes: r.index_bytes,
        toast_bytes: r.toast_bytes,
        rows: r.rows,
      }));

      const notes: string[] = [];
      const matching = sized[0]?.matching ?? 0;
      if (matching === 0) notes.push('no tables or materialized views outside the system schemas');
      else if (matching > sized.length) {
        notes.push(
          `showing the ${sized.length} largest of ${matching} tables and materialized views` +
            (ctx.args.limit < 100 ? '; --limit (up to 100) shows more' : ''),
        );
      }
      const lockedCount = locked[0]?.matching ?? 0;
      if (lockedCount > 0) {
        notes.push(
          skippedNote(
            locked.map((r) => r.relation),
            lockedCount,
          ),
        );
      }

      return {
        headline: `Database ${db.database}: ${formatBytes(db.bytes)}`,
        columns: COLUMNS,
        rows,
        truncated: false,
        notes,
        data: {
          database: db.database,
          databaseBytes: db.bytes,
          skippedLocked: locked.map((r) => r.relation),
        },
      };
    });
  },
});
