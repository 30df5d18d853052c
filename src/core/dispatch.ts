// The one entry point of the core: an Invocation in, a Reply out; composes intake, approvals, runs, audit.

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { resolvePerson, servicePerson } from '../config/load.js';
import type { Config, ResolvedPerson, ResolvedTarget } from '../config/schema.js';
import type { TargetDb } from '../engine/types.js';
import { keepDiscordRoles } from '../identity/people.js';
import type { ScheduleService } from '../schedules/service.js';
import type { Actor, ApprovalRequest, StateStore } from '../state/types.js';
import { Approvals } from './approvals.js';
import { AuditTrail, RepeatedDelivery, repeated } from './audit.js';
import type { Catalog } from './catalog.js';
import type {
  About,
  AuditInput,
  CoreDeps,
  CoreServices,
  InvocationContext,
  RequestChange,
} from './context.js';
import { isUserError, type UserError } from './errors.js';
import type { Token } from './grammar.js';
import { InFlight } from './in-flight.js';
import { Intake, unknownPerson } from './intake.js';
import type { Standing } from './judgement.js';
import type { AnyOperation } from './operation.js';
import { DurableOutcomes } from './outcomes.js';
import { newRef } from './refs.js';
import { type Reply, reply } from './reply.js';
import { Runs } from './runs.js';
import { IDENTITY_KIND_OF_SURFACE, type Invocation } from './types.js';

export type {
  About,
  AuditInput,
  CoreDeps,
  CoreServices,
  InvocationContext,
  OperationRun,
  RequestChange,
} from './context.js';
export { reply } from './reply.js';
export { clipInput } from './suggest.js';

const DEFAULT_RUN_LEASE_MS = 60_000;

/** What a dispatch arriving during shutdown answers: nothing ran, another replica (or a restart) takes it. */
export const SHUTTING_DOWN_MESSAGE =
  'dbops is shutting down, so nothing was run; send the command again in a moment';

export class Core implements CoreServices {
  readonly catalog: Catalog;
  readonly #deps: CoreDeps;
  readonly #config: Config;
  readonly #clock: () => Date;
  /** Dispatches and expiry sweeps under way, which a graceful shutdown waits for. */
  readonly #work: InFlight;
  #draining = false;

  readonly #runner: string;
  readonly #audit: AuditTrail;
  readonly #outcomes: DurableOutcomes;
  readonly #runs: Runs;
  readonly #approvals: Approvals;
  readonly #intake: Intake;

