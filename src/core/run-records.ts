// How a run's end is recorded: the request's outcome before the reply, the closing audit record once the
// reply is on its way — both durably (DurableOutcomes: retried, then the local journal, failures logged).
import type { ApprovalRequest } from '../state/types.js';
import type { AuditTrail } from './audit.js';
import type { LiveRun } from './cancel.js';
import type { AuditInput, InvocationContext, RequestChange } from './context.js';
import type { DurableOutcomes, RunOutcome } from './outcomes.js';

export interface RunRecordsDeps {
  audit: AuditTrail;
  outcomes: DurableOutcomes;
  clock: () => Date;
  runner: string;
  changed: (request: ApprovalRequest, change: RequestChange) => void;
  /** Runs `work` after the reply now being made has gone to its surface (Core's InFlight.later). */
  afterReply: (work: () => Promise<void>) => void;
}

/**
 * The audit record of how a run ended, written once the reply is on its way: timed now, retried and
 * journaled like a run's outcome, so it is never silently lost while this process lives; a process
 * killed first leaves the record of the start, with no outcome.
 */
export function recordAfterReply(deps: RunRecordsDeps, ctx: InvocationContext, event: AuditInput): void {
  const record = deps.audit.build(ctx, event);
  const at = deps.clock();
  deps.afterReply(async () => {
    await deps.outcomes.audit(record, at);
    ctx.log.info({ audit: record }, 'audit');
  });
}

/**
 * Records how an approved run ended — the request's outcome now, its audit record after the reply —
 * `delayed` when the outcome went to the journal because the state database could not take it.
 */
export async function recordRunEnd(
  deps: RunRecordsDeps,
  ctx: InvocationContext,
  live: LiveRun,
  outcome: RunOutcome,
  event: AuditInput,
): Promise<{ request?: ApprovalRequest; delayed: boolean }> {
  const id = event.requestId ?? ctx.requestId;
  if (id === undefined) throw new Error('a run outcome without the request it belongs to');
  const finished = await deps.outcomes.finish(id, outcome, deps.clock(), deps.runner);
  const request = finished.transition?.ok ? finished.transition.request : undefined;
  if (finished.transition && !finished.transition.ok)
    ctx.log.warn({ requestId: id }, 'the run finished but its request could not be updated');
  if (request) deps.changed(request, outcome.status);
  // The request shows the outcome before the reply; its audit record follows the reply, as durably.
  recordAfterReply(deps, ctx, event);
  if (finished.delayed) live.delayed = true;
  return { ...(request ? { request } : {}), delayed: finished.delayed };
}
