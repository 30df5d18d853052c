// `/db slow-queries <target>`: the statements of the target database that cost most, from pg_stat_statements.

import { z } from 'zod';
import { enumArg, flagArg, intArg } from '../src/core/args.js';
import { formatDuration } from '../src/core/duration.js';
import { defineOperation } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import { formatTimeAndAge } from '../src/core/time-format.js';
import type { Column, OperationResult, Row } from '../src/core/types.js';
import { quoteIdent } from '../src/engine/relations.js';

const ORDERS = ['total', 'mean', 'calls'] as const;
type Order = (typeof ORDERS)[number];

/** Longest statement text carried into a result. */
const QUERY_TEXT_MAX = 1000;
const HIDDEN_TEXT = '<insufficient privilege>';

/** The pg_stat_statements columns of one extension version, as SQL expressions over alias `s`. */
export interface StatementColumns {
  /** e.g. `total_exec_time` (1.8+) or `total_time` (before). */
  total: string;
  mean: string;
  /** Planning time, 1.8+ (only filled when pg_stat_statements.track_planning is on). */
  plan: string | null;
  /** Block read + write time, milliseconds; `blk_*` before 1.11, `shared_blk_*` + `local_blk_*` after. */
  io: string;
  /** pg_stat_statements_info (stats_reset, dealloc), 1.9+. */
  info: boolean;
}

/** "1.10" → [1, 10]: compared as numbers, since "1.10" < "1.8" as text. */
export function parseExtensionVersion(text: string): [number, number] {
  const [major, minor] = text.split('.').map((part) => Number.parseInt(part, 10));
  return [Number.isFinite(major) ? (major ?? 0) : 0, Number.isFinite(minor) ? (minor ?? 0) : 0];
}

function atLeast(version: readonly [number, number], major: number, minor: number): boolean {
  return version[0] > major || (version[0] === major && version[1] >= minor);
}

/**
 * The view's shape follows the installed extension version (ALTER EXTENSION ... UPDATE may lag the server),
 * bounded by what the server's library provides: 1.8 (PostgreSQL 13) split total_time into plan and exec
 * time, 1.9 (14) added pg_stat_statements_info, 1.11 (17) renamed blk_read_time to shared_blk_read_time
 * and added local_blk_read_time.
 */
export function statementColumns(serverVersion: number, extensionVersion: string): StatementColumns {
  const v = parseExtensionVersion(extensionVersion);
  const exec = serverVersion >= 130_000 && atLeast(v, 1, 8);
  const renamed = serverVersion >= 170_000 && atLeast(v, 1, 11);
  return {
    total: exec ? 's.total_exec_time' : 's.total_time',
    mean: exec ? 's.mean_exec_time' : 's.mean_time',
    plan: exec ? 's.total_plan_time' : null,
    io: renamed
      ? '(s.shared_blk_read_time + s.shared_blk_write_time + s.local_blk_read_time + s.local_blk_write_time)'
      : '(s.blk_read_time + s.blk_write_time)',
    info: serverVersion >= 140_000 && atLeast(v, 1, 9),
  };
}

/*
 * The extension lives in one schema per database; it can only be queried when its library is loaded,
 * which shows as its settings existing in pg_settings (visible to every role, unlike
 * shared_preload_libraries itself).
 */
const EXTENSION_SQL = `
SELECT current_database() AS database, e.extversion AS version, n.nspname AS schema,
       EXISTS (SELECT 1 FROM pg_settings s WHERE s.name = 'pg_stat_statements.max') AS loaded,
       (SELECT a.default_version FROM pg_available_extensions a WHERE a.name = 'pg_stat_statements') AS available,
       (SELECT s.setting FROM pg_settings s WHERE s.name = 'pg_stat_statements.track') AS track,
       (SELECT s.setting FROM pg_settings s WHERE s.name = 'pg_stat_statements.track_planning') AS track_planning,
       current_setting('track_io_timing')::bool AS io_timing,
       current_user AS role
FROM (SELECT 1) AS one
LEFT JOIN pg_extension e ON e.extname = 'pg_stat_statements'
LEFT JOIN pg_namespace n ON n.oid = e.extnamespace
`;

const ORDER_BY: Record<Order, (c: StatementColumns) => string> = {
  total: (c) => c.total,
  mean: (c) => c.mean,
  calls: () => 's.calls',
};

/**
 * Statements of the current database only (dbid), most expensive first. Every fragment comes from
 * statementColumns / ORDER_BY and the schema from the catalog, quoted; the limit is a bind parameter.
 */
