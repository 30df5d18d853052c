// `/db bloat <target>`: estimated table and b-tree index bloat from pg_stats, without scanning any table.
import { z } from 'zod';
import { intArg } from '../src/core/args.js';
import { defineOperation } from '../src/core/operation.js';
import { formatBytes, formatCount } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';
import { quoteIdent } from '../src/engine/relations.js';

/** Objects whose estimate cannot be computed that are still listed (the rest are counted). */
const UNESTIMATED_LISTED = 20;

/*
 * How big would each table and b-tree index be if it were freshly written, from what ANALYZE knows
 * (reltuples, and per column null_frac and avg_width in pg_stats), and how much bigger is it (relpages)?
 *
 * - A heap tuple is its header (23 bytes, plus a null bitmap on the share of rows that have a null)
 *   MAXALIGNed, then its data MAXALIGNed, then a 4-byte line pointer. The data width walks the columns
 *   in storage order and puts each one at its alignment, as heap_fill_tuple does; short varlena values
 *   (under 127 bytes, 1-byte header) are not aligned. Pages keep 100 - fillfactor percent free.
 * - A b-tree leaf tuple is an 8-byte IndexTuple header (16 with a null bitmap) plus its data, MAXALIGNed,
 *   plus a line pointer; leaf pages are built to the index fillfactor (90 by default) inside the 24-byte
 *   page header and 16-byte special space; add one page of pivots per fanout leaf pages and the metapage.
 *   Columns of an expression index have their statistics under the index's own name.
 * - relpages and reltuples come from the same VACUUM / ANALYZE, so estimates are consistent with each
 *   other and no relation is locked or read: this is catalog-only.
 * pg_stats shows a column only to roles that may SELECT it (and hides tables under row-level security),
 * so every object says why its estimate is missing instead of showing a wrong one.
 */
