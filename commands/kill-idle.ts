// `/db kill-idle <target> --older-than 5m`: terminate client sessions of the target database left idle.

import { z } from 'zod';
import { durationArg, durationText } from '../src/core/args.js';
import { UserError } from '../src/core/errors.js';
import { defineOperation } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import type { Column, OperationResult, Row } from '../src/core/types.js';

const IDLE_STATES = "('idle', 'idle in transaction', 'idle in transaction (aborted)')";

/** backend_start to the microsecond, so a pid reused by a new backend is never mistaken for the old one. */
const BACKEND_START_ISO = `to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** Only client backends of this database; never the bot's own connections ($2), replication or workers. */
const PREVIEW_SQL = `
SELECT a.pid,
       a.usename AS "user",
       a.application_name AS application,
       COALESCE(host(a.client_addr), 'local') AS client_address,
       a.state,
       round(extract(epoch FROM now() - a.state_change)::numeric, 1) AS idle_seconds,
       ${BACKEND_START_ISO} AS backend_start
FROM pg_stat_activity a
WHERE a.backend_type = 'client backend'
  AND a.datname = current_database()
  AND a.state IN ${IDLE_STATES}
  AND a.state_change < now() - make_interval(secs => $1)
  AND a.pid <> pg_backend_pid()
  -- dbops' own pids, of this process and of every other replica (never by application_name)
  AND a.pid <> ALL ($2::int[])
ORDER BY a.state_change, a.pid
`;

/*
 * Re-checks every previewed session against the live pg_stat_activity and terminates, in the same
 * statement, exactly those that still qualify: same pid and backend_start, same database, still idle
 * past the threshold, not ours, and signalable by the bot role (checked first, so a refused signal
 * never aborts the statement after others were already terminated).
 */
const EXECUTE_SQL = `
WITH checked AS (
  SELECT p.ord, p.pid, a.usename, a.application_name, a.state,
         ${BACKEND_START_ISO} AS backend_start,
         CASE
           WHEN a.pid IS NULL THEN 'gone'
           WHEN a.backend_start IS DISTINCT FROM p.backend_start::timestamptz THEN 'reconnected'
           WHEN a.pid = pg_backend_pid() OR a.pid = ANY ($4::int[]) THEN 'ours'
           WHEN a.datname IS DISTINCT FROM current_database()
             OR a.backend_type IS DISTINCT FROM 'client backend' THEN 'elsewhere'
           WHEN a.state IS NULL THEN 'invisible'
           WHEN a.state NOT IN ${IDLE_STATES} THEN 'active'
           WHEN a.state_change IS NULL OR a.state_change >= now() - make_interval(secs => $3) THEN 'recently_active'
           WHEN NOT (
             (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user)
             OR (NOT COALESCE((SELECT r.rolsuper FROM pg_roles r WHERE r.oid = a.usesysid), false)
                 AND (pg_has_role(a.usesysid, 'USAGE') OR pg_has_role('pg_signal_backend', 'USAGE')))
           ) THEN 'no_permission'
           ELSE 'qualifies'
         END AS verdict
  FROM unnest($1::int[], $2::text[]) WITH ORDINALITY AS p(pid, backend_start, ord)
  LEFT JOIN pg_stat_activity a ON a.pid = p.pid
)
SELECT c.pid, c.usename AS "user", c.application_name AS application, c.state, c.backend_start, c.verdict,
       CASE WHEN c.verdict = 'qualifies' THEN pg_terminate_backend(c.pid) ELSE false END AS terminated