export function statementsSql(schema: string, columns: StatementColumns, order: Order): string {
  const plan = columns.plan ? `${columns.plan} / 1000` : 'NULL::float8';
  return `
SELECT left(s.query, ${QUERY_TEXT_MAX}) AS query, r.rolname AS "user", s.calls,
       ${columns.total} / 1000 AS total_seconds, ${columns.mean} / 1000 AS mean_seconds,
       ${plan} AS plan_seconds, s.rows, ${columns.io} / 1000 AS io_seconds,
       round((100 * ${columns.total} / NULLIF(sum(${columns.total}) OVER (), 0))::numeric, 2) AS percent_of_total,
       s.queryid::text AS queryid,
       count(*) OVER () AS statements,
       sum(CASE WHEN s.query = '${HIDDEN_TEXT}' THEN 1 ELSE 0 END) OVER () AS hidden_statements,
       sum(${columns.total}) OVER () / 1000 AS database_seconds
FROM ${quoteIdent(schema)}.pg_stat_statements s
LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE s.dbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
  -- dbops' own statements (its role) are left out unless asked for: they would top a quiet database.
  AND ($2::boolean OR s.userid IS DISTINCT FROM (SELECT o.oid FROM pg_roles o WHERE o.rolname = current_user))
ORDER BY ${ORDER_BY[order](columns)} DESC, s.queryid
LIMIT $1
`;
}

function infoSql(schema: string): string {
  return `SELECT stats_reset, dealloc FROM ${quoteIdent(schema)}.pg_stat_statements_info`;
}

interface ExtensionRow {
  database: string;
  version: string | null;
  schema: string | null;
  loaded: boolean;
  available: string | null;
  track: string | null;
  track_planning: string | null;
  io_timing: boolean;
  role: string;
}

interface StatementRow {
  query: string | null;
  user: string | null;
  calls: number;
  total_seconds: number;
  mean_seconds: number;
  plan_seconds: number | null;
  rows: number;
  io_seconds: number;
  percent_of_total: number | null;
  queryid: string | null;
  statements: number;
  hidden_statements: number;
  database_seconds: number;
}

const COLUMNS: Column[] = [
  { key: 'query', label: 'query', kind: 'text' },
  { key: 'user', label: 'user', kind: 'text' },
  { key: 'calls', label: 'calls', kind: 'count' },
  { key: 'total_seconds', label: 'total', kind: 'seconds' },
  { key: 'mean_seconds', label: 'mean', kind: 'seconds' },
  { key: 'percent_of_total', label: '% of time', kind: 'percent' },
  { key: 'plan_seconds', label: 'planning', kind: 'seconds' },
  { key: 'io_seconds', label: 'I/O wait', kind: 'seconds' },
  { key: 'rows', label: 'rows', kind: 'count' },
];

const ORDER_TEXT: Record<Order, string> = {
  total: 'total time',
  mean: 'mean time',
  calls: 'calls',
};

function unavailable(headline: string, notes: string[], data: Record<string, unknown>): OperationResult {
  return { headline, columns: [], rows: [], truncated: false, notes, data };
}

