// Shared SQL and helpers of the session operations: activity, long-running, connections, health, terminate, cancel-query.

import { z } from 'zod';
import { durationArg, durationText } from '../../src/core/args.js';
import { formatDuration } from '../../src/core/duration.js';
import { UserError } from '../../src/core/errors.js';
import type { OperationContext } from '../../src/core/operation.js';
import { formatCount } from '../../src/core/render.js';
import type { Column, OperationResult, Row } from '../../src/core/types.js';
import type { Session, TargetDb } from '../../src/engine/types.js';

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

// ---------------------------------------------------------------------------------------------------
// connections headroom (connections, health)

const SETTINGS_RESERVED_PG16 = "current_setting('reserved_connections')::int";

/**
 * Client connections in use on the whole server (max_connections is server-wide) against the slots an
 * ordinary role may use. Since PostgreSQL 10 pg_stat_activity also lists background processes, and since
 * 12 walsenders have their own slots, so only client backends count. A session the bot may not inspect
 * (no backend_type) counts when it has a database and a role, as client backends do; autovacuum workers
 * have no role, so they never count.
 */
function headroomSql(reservedExpr: string): string {
  return `
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       ${reservedExpr} AS reserved,
       count(*) FILTER (WHERE a.backend_type = 'client backend')::int AS clients,
       count(*) FILTER (WHERE a.backend_type IS NULL AND a.datid IS NOT NULL AND a.usesysid IS NOT NULL)::int AS hidden,
       count(*) FILTER (WHERE a.backend_type = 'client backend' AND ${isDbops('$1')})::int AS dbops
FROM pg_stat_activity a
`;
}

export interface Headroom {
  maxConnections: number;
  superuserReserved: number;
  /** reserved_connections (PostgreSQL 16+), else 0. */
  reserved: number;
  /** Slots an ordinary role may use. */
  usable: number;
  /** Client backends (including dbops' own and any the bot cannot inspect). */
  inUse: number;
  dbops: number;
  hidden: number;
  /** inUse / usable × 100, to 0.1. */
  percent: number;
}

/** `version` is server_version_num: reserved_connections exists from PostgreSQL 16. */
export async function readHeadroom(
  session: Session,
  version: number,
  ownPids: readonly number[],
): Promise<Headroom> {
  const sql = headroomSql(version >= 160000 ? SETTINGS_RESERVED_PG16 : '0');
  const [row] = await session.query<{
    max_connections: number;
    superuser_reserved: number;
    reserved: number;
    clients: number;
    hidden: number;
    dbops: number;
  }>(sql, [ownPids]);
  if (!row) throw new Error('the connections query returned no row');
  const usable = Math.max(0, row.max_connections - row.superuser_reserved - row.reserved);
  const inUse = row.clients + row.hidden;
  return {
    maxConnections: row.max_connections,
    superuserReserved: row.superuser_reserved,
    reserved: row.reserved,
    usable,
    inUse,
    dbops: row.dbops,
    hidden: row.hidden,
    percent: usable === 0 ? 100 : Math.round((inUse / usable) * 1000) / 10,
  };
}

/** "43 of 97 usable connections in use (44%)" */
export function headroomText(h: Headroom): string {
  const percent = h.usable === 0 ? 100 : Math.round((h.inUse / h.usable) * 100);
  return `${formatCount(h.inUse)} of ${formatCount(h.usable)} usable connections in use (${percent}%)`;
}

// ---------------------------------------------------------------------------------------------------
// terminate / cancel-query

/**
 * Whether the bot role may signal session `a`, as pg_terminate_backend / pg_cancel_backend decide:
 * a superuser may signal anyone; others only non-superuser sessions of a role whose privileges they
 * have, or any non-superuser session with pg_signal_backend.
 */
const MAY_SIGNAL = `((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user)
         OR (NOT COALESCE((SELECT r.rolsuper FROM pg_roles r WHERE r.oid = a.usesysid), false)
             AND (pg_has_role(a.usesysid, 'USAGE') OR pg_has_role('pg_signal_backend', 'USAGE'))))`;

/** One session as terminate and cancel-query see it before they act. */
const SESSION_SQL = `
SELECT a.pid,
       a.datname AS database,
       a.usename AS "user",
       a.application_name AS application,
       ${CLIENT_ADDRESS} AS client_address,
       a.backend_type,
       a.state,
       ${clippedQuery()} AS query,
       ${secondsSince('a.query_start')} AS query_seconds,
       ${secondsSince('a.state_change')} AS state_seconds,
       ${isoTimestamp('a.backend_start')} AS backend_start,
       ${isoTimestamp('a.query_start')} AS query_start,
       current_database() AS current_database,
       ${isDbops('$2')} AS ours,
       COALESCE((SELECT r.rolsuper FROM pg_roles r WHERE r.oid = a.usesysid), false) AS superuser_session,
       ${MAY_SIGNAL} AS may_signal
FROM pg_stat_activity a
WHERE a.pid = $1
`;

