// `/db blocking <target>`: who is blocked by whom, with both queries, from pg_blocking_pids(), roots flagged.

import { z } from 'zod';
import { defineOperation } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';
import { clippedQuery, isDbops, plural, READ_ALL_STATS_FIX, secondsSince } from './lib/activity.js';

/** When each wait began: pg_locks.waitstart on PostgreSQL 14+, else unknown (the query start is used). */
const WAITSTART_PG14 = 'min(l.waitstart)';
const WAITSTART_BEFORE_14 = 'NULL::timestamptz';

/*
 * pg_blocking_pids() is asked only for backends with a lock request not granted, so the lock manager is
 * consulted for the few waiting sessions, not for every connection. It reports every blocker — holders
 * of a conflicting lock and requests queued ahead — so one waiter yields one row per blocker (a pid may
 * appear more than once for parallel queries, hence DISTINCT). A prepared transaction blocks as pid 0.
 * A blocker that is not blocked itself is a root: ending it releases the chain.
 *
 * Only this very connection is left out. Other dbops connections stay in, flagged: a VACUUM FULL or
 * REINDEX started from chat can be the link of a chain, and hiding it would leave the chain unexplained.
 */
function blockingSql(waitstart: string): string {
  return `
WITH waiting AS (
  SELECT l.pid, ${waitstart} AS waitstart
  FROM pg_locks l
  WHERE NOT l.granted AND l.pid IS NOT NULL
  GROUP BY l.pid
),
pairs AS (
  SELECT w.pid AS blocked_pid, w.waitstart, b.pid AS blocking_pid
  FROM waiting w
  CROSS JOIN LATERAL (SELECT DISTINCT unnest(pg_blocking_pids(w.pid)) AS pid) b
)
SELECT p.blocked_pid,
       wa.usename AS blocked_user,
       wa.application_name AS blocked_application,
       ${secondsSince('COALESCE(p.waitstart, wa.state_change)')} AS waiting_seconds,
       ${clippedQuery('wa.query')} AS blocked_query,
       p.blocking_pid,
       ba.usename AS blocking_user,
       ba.application_name AS blocking_application,
       ba.datname AS blocking_database,
       CASE WHEN p.blocking_pid = 0 THEN 'prepared transaction' ELSE ba.state END AS blocking_state,
       ${secondsSince('ba.xact_start')} AS blocking_xact_seconds,
       ${secondsSince('ba.state_change')} AS blocking_state_seconds,
       ${clippedQuery('ba.query')} AS blocking_query,
       cardinality(pg_blocking_pids(p.blocking_pid)) = 0 AS root,
       wa.backend_type IS NULL AS blocked_hidden,
       (ba.pid IS NOT NULL AND ba.backend_type IS NULL) AS blocking_hidden,
       (${isDbops('$1', 'wa')}) AS blocked_dbops,
       COALESCE(${isDbops('$1', 'ba')}, false) AS blocking_dbops,
       (ba.pid IS NOT NULL AND ba.datname IS DISTINCT FROM current_database()) AS blocking_elsewhere
FROM pairs p
JOIN pg_stat_activity wa ON wa.pid = p.blocked_pid
LEFT JOIN pg_stat_activity ba ON ba.pid = p.blocking_pid
WHERE wa.datname = current_database()
  AND wa.pid <> pg_backend_pid()
ORDER BY waiting_seconds DESC NULLS LAST, p.blocked_pid, p.blocking_pid
`;
}

interface PairRow {
  blocked_pid: number;
  blocked_user: string | null;
  blocked_application: string | null;
  waiting_seconds: number | null;
  blocked_query: string | null;
  blocking_pid: number;
  blocking_user: string | null;
  blocking_application: string | null;
  blocking_database: string | null;
  blocking_state: string | null;
  blocking_xact_seconds: number | null;
  blocking_state_seconds: number | null;
  blocking_query: string | null;
  root: boolean;
  blocked_hidden: boolean;
  blocking_hidden: boolean;
  blocked_dbops: boolean;
  blocking_dbops: boolean;
  blocking_elsewhere: boolean;
}

const COLUMNS: Column[] = [
  { key: 'blocked_pid', label: 'blocked pid', kind: 'id' },
  { key: 'blocked_user', label: 'user', kind: 'text' },
  { key: 'waiting_seconds', label: 'waiting', kind: 'seconds' },
  { key: 'blocked_query', label: 'blocked query', kind: 'text' },
  { key: 'blocking_pid', label: 'blocking pid', kind: 'id' },
  { key: 'blocking_user', label: 'user', kind: 'text' },
  { key: 'blocking_state', label: 'state', kind: 'text' },
  { key: 'blocking_xact_seconds', label: 'its transaction', kind: 'seconds' },
  { key: 'blocking_query', label: 'blocking query', kind: 'text' },
  { key: 'root', label: 'root', kind: 'bool' },
];

