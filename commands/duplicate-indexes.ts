// `/db duplicate-indexes <target>`: indexes another index of the same table makes redundant, and which to keep.
import { z } from 'zod';
import { defineOperation } from '../src/core/operation.js';
import { formatBytes, formatCount } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';
import { DDL_LOCKED_CTE, ddlLocked, LOCKED_LISTED, skippedNote, userSchema } from './lib/relation-sizes.js';

/** pg_index.indnullsnotdistinct (UNIQUE NULLS NOT DISTINCT) exists from PostgreSQL 15 on. */
const NULLS_NOT_DISTINCT_SINCE = 150000;

/*
 * Index b makes index a redundant (a pair below) when both are on the same table with the same access
 * method, the same expressions and the same predicate (compared deparsed, so spelling does not matter), b
 * is valid, a is neither primary nor an exclusion index, and either
 *   - exact: the same columns (INCLUDE too), operator classes, collations and ASC/DESC/NULLS options, and
 *     b enforces whatever uniqueness a enforces (NULLS NOT DISTINCT counts as stricter); or
 *   - prefix (b-tree only, no expressions): a is not unique, has no INCLUDE columns, and its key columns,
 *     operator classes, collations and options are the leading ones of b's keys.
 * A b-tree is scanned both ways, so only the relative order of its columns matters: (x DESC) serves every
 * query (x) does, and (x DESC, y) every one of (x, y DESC). For b-trees, options also match when every
 * column's DESC and NULLS FIRST bits (indoption 1 and 2) are both flipped: the exact reverse order.
 * Exact duplicates cover each other: of those, the better ranked is kept — primary key, then an index
 * backing a constraint, the replica identity, unique, NULLS NOT DISTINCT, valid, most scanned, oldest.
 * Each redundant index names one index to keep: one that is not redundant itself, an exact twin before a
 * longer index.
 * pg_get_expr and pg_get_indexdef lock the table: a table locked by DDL is left out and named (skipped
 * rows come first); an index locked by DDL (REINDEX) is compared but its size is not measured.
 */