export interface TargetSession {
  pid: number;
  database: string | null;
  user: string | null;
  application: string | null;
  client_address: string | null;
  backend_type: string | null;
  state: string | null;
  query: string | null;
  query_seconds: number | null;
  state_seconds: number | null;
  backend_start: string | null;
  query_start: string | null;
  current_database: string;
  ours: boolean;
  superuser_session: boolean;
  may_signal: boolean | null;
}

export type SignalVerb = 'terminate' | 'cancel';

/**
 * The session `pid` when the bot may signal it: a client backend of this target's database, not dbops'
 * own, visible to the bot role and signalable by it. Anything else is refused with the reason.
 */
export async function signalableSession(
  ctx: OperationContext<{ pid: number }>,
  verb: SignalVerb,
): Promise<TargetSession> {
  const pid = ctx.args.pid;
  const found = await ctx.db.read((session) =>
    session.query<TargetSession>(SESSION_SQL, [pid, ctx.db.ownPids()]),
  );
  const s = found[0];
  const target = ctx.target.name;
  const refuse = (why: string) => new UserError('invalid_argument', `refusing to ${verb} pid ${pid}: ${why}`);
  if (!s) {
    throw refuse(`no session matching pid ${pid} on the server of ${target} (it may have ended already)`);
  }
  if (s.ours) throw refuse("it is dbops' own connection; dbops never signals itself");
  if (s.backend_type !== null && s.backend_type !== 'client backend') {
    throw refuse(
      `it is not a client backend but the ${s.backend_type}; only client sessions may be signalled`,
    );
  }
  if (s.database !== null && s.database !== s.current_database) {
    throw refuse(
      `it is connected to database ${s.database}, not to ${s.current_database} (the database of target ${target})`,
    );
  }
  if (s.database === null) {
    throw refuse(`it is not a client session of database ${s.current_database} (no database attached)`);
  }
  if (s.backend_type === null || s.backend_start === null) {
    throw new UserError(
      'permission',
      `cannot check pid ${pid} (a session of role ${s.user ?? 'unknown'}): ${READ_ALL_STATS_FIX}, ` +
        `and pg_signal_backend to ${verb} them`,
    );
  }
  if (s.superuser_session && s.may_signal !== true) {
    throw new UserError(
      'permission',
      `the bot role may not ${verb} pid ${pid}: it belongs to superuser ${s.user ?? '?'}, and only a superuser ` +
        'can signal a superuser session',
    );
  }
  if (s.may_signal !== true) {
    throw new UserError(
      'permission',
      `the bot role may not ${verb} pid ${pid} (role ${s.user ?? '?'}): ${SIGNAL_FIX}`,
    );
  }
  return s;
}

export const SESSION_COLUMNS: Column[] = [
  { key: 'pid', label: 'pid', kind: 'id' },
  { key: 'user', label: 'user', kind: 'text' },
  { key: 'application', label: 'application', kind: 'text' },
  { key: 'client_address', label: 'client', kind: 'text' },
  { key: 'state', label: 'state', kind: 'text' },
  { key: 'state_seconds', label: 'in state', kind: 'seconds' },
  { key: 'query', label: 'query', kind: 'text' },
  { key: 'backend_start', label: 'backend start', kind: 'timestamp' },
];

export function sessionRow(s: TargetSession): Row {
  return {
    pid: s.pid,
    user: s.user,
    application: s.application,
    client_address: s.client_address,
    state: s.state,
    state_seconds: s.state_seconds,
    query: s.query,
    backend_start: s.backend_start,
  };
}

/** `pid 123 (alice, psql)`, with `more` inside the parentheses. */
export function whoText(
  s: { pid: number; user: string | null; application: string | null },
  ...more: string[]
): string {
  const parts = [s.user, s.application, ...more].filter((p): p is string => p !== null && p !== '');
  return parts.length > 0 ? `pid ${s.pid} (${parts.join(', ')})` : `pid ${s.pid}`;
}

const ISO_MICROS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$/;

/** What terminate and cancel-query bind to the approval: the session, and for cancel the query too. */
export const signalStateSchema = z.object({
  pid: z.number().int().positive(),
  backendStart: z.string().regex(ISO_MICROS),
  queryStart: z.string().regex(ISO_MICROS).nullable().optional(),
});
export type SignalState = z.infer<typeof signalStateSchema>;

export function parseSignalState(name: string, state: unknown): SignalState {
  const parsed = signalStateSchema.safeParse(state);
  if (!parsed.success) throw new Error(`${name}: malformed preview state: ${parsed.error.message}`);
  return parsed.data;
}

/** Why execute did or did not signal the previewed session. */
export type SignalVerdict =
  | 'gone'
  | 'ours'
  | 'invisible'
  | 'reconnected'
  | 'elsewhere'
  | 'no_permission'
  | 'finished'
  | 'new_query'
  | 'ok';

