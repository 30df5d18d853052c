// `/db vacuum-stats <target>`: dead tuples, last (auto)vacuum / analyze, and whether autovacuum is due, per table.

import { z } from 'zod';
import { intArg } from '../src/core/args.js';
import { defineOperation } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';

/** PostgreSQL 13 added insert-driven autovacuum (n_ins_since_vacuum and its threshold settings). */
const INSERT_VACUUM_SINCE = 130_000;
/** PostgreSQL 18 scales the insert threshold by the share of pages not yet all-frozen. */
const UNFROZEN_SHARE_SINCE = 180_000;

/** Fragments chosen by server version, never by user input. */
const INSERTS_SINCE_VACUUM = { current: 's.n_ins_since_vacuum', before13: 'NULL::bigint' } as const;
const UNFROZEN_SHARE = {
  current: `CASE WHEN c.relpages > 0 AND c.relallfrozen > 0
                 THEN 1 - least(c.relallfrozen::float8 / c.relpages, 1) ELSE 1 END`,
  before18: '1::float8',
} as const;

/*
 * The same decision as autovacuum's relation_needs_vacanalyze(), per table:
 *   vacuum when dead tuples > threshold + scale_factor * reltuples (capped by the PostgreSQL 18 max threshold),
 *   or inserts since vacuum > insert_threshold + insert_scale_factor * reltuples (PostgreSQL 13+; -1 disables),
 *   or, whatever the settings, when the table's xid / multixact age passes its freeze max age (wraparound);
 *   analyze when rows modified since analyze > analyze_threshold + analyze_scale_factor * reltuples.
 * Each parameter is the table's reloption when set (read with pg_options_to_table), else the server setting;
 * a table's autovacuum_freeze_max_age can only lower the server's. reltuples < 0 (never vacuumed) counts as 0.
 */
