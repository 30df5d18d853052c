// `/db cancel-query <target> <pid>`: cancel the running query of one client session, after approval; the session stays.
import { z } from 'zod';
import { pidArg } from '../src/core/args.js';
import { formatDuration } from '../src/core/duration.js';
import { UserError } from '../src/core/errors.js';
import { defineOperation } from '../src/core/operation.js';
import type { OperationResult } from '../src/core/types.js';
import { isoTimestamp } from './lib/activity.js';
import {
  POLL_LIMIT_MS,
  parseSignalState,
  refusalAtExecute,
  SESSION_COLUMNS,
  type SignalRow,
  type SignalState,
  sessionRow,
  signalableSession,
  signalOutcome,
  signalSql,
  watchSession,
  whoText,
} from './lib/signals.js';

/** States in which a backend runs something a cancel interrupts; an idle backend ignores a cancel. */
const RUNNING_STATES: readonly string[] = ['active', 'fastpath function call'];

/*
 * Beyond terminate's re-check, the approved query must still be the one running ($4 = its query_start):
 * a cancel arriving after it finished would hit whatever the session runs next.
 */
const CANCEL_SQL = signalSql(
  'pg_cancel_backend',
  `WHEN a.state NOT IN ('active', 'fastpath function call') THEN 'finished'
           WHEN $4::text IS DISTINCT FROM ${isoTimestamp('a.query_start')} THEN 'new_query'`,
);

function outcomeResult(row: SignalRow, outcome: string, headline: string, stopped: boolean): OperationResult {
  return signalOutcome(row, outcome, headline, { cancelled: row.signalled, stopped });
}

export default defineOperation({
  name: 'cancel-query',
  summary:
    'Cancel the running query of one client session of the target database (pg_cancel_backend), after approval',
  usage: 'cancel-query <target> <pid>',
  description:
    'Shows the session with that pid and its running query, and after approval cancels that query with ' +
    'pg_cancel_backend: the client gets an error (57014) and stays connected; its transaction is aborted. ' +
    "Only an active client backend of the target's database is accepted, never dbops' own connections. " +
    'Execution re-checks that the pid is the same session running the same query (same backend and query ' +
    'start), so a finished query is never replaced by the next one. The bot role needs pg_read_all_stats ' +
    'to check sessions of other roles and pg_signal_backend to cancel their queries.',
  positionals: ['pid'],
  args: z.object({ pid: pidArg() }),
  risk: 'destructive',

  async preview(ctx) {
    const s = await signalableSession(ctx, 'cancel');
    if (s.backend_start === null) throw new Error('cancel-query: a checked session has no backend_start');
    if (s.state === null || !RUNNING_STATES.includes(s.state)) {
      throw new UserError(
        'invalid_argument',
        `refusing to cancel pid ${s.pid}: it is ${s.state ?? 'in an unknown state'}, so there is no running query ` +
          'to cancel (terminate ends the session instead)',
      );
    }
    const state: SignalState = { pid: s.pid, backendStart: s.backend_start, queryStart: s.query_start };
    const running = s.query_seconds === null ? '' : `, running for ${formatDuration(s.query_seconds)},`;
    return {
      result: {
        headline: `the query of ${whoText(s)} on ${ctx.target.name}${running} would be cancelled`,
        columns: SESSION_COLUMNS,
        rows: [sessionRow(s)],
        truncated: false,
        notes: [
          'the session stays connected; its query fails with "canceling statement due to user request"',
        ],
        data: { pid: s.pid, backendStart: s.backend_start, queryStart: s.query_start },
      },
      state,
    };
  },

  async execute(ctx, previewState) {
    const state = parseSignalState('cancel-query', previewState);
    if (state.pid !== ctx.args.pid) throw new Error('cancel-query: the preview state is for another pid');
    const [row] = await ctx.db.write((session) =>
      session.query<SignalRow>(CANCEL_SQL, [
        state.pid,
        state.backendStart,
        ctx.db.ownPids(),
        state.queryStart ?? null,
      ]),
    );
    if (!row) throw new Error('cancel-query: the re-check returned no row');
    const refusal = refusalAtExecute(row, 'cancel', ctx.target.name);
    if (refusal) throw refusal;
    if (row.verdict === 'new_query') {
      throw new UserError(
        'invalid_argument',
        `refusing to cancel pid ${row.pid}: the previewed query finished and the session now runs another one; ` +
          'nothing was cancelled',
      );
    }
    if (row.verdict === 'gone') {
      return outcomeResult(row, 'session gone', `pid ${row.pid} had already ended; nothing to cancel`, true);
    }
    if (row.verdict === 'finished' || !row.signalled) {
      return outcomeResult(
        row,
        'query already finished',
        `the query of ${whoText(row)} had already finished; nothing was cancelled`,
        true,
      );
    }
    const after = await watchSession(
      ctx.db,
      state,
      (now) => now === undefined || now.state !== 'active' || now.query_start !== state.queryStart,
    );
    const stopped = after === undefined || after.state !== 'active' || after.query_start !== state.queryStart;
    return stopped
      ? outcomeResult(
          row,
          'cancelled',
          `cancelled the query of ${whoText(row)}; the session stays connected`,
          true,
        )
      : outcomeResult(
          row,
          'cancel sent, still running',
          `sent cancel to ${whoText(row)}; its query was still running after ` +
            `${formatDuration(POLL_LIMIT_MS / 1000)} (terminate ends the session)`,
          false,
        );
  },
});