function duplicateIndexesSql(nullsNotDistinct: boolean): string {
  return `
WITH ${DDL_LOCKED_CTE},
skipped_tables AS (
  SELECT DISTINCT format('%I.%I', tn.nspname, ct.relname) AS "table"
  FROM pg_index i
  JOIN pg_class ct ON ct.oid = i.indrelid
  JOIN pg_namespace tn ON tn.oid = ct.relnamespace
  WHERE ${userSchema('tn')} AND ${ddlLocked('i.indrelid')}
),
idx AS (
  SELECT i.indexrelid, i.indrelid, ci.relam, i.indnkeyatts AS nkeys, i.indnatts AS natts,
         i.indisunique, i.indisprimary, i.indisexclusion, i.indisvalid,
         ${nullsNotDistinct ? 'i.indnullsnotdistinct' : 'false'} AS nulls_not_distinct,
         string_to_array(i.indkey::text, ' ')::int2[] AS attrs,
         string_to_array(i.indclass::text, ' ')::oid[] AS opclasses,
         string_to_array(i.indcollation::text, ' ')::oid[] AS collations,
         string_to_array(i.indoption::text, ' ')::int2[] AS options,
         ARRAY(SELECT (o.bits # 3)::int2
                 FROM unnest(string_to_array(i.indoption::text, ' ')::int2[]) WITH ORDINALITY AS o(bits, n)
                ORDER BY o.n) AS reversed_options,
         ci.relam = (SELECT am.oid FROM pg_am am WHERE am.amname = 'btree') AS btree,
         pg_get_expr(i.indexprs, i.indrelid) AS exprs,
         pg_get_expr(i.indpred, i.indrelid) AS pred,
         (SELECT k.conname FROM pg_constraint k
           WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x') LIMIT 1) AS constraint_name,
         (SELECT format('%I.%I', pn.nspname, pc.relname)
            FROM pg_inherits h
            JOIN pg_class pc ON pc.oid = h.inhparent
            JOIN pg_namespace pn ON pn.oid = pc.relnamespace
           WHERE h.inhrelid = i.indexrelid LIMIT 1) AS parent_index,
         i.indisreplident,
         COALESCE(s.idx_scan, 0) AS scans,
         format('%I.%I', n.nspname, ci.relname) AS index,
         format('%I.%I', tn.nspname, ct.relname) AS "table",
         pg_get_indexdef(i.indexrelid) AS definition,
         ${ddlLocked('i.indexrelid')} AS locked
  FROM pg_index i
  JOIN pg_class ci ON ci.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = ci.relnamespace
  JOIN pg_class ct ON ct.oid = i.indrelid
  JOIN pg_namespace tn ON tn.oid = ct.relnamespace
  LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = i.indexrelid
  WHERE ci.relkind = 'i'
    AND ${userSchema('tn')}
    AND NOT ${ddlLocked('i.indrelid')}
),
ranked AS (
  SELECT x.*,
         row_number() OVER (
           PARTITION BY x.indrelid
           ORDER BY x.indisprimary DESC, (x.constraint_name IS NOT NULL) DESC, x.indisreplident DESC,
                    x.indisunique DESC, x.nulls_not_distinct DESC, x.indisvalid DESC, x.scans DESC, x.indexrelid
         ) AS rank
  FROM idx x
),
pairs AS (
  SELECT a.indexrelid AS a_oid, b.indexrelid AS b_oid,
         (a.attrs = b.attrs AND a.opclasses = b.opclasses AND a.collations = b.collations
          AND (a.options = b.options OR (a.btree AND a.options = b.reversed_options))) AS exact
  FROM ranked a
  JOIN ranked b ON b.indrelid = a.indrelid AND b.indexrelid <> a.indexrelid
  WHERE b.indisvalid
    AND a.relam = b.relam
    AND a.exprs IS NOT DISTINCT FROM b.exprs
    AND a.pred IS NOT DISTINCT FROM b.pred
    AND NOT a.indisprimary
    AND NOT a.indisexclusion
    AND ((a.attrs = b.attrs AND a.opclasses = b.opclasses AND a.collations = b.collations
          AND (a.options = b.options OR (a.btree AND a.options = b.reversed_options))
          AND (NOT a.indisunique OR (b.indisunique AND (b.nulls_not_distinct OR NOT a.nulls_not_distinct))))
      OR (a.btree
          AND a.exprs IS NULL
          AND NOT a.indisunique
          AND a.natts = a.nkeys
          AND a.nkeys <= b.nkeys
          AND b.attrs[1:a.nkeys] = a.attrs
          AND b.opclasses[1:a.nkeys] = a.opclasses
          AND b.collations[1:a.nkeys] = a.collations
          AND (b.options[1:a.nkeys] = a.options OR b.reversed_options[1:a.nkeys] = a.options)))
),
redundant AS (
  SELECT p.*
  FROM pairs p
  JOIN ranked a ON a.indexrelid = p.a_oid
  JOIN ranked b ON b.indexrelid = p.b_oid
  -- of two indexes that cover each other, only the worse ranked is redundant
  WHERE NOT (a.rank < b.rank AND EXISTS (SELECT 1 FROM pairs q WHERE q.a_oid = p.b_oid AND q.b_oid = p.a_oid))
),
chosen AS (
  SELECT DISTINCT ON (r.a_oid) r.a_oid, r.b_oid, r.exact
  FROM redundant r
  JOIN ranked b ON b.indexrelid = r.b_oid
  ORDER BY r.a_oid, (r.b_oid IN (SELECT a_oid FROM redundant)), r.exact DESC, b.nkeys DESC, b.rank
),
sized AS (
  SELECT a.index, a."table", a.scans, a.indisvalid AS valid, a.constraint_name, a.parent_index, a.indisreplident, a.definition,
         a.locked, c.exact,
         b.index AS keep, b.definition AS keep_definition,
         CASE WHEN a.locked THEN NULL ELSE pg_total_relation_size(a.indexrelid) END AS bytes
  FROM chosen c
  JOIN ranked a ON a.indexrelid = c.a_oid
  JOIN ranked b ON b.indexrelid = c.b_oid
)
SELECT u.*
FROM (
  (SELECT false AS skipped, s.index, s."table", s.scans, s.valid, s.constraint_name, s.parent_index, s.indisreplident,
          s.definition, s.locked, s.exact, s.keep, s.keep_definition, s.bytes,
          count(*) OVER () AS matching,
          count(*) FILTER (WHERE s.exact) OVER () AS exact_count,
          COALESCE(sum(s.bytes) OVER (), 0) AS all_bytes
   FROM sized s)
  UNION ALL
  (SELECT true, NULL, t."table", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, count(*) OVER (), NULL, NULL
   FROM skipped_tables t
   ORDER BY t."table"
   LIMIT ${LOCKED_LISTED})
) u
ORDER BY u.skipped DESC, u.bytes DESC NULLS LAST, u.index, u."table"
`;
}

interface RedundantRow {
  skipped: false;
  index: string;
  table: string;
  scans: number;
  valid: boolean;
  constraint_name: string | null;
  parent_index: string | null;
  indisreplident: boolean;
  definition: string;
  locked: boolean;
  exact: boolean;
  keep: string;
  keep_definition: string;
  bytes: number | null;
  matching: number;
  exact_count: number;
  all_bytes: number;
}

