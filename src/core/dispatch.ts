// The one entry point of the core: an Invocation in, a Reply out — parsing, policy, approvals, audit.

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { resolvePerson } from '../config/load.js';
import type { Config, ResolvedPerson, ResolvedTarget } from '../config/schema.js';
import type { TargetDb } from '../engine/types.js';
import type { Actor, ApprovalRequest, AuditEvent, RunLease, StateStore } from '../state/types.js';
import { formatCommand, normalizeArgs } from './args.js';
import { builtinHandlers } from './builtins.js';
import { BUILTINS, type Builtin, type Catalog, isBuiltin } from './catalog.js';
import { formatDuration } from './duration.js';
import { isUserError, UserError } from './errors.js';
import { bindArguments, parseCommand, type Token } from './grammar.js';
import type { Logger } from './log.js';
import type { AnyOperation, OperationContext, Preview } from './operation.js';
import { operationContext } from './operation-context.js';
import { actionForRisk, decide } from './policy.js';
import { renderResult } from './render.js';
import { type Reply, type ReplyStatus, statusOfCode } from './reply.js';
import { requestCard, requestLine } from './reply-text.js';
import { closest } from './suggest.js';
import { IDENTITY_KIND_OF_SURFACE, type Invocation, type OperationResult, type Risk } from './types.js';

/** What changed on an approval request, for adapters that keep cards and threads up to date. */
export type RequestChange =
  | 'created'
  | 'voted'
  | 'approved'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'denied'
  | 'cancelled'
  | 'expired';

export interface CoreDeps {
  config: Config;
  catalog: Catalog;
  targets: { get(name: string): TargetDb };
  state: StateStore;
  log: Logger;
  clock?: () => Date;
  /** Called after every transition of an approval request (after it is stored). */
  onRequestChange?: (request: ApprovalRequest, change: RequestChange) => void;
  /** Progress lines of long operations, for the request's thread. */
  onProgress?: (requestId: number, invocation: Invocation, line: string) => void;
  /** Called once per dispatch with its reply and the time from entering dispatch to the reply (metrics). */
  onDispatched?: (invocation: Invocation, reply: Reply, durationMs: number) => void;
  /** Called after each step an operation ran against its target (metrics). */
  onOperationRun?: (run: OperationRun) => void;
  /**
   * How long an approved run is leased to this replica before it must renew (renewed every third of it);
   * a run whose lease ran out is reported interrupted by whichever replica sweeps next. Default 60 s.
   */
  runLeaseMs?: number;
  /** This replica's name on the runs it leases (default: host, pid and a random part). */
  runner?: string;
}

const DEFAULT_RUN_LEASE_MS = 60_000;

/** One step of an operation against its target: a direct run, an approval preview, or an approved execution. */
export interface OperationRun {
  operation: string;
  target: string;
  phase: 'run' | 'preview' | 'execute';
  ok: boolean;
  durationMs: number;
}

/** What a dispatch arriving during shutdown answers: nothing ran, another replica (or a restart) takes it. */
export const SHUTTING_DOWN_MESSAGE =
  'dbops is shutting down, so nothing was run; send the command again in a moment';

/** What an audit record or reply says about the operation concerned (undefined fields are left out). */
export interface About {
  requestId?: number | undefined;
  operation?: string | undefined;
  target?: string | undefined;
  args?: Record<string, unknown> | undefined;
  risk?: Risk | undefined;
  approvers?: string[] | undefined;
  durationMs?: number | undefined;
}

export interface AuditInput extends About {
  event: AuditEvent['event'];
  outcome: string;
  error?: string | undefined;
  detail?: Record<string, unknown> | undefined;
}

/** Everything known about one invocation while it is handled. */
export interface InvocationContext {
  inv: Invocation;
  requestId: number;
  now: Date;
  person: ResolvedPerson | undefined;
  /** "slack:T01/U01" — the identity as audited. */
  identity: string;
  log: Logger;
}