FROM checked c
ORDER BY c.ord
`;

const PREVIEW_COLUMNS: Column[] = [
  { key: 'pid', label: 'pid', kind: 'id' },
  { key: 'user', label: 'user', kind: 'text' },
  { key: 'application', label: 'application', kind: 'text' },
  { key: 'client_address', label: 'client', kind: 'text' },
  { key: 'state', label: 'state', kind: 'text' },
  { key: 'idle_seconds', label: 'idle', kind: 'seconds' },
  { key: 'backend_start', label: 'backend start', kind: 'timestamp' },
];

const EXECUTE_COLUMNS: Column[] = [
  { key: 'pid', label: 'pid', kind: 'id' },
  { key: 'user', label: 'user', kind: 'text' },
  { key: 'application', label: 'application', kind: 'text' },
  { key: 'state', label: 'state now', kind: 'text' },
  { key: 'outcome', label: 'outcome', kind: 'text' },
];

interface PreviewRow {
  pid: number;
  user: string | null;
  application: string | null;
  client_address: string;
  state: string;
  idle_seconds: number;
  backend_start: string;
}

type Verdict =
  | 'gone'
  | 'reconnected'
  | 'ours'
  | 'elsewhere'
  | 'invisible'
  | 'active'
  | 'recently_active'
  | 'no_permission'
  | 'qualifies';

interface ExecuteRow {
  pid: number;
  user: string | null;
  application: string | null;
  state: string | null;
  backend_start: string | null;
  verdict: Verdict;
  terminated: boolean;
}

const OUTCOMES: Record<Exclude<Verdict, 'qualifies'>, string> = {
  gone: 'spared: gone',
  reconnected: 'spared: reconnected (new backend)',
  ours: "spared: dbops' own connection",
  elsewhere: 'spared: no longer a client session of this database',
  invisible: 'spared: state not visible to the bot role',
  active: 'spared: now active',
  recently_active: 'spared: active since the preview',
  no_permission: 'not terminated: permission denied',
};

const SIGNAL_FIX = 'the bot role needs pg_signal_backend (GRANT pg_signal_backend TO <bot role>)';

/** What the approval binds: the exact sessions shown, identified by pid and backend start. */
const previewStateSchema = z.array(
  z.object({
    pid: z.number().int().positive(),
    backendStart: z.string().regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$/),
  }),
);
export type KillIdleState = z.infer<typeof previewStateSchema>;

function outcomeOf(row: ExecuteRow): string {
  if (row.verdict !== 'qualifies') return OUTCOMES[row.verdict];
  // pg_terminate_backend answers false when the process exited between the check and the signal.
  return row.terminated ? 'terminated' : OUTCOMES.gone;
}

function sessions(n: number): string {
  return n === 1 ? '1 session' : `${formatCount(n)} sessions`;
}

function executeHeadline(terminated: number, previewed: number): string {
  if (previewed === 1) {
    return terminated === 1
      ? 'the previewed session was still idle and was terminated'
      : 'the previewed session was not terminated';
  }
  if (terminated === previewed)
    return `all ${previewed} previewed sessions were still idle and were terminated`;
  if (terminated === 0) return `none of the ${previewed} previewed sessions was terminated`;
  const verb = terminated === 1 ? 'was still idle and was' : 'were still idle and were';
  return `${terminated} of the ${previewed} previewed sessions ${verb} terminated`;
}

export default defineOperation({
  name: 'kill-idle',
  summary: 'Terminate client sessions of the target database idle (or idle in transaction) for too long',
  usage: 'kill-idle <target> [--older-than 5m]',
  description:
    'Lists client backends of the target database whose state is idle, idle in transaction or idle in ' +
    'transaction (aborted) since longer than --older-than, and after approval terminates those of them ' +
    'that are still the same sessions and still idle. Never touches other databases, replication, ' +
    "background workers or dbops' own connections (known by pid, those of other replicas too). The bot " +
    'role needs pg_signal_backend.',
  args: z.object({ older_than: durationArg('5m') }),
  risk: 'destructive',

  async preview(ctx) {
    const threshold = ctx.args.older_than;
    const { rows, truncated } = await ctx.db.read((session) =>
      session.cursor<PreviewRow>(PREVIEW_SQL, [threshold, ctx.db.ownPids()]),
    );
    const state: KillIdleState = rows.map((r) => ({ pid: r.pid, backendStart: r.backend_start }));
    const older = durationText(threshold);
    const notes: string[] = [];
    if (truncated) {
      notes.push(
        `only the ${formatCount(rows.length)} longest idle sessions are included; run kill-idle again afterwards for the rest`,
      );
    }
    const result: OperationResult = {
      headline:
        rows.length === 0
          ? `no client sessions on ${ctx.target.name} idle for more than ${older}; nothing to terminate`
          : `${sessions(rows.length)} on ${ctx.target.name} idle for more than ${older} would be terminated`,
      columns: PREVIEW_COLUMNS,
      rows: rows.map((r): Row => ({ ...r })),
      truncated,
      notes,
      data: { olderThanSeconds: threshold, sessions: rows.length },
    };
    return rows.length === 0 ? { result, state, empty: true } : { result, state };
  },

  async execute(ctx, previewState) {
    const parsed = previewStateSchema.safeParse(previewState);
    if (!parsed.success) throw new Error(`kill-idle: malformed preview state: ${parsed.error.message}`);
    const previewed = parsed.data;
    const found = await ctx.db.write((session) =>
      session.query<ExecuteRow>(EXECUTE_SQL, [
        previewed.map((s) => s.pid),
        previewed.map((s) => s.backendStart),
        ctx.args.older_than,
        ctx.db.ownPids(),
      ]),
    );

    const rows: Row[] = found.map((r) => ({
      pid: r.pid,
      user: r.user,
      application: r.application,
      state: r.verdict === 'gone' || r.verdict === 'reconnected' ? null : r.state,
      outcome: outcomeOf(r),
    }));
    const terminated = found.filter((r) => r.verdict === 'qualifies' && r.terminated).length;
    const refused = found.filter((r) => r.verdict === 'no_permission');
    if (terminated === 0 && refused.length > 0) {
      throw new UserError(
        'permission',
        `the bot role may not terminate ${sessions(refused.length)} on ${ctx.target.name}: ${SIGNAL_FIX}; ` +
          'sessions of a superuser can only be terminated by a superuser',
      );
    }

    const notes: string[] = [];
    const byOutcome = new Map<string, number[]>();
    for (const r of found) {
      const outcome = outcomeOf(r);
      if (outcome === 'terminated') continue;
      byOutcome.set(outcome, [...(byOutcome.get(outcome) ?? []), r.pid]);
    }
    for (const [outcome, pids] of byOutcome) {
      notes.push(`${formatCount(pids.length)} ${outcome} (pid ${pids.join(', ')})`);
    }
    if (refused.length > 0) notes.push(SIGNAL_FIX);

    return {
      headline: executeHeadline(terminated, previewed.length),
      columns: EXECUTE_COLUMNS,
      rows,
      truncated: false,
      notes,
      data: { previewed: previewed.length, terminated },
    };
  },
});