  constructor(deps: CoreDeps) {
    this.#deps = deps;
    this.#config = deps.config;
    this.catalog = deps.catalog;
    this.#clock = deps.clock ?? (() => new Date());
    this.#work = new InFlight(deps.log);
    this.#runner = deps.runner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    const config = () => this.config;
    const changed = (request: ApprovalRequest, change: RequestChange) => this.changed(request, change);
    this.#audit = new AuditTrail(deps.state, this.#clock, deps.log);
    this.#outcomes = new DurableOutcomes({
      state: deps.state,
      journal: deps.journal,
      log: deps.log,
      changed,
      ...(deps.outcomeRetryDelaysMs ? { retryDelaysMs: deps.outcomeRetryDelaysMs } : {}),
    });
    this.#runs = new Runs({
      config,
      catalog: deps.catalog,
      targets: deps.targets,
      state: deps.state,
      clock: this.#clock,
      log: deps.log,
      audit: this.#audit,
      outcomes: this.#outcomes,
      changed,
      onProgress: deps.onProgress,
      onOperationRun: deps.onOperationRun,
      runner: this.#runner,
      runLeaseMs: deps.runLeaseMs ?? DEFAULT_RUN_LEASE_MS,
      history: deps.history,
      afterReply: (work) => this.#work.later(work),
      onTargetFree: (target) => {
        if (this.#draining) return;
        this.#work
          .track(() => this.#startWaiting(target))
          .catch((err: unknown) =>
            deps.log.warn({ err, target }, 'could not start the next approved request'),
          );
      },
    });
    this.#approvals = new Approvals({
      config,
      state: deps.state,
      clock: this.#clock,
      log: deps.log,
      audit: this.#audit,
      runs: this.#runs,
      actor: (ctx) => this.actor(ctx),
      changed,
    });
    this.#intake = new Intake({
      config,
      catalog: deps.catalog,
      state: deps.state,
      audit: this.#audit,
      approvals: this.#approvals,
      runs: this.#runs,
      services: () => this,
    });
  }

  get config(): Config {
    return this.#config;
  }

  get schedules(): ScheduleService | undefined {
    return this.#deps.schedules;
  }

  /** This replica's name on the runs it leases. */
  get runner(): string {
    return this.#runner;
  }

  get state(): StateStore {
    return this.#deps.state;
  }

  get alerts(): CoreDeps['alerts'] {
    return this.#deps.alerts;
  }

  get history(): CoreDeps['history'] {
    return this.#deps.history;
  }

  /** The database handle of a configured target (nothing is opened until it is used). */
  targetDb(name: string): TargetDb {
    return this.#deps.targets.get(name);
  }

  now(): Date {
    return this.#clock();
  }

  /** Dispatches and expiry sweeps under way right now. */
  get inFlight(): number {
    return this.#work.count;
  }

  /** True once drain() was called: new invocations are answered with SHUTTING_DOWN_MESSAGE. */
  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Graceful shutdown: from now on refuses new invocations (nothing runs, nothing is stored) and waits up
   * to `timeoutMs` for the dispatches under way to finish. Resolves true when none is left, false when
   * the time ran out first. Pending approval requests are untouched: they live in the state database.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    this.#draining = true;
    return await this.#work.idle(timeoutMs);
  }

  /** Resolves when every write made after its reply (closing audit records) has ended. */
  async settled(): Promise<void> {
    // Writes that follow replies go now rather than wait for company (state/group-commit.ts).
    this.#deps.state.hurry?.();
    await this.#work.settled();
  }

  async dispatch(inv: Invocation): Promise<Reply> {
    const started = performance.now();
    let answer: Reply;
    if (this.#draining) {
      this.#deps.log.info({ surface: inv.surface, identity: inv.identity }, 'command refused: shutting down');
      answer = reply({
        status: 'failed',
        requestId: null,
        code: 'shutting_down',
        message: SHUTTING_DOWN_MESSAGE,
        ephemeral: true,
      });
    } else {
      answer = await this.#work.track(() => this.#dispatch(inv));
    }
    if (this.#deps.onDispatched) {
      try {
        this.#deps.onDispatched(inv, answer, performance.now() - started);
      } catch (err) {
        this.#deps.log.error({ err }, 'dispatch listener failed');
      }
    }
    return answer;
  }

  async #dispatch(inv: Invocation): Promise<Reply> {
    const started = Date.now();
    const kind = IDENTITY_KIND_OF_SURFACE[inv.surface];
    const scheduled = inv.surface === 'schedule';
    const identity = scheduled ? `service:${inv.identity}` : `${kind}:${inv.identity}`;
    // Only an approval request takes a number (Approvals.request); every invocation gets a reference.
    const ref = newRef();
    // Discord: the payload's roles are stored (from a DM, loaded) before anything is decided on them.
    const unkept = await keepDiscordRoles(this.config, inv);
    // A scheduled run names its service person; no identity on any surface resolves to a service person.
    const person = scheduled
      ? servicePerson(this.config, inv.identity)
      : resolvePerson(this.config, kind, inv.identity);
    const ctx: InvocationContext = {
      inv,
      ref,
      now: this.#clock(),
      person,
      identity,
      log: this.#deps.log.child({ ref, person: person?.name ?? null, identity, surface: inv.surface }),
      ...(inv.delivery !== undefined ? { delivery: { key: inv.delivery, state: 'unclaimed' as const } } : {}),
    };
    try {
      if (unkept) {
        ctx.log.error({ err: unkept.cause }, 'could not store or load the Discord roles of the user');
        throw unkept.error;
      }
      const answer = await this.#intake.handle(ctx);
      // A path that wrote no record (or whose record could not be written) claims its delivery now.
      if (ctx.delivery?.state === 'unclaimed') {
        await this.#audit.claim(ctx).catch((err: unknown) => {
          if (err instanceof RepeatedDelivery) throw err;
          ctx.log.warn({ err, delivery: ctx.delivery?.key }, 'could not record the delivery');
        });
      }
      return ctx.delivery?.state === 'repeat' ? repeated(ctx) : answer;
    } catch (err) {
      if (err instanceof RepeatedDelivery || ctx.delivery?.state === 'repeat') return repeated(ctx);
      if (isUserError(err)) return await this.fail(ctx, err, {});
      ctx.log.error({ err }, 'internal error');
      await this.audit(ctx, { event: 'failed', outcome: 'internal error', error: String(err) }).catch(
        () => {},
      );
      return reply({
        status: 'failed',
        requestId: ctx.requestId ?? null,
        ref,
        code: 'internal',
        message: `internal error, ref ${ref}`,
      });
    } finally {
      ctx.log.debug({ ms: Date.now() - started }, 'invocation handled');
    }
  }

  unknownOperation(name: string): UserError {
    return this.#intake.unknownOperation(name);
  }

  /** Binds arguments, decides by policy, then runs at once or stores a request for approval. */
  async runOperation(
    ctx: InvocationContext,
    spec: AnyOperation,
    target: ResolvedTarget | undefined,
    rest: readonly Token[],
  ): Promise<Reply> {
    return await this.#intake.runOperation(ctx, spec, target, rest);
  }

  /** First word is the target when it names one; otherwise the channel's bound target, if any. */
  async resolveTarget(
    ctx: InvocationContext,
    spec: AnyOperation,
    tokens: readonly Token[],
  ): Promise<{ target: ResolvedTarget | undefined; rest: Token[] }> {
    return await this.#intake.resolveTarget(ctx, spec, tokens);
  }

  /** The key a channel is bound under: "slack:C0INCIDENT". */
  channelKey(inv: Invocation): string | undefined {
    return this.#intake.channelKey(inv);
  }

  /** A binding made with `/db bind` wins over the config file's `channels`. */
  async boundTarget(inv: Invocation): Promise<ResolvedTarget | undefined> {
    return await this.#intake.boundTarget(inv);
  }

  /** Targets whose environment lets this person read. */
  visibleTargets(person: ResolvedPerson | undefined): ResolvedTarget[] {
    return this.#intake.visibleTargets(person);
  }

  async standing(ctx: InvocationContext, request: ApprovalRequest): Promise<Standing | Reply> {
    return await this.#runs.standing(ctx, request);
  }

  stopRun(id: number, by: Actor): boolean {
    return this.#runs.stop(id, by);
  }

  /** Runs an approved request exactly once (see Runs.runApproved). */
  async runApproved(
    ctx: InvocationContext,
    approved: ApprovalRequest,
    options: { audited?: boolean } = {},
  ): Promise<Reply> {
    return await this.#runs.runApproved(ctx, approved, options);
  }

  actor(ctx: InvocationContext): Actor {
    if (!ctx.person) throw this.unknownPerson(ctx);
    return { person: ctx.person.name, identity: ctx.identity, surface: ctx.inv.surface };
  }

  unknownPerson(ctx: InvocationContext): UserError {
    return unknownPerson(ctx);
  }

  changed(request: ApprovalRequest, change: RequestChange): void {
    try {
      this.#deps.onRequestChange?.(request, change);
    } catch (err) {
      this.#deps.log.error({ err, requestId: request.id }, 'request change listener failed');
    }
  }

  /** Writes the audit record (state database) and logs it as one line. Throws when the write fails. */
  async audit(ctx: InvocationContext, event: AuditInput): Promise<void> {
    await this.#audit.record(ctx, event);
  }

  /** Like audit(), but a failed write becomes a user-facing error: nothing runs without its record. */
  async auditOrStop(ctx: InvocationContext, event: AuditInput | readonly AuditInput[]): Promise<void> {
    await this.#audit.orStop(ctx, event);
  }

  /** A refusal: audited, ephemeral, with the reason. */
  async refuse(
    ctx: InvocationContext,
    code: UserError['code'],
    message: string,
    about: About = {},
  ): Promise<Reply> {
    return await this.#audit.refuse(ctx, code, message, about);
  }

  /** Turns any error into a reply: user errors plainly, anything else as "internal error, ref <id>". */
  async fail(ctx: InvocationContext, err: unknown, about: About): Promise<Reply> {
    return await this.#audit.fail(ctx, err, about);
  }

  /**
   * Starts approved requests whose run could not start because their target was busy, one per target,
   * as dbops itself (the periodic sweep calls this; so does the end of every run this replica did).
   */
  async startWaitingRuns(): Promise<void> {
    if (this.#draining) return;
    await this.#work.track(async () => {
      const waiting = await this.state.listRequests({ statuses: ['approved'], limit: 200 });
      for (const target of new Set(waiting.map((r) => r.target))) await this.#startWaiting(target);
    });
  }

  async #startWaiting(target: string): Promise<void> {
    const waiting = (await this.state.listRequests({ statuses: ['approved'], target, limit: 50 })).reverse();
    for (const request of waiting) {
      const answer = await this.#runs.runApproved(this.#systemContext(request), request);
      // Another run holds the target: its end starts the next one.
      if (answer.code === 'target_busy' || answer.status === 'ok' || answer.status === 'failed') return;
    }
  }

  /** The context of something dbops does by itself about a request (audited as identity `dbops`). */
  #systemContext(request: ApprovalRequest): InvocationContext {
    return {
      inv: {
        surface: request.requester.surface,
        identity: 'dbops',
        text: `approve ${request.id}`,
        ...(request.channel !== undefined ? { channel: request.channel } : {}),
        ...(request.thread !== undefined ? { thread: request.thread } : {}),
      },
      ref: newRef(),
      requestId: request.id,
      now: this.#clock(),
      person: undefined,
      identity: 'dbops',
      log: this.#deps.log.child({ requestId: request.id, identity: 'dbops' }),
    };
  }

  /** Expires pending requests past their time, exactly once across replicas, and audits each. */
  async sweepExpired(): Promise<ApprovalRequest[]> {
    // While shutting down, expiry is left to the other replicas (or the next start): it is idempotent.
    if (this.#draining) return [];
    return await this.#work.track(async () => {
      // Outcomes journaled here first: a run whose outcome waited locally is never reported interrupted.
      await this.replayJournal();
      return await this.#approvals.sweep();
    });
  }

  /**
   * Records the outcomes this dbops (or one that stopped before) journaled while the state database was
   * unreachable; returns how many entries were applied. Failures are logged and retried later.
   */
  async replayJournal(): Promise<number> {
    return await this.#outcomes.replay().catch((err: unknown) => {
      this.#deps.log.warn({ err }, 'journal replay failed');
      return 0;
    });
  }

  /** Stops retrying journaled outcomes (shutdown); what is left is replayed by the next start. */
  stopJournal(): void {
    this.#outcomes.stop();
  }
}