function vacuumStatsSql(version: number): string {
  const inserts =
    version >= INSERT_VACUUM_SINCE ? INSERTS_SINCE_VACUUM.current : INSERTS_SINCE_VACUUM.before13;
  const unfrozen = version >= UNFROZEN_SHARE_SINCE ? UNFROZEN_SHARE.current : UNFROZEN_SHARE.before18;
  return `
WITH server AS (
  SELECT current_setting('autovacuum')::bool AND current_setting('track_counts')::bool AS autovacuum,
         current_setting('autovacuum_vacuum_threshold')::float8 AS vacuum_threshold,
         current_setting('autovacuum_vacuum_scale_factor')::float8 AS vacuum_scale_factor,
         current_setting('autovacuum_vacuum_max_threshold', true)::float8 AS vacuum_max_threshold,
         current_setting('autovacuum_vacuum_insert_threshold', true)::float8 AS insert_threshold,
         current_setting('autovacuum_vacuum_insert_scale_factor', true)::float8 AS insert_scale_factor,
         current_setting('autovacuum_analyze_threshold')::float8 AS analyze_threshold,
         current_setting('autovacuum_analyze_scale_factor')::float8 AS analyze_scale_factor,
         current_setting('autovacuum_freeze_max_age')::float8 AS freeze_max_age,
         current_setting('autovacuum_multixact_freeze_max_age')::float8 AS multixact_freeze_max_age
),
table_options AS (
  SELECT c.oid,
         max(o.option_value) FILTER (WHERE o.option_name = 'autovacuum_enabled') AS enabled,
         max(o.option_value) FILTER (WHERE o.option_name = 'autovacuum_vacuum_threshold') AS vacuum_threshold,
         max(o.option_value) FILTER (WHERE o.option_name = 'autovacuum_vacuum_scale_factor') AS vacuum_scale_factor,
         max(o.option_value) FILTER (WHERE o.option_name = 'autovacuum_vacuum_max_threshold') AS vacuum_max_threshold,
         max(o.option_value) FILTER (WHERE o.option_name = 'autovacuum_vacuum_insert_threshold') AS insert_threshold,
         max(o.option_value) FILTER (WHERE o.option_name = 'autovacuum_vacuum_insert_scale_factor') AS insert_scale_factor,
         max(o.option_value) FILTER (WHERE o.option_name = 'autovacuum_analyze_threshold') AS analyze_threshold,
         max(o.option_value) FILTER (WHERE o.option_name = 'autovacuum_analyze_scale_factor') AS analyze_scale_factor,
         max(o.option_value) FILTER (WHERE o.option_name = 'autovacuum_freeze_max_age') AS freeze_max_age,
         max(o.option_value) FILTER (WHERE o.option_name = 'autovacuum_multixact_freeze_max_age') AS multixact_freeze_max_age
  FROM pg_class c
  CROSS JOIN LATERAL pg_options_to_table(c.reloptions) o
  WHERE c.relkind IN ('r', 'm') AND c.reloptions IS NOT NULL
  GROUP BY c.oid
),
tables AS (
  SELECT format('%I.%I', s.schemaname, s.relname) AS relation,
         s.n_live_tup AS live, s.n_dead_tup AS dead, s.n_mod_since_analyze AS modified_since_analyze,
         ${inserts} AS inserts_since_vacuum,
         s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
         greatest(c.reltuples, 0)::float8 AS reltuples,
         age(c.relfrozenxid) AS xid_age, mxid_age(c.relminmxid) AS mxid_age,
         COALESCE(o.enabled::bool, true) AS table_enabled,
         v.autovacuum AS server_enabled,
         COALESCE(o.vacuum_threshold::float8, v.vacuum_threshold) AS vacuum_threshold,
         COALESCE(o.vacuum_scale_factor::float8, v.vacuum_scale_factor) AS vacuum_scale_factor,
         COALESCE(o.vacuum_max_threshold::float8, v.vacuum_max_threshold) AS vacuum_max_threshold,
         COALESCE(o.insert_threshold::float8, v.insert_threshold) AS insert_threshold,
         COALESCE(o.insert_scale_factor::float8, v.insert_scale_factor) AS insert_scale_factor,
         COALESCE(o.analyze_threshold::float8, v.analyze_threshold) AS analyze_threshold,
         COALESCE(o.analyze_scale_factor::float8, v.analyze_scale_factor) AS analyze_scale_factor,
         least(COALESCE(o.freeze_max_age::float8, v.freeze_max_age), v.freeze_max_age) AS freeze_max_age,
         least(COALESCE(o.multixact_freeze_max_age::float8, v.multixact_freeze_max_age),
               v.multixact_freeze_max_age) AS multixact_freeze_max_age,
         ${unfrozen} AS unfrozen_share
  FROM pg_stat_user_tables s
  JOIN pg_class c ON c.oid = s.relid
  CROSS JOIN server v
  LEFT JOIN table_options o ON o.oid = s.relid
  WHERE c.relkind IN ('r', 'm')
),
thresholds AS (
  SELECT t.*,
         CASE WHEN t.vacuum_max_threshold >= 0
              THEN least(t.vacuum_threshold + t.vacuum_scale_factor * t.reltuples, t.vacuum_max_threshold)
              ELSE t.vacuum_threshold + t.vacuum_scale_factor * t.reltuples END AS vacuum_limit,
         CASE WHEN t.insert_threshold >= 0
              THEN t.insert_threshold + t.insert_scale_factor * t.reltuples * t.unfrozen_share END AS insert_limit,
         t.analyze_threshold + t.analyze_scale_factor * t.reltuples AS analyze_limit
  FROM tables t
),
judged AS (
  SELECT h.*,
         CASE
           WHEN h.xid_age > h.freeze_max_age OR h.mxid_age > h.multixact_freeze_max_age THEN 'wraparound'
           WHEN h.dead > h.vacuum_limit THEN 'dead_tuples'
           WHEN h.inserts_since_vacuum > h.insert_limit THEN 'inserts'
         END AS vacuum_reason,
         h.modified_since_analyze > h.analyze_limit AS analyze_due
  FROM thresholds h
)
SELECT j.relation, j.live, j.dead,
       CASE WHEN j.live + j.dead > 0 THEN round(100.0 * j.dead / (j.live + j.dead), 1) ELSE 0 END AS dead_percent,
       j.inserts_since_vacuum, j.modified_since_analyze,
       j.last_vacuum, j.last_autovacuum, j.last_analyze, j.last_autoanalyze,
       extract(epoch FROM now() - j.last_vacuum)::float8 AS last_vacuum_ago,
       extract(epoch FROM now() - j.last_autovacuum)::float8 AS last_autovacuum_ago,
       extract(epoch FROM now() - j.last_analyze)::float8 AS last_analyze_ago,
       extract(epoch FROM now() - j.last_autoanalyze)::float8 AS last_autoanalyze_ago,
       j.reltuples, j.vacuum_limit AS vacuum_threshold, j.insert_limit AS insert_threshold,
       j.analyze_limit AS analyze_threshold,
       j.vacuum_reason, j.vacuum_reason IS NOT NULL AS vacuum_due, j.analyze_due,
       j.table_enabled, j.server_enabled,
       count(*) OVER () AS matching,
       count(*) FILTER (WHERE j.vacuum_reason IS NOT NULL) OVER () AS vacuum_due_count,
       count(*) FILTER (WHERE j.analyze_due) OVER () AS analyze_due_count
FROM judged j
ORDER BY j.vacuum_reason IS NULL, j.dead DESC, j.relation
LIMIT $1
`;
}

