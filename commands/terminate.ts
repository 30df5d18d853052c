// `/db terminate <target> <pid>`: end one client session of the target database, after approval.
import { z } from 'zod';
import { pidArg } from '../src/core/args.js';
import { formatDuration } from '../src/core/duration.js';
import { defineOperation } from '../src/core/operation.js';
import type { OperationResult } from '../src/core/types.js';
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

const TERMINATE_SQL = signalSql('pg_terminate_backend');

function outcomeResult(row: SignalRow, outcome: string, headline: string, gone: boolean): OperationResult {
  return signalOutcome(row, outcome, headline, { terminated: row.signalled, gone });
}

export default defineOperation({
  name: 'terminate',
  summary: 'Terminate one client session of the target database (pg_terminate_backend), after approval',
  usage: 'terminate <target> <pid>',
  description:
    'Shows the session with that pid — user, application, client, state, query, backend start — and after ' +
    'approval ends it with pg_terminate_backend, then watches briefly until the backend is gone. Only a ' +
    "client backend of the target's database is accepted: never another database, a background or " +
    "replication process, or dbops' own connections. Execution re-checks that the pid is still the same " +
    'session (same backend start), so a reused pid is never terminated. The bot role needs pg_read_all_stats ' +
    'to check sessions of other roles and pg_signal_backend to terminate them.',
  positionals: ['pid'],
  args: z.object({ pid: pidArg() }),
  risk: 'destructive',

  async preview(ctx) {
    const s = await signalableSession(ctx, 'terminate');
    if (s.backend_start === null) throw new Error('terminate: a checked session has no backend_start');
    const state: SignalState = { pid: s.pid, backendStart: s.backend_start };
    const how =
      s.state === null
        ? ''
        : `${s.state}${s.state_seconds === null ? '' : ` for ${formatDuration(s.state_seconds)}`}`;
    return {
      result: {
        headline: `${whoText(s, how)} on ${ctx.target.name} would be terminated`,
        columns: SESSION_COLUMNS,
        rows: [sessionRow(s)],
        truncated: false,
        notes: ['its open transaction, if any, is rolled back and the client is disconnected'],
        data: { pid: s.pid, backendStart: s.backend_start, database: s.database },
      },
      state,
    };
  },

  async execute(ctx, previewState) {
    const state = parseSignalState('terminate', previewState);
    if (state.pid !== ctx.args.pid) throw new Error('terminate: the preview state is for another pid');
    const [row] = await ctx.db.write((session) =>
      session.query<SignalRow>(TERMINATE_SQL, [state.pid, state.backendStart, ctx.db.ownPids()]),
    );
    if (!row) throw new Error('terminate: the re-check returned no row');
    const refusal = refusalAtExecute(row, 'terminate', ctx.target.name);
    if (refusal) throw refusal;
    // Gone before the re-check, or exited between the re-check and the signal: the goal is met.
    if (row.verdict !== 'ok' || !row.signalled) {
      return outcomeResult(
        row,
        'already gone',
        `pid ${row.pid} had already ended; nothing to terminate`,
        true,
      );
    }
    const after = await watchSession(ctx.db, state, (now) => now === undefined);
    return after === undefined
      ? outcomeResult(row, 'terminated', `terminated ${whoText(row)}: the backend is gone`, true)
      : outcomeResult(
          row,
          'terminated, still exiting',
          `sent terminate to ${whoText(row)}; the backend was still exiting after ${formatDuration(POLL_LIMIT_MS / 1000)}`,
          false,
        );
  },
});
