// `/db index-sizes <target> [--limit 20] [--table t]`: indexes by size, with their table, kind and scans.
import { z } from 'zod';
import { identifierArg, intArg } from '../src/core/args.js';
import { defineOperation } from '../src/core/operation.js';
import { formatBytes, formatCount } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';
import { resolveRelation } from '../src/engine/relations.js';
import type { Session } from '../src/engine/types.js';
import { DDL_LOCKED_CTE, ddlLocked, LOCKED_LISTED, skippedNote, userSchema } from './lib/relation-sizes.js';

const MAX_LIMIT = 1000;

/** pg_stat_all_indexes.last_idx_scan exists from PostgreSQL 16 on. */
const LAST_SCAN_SINCE = 160000;

/**
 * Indexes of user schemas (or of the tables in $2), largest first; an index whose table or itself is
 * locked by DDL is skipped and listed. Size = every fork (pg_total_relation_size of the index), so the
 * sizes of a table's indexes add up to its pg_indexes_size. $1 = how many.
 */
function indexSizesSql(lastScan: boolean): string {
  return `
WITH ${DDL_LOCKED_CTE},
indexes AS (
  SELECT i.indexrelid, i.indisunique, i.indisprimary, i.indisvalid,
         format('%I.%I', n.nspname, ci.relname) AS index,
         format('%I.%I', tn.nspname, ct.relname) AS "table",
         s.idx_scan,
         ${lastScan ? 's.last_idx_scan' : 'NULL::timestamptz'} AS last_scan,
         (${ddlLocked('i.indexrelid')} OR ${ddlLocked('i.indrelid')}) AS locked
  FROM pg_index i
  JOIN pg_class ci ON ci.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = ci.relnamespace
  JOIN pg_class ct ON ct.oid = i.indrelid
  JOIN pg_namespace tn ON tn.oid = ct.relnamespace
  LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = i.indexrelid
  WHERE ci.relkind = 'i'
    AND ${userSchema('tn')}
    AND ($2::oid[] IS NULL OR i.indrelid = ANY ($2::oid[]))
),
sized AS (
  SELECT x.*, pg_total_relation_size(x.indexrelid) AS bytes
  FROM indexes x
  WHERE NOT x.locked
)
(SELECT s.index, s."table", s.bytes, s.indisunique AS "unique", s.indisprimary AS "primary",
        s.indisvalid AS valid, s.idx_scan AS scans, s.last_scan,
        false AS locked, count(*) OVER () AS matching, sum(s.bytes) OVER () AS all_bytes
 FROM sized s
 ORDER BY s.bytes DESC, s.index
 LIMIT $1)
UNION ALL
(SELECT x.index, x."table", NULL, NULL, NULL, NULL, NULL, NULL, true, count(*) OVER (), NULL
 FROM indexes x
 WHERE x.locked
 ORDER BY x.index
 LIMIT ${LOCKED_LISTED})
`;
}

/** A table's display name and, for a partitioned table, every table of its tree (partitions hold the indexes). */
const TABLE_TREE_SQL = `
SELECT format('%I.%I', n.nspname, c.relname) AS name,
       ARRAY(SELECT t.relid::oid::int8 FROM pg_partition_tree(c.oid) t) AS tree
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = $1::oid
`;

interface IndexRow {
  index: string;
  table: string;
  bytes: number | null;
  unique: boolean | null;
  primary: boolean | null;
  valid: boolean | null;
  scans: number | null;
  last_scan: Date | null;
  locked: boolean;
  matching: number;
  all_bytes: number | null;
}

const COLUMNS: Column[] = [
  { key: 'index', label: 'index', kind: 'text' },
  { key: 'table', label: 'table', kind: 'text' },
  { key: 'bytes', label: 'size', kind: 'bytes' },
  { key: 'unique', label: 'unique', kind: 'bool' },
  { key: 'primary', label: 'primary', kind: 'bool' },
  { key: 'scans', label: 'scans', kind: 'count' },
];

