// Shared SQL and helpers of the session operations: activity, long-running, connections, health, terminate, cancel-query.

import { z } from 'zod';
import { durationArg, durationText } from '../../src/core/args.js';
import { formatDuration } from '../../src/core/duration.js';
import type { OperationContext } from '../../src/core/operation.js';
import { formatCount } from '../../src/core/render.js';
import type { Column, OperationResult, Row } from '../../src/core/types.js';
import type { Session } from '../../src/engine/types.js';

/** Longest query text a row carries; chat tables clip further, --json keeps this much. */
export const QUERY_CLIP = 300;

/** The role that lets the bot see every session's state, query and timings (pg_monitor includes it). */
export const READ_ALL_STATS_FIX =
  'the bot role needs pg_read_all_stats (or pg_monitor) to see sessions of other roles';

/** The role that lets the bot signal sessions of other (non-superuser) roles. */
export const SIGNAL_FIX = 'the bot role needs pg_signal_backend (GRANT pg_signal_backend TO <bot role>)';

/*
 * SQL fragments below are constants of this module, never user text; they are composed into the
 * statements of the session operations so every one of them filters the same way.
 */

/**
 * Not dbops itself: this very connection and the pids dbops holds (bound as `param`, an int[]): those of
 * this process's pools and of every other replica (published in the state database, see
 * src/state/backends.ts). Never by application_name: any client can call itself "dbops".
 */
export function notDbops(param: string, alias = 'a'): string {
  return `${alias}.pid <> pg_backend_pid()
  AND ${alias}.pid <> ALL (${param}::int[])`;
}

/** The same test as a boolean column: true for dbops' own sessions. */
export function isDbops(param: string, alias = 'a'): string {
  return `(${alias}.pid = pg_backend_pid()
   OR ${alias}.pid = ANY (${param}::int[]))`;
}

/**
 * Seconds since a timestamp expression, to 0.1 s; NULL stays NULL, and never negative (a session may
 * start after our snapshot was taken).
 */
export function secondsSince(column: string): string {
  return `CASE WHEN ${column} IS NOT NULL
            THEN round(greatest(0, extract(epoch FROM clock_timestamp() - ${column}))::numeric, 1) END`;
}

/** The query text on one line, clipped to QUERY_CLIP characters (an ellipsis says it was). */
export function clippedQuery(column = 'a.query'): string {
  return `(SELECT CASE WHEN length(q.text) > ${QUERY_CLIP} THEN left(q.text, ${QUERY_CLIP - 1}) || '…' ELSE q.text END
            FROM (SELECT regexp_replace(${column}, '\\s+', ' ', 'g') AS text) q)`;
}

/** The client's address, `local` for a Unix socket, NULL when the bot may not see it. */
export const CLIENT_ADDRESS = `CASE WHEN a.client_addr IS NOT NULL THEN host(a.client_addr)
            WHEN a.client_port = -1 THEN 'local' END`;

/** `Lock: relation` style wait description. */
export const WAIT_EVENT = `CASE WHEN a.wait_event_type IS NULL THEN NULL
            ELSE a.wait_event_type || ': ' || COALESCE(a.wait_event, '?') END`;