export class Core {
  readonly config: Config;
  readonly catalog: Catalog;
  readonly #deps: CoreDeps;
  readonly #clock: () => Date;
  /** Dispatches and expiry sweeps under way, which a graceful shutdown waits for. */
  #inFlight = 0;
  #draining = false;
  readonly #whenIdle = new Set<() => void>();

  readonly #runner: string;
  readonly #runLeaseMs: number;

  constructor(deps: CoreDeps) {
    this.#deps = deps;
    this.config = deps.config;
    this.catalog = deps.catalog;
    this.#clock = deps.clock ?? (() => new Date());
    this.#runner = deps.runner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.#runLeaseMs = deps.runLeaseMs ?? DEFAULT_RUN_LEASE_MS;
  }

  /** This replica's name on the runs it leases. */
  get runner(): string {
    return this.#runner;
  }

  #lease(): RunLease {
    return { runner: this.#runner, until: new Date(this.#clock().getTime() + this.#runLeaseMs) };
  }

  /**
   * Renews the lease of a running request every third of its length until the returned stop is called;
   * a renewal that fails (state database away, or the run was reported interrupted) is logged.
   */
  #keepLease(id: number, log: Logger): () => void {
    const timer = setInterval(
      () => {
        this.state.renewLease(id, this.#lease()).then(
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
      Math.max(1, Math.floor(this.#runLeaseMs / 3)),
    );
    timer.unref();
    return () => clearInterval(timer);
  }

  get state(): StateStore {
    return this.#deps.state;
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
    return this.#inFlight;
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
    if (this.#inFlight === 0) return true;
    return await new Promise<boolean>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.#whenIdle.delete(done);
        resolve(false);
      }, timeoutMs);
      this.#whenIdle.add(done);
    });
  }

  async #tracked<T>(work: () => Promise<T>): Promise<T> {
    this.#inFlight += 1;
    try {
      return await work();
    } finally {
      this.#inFlight -= 1;
      if (this.#inFlight === 0) {
        for (const notify of [...this.#whenIdle]) notify();
        this.#whenIdle.clear();
      }
    }
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
      answer = await this.#tracked(() => this.#dispatch(inv));
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
    const identity = `${kind}:${inv.identity}`;
    let requestId: number;
    try {
      requestId = await this.#deps.state.nextRequestId();
    } catch (err) {
      this.#deps.log.error({ err, identity }, 'state database unreachable');
      return reply({
        status: 'failed',
        requestId: null,
        code: 'state_unavailable',
        message: 'the state database is unreachable, so nothing was run; try again shortly',
      });
    }
    const person = resolvePerson(this.config, kind, inv.identity);
    const ctx: InvocationContext = {
      inv,
      requestId,
      now: this.#clock(),
      person,
      identity,
      log: this.#deps.log.child({ requestId, person: person?.name ?? null, identity, surface: inv.surface }),
    };
    try {
      return await this.#handle(ctx);
    } catch (err) {
      if (isUserError(err)) return await this.fail(ctx, err, {});
      ctx.log.error({ err }, 'internal error');
      await this.audit(ctx, { event: 'failed', outcome: 'internal error', error: String(err) }).catch(
        () => {},
      );
      return reply({
        status: 'failed',
        requestId,
        code: 'internal',
        message: `internal error, ref ${requestId}`,
      });
    } finally {
      ctx.log.debug({ ms: Date.now() - started }, 'invocation handled');
    }
  }

  async #handle(ctx: InvocationContext): Promise<Reply> {
    const parsed = parseCommand(ctx.inv.text);
    const name = parsed.operation;
    if (isBuiltin(name)) {
      if (!ctx.person && name !== 'help') throw this.unknownPerson(ctx);
      return await builtinHandlers[name as Builtin](this, ctx, parsed.tokens);
    }
    if (!ctx.person) {
      if (!this.catalog.get(name) && this.catalog.packsDefining(name).length === 0)
        throw this.unknownOperation(name);
      throw this.unknownPerson(ctx);
    }
    const global = this.catalog.get(name);
    if (global) {
      const { target, rest } = await this.resolveTarget(ctx, global, parsed.tokens);
      return await this.runOperation(ctx, global, target, rest);
    }
    // A pack operation exists only on targets that list its pack.
    const probe = this.catalog.anyPackSpec(name);
    if (!probe) throw this.unknownOperation(name);
    const { target, rest } = await this.resolveTarget(ctx, probe, parsed.tokens);
    const spec = this.catalog.resolve(name, target);
    if (!spec) {
      const packs = this.catalog.packsDefining(name);
      const having = this.visibleTargets(ctx.person)
        .filter((t) => t.packs.some((p) => packs.includes(p)))
        .map((t) => t.name);
      throw new UserError(
        'unknown_operation',
        `\`${name}\` comes from the ${packs.join(' / ')} pack, which ${target?.name ?? 'this target'} does not have${having.length > 0 ? `; targets with it: ${having.join(', ')}` : ''}`,
      );
    }
    return await this.runOperation(ctx, spec, target, rest);
  }

