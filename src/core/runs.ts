// Running operations against targets: direct runs, approved runs exactly once under a lease, step metrics.

import type { Config, ResolvedTarget } from '../config/schema.js';
import type { TargetDb } from '../engine/types.js';
import type { HistoryStore } from '../history/store.js';
import { prepareJudgement } from '../identity/people.js';
import type { Actor, ApprovalRequest, RunLease, StateStore } from '../state/types.js';
import type { AuditTrail } from './audit.js';
import { type LiveRun, RunControl, stoppedOutcome } from './cancel.js';
import type { Catalog } from './catalog.js';
import type { About, AuditInput, InvocationContext, OperationRun, RequestChange } from './context.js';
import { isUserError, UserError } from './errors.js';
import { judge, type Standing } from './judgement.js';
import { CONSOLE_WIDTH, wrapLines } from './layout.js';
import type { Logger } from './log.js';
import type { AnyOperation, OperationContext } from './operation.js';
import { operationContext } from './operation-context.js';
import type { DurableOutcomes, RunOutcome } from './outcomes.js';
import { renderResult } from './render.js';
import { type Reply, reply, statusOfCode } from './reply.js';
import { requestLine } from './reply-text.js';
import { type RunNowInfo, runNow } from './run-now.js';
import { recordAfterReply, recordRunEnd } from './run-records.js';
import type { Invocation, OperationResult } from './types.js';

export interface RunsDeps {
  config: () => Config;
  catalog: Catalog;
  targets: { get(name: string): TargetDb };
  state: StateStore;
  clock: () => Date;
  log: Logger;
  audit: AuditTrail;
  /** Where run outcomes are recorded durably (retries, then the local journal). */
  outcomes: DurableOutcomes;
  changed: (request: ApprovalRequest, change: RequestChange) => void;
  /** `about`: the approval request's number, or the invocation's reference for a direct run. */
  onProgress?: ((about: number | string, invocation: Invocation, line: string) => void) | undefined;
  onOperationRun?: ((run: OperationRun) => void) | undefined;
  runner: string;
  runLeaseMs: number;
  /** Runs `work` after the reply has gone to its surface; tracked (shutdown and close wait), failures logged. */
  afterReply: (work: () => Promise<void>) => void;
  /** Called when a run this replica started has ended, so the next approved request there may start. */
  onTargetFree?: (target: string) => void;
  /** Stored history samples, for operations that forecast from them (`health`); absent when not kept. */
  history?: HistoryStore | undefined;
}

/** Said when a run's outcome waits in the local journal for the state database. */
const DELAYED =
  'recording it is delayed: the state database is unreachable, so the outcome is kept in a local journal and recorded when the database is back';

type Step<R> = (spec: AnyOperation, context: OperationContext<Record<string, unknown>>) => Promise<R>;

export class Runs {
  readonly #deps: RunsDeps;
  readonly #control: RunControl;

