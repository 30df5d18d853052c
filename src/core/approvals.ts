// Approval requests: a preview stored for a second person, and the sweep that expires or closes them.
import type { Config, ResolvedTarget } from '../config/schema.js';
import { toldLines } from '../notify/approvals-told.js';
import type { Actor, ApprovalRequest, StateStore } from '../state/types.js';
import type { AuditTrail } from './audit.js';
import type { InvocationContext, RequestChange } from './context.js';
import { isUserError } from './errors.js';
import type { Logger } from './log.js';
import type { AnyOperation, Preview } from './operation.js';
import { renderResult } from './render.js';
import { type Reply, reply } from './reply.js';
import { requestCard } from './reply-text.js';
import type { Runs } from './runs.js';
import type { Risk } from './types.js';

export interface ApprovalsDeps {
  config: () => Config;
  state: StateStore;
  clock: () => Date;
  log: Logger;
  audit: AuditTrail;
  runs: Runs;
  actor: (ctx: InvocationContext) => Actor;
  changed: (request: ApprovalRequest, change: RequestChange) => void;
}

export class Approvals {
  readonly #deps: ApprovalsDeps;

  constructor(deps: ApprovalsDeps) {
    this.#deps = deps;
  }

  /** Runs the preview and stores a pending request with it (or answers "nothing to do"). */
  async request(
    ctx: InvocationContext,
    spec: AnyOperation,
    target: ResolvedTarget,
    args: Record<string, unknown>,
    info: { normalized: Record<string, unknown>; command: string; risk: Risk; approvalsRequired: number },
  ): Promise<Reply> {
    const { audit } = this.#deps;
    const about = { operation: spec.name, target: target.name, args: info.normalized, risk: info.risk };
    let preview: Preview;
    try {
      preview = await this.#deps.runs.step(
        ctx,
        spec,
        target,
        args,
        async (op, c) => (op.preview ? await op.preview(c) : plannedPreview(info.command)),
        'preview',
      );
    } catch (err) {
      const missing = missingObject(err);
      if (missing === undefined) return await audit.fail(ctx, err, about);
      preview = { result: { columns: [], rows: [], truncated: false }, state: null, blocked: missing };
    }
    if (preview.blocked !== undefined) {
      return await audit.refuse(
        ctx,
        'cannot_succeed',
        `${info.command} cannot succeed on ${target.name} as it is, so no approval was requested: ${preview.blocked}`,
        about,
      );
    }
    if (preview.empty) {
      await audit.record(ctx, { event: 'executed', outcome: 'nothing to do', ...about }).catch(() => {});
      return reply({
        status: 'ok',
        requestId: null,
        ref: ctx.ref,
        operation: spec.name,
        target: target.name,
        risk: info.risk,
        result: preview.result,
        message: `${info.command}: nothing to do, so no approval was requested`,
        text: `${renderResult(preview.result)}\nNothing to do, so no approval was requested.`,
      });
    }
    const config = this.#deps.config();
    const rules = config.policy[target.environment];
    const expirySeconds = rules?.expiry ?? config.state.expirySeconds;
    const actor = this.#deps.actor(ctx);
    // The number is taken only now, for a request that will exist: refusals and reads never take one.
    // Number, record and request are one statement: the request never exists without its record.
    const request = await audit.request(
      ctx,
      { event: 'pending', outcome: 'awaiting approval', ...about },
      {
        operation: spec.name,
        target: target.name,
        environment: target.environment,
        args: info.normalized,
        command: info.command,
        risk: info.risk,
        requester: actor,
        ...(ctx.inv.channel !== undefined ? { channel: ctx.inv.channel } : {}),
        ...(ctx.inv.thread !== undefined ? { thread: ctx.inv.thread } : {}),
        preview: { result: preview.result, state: preview.state },
        approvalsRequired: info.approvalsRequired,
        expiresAt: new Date(ctx.now.getTime() + expirySeconds * 1000),
        now: ctx.now,
        ...(ctx.reason !== undefined ? { requestReason: ctx.reason } : {}),
      },
    );
    this.#deps.changed(request, 'created');
    return reply({
      status: 'pending',
      requestId: request.id,
      ref: ctx.ref,
      operation: spec.name,
      target: target.name,
      risk: info.risk,
      result: preview.result,
      request,
      message: `request #${request.id} (${info.command}) waits for approval`,
      text: [requestCard(request, ctx.now, rules?.approve ?? []), toldLines(config, request, ctx.inv.surface)]
        .filter((part) => part !== undefined)
        .join('\n\n'),
    });
  }

  /** Reports runs left behind by a replica that stopped, and expires requests past their time. */
  async sweep(): Promise<ApprovalRequest[]> {
    const { state, audit, changed, log } = this.#deps;
    const now = this.#deps.clock();
    const { interrupted, expired } = await state.sweepDue(now);
    for (const request of interrupted) {
      log.warn(
        { requestId: request.id, runner: request.runner, target: request.target },
        'a running request was left behind by a replica that stopped; reported interrupted',
      );
      await audit.bySystem(request, now, {
        event: 'interrupted',
        outcome: 'unknown',
        approvers: request.votes.filter((v) => v.vote === 'approve').map((v) => v.person),
        ...(request.error ? { error: request.error } : {}),
        ...(request.runner ? { detail: { runner: request.runner } } : {}),
      });
      changed(request, 'failed');
    }
    for (const request of expired) {
      await audit.bySystem(request, now, { event: 'expired', outcome: 'expired' });
      changed(request, 'expired');
    }
    return expired;
  }
}

/**
 * A preview that failed because a table or column it reads does not exist on the target: the operation
 * would fail the same way, so the request is refused with what is missing and the fix.
 */
function missingObject(err: unknown): string | undefined {
  if (!isUserError(err)) return undefined;
  const state = err.detail?.sqlstate;
  if (state !== '42P01' && state !== '42703') return undefined;
  const what = state === '42P01' ? 'a table or view' : 'a column';
  return `${err.message} (${what} it needs is missing: create it in the application's schema, or check that the target runs the schema version this operation was written for, then ask again)`;
}

/** A write operation waiting for approval shows what will run. */
function plannedPreview(command: string): Preview {
  return {
    result: { headline: `Will run: ${command}`, columns: [], rows: [], truncated: false },
    state: null,
  };
}