  unknownOperation(name: string): UserError {
    const guesses = closest(name, [...this.catalog.allNames(), ...BUILTINS]);
    return new UserError(
      'unknown_operation',
      `unknown operation \`${clipInput(name)}\`${guesses.length > 0 ? ` — did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?` : ''} Try \`/db help\`.`,
    );
  }

  /** Binds arguments, decides by policy, then runs at once or stores a request for approval. */
  async runOperation(
    ctx: InvocationContext,
    spec: AnyOperation,
    target: ResolvedTarget | undefined,
    rest: readonly Token[],
  ): Promise<Reply> {
    const args = bindArguments(spec, rest);
    const risk: Risk = spec.riskFor ? spec.riskFor(args) : spec.risk;
    const normalized = normalizeArgs(spec, args);
    const command = formatCommand(spec.name, target?.name, spec, args);
    const about = { operation: spec.name, target: target?.name, args: normalized, risk };
    if (!target) throw new UserError('missing_target', `${spec.name} needs a target`);

    const decision = decide({
      person: ctx.person,
      identity: ctx.identity,
      action: actionForRisk(risk),
      environment: target.environment,
      policy: this.config.policy,
    });
    if (!decision.allowed) return await this.refuse(ctx, 'denied', decision.reason, about);

    if (decision.needsApproval) {
      return await this.#requestApproval(ctx, spec, target, args, {
        normalized,
        command,
        risk,
        approvalsRequired: decision.approvalsRequired,
      });
    }
    // Nothing runs unless its audit record is written first.
    await this.auditOrStop(ctx, { event: 'requested', outcome: 'running', ...about });
    const started = Date.now();
    try {
      const result = await this.#run(ctx, spec, target, args, (op, c) => runStep(op, c));
      const durationMs = Date.now() - started;
      await this.audit(ctx, { event: 'executed', outcome: 'ok', durationMs, ...about }).catch(
        (err: unknown) => ctx.log.error({ err }, 'audit write failed after the operation ran'),
      );
      return reply({
        status: 'ok',
        requestId: ctx.requestId,
        operation: spec.name,
        target: target.name,
        risk,
        result,
        message: `${command} — done in ${formatDuration(durationMs / 1000)}`,
        text: `${renderResult(result)}\n(${command} · #${ctx.requestId} · ${formatDuration(durationMs / 1000)})`,
      });
    } catch (err) {
      const durationMs = Date.now() - started;
      return await this.fail(ctx, err, { ...about, durationMs });
    }
  }

  /** First word is the target when it names one; otherwise the channel's bound target, if any. */
  async resolveTarget(
    ctx: InvocationContext,
    spec: AnyOperation,
    tokens: readonly Token[],
  ): Promise<{ target: ResolvedTarget | undefined; rest: Token[] }> {
    if (spec.needsTarget === false) return { target: undefined, rest: [...tokens] };
    const firstWordAt = tokens.findIndex((t) => t.kind === 'word');
    const first = firstWordAt >= 0 ? tokens[firstWordAt] : undefined;
    if (first?.kind === 'word') {
      const named = this.config.targets[first.text];
      if (named) return { target: named, rest: tokens.filter((_, i) => i !== firstWordAt) };
    }
    const bound = await this.boundTarget(ctx.inv);
    if (bound) return { target: bound, rest: [...tokens] };
    const words = tokens.filter((t) => t.kind === 'word').length;
    const visible = this.visibleTargets(ctx.person).map((t) => t.name);
    const list = visible.length > 0 ? visible.join(', ') : 'none — ask an admin for access';
    if (first?.kind === 'word' && words > (spec.positionals?.length ?? 0)) {
      const guesses = closest(first.text, visible);
      throw new UserError(
        'unknown_target',
        `unknown target \`${clipInput(first.text)}\`${guesses.length > 0 ? ` — did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?` : ''} Targets you may use: ${list}.`,
      );
    }
    throw new UserError(
      'missing_target',
      `which target? usage: /db ${spec.usage}. Targets you may use: ${list}.`,
    );
  }

  /** The key a channel is bound under: "slack:C0INCIDENT". */
  channelKey(inv: Invocation): string | undefined {
    if (!inv.channel) return undefined;
    return inv.channel.includes(':') ? inv.channel : `${inv.surface}:${inv.channel}`;
  }

  /** A binding made with `/db bind` wins over the config file's `channels`. */
  async boundTarget(inv: Invocation): Promise<ResolvedTarget | undefined> {
    const key = this.channelKey(inv);
    if (!key) return undefined;
    const stored = await this.state.getBinding(key);
    const name = stored?.target ?? this.config.channels[key]?.target;
    return name ? this.config.targets[name] : undefined;
  }

  /** Targets whose environment lets this person read. */
  visibleTargets(person: ResolvedPerson | undefined): ResolvedTarget[] {
    return Object.values(this.config.targets).filter(
      (t) =>
        decide({
          person,
          identity: '',
          action: 'read',
          environment: t.environment,
          policy: this.config.policy,
        }).allowed,
    );
  }

  async #requestApproval(
    ctx: InvocationContext,
    spec: AnyOperation,
    target: ResolvedTarget,
    args: Record<string, unknown>,
    info: { normalized: Record<string, unknown>; command: string; risk: Risk; approvalsRequired: number },
  ): Promise<Reply> {
    const about = { operation: spec.name, target: target.name, args: info.normalized, risk: info.risk };
    let preview: Preview;
    try {
      preview = await this.#run(
        ctx,
        spec,
        target,
        args,
        async (op, c) => (op.preview ? await op.preview(c) : plannedPreview(info.command)),
        'preview',
      );
    } catch (err) {
      return await this.fail(ctx, err, about);
    }
    if (preview.empty) {
      await this.audit(ctx, { event: 'executed', outcome: 'nothing to do', ...about }).catch(() => {});
      return reply({
        status: 'ok',
        requestId: ctx.requestId,
        operation: spec.name,
        target: target.name,
        risk: info.risk,
        result: preview.result,
        message: `${info.command}: nothing to do, so no approval was requested`,
        text: `${renderResult(preview.result)}\nNothing to do, so no approval was requested.`,
      });
    }
    const rules = this.config.policy[target.environment];
    const expirySeconds = rules?.expiry ?? this.config.state.expirySeconds;
    const actor = this.actor(ctx);
    await this.auditOrStop(ctx, { event: 'pending', outcome: 'awaiting approval', ...about });
    const request = await this.state.createRequest({
      id: ctx.requestId,
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
    });
    this.changed(request, 'created');
    return reply({
      status: 'pending',
      requestId: request.id,
      operation: spec.name,
      target: target.name,
      risk: info.risk,
      result: preview.result,
      request,
      message: `request #${request.id} (${info.command}) waits for approval`,
      text: requestCard(request, ctx.now, rules?.approve ?? []),
    });
  }

  /**
   * Runs an approved request exactly once: compare-and-set approved → running, execute with the stored
   * arguments and preview facts, then running → succeeded | failed.
   */
  async runApproved(ctx: InvocationContext, approved: ApprovalRequest): Promise<Reply> {
    const about = {
      operation: approved.operation,
      target: approved.target,
      args: approved.args,
      risk: approved.risk,
      approvers: approved.votes.filter((v) => v.vote === 'approve').map((v) => v.person),
    };
    const target = this.config.targets[approved.target];
    const spec = this.catalog.resolve(approved.operation, target);
    if (!spec || !target) {
      throw new UserError(
        'not_found',
        `request #${approved.id} names ${spec ? `target ${approved.target}` : `operation ${approved.operation}`}, which this dbops no longer has`,
      );
    }
    const started = await this.state.startRun(approved.id, this.#clock(), this.#lease());
    if (!started.ok) {
      if (started.code === 'target_busy') {
        return await this.refuse(
          ctx,
          'target_busy',
          `another destructive operation is running on ${approved.target}; request #${approved.id} stays approved — run \`/db approve ${approved.id}\` again when it has finished`,
          about,
        );
      }
      const current = 'request' in started ? started.request : undefined;
      return await this.refuse(
        ctx,
        'not_pending',
        `request #${approved.id} is already ${current?.status ?? 'handled'}; it runs only once`,
        about,
      );
    }
    this.changed(started.request, 'running');
    const stopLease = this.#keepLease(approved.id, ctx.log);
    try {
      return await this.#execute(ctx, approved, started.request, spec, target, about);
    } finally {
      stopLease();
    }
  }

  /** The running part of runApproved: the request is `running` and leased to this replica. */
  async #execute(
    ctx: InvocationContext,
    approved: ApprovalRequest,
    running: ApprovalRequest,
    spec: AnyOperation,
    target: ResolvedTarget,
    about: About & { approvers: string[] },
  ): Promise<Reply> {
    const args = spec.args.safeParse(approved.args);
    if (!args.success) {
      const done = await this.state.finishRun(
        approved.id,
        { status: 'failed', error: 'stored arguments no longer validate' },
        this.#clock(),
        this.#runner,
      );
      if (done.ok) this.changed(done.request, 'failed');
      throw new UserError(
        'invalid_argument',
        `request #${approved.id}: its stored arguments no longer validate`,
      );
    }
    const t0 = Date.now();
    try {
      const result = await this.#run(
        ctx,
        spec,
        target,
        args.data,
        async (op, c) => (op.execute ? await op.execute(c, approved.preview.state) : await runStep(op, c)),
        'execute',
      );
      const durationMs = Date.now() - t0;
      const done = await this.state.finishRun(
        approved.id,
        { status: 'succeeded', result },
        this.#clock(),
        this.#runner,
      );
      await this.audit(ctx, {
        event: 'executed',
        outcome: 'ok',
        durationMs,
        ...about,
        requestId: approved.id,
      }).catch((err: unknown) => ctx.log.error({ err }, 'audit write failed after the operation ran'));
      if (!done.ok)
        ctx.log.warn({ requestId: approved.id }, 'the run finished but its request could not be updated');
      const finished = done.ok ? done.request : running;
      if (done.ok) this.changed(done.request, 'succeeded');
      return reply({
        status: 'ok',
        requestId: approved.id,
        operation: approved.operation,
        target: approved.target,
        risk: approved.risk,
        result,
        request: finished,
        message: `#${approved.id} ${approved.command} — approved by ${about.approvers.join(', ')}, done`,
        text: `${requestLine(finished, this.#clock())}\n\n${renderResult(result)}`,
      });
    } catch (err) {
      const durationMs = Date.now() - t0;
      const message = isUserError(err) ? err.message : `internal error, ref ${approved.id}`;
      const done = await this.state.finishRun(
        approved.id,
        { status: 'failed', error: message },
        this.#clock(),
        this.#runner,
      );
      if (done.ok) this.changed(done.request, 'failed');
      return await this.fail(ctx, err, { ...about, durationMs, requestId: approved.id });
    }
  }

  /** Calls an operation step with its context: target connection with the operation's limits applied. */
  async #run<R>(
    ctx: InvocationContext,
    spec: AnyOperation,
    target: ResolvedTarget,
    args: Record<string, unknown>,
    step: (spec: AnyOperation, context: OperationContext<Record<string, unknown>>) => Promise<R>,
    phase: OperationRun['phase'] = 'run',
  ): Promise<R> {
    const context = operationContext({
      spec,
      target,
      targets: this.#deps.targets,
      args,
      now: ctx.now,
      requestId: String(ctx.requestId),
      backupsDir: this.config.backupsDir,
      progress: (line) => this.#deps.onProgress?.(ctx.requestId, ctx.inv, line),
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

  actor(ctx: InvocationContext): Actor {
    if (!ctx.person) throw this.unknownPerson(ctx);
    return { person: ctx.person.name, identity: ctx.identity, surface: ctx.inv.surface };
  }

  unknownPerson(ctx: InvocationContext): UserError {
    return new UserError(
      'unknown_person',
      `your identity ${ctx.identity} is not in dbops' people list; ask an admin to add it to a person in the config`,
    );
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
    // A record about an earlier request (a vote on #7) keeps this invocation's own id as its ref.
    const detail =
      event.requestId !== undefined && event.requestId !== ctx.requestId
        ? { ...event.detail, invocation: ctx.requestId }
        : event.detail;
    const record: AuditEvent = {
      ...(withoutUndefined({ ...event, detail }) as Omit<
        AuditEvent,
        'requestId' | 'person' | 'identity' | 'surface'
      >),
      requestId: event.requestId ?? ctx.requestId,
      person: ctx.person?.name ?? null,
      identity: ctx.identity,
      surface: ctx.inv.surface,
      ...(ctx.inv.channel !== undefined ? { channel: ctx.inv.channel } : {}),
      ...(ctx.inv.thread !== undefined ? { thread: ctx.inv.thread } : {}),
    };
    await this.state.audit(record, this.#clock());
    ctx.log.info({ audit: record }, 'audit');
  }

  /** Like audit(), but a failed write becomes a user-facing error: nothing runs without its record. */
  async auditOrStop(ctx: InvocationContext, event: AuditInput): Promise<void> {
    try {
      await this.audit(ctx, event);
    } catch (err) {
      ctx.log.error({ err }, 'audit write failed; refusing to run');
      throw new UserError(
        'state_unavailable',
        'the audit log cannot be written right now, so nothing was run; try again shortly',
      );
    }
  }

  /** A refusal: audited, ephemeral, with the reason. */
  async refuse(
    ctx: InvocationContext,
    code: UserError['code'],
    message: string,
    about: About = {},
  ): Promise<Reply> {
    await this.audit(ctx, { ...about, event: 'refused', outcome: code, error: message }).catch(
      (err: unknown) => ctx.log.error({ err }, 'audit write failed for a refusal'),
    );
    return reply({
      status: statusOfCode(code),
      requestId: ctx.requestId,
      ...replyAbout(about),
      code,
      message,
    });
  }

  /** Turns any error into a reply: user errors plainly, anything else as "internal error, ref <id>". */
  async fail(ctx: InvocationContext, err: unknown, about: About): Promise<Reply> {
    if (!isUserError(err)) {
      ctx.log.error({ err }, 'internal error');
      await this.audit(ctx, { ...about, event: 'failed', outcome: 'internal', error: String(err) }).catch(
        () => {},
      );
      return reply({
        status: 'failed',
        requestId: ctx.requestId,
        ...replyAbout(about),
        code: 'internal',
        message: `internal error, ref ${ctx.requestId}`,
      });
    }
    const status = statusOfCode(err.code);
    const event = status === 'invalid' ? 'invalid' : status === 'refused' ? 'refused' : 'failed';
    await this.audit(ctx, { ...about, event, outcome: err.code, error: err.message }).catch(
      (auditErr: unknown) => ctx.log.error({ err: auditErr }, 'audit write failed for an error'),
    );
    return reply({
      status,
      requestId: ctx.requestId,
      ...replyAbout(about),
      code: err.code,
      message: err.message,
    });
  }

  /** Expires pending requests past their time, exactly once across replicas, and audits each. */
  async sweepExpired(): Promise<ApprovalRequest[]> {
    // While shutting down, expiry is left to the other replicas (or the next start): it is idempotent.
    if (this.#draining) return [];
    return await this.#tracked(() => this.#sweepExpired());
  }

  async #sweepExpired(): Promise<ApprovalRequest[]> {
    const now = this.#clock();
    for (const request of await this.state.interruptAbandoned(now)) {
      this.#deps.log.warn(
        { requestId: request.id, runner: request.runner, target: request.target },
        'a running request was left behind by a replica that stopped; reported interrupted',
      );
      await this.#auditSwept(request, now, {
        event: 'interrupted',
        outcome: 'unknown',
        approvers: request.votes.filter((v) => v.vote === 'approve').map((v) => v.person),
        ...(request.error ? { error: request.error } : {}),
        ...(request.runner ? { detail: { runner: request.runner } } : {}),
      });
      this.changed(request, 'failed');
    }
    const expired = await this.state.expireDue(now);
    for (const request of expired) {
      await this.#auditSwept(request, now, { event: 'expired', outcome: 'expired' });
      this.changed(request, 'expired');
    }
    return expired;
  }

  /**
   * The audit record of a request the sweep changed (expired, or interrupted because its replica died:
   * its lease ran out), written by dbops itself; a failed write is logged, the change stands.
   */
  async #auditSwept(
    request: ApprovalRequest,
    now: Date,
    what: Pick<AuditEvent, 'event' | 'outcome' | 'approvers' | 'error' | 'detail'>,
  ): Promise<void> {
    await this.state
      .audit(
        {
          requestId: request.id,
          person: null,
          identity: 'dbops',
          surface: request.requester.surface,
          operation: request.operation,
          target: request.target,
          args: request.args,
          risk: request.risk,
          ...what,
        },
        now,
      )
      .catch((err: unknown) =>
        this.#deps.log.error(
          { err, requestId: request.id },
          `audit write failed for a swept request (${what.event})`,
        ),
      );
  }
}