const SIGNAL_COLUMNS: Column[] = [
  { key: 'pid', label: 'pid', kind: 'id' },
  { key: 'user', label: 'user', kind: 'text' },
  { key: 'application', label: 'application', kind: 'text' },
  { key: 'state', label: 'state before', kind: 'text' },
  { key: 'outcome', label: 'outcome', kind: 'text' },
];

/** What terminate / cancel-query did to the one session, with machine values in `data`. */
export function signalOutcome(
  row: SignalRow,
  outcome: string,
  headline: string,
  data: Record<string, unknown>,
): OperationResult {
  return {
    headline,
    columns: SIGNAL_COLUMNS,
    rows: [{ pid: row.pid, user: row.user, application: row.application, state: row.state, outcome }],
    truncated: false,
    notes: [],
    data: { pid: row.pid, ...data },
  };
}

export interface SignalRow {
  pid: number;
  user: string | null;
  application: string | null;
  state: string | null;
  query_start: string | null;
  verdict: SignalVerdict;
  signalled: boolean;
}

/**
 * Re-checks the previewed session ($1 pid, $2 backend_start, $3 dbops' pids) against the live
 * pg_stat_activity and signals it in the same statement only when it is still the same client session
 * of this database and the bot may signal it. `extraVerdicts` adds CASE branches before 'ok'.
 */
export function signalSql(signal: 'pg_terminate_backend' | 'pg_cancel_backend', extraVerdicts = ''): string {
  return `
WITH checked AS (
  SELECT p.pid, a.usename, a.application_name, a.state,
         ${isoTimestamp('a.query_start')} AS query_start,
         CASE
           WHEN a.pid IS NULL THEN 'gone'
           WHEN ${isDbops('$3')} THEN 'ours'
           WHEN a.backend_start IS NULL THEN 'invisible'
           WHEN ${isoTimestamp('a.backend_start')} <> p.backend_start THEN 'reconnected'
           WHEN a.backend_type IS DISTINCT FROM 'client backend'
             OR a.datname IS DISTINCT FROM current_database() THEN 'elsewhere'
           WHEN NOT COALESCE(${MAY_SIGNAL}, false) THEN 'no_permission'
           ${extraVerdicts}
           ELSE 'ok'
         END AS verdict
  FROM (SELECT $1::int AS pid, $2::text AS backend_start) p
  LEFT JOIN pg_stat_activity a ON a.pid = p.pid
)
SELECT c.pid, c.usename AS "user", c.application_name AS application, c.state, c.query_start, c.verdict,
       CASE WHEN c.verdict = 'ok' THEN ${signal}(c.pid) ELSE false END AS signalled
FROM checked c
`;
}

/** The refusals execute shares: the session is no longer the one that was approved, or not the bot's to signal. */
export function refusalAtExecute(row: SignalRow, verb: SignalVerb, target: string): UserError | undefined {
  const pid = row.pid;
  const nothing = `nothing was ${verb === 'terminate' ? 'terminated' : 'cancelled'}`;
  switch (row.verdict) {
    case 'ours':
      return new UserError(
        'invalid_argument',
        `refusing to ${verb} pid ${pid}: it is now dbops' own connection; ${nothing}`,
      );
    case 'invisible':
      return new UserError(
        'permission',
        `cannot re-check pid ${pid} on ${target}: ${READ_ALL_STATS_FIX}; ${nothing}`,
      );
    case 'reconnected':
      return new UserError(
        'invalid_argument',
        `refusing to ${verb} pid ${pid}: it is now a different session (its backend started after the ` +
          `preview, so the pid was reused); ${nothing}. Preview again if it must go`,
      );
    case 'elsewhere':
      return new UserError(
        'invalid_argument',
        `refusing to ${verb} pid ${pid}: it is no longer a client session of this database; ${nothing}`,
      );
    case 'no_permission':
      return new UserError(
        'permission',
        `the bot role may not ${verb} pid ${pid}: ${SIGNAL_FIX}; ${nothing}`,
      );
    default:
      return undefined;
  }
}

/** How often and how long execute watches a signalled session. */
const POLL_INTERVAL_MS = 100;
export const POLL_LIMIT_MS = 2000;

const STILL_THERE_SQL = `
SELECT a.state, ${isoTimestamp('a.query_start')} AS query_start
FROM pg_stat_activity a
WHERE a.pid = $1 AND ${isoTimestamp('a.backend_start')} = $2
`;

export interface SessionNow {
  state: string | null;
  query_start: string | null;
}

/**
 * Re-reads the session (same pid and backend_start) in fresh transactions — pg_stat_activity is a
 * per-transaction snapshot — until `done` says so or POLL_LIMIT_MS passed; undefined once it is gone.
 */
export async function watchSession(
  db: TargetDb,
  state: SignalState,
  done: (now: SessionNow | undefined) => boolean,
): Promise<SessionNow | undefined> {
  const deadline = Date.now() + POLL_LIMIT_MS;
  for (;;) {
    const [now] = await db.read((session) =>
      session.query<SessionNow>(STILL_THERE_SQL, [state.pid, state.backendStart]),
    );
    if (done(now) || Date.now() >= deadline) return now;
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}