/** backend_start to the microsecond, so a pid reused by a new backend is never mistaken for the old one. */
export function isoTimestamp(column: string): string {
  return `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

/** The states in which a session holds an open transaction but runs nothing. */
export const IDLE_IN_TRANSACTION_STATES = "('idle in transaction', 'idle in transaction (aborted)')";

/*
 * Without pg_read_all_stats, pg_stat_activity shows sessions of other roles with pid, datname,
 * usename and application_name only: backend_type, state, query and every timestamp are NULL.
 * Such sessions cannot be filtered by state, so they are counted and named in a note instead.
 */
const HIDDEN_SESSIONS_SQL = `
SELECT count(*)::int AS hidden
FROM pg_stat_activity a
WHERE a.datname = current_database()
  AND a.backend_type IS NULL
  AND a.usesysid IS NOT NULL
  AND ${notDbops('$1')}
`;

/** Sessions of this database the bot role may not inspect (0 with pg_read_all_stats). */
export async function hiddenSessions(session: Session, ownPids: readonly number[]): Promise<number> {
  const [row] = await session.query<{ hidden: number }>(HIDDEN_SESSIONS_SQL, [ownPids]);
  return row?.hidden ?? 0;
}

export function hiddenNote(hidden: number): string {
  const what =
    hidden === 1 ? '1 session of another role is' : `${formatCount(hidden)} sessions of other roles are`;
  return `${what} not shown: ${READ_ALL_STATS_FIX}`;
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

// ---------------------------------------------------------------------------------------------------
// activity / long-running

/** Non-idle client sessions of this database whose current (or last) query started at least $1 s ago. */
const ACTIVITY_SQL = `
SELECT a.pid,
       a.usename AS "user",
       a.application_name AS application,
       ${CLIENT_ADDRESS} AS client_address,
       a.state,
       ${WAIT_EVENT} AS wait_event,
       ${secondsSince('a.query_start')} AS query_seconds,
       ${secondsSince('a.xact_start')} AS xact_seconds,
       ${clippedQuery()} AS query,
       count(*) OVER ()::int AS matching,
       (count(*) FILTER (WHERE a.state = 'active') OVER ())::int AS active,
       (count(*) FILTER (WHERE a.state IN ${IDLE_IN_TRANSACTION_STATES}) OVER ())::int AS in_transaction
FROM pg_stat_activity a
WHERE a.backend_type = 'client backend'
  AND a.datname = current_database()
  AND a.state <> 'idle'
  AND ${notDbops('$2')}
  AND ($1::float8 = 0 OR a.query_start <= clock_timestamp() - make_interval(secs => $1::float8))
ORDER BY a.query_start NULLS LAST, a.pid
`;

interface ActivityRow {
  pid: number;
  user: string | null;
  application: string | null;
  client_address: string | null;
  state: string;
  wait_event: string | null;
  query_seconds: number | null;
  xact_seconds: number | null;
  query: string | null;
  matching: number;
  active: number;
  in_transaction: number;
}

const ACTIVITY_COLUMNS: Column[] = [
  { key: 'pid', label: 'pid', kind: 'id' },
  { key: 'user', label: 'user', kind: 'text' },
  { key: 'application', label: 'application', kind: 'text' },
  { key: 'client_address', label: 'client', kind: 'text' },
  { key: 'state', label: 'state', kind: 'text' },
  { key: 'wait_event', label: 'waiting on', kind: 'text' },
  { key: 'query_seconds', label: 'query', kind: 'seconds' },
  { key: 'xact_seconds', label: 'transaction', kind: 'seconds' },
  { key: 'query', label: 'query text', kind: 'text' },
];

/** The arguments of activity and long-running: only the threshold's default differs. */
export function activityArgs(defaultOlderThan: string) {
  return z.object({ older_than: durationArg(defaultOlderThan) });
}

export const ACTIVITY_DESCRIPTION =
  'Lists client sessions of the target database that are not idle (active, idle in transaction, ' +
  'fastpath) and whose current or last query started at least --older-than ago, longest first: pid, ' +
  'user, application, client, state, wait event, query and transaction durations and the query text ' +
  "(clipped). dbops' own connections are never listed.";

/** activity and long-running: one answer, two default thresholds. */
export async function runActivity(ctx: OperationContext<{ older_than: number }>): Promise<OperationResult> {
  const threshold = ctx.args.older_than;
  const own = ctx.db.ownPids();
  const { rows, truncated, hidden } = await ctx.db.read(async (session) => {
    const found = await session.cursor<ActivityRow>(ACTIVITY_SQL, [threshold, own]);
    return { ...found, hidden: await hiddenSessions(session, own) };
  });

  const first = rows[0];
  const total = first?.matching ?? 0;
  const started = threshold > 0 ? ` with a query started more than ${durationText(threshold)} ago` : '';
  let headline = `no non-idle sessions${started} on ${ctx.target.name}`;
  if (first) {
    const states = [`${first.active} active`, `${first.in_transaction} idle in transaction`];
    const other = total - first.active - first.in_transaction;
    if (other > 0) states.push(`${other} other`);
    const longest =
      first.query_seconds === null
        ? ''
        : `; longest ${formatDuration(first.query_seconds)} (pid ${first.pid})`;
    headline = `${plural(total, 'non-idle session')}${started} on ${ctx.target.name} (${states.join(', ')})${longest}`;
  }

  const notes: string[] = [];
  if (truncated)
    notes.push(
      `only the ${formatCount(rows.length)} longest-running of ${formatCount(total)} sessions are listed`,
    );
  if (hidden > 0) notes.push(hiddenNote(hidden));
  return {
    headline,
    columns: ACTIVITY_COLUMNS,
    rows: rows.map(
      (r): Row => ({
        pid: r.pid,
        user: r.user,
        application: r.application,
        client_address: r.client_address,
        state: r.state,
        wait_event: r.wait_event,
        query_seconds: r.query_seconds,
        xact_seconds: r.xact_seconds,
        query: r.query,
      }),
    ),
    truncated,
    notes,
    data: {
      olderThanSeconds: threshold,
      sessions: total,
      active: first?.active ?? 0,
      idleInTransaction: first?.in_transaction ?? 0,
      hiddenSessions: hidden,
    },
  };
}