async function runStep(
  spec: AnyOperation,
  context: OperationContext<Record<string, unknown>>,
): Promise<OperationResult> {
  if (!spec.run) throw new Error(`operation ${spec.name} has no run step`);
  return await spec.run(context);
}

/** A write operation waiting for approval shows what will run. */
function plannedPreview(command: string): Preview {
  return {
    result: { headline: `Will run: ${command}`, columns: [], rows: [], truncated: false },
    state: null,
  };
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

function replyAbout(about: About): Pick<Reply, 'operation' | 'target' | 'risk'> {
  return withoutUndefined({ operation: about.operation, target: about.target, risk: about.risk }) as Pick<
    Reply,
    'operation' | 'target' | 'risk'
  >;
}

/** Keeps echoed user input short. */
export function clipInput(text: string): string {
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}

/** Builds a Reply; text defaults to a marked message for refusals and errors. */
export function reply(r: Omit<Reply, 'text' | 'ephemeral'> & { text?: string; ephemeral?: boolean }): Reply {
  const ephemeral = r.ephemeral ?? (r.status === 'refused' || r.status === 'invalid');
  const mark: Record<ReplyStatus, string> = {
    ok: '',
    pending: '',
    refused: 'Refused: ',
    invalid: 'Invalid: ',
    failed: 'Failed: ',
  };
  const suffix = r.requestId !== null && r.status !== 'ok' ? ` (#${r.requestId})` : '';
  const text = r.text ?? `${mark[r.status]}${r.message}${suffix}`;
  return { ...r, text, ephemeral };
}