type VacuumReason = 'wraparound' | 'dead_tuples' | 'inserts';

interface TableRow {
  relation: string;
  live: number;
  dead: number;
  dead_percent: number;
  inserts_since_vacuum: number | null;
  modified_since_analyze: number;
  last_vacuum: Date | null;
  last_autovacuum: Date | null;
  last_analyze: Date | null;
  last_autoanalyze: Date | null;
  last_vacuum_ago: number | null;
  last_autovacuum_ago: number | null;
  last_analyze_ago: number | null;
  last_autoanalyze_ago: number | null;
  reltuples: number;
  vacuum_threshold: number;
  insert_threshold: number | null;
  analyze_threshold: number;
  vacuum_reason: VacuumReason | null;
  vacuum_due: boolean;
  analyze_due: boolean;
  table_enabled: boolean;
  server_enabled: boolean;
  matching: number;
  vacuum_due_count: number;
  analyze_due_count: number;
}

const COLUMNS: Column[] = [
  { key: 'relation', label: 'table', kind: 'text' },
  { key: 'live', label: 'live', kind: 'count' },
  { key: 'dead', label: 'dead', kind: 'count' },
  { key: 'dead_percent', label: 'dead %', kind: 'percent' },
  { key: 'vacuum_threshold', label: 'threshold', kind: 'count' },
  { key: 'due', label: 'due', kind: 'text' },
  { key: 'last_vacuum_ago', label: 'vacuum ago', kind: 'seconds' },
  { key: 'last_autovacuum_ago', label: 'autovac ago', kind: 'seconds' },
  { key: 'last_analyze_ago', label: 'analyze ago', kind: 'seconds' },
  { key: 'last_autoanalyze_ago', label: 'autoanl ago', kind: 'seconds' },
];

const iso = (value: Date | null): string | null => (value ? value.toISOString() : null);
const whole = (value: number | null): number | null => (value === null ? null : Math.floor(value));

const REASON_TEXT: Record<VacuumReason, string> = {
  wraparound: 'wraparound',
  dead_tuples: 'dead',
  inserts: 'inserts',
};

/** What autovacuum has to do for the table, in a few words: "vacuum (dead) + analyze, table off". */
function dueText(row: TableRow): string {
  const parts: string[] = [];
  if (row.vacuum_reason) parts.push(`vacuum (${REASON_TEXT[row.vacuum_reason]})`);
  if (row.analyze_due) parts.push('analyze');
  if (parts.length === 0) return 'no';
  const text = parts.join(' + ');
  // Wraparound vacuums run even where autovacuum is disabled.
  if (row.vacuum_reason === 'wraparound') return text;
  if (!row.server_enabled) return `${text}, server off`;
  if (!row.table_enabled) return `${text}, table off`;
  return text;
}