const BLOAT_SQL = `
WITH RECURSIVE constants AS (
  SELECT current_setting('block_size')::int AS bs,
         CASE WHEN version() ~ '64-bit' THEN 8 ELSE 4 END AS ma
),
tables AS (
  SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relpages, c.reltuples, c.relnatts,
         COALESCE((SELECT o.option_value FROM pg_options_to_table(c.reloptions) o
                   WHERE o.option_name = 'fillfactor')::int, 100) AS fillfactor,
         c.relrowsecurity AND row_security_active(c.oid) AS row_security,
         pg_stat_get_live_tuples(c.oid) + pg_stat_get_dead_tuples(c.oid) AS counted_tuples
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'm')
    AND n.nspname NOT LIKE 'pg\\_%'
    AND n.nspname <> 'information_schema'
),
indexes AS (
  SELECT ic.oid, t.oid AS table_oid, t.schema AS table_schema, t.name AS table_relname,
         n.nspname AS schema, ic.relname AS name, ic.relpages, ic.reltuples, i.indkey,
         t.row_security, t.counted_tuples,
         COALESCE((SELECT o.option_value FROM pg_options_to_table(ic.reloptions) o
                   WHERE o.option_name = 'fillfactor')::int, 90) AS fillfactor
  FROM pg_index i
  JOIN tables t ON t.oid = i.indrelid
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = ic.relnamespace
  JOIN pg_am am ON am.oid = ic.relam
  WHERE am.amname = 'btree'
),
stored_columns AS (
  SELECT t.oid AS relid, a.attnum::int AS position, ty.typlen, ty.typalign,
         s.null_frac, s.avg_width, s.attname IS NOT NULL AS has_stats,
         has_column_privilege(t.oid, a.attnum, 'SELECT') AS readable, false AS expression
  FROM tables t
  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_type ty ON ty.oid = a.atttypid
  LEFT JOIN pg_stats s ON s.schemaname = t.schema AND s.tablename = t.name
                       AND s.attname = a.attname AND NOT s.inherited
  UNION ALL
  SELECT x.oid, k.position::int, ty.typlen, ty.typalign,
         COALESCE(ts.null_frac, xs.null_frac), COALESCE(ts.avg_width, xs.avg_width),
         COALESCE(ts.attname, xs.attname) IS NOT NULL,
         -- pg_stats shows an index expression's statistics only to who may read the index's column
         CASE WHEN k.attnum > 0 THEN has_column_privilege(x.table_oid, k.attnum, 'SELECT')
              ELSE has_column_privilege(x.oid, k.position::int2, 'SELECT') END,
         k.attnum = 0
  FROM indexes x
  CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
  JOIN pg_attribute ia ON ia.attrelid = x.oid AND ia.attnum = k.position
  JOIN pg_type ty ON ty.oid = ia.atttypid
  LEFT JOIN pg_attribute ta ON k.attnum > 0 AND ta.attrelid = x.table_oid AND ta.attnum = k.attnum
  LEFT JOIN pg_stats ts ON k.attnum > 0 AND ts.schemaname = x.table_schema AND ts.tablename = x.table_relname
                        AND ts.attname = ta.attname AND NOT ts.inherited
  LEFT JOIN pg_stats xs ON k.attnum = 0 AND xs.schemaname = x.schema AND xs.tablename = x.name
                        AND xs.attname = ia.attname AND NOT xs.inherited
),
ordered_columns AS (
  SELECT c.relid, c.null_frac, c.avg_width,
         row_number() OVER (PARTITION BY c.relid ORDER BY c.position) AS ord,
         CASE WHEN c.typlen = -1 AND COALESCE(c.avg_width, 0) < 127 THEN 1
              WHEN c.typalign = 'd' THEN 8 WHEN c.typalign = 'i' THEN 4 WHEN c.typalign = 's' THEN 2
              ELSE 1 END AS align
  FROM stored_columns c
),
layout (relid, ord, width) AS (
  SELECT DISTINCT relid, 0::bigint, 0::float8 FROM stored_columns
  UNION ALL
  -- a column that is mostly null is mostly absent: it adds its expected width but no alignment padding
  SELECT l.relid, c.ord,
         CASE WHEN COALESCE(c.null_frac, 0) >= 0.5 THEN l.width ELSE ceil(l.width / c.align) * c.align END
           + (1 - COALESCE(c.null_frac, 0)) * COALESCE(c.avg_width, 0)
  FROM layout l
  JOIN ordered_columns c ON c.relid = l.relid AND c.ord = l.ord + 1
),
widths AS (
  SELECT c.relid,
         count(*) AS columns,
         count(*) FILTER (WHERE c.has_stats) AS columns_with_stats,
         bool_and(c.readable) FILTER (WHERE NOT c.expression) AS columns_readable,
         bool_and(c.readable) FILTER (WHERE c.expression) AS expressions_readable,
         COALESCE(max(c.null_frac), 0) AS max_null_frac,
         (SELECT l.width FROM layout l WHERE l.relid = c.relid ORDER BY l.ord DESC LIMIT 1) AS data_width
  FROM stored_columns c
  GROUP BY c.relid
),
tuples AS (
  SELECT 'table' AS kind, format('%I.%I', t.schema, t.name) AS relation, NULL::text AS table_name,
         t.relpages, t.reltuples, t.fillfactor, t.row_security, t.counted_tuples,
         COALESCE(w.columns, 0) AS columns, COALESCE(w.columns_with_stats, 0) AS columns_with_stats,
         COALESCE(w.columns_readable, true) AS columns_readable,
         COALESCE(w.expressions_readable, true) AS expressions_readable,
         (ceil(23.0 / k.ma) + (ceil((23 + (t.relnatts + 7) / 8) / k.ma::numeric) - ceil(23.0 / k.ma))
            * COALESCE(w.max_null_frac, 0)) * k.ma
           + ceil(COALESCE(w.data_width, 0) / k.ma) * k.ma + 4 AS tuple_bytes,
         k.bs - 24 - k.bs * (100 - t.fillfactor) / 100 AS page_bytes,
         k.bs, k.ma
  FROM tables t CROSS JOIN constants k LEFT JOIN widths w ON w.relid = t.oid
  UNION ALL
  SELECT 'index', format('%I.%I', x.schema, x.name), format('%I.%I', x.table_schema, x.table_relname),
         x.relpages, x.reltuples, x.fillfactor, x.row_security, x.counted_tuples,
         w.columns, w.columns_with_stats,
         COALESCE(w.columns_readable, true), COALESCE(w.expressions_readable, true),
         ceil((ceil(8.0 / k.ma) * k.ma + (ceil(12.0 / k.ma) - ceil(8.0 / k.ma)) * k.ma * w.max_null_frac
               + w.data_width) / k.ma) * k.ma + 4,
         k.bs - 24 - 16 - k.bs * (100 - x.fillfactor) / 100,
         k.bs, k.ma
  FROM indexes x CROSS JOIN constants k JOIN widths w ON w.relid = x.oid
),
judged AS (
  SELECT u.*,
         CASE
           WHEN u.relpages = 0 AND u.reltuples <= 0 AND u.counted_tuples <= 0 THEN 'empty'
           WHEN u.reltuples = 0 AND u.relpages > 0 THEN 'estimated'
           WHEN NOT u.columns_readable THEN 'no_privilege'
           WHEN NOT u.expressions_readable THEN 'expression_owner_only'
           WHEN u.row_security THEN 'row_security'
           WHEN u.reltuples < 0 OR u.relpages = 0 OR u.columns_with_stats = 0 THEN 'no_statistics'
           WHEN u.columns_with_stats < u.columns THEN 'partial_statistics'
           ELSE 'estimated'
         END AS status,
         CASE WHEN u.kind = 'table' THEN
           ceil(greatest(u.reltuples, 0) / greatest(1, least(floor(u.page_bytes / u.tuple_bytes),
                                                       floor((u.bs - 24) / (ceil(23.0 / u.ma) * u.ma + 4)))))
         ELSE
           -- metapage, leaf pages, and the pivot pages above them (none while the root is the only leaf)
           1 + ceil(greatest(u.reltuples, 0) / greatest(1, floor(u.page_bytes / u.tuple_bytes)))
             + CASE WHEN u.reltuples > floor(u.page_bytes / u.tuple_bytes)
                 THEN ceil(ceil(u.reltuples / greatest(1, floor(u.page_bytes / u.tuple_bytes)))
                           / greatest(2, floor((u.bs - 40 - u.bs * 30 / 100) / u.tuple_bytes)))
                 ELSE 0 END
         END AS expected_pages
  FROM tuples u
),
results AS (
  SELECT j.kind, j.relation, j.table_name, j.status,
         j.fillfactor, j.columns - j.columns_with_stats AS columns_without_stats,
         -- never vacuumed nor analyzed: relpages says nothing yet
         CASE WHEN NOT (j.status = 'no_statistics' AND j.relpages = 0) THEN j.relpages::bigint * j.bs END AS size_bytes,
         CASE WHEN j.status = 'estimated' THEN (j.expected_pages * j.bs)::bigint END AS expected_bytes,
         CASE WHEN j.status = 'estimated'
              THEN (greatest(j.relpages - j.expected_pages, 0) * j.bs)::bigint END AS bloat_bytes,
         CASE WHEN j.status = 'estimated' AND j.relpages > 0
              THEN round((100 * greatest(j.relpages - j.expected_pages, 0) / j.relpages)::numeric, 1) END AS bloat_percent
  FROM judged j
  WHERE j.status <> 'empty'
)
(SELECT r.*, count(*) OVER () AS matching
 FROM results r
 WHERE r.status = 'estimated'
 ORDER BY r.bloat_bytes DESC, r.bloat_percent DESC, r.relation
 LIMIT $1)
UNION ALL
(SELECT r.*, count(*) OVER ()
 FROM results r
 WHERE r.status <> 'estimated'
 ORDER BY r.size_bytes DESC NULLS LAST, r.relation
 LIMIT ${UNESTIMATED_LISTED})
`;

