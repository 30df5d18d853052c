// Intake of one invocation: parse, route to a built-in or an operation, find its target, decide by policy.
import { findTarget } from '../config/find-target.js';
import type { Config, ResolvedPerson, ResolvedTarget } from '../config/schema.js';
import { membershipProblems } from '../identity/people.js';
import { reasonProblem, takeReason } from '../identity/reason.js';
import type { StateStore } from '../state/types.js';
import type { Approvals } from './approvals.js';
import { formatCommand, normalizeArgs } from './args.js';
import type { AuditTrail } from './audit.js';
import { builtinHandlers } from './builtins.js';
import { BUILTINS, type Builtin, type Catalog, isBuiltin } from './catalog.js';
import type { CoreServices, InvocationContext } from './context.js';
import { UserError } from './errors.js';
import { bindArguments, parseCommand, type Token } from './grammar.js';
import type { AnyOperation } from './operation.js';
import { ownsLimit, pagesOf, planPage, takePaging } from './paging.js';
import { actionForRisk, decide } from './policy.js';
import type { Reply } from './reply.js';
import type { Runs } from './runs.js';
import { clipInput, closest } from './suggest.js';
import type { Invocation, Risk } from './types.js';

export interface IntakeDeps {
  config: () => Config;
  catalog: Catalog;
  state: StateStore;
  audit: AuditTrail;
  approvals: Approvals;
  runs: Runs;
  /** What built-ins get: the core's services. */
  services: () => CoreServices;
}

export class Intake {
  readonly #deps: IntakeDeps;

  constructor(deps: IntakeDeps) {
    this.#deps = deps;
  }

  get #config(): Config {
    return this.#deps.config();
  }

  async handle(ctx: InvocationContext): Promise<Reply> {
    const { catalog } = this.#deps;
    const parsed = parseCommand(ctx.inv.text);
    const name = parsed.operation;
    if (isBuiltin(name)) {
      if (!ctx.person && name !== 'help') throw unknownPerson(ctx, this.#config);
      // A built-in may change state before (or without) its record: a repeated delivery stops here.
      await this.#deps.audit.claim(ctx);
      return await builtinHandlers[name as Builtin](this.#deps.services(), ctx, parsed.tokens);
    }
    if (!ctx.person) {
      if (!catalog.get(name) && catalog.packsDefining(name).length === 0) throw this.unknownOperation(name);
      throw unknownPerson(ctx, this.#config);
    }
    const global = catalog.get(name);
    if (global) {
      const { target, rest } = await this.resolveTarget(ctx, global, parsed.tokens);
      return await this.runOperation(ctx, global, target, rest);
    }
    // A pack operation exists only on targets that list its pack.
    const probe = catalog.anyPackSpec(name);
    if (!probe) throw this.unknownOperation(name);
    const { target, rest } = await this.resolveTarget(ctx, probe, parsed.tokens);
    const spec = catalog.resolve(name, target);
    if (!spec) {
      const packs = catalog.packsDefining(name);
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
    const guesses = closest(name, [...this.#deps.catalog.allNames(), ...BUILTINS]);
    return new UserError(
      'unknown_operation',
      `unknown operation \`${clipInput(name)}\`${guesses.length > 0 ? ` — did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?` : '.'} Try \`/db help\`.`,
    );
  }

  /** Binds arguments, decides by policy, then runs at once or stores a request for approval. */
  async runOperation(
    ctx: InvocationContext,
    spec: AnyOperation,
    target: ResolvedTarget | undefined,
    rest: readonly Token[],
  ): Promise<Reply> {
    const { reason, rest: operands } = takeReason(rest);
    if (reason !== undefined) ctx.reason = reason;
    const { rest: unpaged, paging } = takePaging(spec, operands);
    const args = bindArguments(spec, unpaged);
    if (spec.preload) await spec.preload();
    const risk: Risk = spec.riskFor ? spec.riskFor(args) : spec.risk;
    const normalized = normalizeArgs(spec, args);
    const command = formatCommand(spec.name, target?.name, spec, args);
    if (!target) throw new UserError('missing_target', `${spec.name} needs a target`);
    const pages = pagesOf(spec) && risk === 'read';
    if (paging && !pages) {
      throw new UserError('invalid_argument', `--page and --limit page through reads; ${command} is not one`);
    }
    const rowCap = { ...target.limits, ...spec.limits }.row_cap;
    // An operation with a `limit` of its own reads one row more than it shows, to know whether to offer
    // the next page; the others offer it when the row cap cut them short (Runs.runNow).
    const page = paging || (pages && ownsLimit(spec)) ? planPage(spec, args, rowCap, paging) : undefined;
    // Each page is audited as what it is: the page and its size with the arguments.
    const about = {
      operation: spec.name,
      target: target.name,
      args: page ? { ...normalized, page: page.page, limit: page.size } : normalized,
      risk,
    };

    const decision = decide({
      person: ctx.person,
      identity: ctx.identity,
      // SQL operations name their own action (sql_read / sql_write): granting `read` never grants SQL.
      action: spec.actionFor?.(args) ?? actionForRisk(risk),
      environment: target.environment,
      policy: this.#config.policy,
    });
    if (!decision.allowed) return await this.#deps.audit.refuse(ctx, 'denied', decision.reason, about);

    if (decision.needsApproval) {
      const missing = reasonProblem(this.#config.policy[target.environment], target.environment, reason);
      if (missing !== undefined)
        return await this.#deps.audit.refuse(ctx, 'invalid_argument', missing, about);
      if (page) {
        return await this.#deps.audit.refuse(
          ctx,
          'invalid_argument',
          `${command} needs approval here, and an approved read answers whole: leave out --page and --limit`,
          about,
        );
      }
      // A request runs its preview before its record: a repeated delivery stops here.
      await this.#deps.audit.claim(ctx);
      return await this.#deps.approvals.request(ctx, spec, target, args, {
        normalized,
        command,
        risk,
        approvalsRequired: decision.approvalsRequired,
      });
    }
    return await this.#deps.runs.runNow(ctx, spec, target, args, { command, risk, about, pages, page });
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
      const named = findTarget(this.#config.targets, first.text);
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
        `unknown target \`${clipInput(first.text)}\`${guesses.length > 0 ? ` — did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?` : '.'} Targets you may use: ${list}.`,
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
    const stored = await this.#deps.state.getBinding(key);
    const name = stored?.target ?? this.#config.channels[key]?.target;
    return findTarget(this.#config.targets, name);
  }

  /** Targets whose environment lets this person read. */
  visibleTargets(person: ResolvedPerson | undefined): ResolvedTarget[] {
    return Object.values(this.#config.targets).filter(
      (t) =>
        decide({
          person,
          identity: '',
          action: 'read',
          environment: t.environment,
          policy: this.#config.policy,
        }).allowed,
    );
  }
}

export function unknownPerson(ctx: InvocationContext, config?: Config): UserError {
  // A group that cannot be read grants nothing: say so, so the refusal names the cause.
  const problems = config ? membershipProblems(config, ctx.identity) : [];
  const source = ctx.identity.startsWith('discord:') ? 'Discord roles' : 'Slack groups';
  const why = problems.length > 0 ? ` (roles from ${source} are unavailable: ${problems.join('; ')})` : '';
  return new UserError(
    'unknown_person',
    `your identity ${ctx.identity} is not in dbops' people list${why}; ask an admin to add it to a person in the config`,
  );
}