export default defineOperation({
  name: 'vacuum-stats',
  summary: 'Dead tuples, last (auto)vacuum and analyze, and whether autovacuum is due, per table',
  usage: 'vacuum-stats <target> [--limit 20]',
  description:
    'Per user table: live and dead tuples, when it was last vacuumed and analyzed (by hand and by autovacuum), ' +
    "and whether autovacuum's thresholds are passed: dead tuples, inserts since the last vacuum (PostgreSQL 13+), " +
    'rows modified since the last analyze, and the freeze max age. Thresholds honour per-table storage ' +
    'parameters (autovacuum_vacuum_threshold, ..._scale_factor, autovacuum_enabled). Tables due first.',
  args: z.object({ limit: intArg({ min: 1, max: 100, default: 20 }) }),
  risk: 'read',
  async run(ctx) {
    const version = await ctx.db.serverVersion();
    const { rows: found, truncated } = await ctx.db.read((session) =>
      session.cursor<TableRow>(vacuumStatsSql(version), [ctx.args.limit]),
    );

    const rows: Row[] = found.map((r) => ({
      relation: r.relation,
      live: r.live,
      dead: r.dead,
      dead_percent: r.dead_percent,
      inserts_since_vacuum: r.inserts_since_vacuum,
      modified_since_analyze: r.modified_since_analyze,
      reltuples: r.reltuples,
      vacuum_threshold: whole(r.vacuum_threshold),
      insert_threshold: whole(r.insert_threshold),
      analyze_threshold: whole(r.analyze_threshold),
      vacuum_due: r.vacuum_due,
      vacuum_reason: r.vacuum_reason,
      analyze_due: r.analyze_due,
      autovacuum_enabled: r.table_enabled && r.server_enabled,
      due: dueText(r),
      last_vacuum: iso(r.last_vacuum),
      last_autovacuum: iso(r.last_autovacuum),
      last_analyze: iso(r.last_analyze),
      last_autoanalyze: iso(r.last_autoanalyze),
      last_vacuum_ago: r.last_vacuum_ago,
      last_autovacuum_ago: r.last_autovacuum_ago,
      last_analyze_ago: r.last_analyze_ago,
      last_autoanalyze_ago: r.last_autoanalyze_ago,
    }));

    const first = found[0];
    const matching = first?.matching ?? 0;
    const vacuumDue = first?.vacuum_due_count ?? 0;
    const analyzeDue = first?.analyze_due_count ?? 0;
    const serverEnabled = first?.server_enabled ?? true;

    const notes: string[] = [];
    if (!serverEnabled) {
      notes.push(
        'autovacuum is off on this server (autovacuum or track_counts): only wraparound vacuums run; ' +
          'tables marked due wait for a manual VACUUM / ANALYZE',
      );
    }
    const disabled = found.filter((r) => !r.table_enabled).map((r) => r.relation);
    if (disabled.length > 0) {
      notes.push(
        `autovacuum is disabled on ${disabled.slice(0, 5).join(', ')}` +
          (disabled.length > 5 ? ` and ${disabled.length - 5} more shown` : '') +
          ' (autovacuum_enabled = false): only wraparound vacuums run there',
      );
    }
    if (matching > found.length) {
      notes.push(
        `showing ${formatCount(found.length)} of ${formatCount(matching)} tables (due first, then by dead tuples)` +
          (ctx.args.limit < 100 ? '; --limit (up to 100) shows more' : ''),
      );
    }
    if (version < INSERT_VACUUM_SINCE) {
      notes.push('insert-driven autovacuum needs PostgreSQL 13; this server only vacuums for dead tuples');
    }
    notes.push(
      'threshold = dead tuples autovacuum waits for (autovacuum_vacuum_threshold + ' +
        'autovacuum_vacuum_scale_factor × reltuples, per-table settings first); "table off" / "server off" = ' +
        'autovacuum disabled there, so only a manual VACUUM / ANALYZE helps; empty "ago" = never',
    );

    const headline =
      matching === 0
        ? 'no user tables'
        : `${formatCount(vacuumDue)} of ${formatCount(matching)} tables due for vacuum, ${formatCount(analyzeDue)} for analyze` +
          (serverEnabled ? '' : ' (autovacuum is off)');

    return {
      headline,
      columns: COLUMNS,
      rows,
      truncated,
      notes,
      data: { tables: matching, vacuumDue, analyzeDue, autovacuumOn: serverEnabled },
    };
  },
});