  constructor(deps: RunsDeps) {
    this.#deps = deps;
    this.#control = new RunControl(
      deps.state,
      deps.log,
      Math.max(1, Math.min(2000, Math.floor(deps.runLeaseMs / 3))),
    );
  }

  /** Stops a run of this replica (a person cancelled it); false when it is not running here. */
  stop(id: number, by: Actor): boolean {
    return this.#control.stop(id, by);
  }

  #lease(): RunLease {
    return {
      runner: this.#deps.runner,
      until: new Date(this.#deps.clock().getTime() + this.#deps.runLeaseMs),
    };
  }

  /**
   * Renews the lease of a running request every third of its length until the returned stop is called;
   * a renewal that fails (state database away, or the run was reported interrupted) is logged.
   */
  #keepLease(id: number, log: Logger): () => void {
    const timer = setInterval(
      () => {
        this.#deps.state.renewLease(id, this.#lease()).then(
          (held) => {
            if (!held)
              log.warn(
                { requestId: id },
                'this run is no longer leased to this replica; finishing it anyway',
              );
          },
          (err: unknown) =>
            log.warn({ err, requestId: id }, 'could not renew the lease of a running request'),
        );
      },
      Math.max(1, Math.floor(this.#deps.runLeaseMs / 3)),
    );
    timer.unref();
    return () => clearInterval(timer);
  }

  /** Runs a read or write operation at once, audited before and after (see run-now.ts). */
  async runNow(
    ctx: InvocationContext,
    spec: AnyOperation,
    target: ResolvedTarget,
    args: Record<string, unknown>,
    info: RunNowInfo,
  ): Promise<Reply> {
    return await runNow(
      {
        audit: this.#deps.audit,
        state: this.#deps.state,
        recordAfterReply: (c, event) => recordAfterReply(this.#deps, c, event),
        afterReply: (work) => this.#deps.afterReply(work),
        run: (c, op, t, a, rowCap) => this.step(c, op, t, a, runStep, 'run', undefined, rowCap),
      },
      ctx,
      spec,
      target,
      args,
      info,
    );
  }

  /**
   * Runs an approved request exactly once: compare-and-set approved → running, execute with the stored
   * arguments and preview facts, then running → succeeded | failed.
   */
  async runApproved(
    ctx: InvocationContext,
    approved: ApprovalRequest,
    options: { audited?: boolean } = {},
  ): Promise<Reply> {
    const { audit, state } = this.#deps;
    const about = {
      operation: approved.operation,
      target: approved.target,
      args: approved.args,
      risk: approved.risk,
      approvers: approved.votes.filter((v) => v.vote === 'approve').map((v) => v.person),
    };
    // Judged again on the policy in force now: a changed environment voids it, stale votes no longer count.
    const standing = await this.standing(ctx, approved);
    if (!('valid' in standing)) return standing;
    if (!standing.reached) {
      const back = await state.reopen(approved.id, this.#deps.clock());
      if (back.ok) this.#deps.changed(back.request, 'voted');
      return await audit.refuse(
        ctx,
        'stale_preview',
        `request #${approved.id} no longer has enough approvals under the current policy (${standing.discounted.map((d) => d.why).join('; ') || `it needs ${standing.required}`}); it waits for approval again`,
        about,
      );
    }
    about.approvers = standing.counted.map((v) => v.person);
    const target = this.#deps.config().targets[approved.target];
    const spec = this.#deps.catalog.resolve(approved.operation, target);
    if (!spec || !target) {
      throw new UserError(
        'not_found',
        `request #${approved.id} names ${spec ? `target ${approved.target}` : `operation ${approved.operation}`}, which this dbops no longer has`,
      );
    }
    // Nothing runs without its record: the approval's own record was written just now (`audited`), or
    // this start (an approver again, dbops once the target is free) is recorded first; if that write
    // fails, the request stays approved and nothing runs.
    if (!options.audited) await audit.orStop(ctx, { event: 'approved', outcome: 'starting', ...about });
    const started = await state.startRun(approved.id, this.#deps.clock(), this.#lease());
    if (!started.ok) {
      if (started.code === 'expired') {
        this.#deps.changed(started.request, 'expired');
        return await audit.refuse(
          ctx,
          'expired',
          `request #${approved.id} expired before it could start; ask for it again if it is still needed`,
          about,
        );
      }
      if (started.code === 'target_busy') {
        return await audit.refuse(
          ctx,
          'target_busy',
          `another destructive operation is running on ${approved.target}; request #${approved.id} stays approved — dbops starts it when that has finished (or an approver runs \`/db approve ${approved.id}\` again)`,
          about,
        );
      }
      const current = 'request' in started ? started.request : undefined;
      return await audit.refuse(
        ctx,
        'not_pending',
        `request #${approved.id} is already ${current?.status ?? 'handled'}; it runs only once`,
        about,
      );
    }
    this.#deps.changed(started.request, 'running');
    const stopLease = this.#keepLease(approved.id, ctx.log);
    const live = this.#control.begin(approved.id);
    try {
      return await this.#execute(ctx, approved, started.request, spec, target, about, live.run);
    } finally {
      live.end();
      // An outcome waiting in the journal keeps its lease, so no sweep reports the run interrupted.
      if (live.run.delayed) void this.#deps.outcomes.whenRecorded(approved.id).then(stopLease);
      else stopLease();
      this.#deps.onTargetFree?.(approved.target);
    }
  }

  /**
   * The request judged on the current config. A void one (its target is gone or changed environment, or
   * its environment lost its policy) is cancelled by dbops, audited, and answered with the reason.
   */
  async standing(ctx: InvocationContext, request: ApprovalRequest): Promise<Standing | Reply> {
    // Discord roles as any replica last stored them, so every replica (and a restart) judges alike.
    await prepareJudgement(this.#deps.config(), request);
    const judgement = judge(this.#deps.config(), request);
    if (judgement.valid) return judgement;
    const about = {
      requestId: request.id,
      operation: request.operation,
      target: request.target,
      args: request.args,
      risk: request.risk,
    };
    const now = this.#deps.clock();
    const voided = await this.#deps.state.voidRequest(request.id, judgement.reason, now);
    if (voided.ok) {
      await this.#deps.audit.bySystem(voided.request, now, {
        event: 'cancelled',
        outcome: 'void',
        error: judgement.reason,
      });
      this.#deps.changed(voided.request, 'cancelled');
    }
    return await this.#deps.audit.refuse(ctx, 'stale_preview', judgement.reason, about);
  }

  /** The running part of runApproved: the request is `running` and leased to this replica. */
  async #execute(
    ctx: InvocationContext,
    approved: ApprovalRequest,
    running: ApprovalRequest,
    spec: AnyOperation,
    target: ResolvedTarget,
    about: About & { approvers: string[] },
    live: LiveRun,
  ): Promise<Reply> {
    const { state, clock, runner, changed } = this.#deps;
    const args = spec.args.safeParse(approved.args);
    if (!args.success) {
      const done = await state.finishRun(
        approved.id,
        { status: 'failed', error: 'stored arguments no longer validate' },
        clock(),
        runner,
      );
      if (done.ok) changed(done.request, 'failed');
      throw new UserError(
        'invalid_argument',
        `request #${approved.id}: its stored arguments no longer validate`,
      );
    }
    const t0 = Date.now();
    let result: OperationResult;
    try {
      result = await this.step(
        ctx,
        spec,
        target,
        args.data,
        async (op, c) => (op.execute ? await op.execute(c, approved.preview.state) : await runStep(op, c)),
        'execute',
        live,
      );
    } catch (err) {
      const durationMs = Date.now() - t0;
      if (live.controller.signal.aborted) return await this.#stopped(ctx, approved, about, live, durationMs);
      const message = isUserError(err) ? err.message : `internal error, ref ${approved.id}`;
      if (!isUserError(err)) ctx.log.error({ err }, 'internal error');
      const event = isUserError(err)
        ? { outcome: err.code, error: err.message }
        : { outcome: 'internal', error: String(err) };
      const recorded = await this.#record(
        ctx,
        live,
        { status: 'failed', error: message },
        {
          ...about,
          requestId: approved.id,
          durationMs,
          event: 'failed',
          ...event,
        },
      );
      return reply({
        status: isUserError(err) ? statusOfCode(err.code) : 'failed',
        requestId: approved.id,
        ...(recorded.request ? { request: recorded.request } : {}),
        operation: approved.operation,
        target: approved.target,
        risk: approved.risk,
        code: isUserError(err) ? err.code : 'internal',
        message: `${message}${recorded.delayed ? ` ${DELAYED}` : ''}`,
      });
    }
    const durationMs = Date.now() - t0;
    const recorded = await this.#record(
      ctx,
      live,
      { status: 'succeeded', result },
      {
        ...about,
        requestId: approved.id,
        event: 'executed',
        outcome: 'ok',
        durationMs,
      },
    );
    const finished = recorded.request ?? { ...running, status: 'succeeded' as const, result };
    return reply({
      status: 'ok',
      requestId: approved.id,
      operation: approved.operation,
      target: approved.target,
      risk: approved.risk,
      result,
      request: finished,
      message: `#${approved.id} ${approved.command} — approved by ${about.approvers.join(', ')}, done${recorded.delayed ? ` (${DELAYED})` : ''}`,
      text: `${wrapLines(requestLine(finished, clock()), CONSOLE_WIDTH)}\n\n${renderResult(result)}${recorded.delayed ? `\n\nThe operation succeeded. ${DELAYED}` : ''}`,
    });
  }

  async #record(
    ctx: InvocationContext,
    live: LiveRun,
    outcome: RunOutcome,
    event: AuditInput,
  ): Promise<{ request?: ApprovalRequest; delayed: boolean }> {
    return await recordRunEnd(this.#deps, ctx, live, outcome, event);
  }

  /** The end of a run a person stopped: recorded as cancelled with what was and was not done, audited. */
  async #stopped(
    ctx: InvocationContext,
    approved: ApprovalRequest,
    about: About,
    live: LiveRun,
    durationMs: number,
  ): Promise<Reply> {
    const outcome = stoppedOutcome(live, approved.target);
    const recorded = await this.#record(
      ctx,
      live,
      { status: 'cancelled', error: outcome },
      {
        ...about,
        requestId: approved.id,
        event: 'cancelled',
        outcome: 'stopped while running',
        error: outcome,
        durationMs,
        detail: { committed: live.committed, ...(live.by ? { by: live.by.person } : {}) },
      },
    );
    return reply({
      status: 'failed',
      requestId: approved.id,
      ...(recorded.request ? { request: recorded.request } : {}),
      operation: approved.operation,
      target: approved.target,
      risk: approved.risk,
      code: 'cancelled',
      message: `#${approved.id} ${outcome}${recorded.delayed ? ` (${DELAYED})` : ''}`,
    });
  }

  /** Calls an operation step with its context: target connection with the operation's limits applied. */
  async step<R>(
    ctx: InvocationContext,
    spec: AnyOperation,
    target: ResolvedTarget,
    args: Record<string, unknown>,
    step: Step<R>,
    phase: OperationRun['phase'] = 'run',
    live?: LiveRun,
    rowCap?: number,
  ): Promise<R> {
    const context = operationContext({
      spec,
      target,
      targets: this.#deps.targets,
      args,
      now: ctx.now,
      requestId: ctx.requestId !== undefined ? String(ctx.requestId) : ctx.ref,
      backupsDir: this.#deps.config().backupsDir,
      ...(this.#deps.history ? { history: this.#deps.history } : {}),
      // Who asked, for values shown by role (sensitive columns); none means no role.
      ...(ctx.person ? { person: { name: ctx.person.name, roles: [...ctx.person.roles] } } : {}),
      ...(rowCap !== undefined ? { rowCap } : {}),
      files: ctx.inv.attachments ?? [],
      ...(ctx.inv.resultScope ? { resultScope: ctx.inv.resultScope } : {}),
      progress: (line) => {
        if (live) live.lastProgress = line;
        this.#deps.onProgress?.(ctx.requestId ?? ctx.ref, ctx.inv, line);
      },
      ...(live
        ? {
            signal: live.controller.signal,
            committed: () => {
              live.committed += 1;
            },
          }
        : {}),
    });
    const started = performance.now();
    let ok = false;
    try {
      const result = await step(spec, context);
      ok = true;
      return result;
    } finally {
      this.#ranStep({
        operation: spec.name,
        target: target.name,
        phase,
        ok,
        durationMs: performance.now() - started,
      });
    }
  }

  #ranStep(run: OperationRun): void {
    if (!this.#deps.onOperationRun) return;
    try {
      this.#deps.onOperationRun(run);
    } catch (err) {
      this.#deps.log.error({ err }, 'operation run listener failed');
    }
  }
}

export async function runStep(
  spec: AnyOperation,
  context: OperationContext<Record<string, unknown>>,
): Promise<OperationResult> {
  if (!spec.run) throw new Error(`operation ${spec.name} has no run step`);
  return await spec.run(context);
}
