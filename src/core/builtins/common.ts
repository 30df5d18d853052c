// What the built-in commands share: their handler type, argument helpers, and loading a request.
import type { ApprovalRequest, TransitionRefusal } from '../../state/types.js';
import type { CoreServices, InvocationContext } from '../context.js';
import { UserError } from '../errors.js';
import type { ParsedCommand, Token } from '../grammar.js';
import { decide } from '../policy.js';
import { isRef } from '../refs.js';
import { type Reply, reply } from '../reply.js';
import { formatTime } from '../time-format.js';

export type Handler = (
  core: CoreServices,
  ctx: InvocationContext,
  tokens: readonly Token[],
) => Promise<Reply>;

/**
 * The arguments of a stored canonical command (`<operation> <target> <arguments…>`, as paged reads keep
 * it and `formatCommand` writes it): its tokens without the target's, what `runOperation` takes.
 */
export function argumentsAfterTarget(parsed: ParsedCommand, target: string): Token[] {
  const at = parsed.tokens.findIndex((t) => t.kind === 'word' && t.text === target);
  return parsed.tokens.filter((_, i) => i !== at);
}

export function words(tokens: readonly Token[]): string[] {
  return tokens.flatMap((t) => (t.kind === 'word' ? [t.text] : []));
}

export function option(tokens: readonly Token[], name: string): string | undefined {
  const at = tokens.findIndex((t) => t.kind === 'option' && t.name === name);
  const token = tokens[at];
  if (token?.kind !== 'option') return undefined;
  if (token.value !== undefined) return token.value;
  const next = tokens[at + 1];
  return next?.kind === 'word' ? next.text : undefined;
}

export function requestId(tokens: readonly Token[], usage: string): number {
  const [first] = words(tokens);
  if (first !== undefined && isRef(first)) {
    // A reply's reference quoted back (`approve r7f3kq`): say what it is rather than "which request?".
    const verb = usage.split(' ')[0] ?? 'approve';
    throw new UserError(
      'not_found',
      `${first.toLowerCase()} is the reference of a reply, not an approval request, so there is nothing ` +
        `to ${verb === 'status' ? 'look up' : verb} under it: only requests that wait for approval have ` +
        'numbers (`/db pending` lists them); `/db audit ' +
        `${first.toLowerCase()}\` shows what that reply was`,
    );
  }
  if (!first || !/^#?\d{1,15}$/.test(first)) {
    throw new UserError('invalid_argument', `which request? usage: /db ${usage}`);
  }
  return Number(first.replace('#', ''));
}

export function ok(ctx: InvocationContext, message: string, text: string, extra: Partial<Reply> = {}): Reply {
  return reply({ status: 'ok', requestId: null, ref: ctx.ref, message, text, ephemeral: true, ...extra });
}

export async function loadRequest(
  core: CoreServices,
  ctx: InvocationContext,
  id: number,
): Promise<ApprovalRequest> {
  await core.sweepExpired();
  const request = await core.state.getRequest(id);
  if (!request) throw new UserError('not_found', noRequest(id));
  const target = core.config.targets[request.target];
  const readable =
    target &&
    decide({
      person: ctx.person,
      identity: ctx.identity,
      action: 'read',
      environment: target.environment,
      policy: core.config.policy,
    }).allowed;
  if (!readable && request.requester.person !== ctx.person?.name) {
    // Same answer as a missing request: do not reveal what exists on targets the person cannot see.
    throw new UserError('not_found', noRequest(id));
  }
  return request;
}

/** What a number that names no approval request gets: numbers belong to approval requests only. */
export function noRequest(id: number): string {
  return `there is no approval request #${id} (only requests that wait for approval get numbers); \`/db pending\` lists open ones`;
}

/** Why a transition was refused, in words. */
export function refusalMessage(refusal: TransitionRefusal, id: number): string {
  switch (refusal.code) {
    case 'not_found':
      return noRequest(id);
    case 'self_approval':
      return `you requested #${id}; a different person must approve it (no role bypasses this)`;
    case 'already_voted':
      return `you already voted on #${id}; it needs another person's approval`;
    case 'expired':
      return `request #${id} expired at ${formatTime(refusal.request.expiresAt)}; ask for it again if it is still needed`;
    case 'not_requester':
      return `only ${refusal.request.requester.person}, who requested #${id}, can cancel it; approvers can deny it`;
    case 'target_busy':
      return `another destructive operation is running on ${refusal.request.target}`;
    case 'not_pending': {
      const r = refusal.request;
      const by = r.votes.filter((v) => v.vote === 'approve').map((v) => v.person);
      // "has succeeded", "was denied", "is running": a request's state read as an English sentence.
      const verb: Record<string, string> = {
        approved: 'was approved',
        running: 'is running',
        succeeded: 'has succeeded',
        failed: 'has failed',
        denied: 'was denied',
        cancelled: 'was cancelled',
        expired: `expired at ${formatTime(refusal.request.expiresAt)}`,
      };
      const state = verb[r.status] ?? `is ${r.status}`;
      const detail =
        r.status === 'denied'
          ? `${state}${r.reason ? ` (${r.reason})` : ''}`
          : by.length > 0 && ['approved', 'running', 'succeeded', 'failed'].includes(r.status)
            ? `${state}, approved by ${by.join(', ')}`
            : state;
      return `request #${id} ${detail} and cannot be decided again`;
    }
  }
}

export function aboutRequest(request: ApprovalRequest) {
  return {
    requestId: request.id,
    operation: request.operation,
    target: request.target,
    args: request.args,
    risk: request.risk,
  };
}

export function isAdmin(core: CoreServices, ctx: InvocationContext): boolean {
  return ctx.person?.roles.some((role) => core.config.adminRoles.includes(role)) ?? false;
}