const CONTEXT_SQL = 'SELECT current_database() AS database, current_user AS role';

type Status =
  | 'estimated'
  | 'no_privilege'
  | 'expression_owner_only'
  | 'row_security'
  | 'no_statistics'
  | 'partial_statistics';

interface BloatRow {
  kind: 'table' | 'index';
  relation: string;
  table_name: string | null;
  status: Status;
  fillfactor: number;
  columns_without_stats: number;
  size_bytes: number | null;
  expected_bytes: number | null;
  bloat_bytes: number | null;
  bloat_percent: number | null;
  matching: number;
}

const COLUMNS: Column[] = [
  { key: 'relation', label: 'relation', kind: 'text' },
  { key: 'kind', label: 'kind', kind: 'text' },
  { key: 'table', label: 'table', kind: 'text' },
  { key: 'size_bytes', label: 'size', kind: 'bytes' },
  { key: 'bloat_bytes', label: 'bloat (est.)', kind: 'bytes' },
  { key: 'bloat_percent', label: 'bloat %', kind: 'percent' },
  { key: 'fillfactor', label: 'fillfactor', kind: 'number' },
  { key: 'status', label: 'estimate', kind: 'text' },
];

/** What a person reads in the `estimate` column for an object without an estimate. */
const STATUS_TEXT: Record<Status, string> = {
  estimated: 'estimated',
  no_privilege: 'not estimated: no SELECT on the table',
  expression_owner_only: 'not estimated: expression statistics are owner-only',
  row_security: 'not estimated: row-level security hides statistics',
  no_statistics: 'not estimated: no statistics (run ANALYZE)',
  partial_statistics: 'not estimated: statistics incomplete (run ANALYZE)',
};

