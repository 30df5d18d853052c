// The parts of /db health's checklist: thresholds, the checks' SQL, a check's shape and the savepointed runner.
import { formatCount } from '../../src/core/render.js';
import type { Column } from '../../src/core/types.js';
import { serverError, toUserError } from '../../src/engine/pg-errors.js';
import type { Session } from '../../src/engine/types.js';
import { IDLE_IN_TRANSACTION_STATES, notDbops, secondsSince } from './activity.js';

/*
 * Fixed thresholds: round trip, connection use and wraparound. The session thresholds are options
 * (--long-query, --blocked, --idle-in-transaction) with the runbook's values as defaults.
 */
export const ROUND_TRIP_WARN_MS = 100;
export const ROUND_TRIP_FAIL_MS = 1000;
export const CONNECTIONS_WARN_PERCENT = 80;
export const CONNECTIONS_FAIL_PERCENT = 95;
export const WRAPAROUND_WARN_PERCENT = 50;
export const WRAPAROUND_FAIL_PERCENT = 90;
/** Each check's statement_timeout, so one slow check cannot eat the answer (the target's own limit if lower). */
export const CHECK_TIMEOUT_MS = 2000;

/** The read operations a person runs next when a check is not ok (an alert's thread gets their answers). */
export const NEXT: Readonly<Record<string, readonly string[]>> = {
  connections: ['connections'],
  'long-running queries': ['long-running'],
  blocking: ['blocking'],
  'idle in transaction': ['idle'],
  wraparound: ['wraparound'],
};

export const STATUSES = ['ok', 'warn', 'fail'] as const;
export type Status = (typeof STATUSES)[number];

/*
 * A row's `detail` is one short line (chat tables clip long cells); each check that is not ok also
 * leaves a note with the whole story and the next command to type.
 */
export interface Check {
  check: string;
  status: Status;
  detail: string;
  note?: string;
  /** Sessions of other roles the check could not see (said once per answer, with the fix). */
  hidden?: number;
  /** Machine values for --json. */
  values: Record<string, unknown>;
}

export type Args = { long_query: number; blocked: number; idle_in_transaction: number };

export const SET_CHECK_TIMEOUT_SQL = "SELECT set_config('statement_timeout', $1, true)";

export const VERSION_SQL = `
SELECT current_setting('server_version') AS version,
       current_setting('server_version_num')::int AS version_num
`;

/** Sessions of this database the bot role may not inspect: they could hide what a check looks for. */
export const HIDDEN_SUBQUERY = `(SELECT count(*) FROM pg_stat_activity h
   WHERE h.datname = current_database() AND h.backend_type IS NULL AND h.usesysid IS NOT NULL
     AND ${notDbops('$2', 'h')})::int`;

export const LONG_RUNNING_SQL = `
SELECT count(*)::int AS n,
       max(${secondsSince('a.query_start')}) AS longest,
       (array_agg(a.pid ORDER BY a.query_start))[1] AS pid,
       ${HIDDEN_SUBQUERY} AS hidden
FROM pg_stat_activity a
WHERE a.backend_type = 'client backend'
  AND a.datname = current_database()
  AND a.state = 'active'
  AND ${notDbops('$2')}
  AND a.query_start <= clock_timestamp() - make_interval(secs => $1::float8)
`;

export const IDLE_IN_TRANSACTION_SQL = `
SELECT count(*)::int AS n,
       max(${secondsSince('a.state_change')}) AS longest,
       (array_agg(a.pid ORDER BY a.state_change))[1] AS pid,
       ${HIDDEN_SUBQUERY} AS hidden
FROM pg_stat_activity a
WHERE a.backend_type = 'client backend'
  AND a.datname = current_database()
  AND a.state IN ${IDLE_IN_TRANSACTION_STATES}
  AND ${notDbops('$2')}
  AND a.state_change <= clock_timestamp() - make_interval(secs => $1::float8)
`;

