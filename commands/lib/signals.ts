// The session signals of terminate and cancel-query: who may be signalled, the signal SQL, its verdicts and the watch after it.
import { z } from 'zod';
import { UserError } from '../../src/core/errors.js';
import type { OperationContext } from '../../src/core/operation.js';
import type { Column, OperationResult, Row } from '../../src/core/types.js';
import type { TargetDb } from '../../src/engine/types.js';
import {
  CLIENT_ADDRESS,
  clippedQuery,
  isDbops,
  isoTimestamp,
  READ_ALL_STATS_FIX,
  SIGNAL_FIX,
  secondsSince,
} from './activity.js';

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