export default defineOperation({
  name: 'slow-queries',
  summary: 'The most expensive statements of the target database, from pg_stat_statements',
  usage: 'slow-queries <target> [--by total|mean|calls] [--limit 10] [--include-dbops]',
  description:
    'Reads pg_stat_statements for the target database only, ordered by total execution time, mean time or ' +
    'calls, with planning time (when tracked), I/O wait and rows. Picks the columns of the installed ' +
    'extension version (total_time before 1.8, total_exec_time after; shared_blk_read_time from 1.11). ' +
    'Says how to install the extension when it is missing, and which role shows the text of other ' +
    "users' statements.",
  args: z.object({
    by: enumArg(ORDERS).default('total'),
    limit: intArg({ min: 1, max: 100, default: 10 }),
    include_dbops: flagArg(),
  }),
  risk: 'read',
  async run(ctx) {
    const serverVersion = await ctx.db.serverVersion();
    const order: Order = ctx.args.by;
    return await ctx.db.read(async (session) => {
      const [ext] = await session.query<ExtensionRow>(EXTENSION_SQL);
      if (!ext) throw new Error('slow-queries: no row from the extension lookup');

      if (ext.version === null || ext.schema === null) {
        const notes: string[] = [];
        if (ext.available === null) {
          notes.push(
            'the pg_stat_statements extension is not available on this server: install the PostgreSQL contrib ' +
              'package (on managed databases it is usually available), then CREATE EXTENSION',
          );
        } else {
          notes.push(
            `to install it: CREATE EXTENSION pg_stat_statements; in database ${ext.database} ` +
              '(as a superuser or the database owner; dbops itself only reads)',
          );
        }
        notes.push(
          ext.loaded
            ? 'its library is already in shared_preload_libraries on this server, so no restart is needed'
            : 'it also needs shared_preload_libraries = pg_stat_statements in the server configuration and a restart',
        );
        return unavailable(`pg_stat_statements is not installed in database ${ext.database}`, notes, {
          installed: false,
          preloaded: ext.loaded,
          availableVersion: ext.available,
        });
      }
      if (!ext.loaded) {
        return unavailable(
          `pg_stat_statements is installed in ${ext.database} but its library is not loaded`,
          [
            'add pg_stat_statements to shared_preload_libraries in the server configuration and restart ' +
              'the server; until then it records nothing and cannot be queried',
          ],
          { installed: true, preloaded: false, extensionVersion: ext.version },
        );
      }

      const columns = statementColumns(serverVersion, ext.version);
      const { rows: found } = await session.cursor<StatementRow>(statementsSql(ext.schema, columns, order), [
        ctx.args.limit,
        ctx.args.include_dbops,
      ]);
      const [info] = columns.info
        ? await session.query<{ stats_reset: Date | null; dealloc: number }>(infoSql(ext.schema))
        : [];

      const planTracked = columns.plan !== null && ext.track_planning === 'on';
      const rows: Row[] = found.map((r) => ({
        query: r.query,
        user: r.user,
        calls: r.calls,
        total_seconds: r.total_seconds,
        mean_seconds: r.mean_seconds,
        percent_of_total: r.percent_of_total,
        plan_seconds: planTracked ? r.plan_seconds : null,
        io_seconds: ext.io_timing ? r.io_seconds : null,
        rows: r.rows,
        queryid: r.queryid,
        text_hidden: r.query === HIDDEN_TEXT,
      }));

      const first = found[0];
      const statements = first?.statements ?? 0;
      const hidden = first?.hidden_statements ?? 0;
      const databaseSeconds = first?.database_seconds ?? 0;
      const since = info?.stats_reset ? ` since ${formatTimeAndAge(info.stats_reset, ctx.now)}` : '';

      const notes: string[] = [];
      if (!ctx.args.include_dbops) {
        notes.push(`statements of dbops' own role (${ext.role}) are left out; --include-dbops shows them`);
      }
      if (hidden > 0) {
        notes.push(
          `${formatCount(hidden)} of ${formatCount(statements)} statements belong to other roles and their text shows as ${HIDDEN_TEXT}: ` +
            `the bot role needs pg_read_all_stats (GRANT pg_read_all_stats TO ${quoteIdent(ext.role)}, or pg_monitor)`,
        );
      }
      if (ext.track === 'none') {
        notes.push('pg_stat_statements.track = none: no new statements are recorded');
      }
      if (columns.plan !== null && !planTracked) {
        notes.push('planning time is not tracked (pg_stat_statements.track_planning = off)');
      }
      if (!ext.io_timing) notes.push('I/O wait is not measured (track_io_timing = off)');
      if (info && info.dealloc > 0) {
        notes.push(
          `${formatCount(info.dealloc)} times the least-used entries were evicted (pg_stat_statements.max too small): ` +
            'rare statements may be missing',
        );
      }
      if (statements > found.length) {
        notes.push(
          `showing ${formatCount(found.length)} of ${formatCount(statements)} statements by ${ORDER_TEXT[order]}` +
            (ctx.args.limit < 100 ? '; --limit (up to 100) shows more' : ''),
        );
      }

      return {
        headline:
          statements === 0
            ? `pg_stat_statements has no statements for ${ext.database}${since}`
            : `top statements of ${ext.database} by ${ORDER_TEXT[order]}${since}: ` +
              `${formatCount(statements)} statements, ${formatDuration(databaseSeconds)} of execution in all`,
        columns: COLUMNS,
        rows,
        truncated: false,
        notes,
        data: {
          database: ext.database,
          extensionVersion: ext.version,
          totalColumn: columns.total.replace(/^s\./, ''),
          ioColumns: columns.io,
          statements,
          hiddenStatements: hidden,
          databaseSeconds,
          statsReset: info?.stats_reset ? info.stats_reset.toISOString() : null,
        },
      };
    });
  },
});