const LAST_SCAN_COLUMN: Column = { key: 'last_scan', label: 'last scan', kind: 'timestamp' };

async function tableOids(session: Session, typed: string): Promise<{ name: string; oids: number[] }> {
  const table = await resolveRelation(session, typed, ['r', 'm', 'p'], '--table');
  const [row] = await session.query<{ name: string; tree: number[] }>(TABLE_TREE_SQL, [table.oid]);
  const tree = (row?.tree ?? []).map(Number);
  return { name: row?.name ?? `${table.schema}.${table.name}`, oids: tree.length > 0 ? tree : [table.oid] };
}

export default defineOperation({
  name: 'index-sizes',
  summary: 'Largest indexes, with their table, whether unique or primary, and how often they were scanned',
  usage: 'index-sizes <target> [--limit 20] [--table users]',
  description:
    'Lists indexes of user schemas (or of one table with --table; for a partitioned table, those of its ' +
    'partitions) by size on disk, every fork counted, with their table, unique / primary, and the scans ' +
    'counted since statistics were reset (PostgreSQL 16+ also shows when the last scan was). Invalid ' +
    'indexes are named. Relations locked by DDL are skipped and named instead of waited for.',
  args: z.object({
    limit: intArg({ min: 1, max: MAX_LIMIT, default: 20 }),
    table: identifierArg().optional(),
  }),
  risk: 'read',
  async run(ctx) {
    const shown = Math.min(ctx.args.limit, ctx.limits.row_cap);
    const lastScan = (await ctx.db.serverVersion()) >= LAST_SCAN_SINCE;
    return await ctx.db.read(async (session) => {
      const table = ctx.args.table === undefined ? null : await tableOids(session, ctx.args.table);
      const found = await session.query<IndexRow>(indexSizesSql(lastScan), [shown, table?.oids ?? null]);
      const sized = found.filter((r) => !r.locked);
      const locked = found.filter((r) => r.locked);
      const matching = sized[0]?.matching ?? 0;
      const lockedCount = locked[0]?.matching ?? 0;
      const of = table === null ? '' : ` on ${table.name}`;

      const rows: Row[] = sized.map((r) => ({
        index: r.index,
        table: r.table,
        bytes: r.bytes,
        unique: r.unique,
        primary: r.primary,
        scans: r.scans,
        ...(lastScan ? { last_scan: r.last_scan instanceof Date ? r.last_scan.toISOString() : null } : {}),
      }));

      const notes: string[] = [];
      if (matching > sized.length) {
        const more =
          ctx.args.limit < MAX_LIMIT && sized.length === ctx.args.limit
            ? `; --limit (up to ${MAX_LIMIT}) shows more`
            : '';
        notes.push(`${formatCount(matching)} indexes in all, largest first${more}`);
      }
      const invalid = sized.filter((r) => r.valid === false).map((r) => r.index);
      if (invalid.length > 0) {
        notes.push(
          `invalid (being built, or left by a failed CREATE INDEX CONCURRENTLY / REINDEX; never used by queries): ${invalid.join(', ')}`,
        );
      }
      if (lockedCount > 0) {
        notes.push(
          skippedNote(
            locked.map((r) => r.index),
            lockedCount,
            ['index', 'indexes'],
          ),
        );
      }

      return {
        headline:
          matching === 0
            ? `no indexes${of === '' ? ' in user schemas' : of}${lockedCount > 0 ? ' that are not locked by DDL' : ''}`
            : `${matching === 1 ? '1 index' : `${formatCount(matching)} indexes`}${of}: ${formatBytes(Number(sized[0]?.all_bytes ?? 0))} in all`,
        columns: lastScan ? [...COLUMNS, LAST_SCAN_COLUMN] : COLUMNS,
        rows,
        truncated: shown < ctx.args.limit && matching > shown,
        notes,
        data: {
          table: table?.name ?? null,
          indexes: matching,
          totalBytes: Number(sized[0]?.all_bytes ?? 0),
          skippedLocked: locked.map((r) => r.index),
        },
      };
    });
  },
});