/** A table left out because DDL holds (or waits for) an AccessExclusiveLock on it. */
interface SkippedRow {
  skipped: true;
  table: string;
  matching: number;
}

type DuplicateRow = RedundantRow | SkippedRow;

const COLUMNS: Column[] = [
  { key: 'index', label: 'redundant index', kind: 'text' },
  { key: 'table', label: 'table', kind: 'text' },
  { key: 'bytes', label: 'wasted', kind: 'bytes' },
  { key: 'reason', label: 'reason', kind: 'text' },
  { key: 'keep', label: 'keep', kind: 'text' },
  { key: 'scans', label: 'scans', kind: 'count' },
  { key: 'note', label: 'note', kind: 'text' },
];

function noteOf(r: RedundantRow): string | null {
  const notes: string[] = [];
  if (r.locked) notes.push('locked by DDL: size not measured');
  if (!r.valid) notes.push('invalid: being built, or left by a failed CREATE INDEX CONCURRENTLY / REINDEX');
  if (r.constraint_name) {
    notes.push(
      `backs constraint ${r.constraint_name}: drop the constraint instead (foreign keys may need it)`,
    );
  }
  if (r.indisreplident) notes.push('replica identity: set another one first');
  if (r.parent_index) notes.push(`attached to partitioned index ${r.parent_index}: drop that one instead`);
  return notes.length > 0 ? notes.join('; ') : null;
}

export default defineOperation({
  name: 'duplicate-indexes',
  summary:
    'Indexes made redundant by another index of the same table, which one to keep, and the bytes wasted',
  usage: 'duplicate-indexes <target>',
  description:
    'Finds, per table, exact duplicates (same columns, operator classes, collations, order options, ' +
    'expressions and predicate) and b-tree indexes whose columns are the leading columns of another ' +
    'b-tree index with the same predicate. A b-tree reads both ways, so (x DESC) duplicates (x) and ' +
    '(x DESC, y) duplicates (x, y DESC); (x, y) and (x DESC, y) differ. Each redundant index names the one to keep (a primary key or ' +
    'a constraint’s index over a plain one, unique over non-unique) and the bytes dropping it would free. ' +
    'A unique index is never called redundant to a non-unique one.',
  args: z.object({}),
  risk: 'read',
  async run(ctx) {
    const nullsNotDistinct = (await ctx.db.serverVersion()) >= NULLS_NOT_DISTINCT_SINCE;
    return await ctx.db.read(async (session) => {
      const { rows: found, truncated } = await session.cursor<DuplicateRow>(
        duplicateIndexesSql(nullsNotDistinct),
      );
      const redundant = found.filter((r): r is RedundantRow => !r.skipped);
      const skipped = found.filter((r): r is SkippedRow => r.skipped);
      const matching = redundant[0]?.matching ?? 0;
      const allBytes = Number(redundant[0]?.all_bytes ?? 0);
      const exactCount = redundant[0]?.exact_count ?? 0;
      const skippedCount = skipped[0]?.matching ?? 0;

      const rows: Row[] = redundant.map((r) => ({
        index: r.index,
        table: r.table,
        bytes: r.bytes,
        reason: r.exact ? 'duplicate' : 'prefix',
        keep: r.keep,
        scans: r.scans,
        note: noteOf(r),
      }));

      const notes: string[] = [];
      if (truncated)
        notes.push(
          `showing ${formatCount(redundant.length)} of ${formatCount(matching)} redundant indexes (row cap)`,
        );
      if (skippedCount > 0) {
        notes.push(
          skippedNote(
            skipped.map((r) => r.table),
            skippedCount,
            ['table', 'tables'],
          ),
        );
      }
      if (matching > 0) {
        notes.push(
          'duplicate: the same index as the one to keep; prefix: its columns lead the one to keep, which ' +
            'serves the same queries (a wider index is a little slower to scan)',
          'DROP INDEX CONCURRENTLY avoids blocking writes; definitions are in the --json data',
        );
      }

      return {
        headline:
          matching === 0
            ? 'no duplicate or redundant indexes'
            : `${matching === 1 ? '1 redundant index' : `${formatCount(matching)} redundant indexes`} ` +
              `(${exactCount} duplicate, ${matching - exactCount} prefix): ${formatBytes(allBytes)} could be freed`,
        columns: COLUMNS,
        rows,
        truncated,
        notes,
        data: {
          redundantIndexes: matching,
          exactDuplicates: exactCount,
          wastedBytes: allBytes,
          definitions: redundant.map((r) => ({
            index: r.index,
            definition: r.definition,
            keep: r.keep,
            keepDefinition: r.keep_definition,
          })),
          skippedTables: skipped.map((r) => r.table),
          sizeNotMeasured: redundant.filter((r) => r.locked).map((r) => r.index),
        },
      };
    });
  },
});