/** Most root pids named in the headline. */
const ROOTS_NAMED = 5;

function unique(values: readonly number[]): number[] {
  return [...new Set(values)];
}

function rootsText(roots: readonly number[]): string {
  if (roots.length === 0) {
    return 'no root: they wait on each other, and the deadlock detector will cancel one of them';
  }
  const named = roots.slice(0, ROOTS_NAMED).join(', ');
  const more = roots.length > ROOTS_NAMED ? ` and ${roots.length - ROOTS_NAMED} more` : '';
  return `${roots.length === 1 ? 'root pid' : 'root pids'} ${named}${more}`;
}

export default defineOperation({
  name: 'blocking',
  summary: 'Blocked sessions and the sessions blocking them, with both queries and the root blockers',
  usage: 'blocking <target>',
  description:
    'For every session of the target database waiting for a lock, one row per session blocking it ' +
    '(pg_blocking_pids(): lock holders and conflicting requests queued ahead), with how long it has waited, ' +
    "both queries, the blocker's state and transaction age. Root blockers — blocking others but not " +
    'blocked themselves — are flagged: ending them (terminate) releases the chain.',
  args: z.object({}),
  risk: 'read',
  async run(ctx) {
    const version = await ctx.db.serverVersion();
    const sql = blockingSql(version >= 140000 ? WAITSTART_PG14 : WAITSTART_BEFORE_14);
    const { rows, truncated } = await ctx.db.read((session) =>
      session.cursor<PairRow>(sql, [ctx.db.ownPids()]),
    );

    const blocked = unique(rows.map((r) => r.blocked_pid));
    const blockers = unique(rows.map((r) => r.blocking_pid));
    const roots = unique(rows.filter((r) => r.root).map((r) => r.blocking_pid));
    const headline =
      rows.length === 0
        ? `no blocked sessions on ${ctx.target.name}`
        : `${plural(blocked.length, 'session')} blocked by ${plural(blockers.length, 'session')} (${rootsText(roots)})`;

    const notes: string[] = [];
    if (truncated)
      notes.push(`only the first ${formatCount(rows.length)} (blocked, blocking) pairs are listed`);
    const dbopsPids = unique([
      ...rows.filter((r) => r.blocked_dbops).map((r) => r.blocked_pid),
      ...rows.filter((r) => r.blocking_dbops).map((r) => r.blocking_pid),
    ]);
    if (dbopsPids.length > 0) {
      notes.push(
        `pid ${dbopsPids.join(', ')} ${dbopsPids.length === 1 ? 'is' : 'are'} dbops' own ` +
          `${dbopsPids.length === 1 ? 'connection' : 'connections'} (an operation started from chat)`,
      );
    }
    const elsewhere = rows.filter((r) => r.blocking_elsewhere);
    for (const pid of unique(elsewhere.map((r) => r.blocking_pid))) {
      const database = elsewhere.find((r) => r.blocking_pid === pid)?.blocking_database;
      notes.push(
        database
          ? `blocking pid ${pid} is connected to database ${database}, not to this one`
          : `blocking pid ${pid} is not connected to a database (a background or replication process)`,
      );
    }
    const hidden = unique([
      ...rows.filter((r) => r.blocked_hidden).map((r) => r.blocked_pid),
      ...rows.filter((r) => r.blocking_hidden).map((r) => r.blocking_pid),
    ]);
    if (hidden.length > 0) {
      notes.push(`the queries of pid ${hidden.join(', ')} are hidden: ${READ_ALL_STATS_FIX}`);
    }
    if (version < 140000 && rows.length > 0) {
      notes.push(
        'PostgreSQL before 14 does not record when a wait began: "waiting" counts from the query start',
      );
    }

    return {
      headline,
      columns: COLUMNS,
      rows: rows.map(
        (r): Row => ({
          blocked_pid: r.blocked_pid,
          blocked_user: r.blocked_user,
          waiting_seconds: r.waiting_seconds,
          blocked_query: r.blocked_hidden ? null : r.blocked_query,
          blocking_pid: r.blocking_pid,
          blocking_user: r.blocking_user,
          blocking_state: r.blocking_state,
          blocking_xact_seconds: r.blocking_xact_seconds,
          // Another database's query is not this target's to show (its pid and database are named).
          blocking_query: r.blocking_hidden || r.blocking_elsewhere ? null : r.blocking_query,
          root: r.root,
        }),
      ),
      truncated,
      notes,
      data: { blocked, blockers, roots },
    };
  },
});