/** The table an object belongs to, quoted only where SQL needs it (format('%I.%I')). */
function tableOf(row: BloatRow): string {
  return row.kind === 'table' ? row.relation : (row.table_name ?? row.relation);
}

function listed(names: readonly string[], max = 5): string {
  const unique = [...new Set(names)];
  const shown = unique.slice(0, max).join(', ');
  return unique.length > max ? `${shown} and ${formatCount(unique.length - max)} more` : shown;
}

/** One line per reason, naming the objects and the fix. */
function fixNotes(rows: readonly BloatRow[], role: string): string[] {
  const notes: string[] = [];
  const by = (status: Status) => rows.filter((r) => r.status === status);
  const noPrivilege = by('no_privilege');
  if (noPrivilege.length > 0) {
    const tables = [...new Set(noPrivilege.map(tableOf))];
    notes.push(
      `the bot role cannot read pg_stats of ${listed(tables)}: it needs SELECT on ` +
        `${tables.length === 1 ? 'that table' : 'those tables'} (${tables
          .slice(0, 3)
          .map((t) => `GRANT SELECT ON ${t} TO ${quoteIdent(role)}`)
          .join('; ')}${tables.length > 3 ? '; …' : ''})`,
    );
  }
  const ownerOnly = by('expression_owner_only');
  if (ownerOnly.length > 0) {
    notes.push(
      `statistics of index expressions are visible only to the table owner or a superuser: ` +
        `${listed(ownerOnly.map((r) => r.relation))} cannot be estimated by the bot role`,
    );
  }
  const rowSecurity = by('row_security');
  if (rowSecurity.length > 0) {
    notes.push(
      `row-level security hides the statistics of ${listed([...new Set(rowSecurity.map(tableOf))])} ` +
        'from the bot role (it would need BYPASSRLS or to own the table)',
    );
  }
  const missing = [...by('no_statistics'), ...by('partial_statistics')];
  if (missing.length > 0) {
    const tables = [...new Set(missing.map(tableOf))];
    notes.push(
      `statistics are missing or incomplete for ${listed(tables)}: run ANALYZE on ` +
        `${tables.length === 1 ? 'it' : 'them'}, then ask again`,
    );
  }
  return notes;
}