/** Blocked sessions of this database (pg_locks is visible to every role) and the root blockers. */
export function blockingSql(version: number): string {
  const waitstart = version >= 140000 ? 'min(l.waitstart)' : 'NULL::timestamptz';
  return `
WITH waiting AS (
  SELECT l.pid, ${waitstart} AS waitstart
  FROM pg_locks l
  WHERE NOT l.granted AND l.pid IS NOT NULL
  GROUP BY l.pid
),
blocked AS (
  SELECT w.pid,
         ${secondsSince('COALESCE(w.waitstart, a.state_change)')} AS waiting_seconds,
         pg_blocking_pids(w.pid) AS blockers
  FROM waiting w
  JOIN pg_stat_activity a ON a.pid = w.pid
  WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
)
SELECT (SELECT count(*) FROM blocked WHERE cardinality(blockers) > 0)::int AS n,
       (SELECT max(waiting_seconds) FROM blocked WHERE cardinality(blockers) > 0) AS longest,
       ARRAY(SELECT DISTINCT b.pid FROM blocked, unnest(blocked.blockers) AS b(pid)
             WHERE cardinality(pg_blocking_pids(b.pid)) = 0 ORDER BY b.pid) AS roots
`;
}

/** The database closest to a forced anti-wraparound vacuum, by transaction ids or multixacts. */
export const WRAPAROUND_SQL = `
SELECT d.datname AS database,
       age(d.datfrozenxid)::bigint AS xid_age,
       current_setting('autovacuum_freeze_max_age')::bigint AS freeze_max_age,
       mxid_age(d.datminmxid)::bigint AS mxid_age,
       current_setting('autovacuum_multixact_freeze_max_age')::bigint AS mxid_freeze_max_age
FROM pg_database d
ORDER BY greatest(age(d.datfrozenxid)::float8 / current_setting('autovacuum_freeze_max_age')::float8,
                  mxid_age(d.datminmxid)::float8
                    / current_setting('autovacuum_multixact_freeze_max_age')::float8) DESC,
         d.datname
LIMIT 1
`;

export interface SessionCount {
  n: number;
  longest: number | null;
  pid: number | null;
  hidden: number;
}

export const COLUMNS: Column[] = [
  { key: 'check', label: 'check', kind: 'text' },
  { key: 'status', label: 'status', kind: 'text' },
  { key: 'detail', label: 'why', kind: 'text' },
];

export function worst(statuses: readonly Status[]): Status {
  return statuses.reduce<Status>((acc, s) => (STATUSES.indexOf(s) > STATUSES.indexOf(acc) ? s : acc), 'ok');
}

export function ms(value: number): string {
  return value < 10 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`;
}

export function percentText(value: number): string {
  return `${value < 10 ? value.toFixed(1) : Math.round(value)}%`;
}

/** A check that could not see every session is not ok: it says how many it missed and which role fixes it. */
export function withHidden(check: Check, hidden: number): Check {
  if (hidden === 0) return check;
  return {
    ...check,
    status: check.status === 'ok' ? 'warn' : check.status,
    detail: `${check.detail} (${formatCount(hidden)} hidden)`,
    hidden,
  };
}

/** The checks of one answer, in one read-only transaction; a failing check rolls back to its savepoint. */
export class Checklist {
  readonly checks: Check[] = [];
  #broken: string | undefined;

  constructor(
    private readonly session: Session,
    private readonly target: string,
  ) {}

  async run(name: string, fn: () => Promise<Omit<Check, 'check'>>): Promise<void> {
    if (this.#broken !== undefined) {
      this.checks.push({
        check: name,
        status: 'fail',
        detail: 'not checked: the connection failed',
        note: `${name}: not checked: ${this.#broken}`,
        values: {},
      });
      return;
    }
    try {
      await this.session.query('SAVEPOINT health_check');
      const result = await fn();
      await this.session.query('RELEASE SAVEPOINT health_check');
      this.checks.push({ check: name, ...result });
    } catch (err) {
      const failure = toUserError(err, this.target);
      if (!failure) throw err;
      this.checks.push({
        check: name,
        status: 'fail',
        detail: `check failed: ${serverError(err)?.message ?? failure.message}`,
        note: `${name}: ${failure.message}`,
        values: {},
      });
      try {
        await this.session.query('ROLLBACK TO SAVEPOINT health_check');
      } catch (rollbackErr) {
        this.#broken = toUserError(rollbackErr, this.target)?.message ?? 'the connection failed';
      }
    }
  }
}