export default defineOperation({
  name: 'bloat',
  summary: 'Estimated table and b-tree index bloat (pg_stats-based, fillfactor-aware)',
  usage: 'bloat <target> [--limit 10]',
  description:
    'Estimates, for every table, materialized view and b-tree index outside the system schemas, how much ' +
    'larger it is than a freshly written copy would be, from pg_stats (null fraction and average width of ' +
    'each column, with alignment), reltuples, relpages and the fillfactor. Nothing is scanned or locked. ' +
    'Objects whose statistics are missing or hidden from the bot role are listed with the reason and the fix. ' +
    'An estimate, not a measurement: pgstattuple measures exactly, at the cost of reading the whole relation.',
  args: z.object({ limit: intArg({ min: 1, max: 100, default: 10 }) }),
  risk: 'read',
  async run(ctx) {
    return await ctx.db.read(async (session) => {
      const [context] = await session.query<{ database: string; role: string }>(CONTEXT_SQL);
      if (!context) throw new Error('bloat: no row from current_database()');
      const { rows: found } = await session.cursor<BloatRow>(BLOAT_SQL, [ctx.args.limit]);
      const estimated = found.filter((r) => r.status === 'estimated');
      const unestimated = found.filter((r) => r.status !== 'estimated');

      const rows: Row[] = found.map((r) => ({
        relation: r.relation,
        kind: r.kind,
        table: r.table_name,
        size_bytes: r.size_bytes,
        expected_bytes: r.expected_bytes,
        bloat_bytes: r.bloat_bytes,
        bloat_percent: r.bloat_percent,
        fillfactor: r.fillfactor,
        status: STATUS_TEXT[r.status],
        reason: r.status,
        columns_without_stats: r.columns_without_stats,
      }));

      const estimatedCount = estimated[0]?.matching ?? 0;
      const unestimatedCount = unestimated[0]?.matching ?? 0;
      const tableBloat = estimated
        .filter((r) => r.kind === 'table')
        .reduce((sum, r) => sum + (r.bloat_bytes ?? 0), 0);
      const indexBloat = estimated
        .filter((r) => r.kind === 'index')
        .reduce((sum, r) => sum + (r.bloat_bytes ?? 0), 0);
      const worst = estimated[0];

      let headline: string;
      if (estimatedCount === 0 && unestimatedCount === 0) {
        headline = `${context.database}: no tables or b-tree indexes with data outside the system schemas`;
      } else if (estimatedCount === 0) {
        headline = `${context.database}: bloat could not be estimated for any of ${formatCount(unestimatedCount)} objects`;
      } else if (!worst || (worst.bloat_bytes ?? 0) === 0) {
        headline = `${context.database}: no estimated bloat in ${formatCount(estimatedCount)} tables and indexes`;
      } else {
        headline =
          `${context.database}: estimated bloat ${formatBytes(tableBloat)} in tables and ` +
          `${formatBytes(indexBloat)} in indexes shown; most: ${worst.relation} ` +
          `${formatBytes(worst.bloat_bytes ?? 0)} (${worst.bloat_percent ?? 0}%)`;
      }

      const notes = [
        'an estimate from pg_stats and from relpages / reltuples as of the last VACUUM or ANALYZE, not a ' +
          'measurement; pgstattuple measures exactly but reads the whole relation',
      ];
      if (estimated.some((r) => r.kind === 'index')) {
        notes.push(
          'b-tree deduplication (PostgreSQL 13+) makes indexes with many equal keys smaller than the estimate; ' +
            'their bloat shows as 0, never negative',
        );
      }
      if (estimatedCount > estimated.length) {
        notes.push(
          `showing the ${formatCount(estimated.length)} most bloated of ${formatCount(estimatedCount)} estimated objects` +
            (ctx.args.limit < 100 ? '; --limit (up to 100) shows more' : ''),
        );
      }
      if (unestimatedCount > unestimated.length) {
        notes.push(
          `${formatCount(unestimatedCount)} objects could not be estimated; the ${formatCount(unestimated.length)} largest are listed`,
        );
      }
      notes.push(...fixNotes(unestimated, context.role));

      return {
        headline,
        columns: COLUMNS,
        rows,
        truncated: false,
        notes,
        data: {
          database: context.database,
          estimatedObjects: estimatedCount,
          unestimatedObjects: unestimatedCount,
          tableBloatBytesShown: tableBloat,
          indexBloatBytesShown: indexBloat,
        },
      };
    });
  },
});
