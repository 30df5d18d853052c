// Built-ins about approval requests: `pending`, `status`, `approve`, `deny`, `cancel`.
import { findTarget } from '../../config/find-target.js';

import type { ApprovalRequest } from '../../state/types.js';
import type { CoreServices, InvocationContext } from '../context.js';
import { UserError } from '../errors.js';
import { judge, type Standing, samePerson } from '../judgement.js';
import { widthFor, wrapLines } from '../layout.js';
import { decide } from '../policy.js';
import type { Reply } from '../reply.js';
import { requestCard, requestLine } from '../reply-text.js';
import { clipInput } from '../suggest.js';
import { aboutRequest, type Handler, loadRequest, ok, refusalMessage, requestId, words } from './common.js';

export const pending: Handler = async (core, ctx, tokens) => {
  await core.sweepExpired();
  const targetName = words(tokens)[0]?.toLowerCase();
  if (targetName && !findTarget(core.config.targets, targetName)) {
    throw new UserError('unknown_target', `unknown target \`${clipInput(targetName)}\``);
  }
  const visible = new Set(core.visibleTargets(ctx.person).map((t) => t.name));
  const requests = (
    await core.state.listRequests({
      statuses: ['pending', 'approved'],
      ...(targetName ? { target: targetName } : {}),
      limit: 50,
    })
  ).filter((r) => visible.has(r.target) || r.requester.person === ctx.person?.name);
  const now = core.now();
  const text =
    requests.length === 0
      ? 'No requests are waiting for approval.'
      : wrapLines(requests.map((r) => requestLine(r, now)).join('\n'), widthFor(ctx.inv.surface));
  return ok(ctx, `${requests.length} pending`, text, { requests });
};

export const status: Handler = async (core, ctx, tokens) => {
  const id = requestId(tokens, 'status <id>');
  const request = await loadRequest(core, ctx, id);
  const roles = core.config.policy[request.environment]?.approve ?? [];
  const card = requestCard(request, core.now(), roles, widthFor(ctx.inv.surface));
  return ok(ctx, requestLine(request, core.now()), card, { request });
};

/**
 * Whether this person may decide (approve or deny) the request, judged on the policy in force now: never
 * any identity of the requester's (the store checks the name again), and a request whose target changed
 * environment is void. The request's standing, or the refusal already audited.
 */
async function deciderStanding(
  core: CoreServices,
  ctx: InvocationContext,
  request: ApprovalRequest,
  selfApprovalMessage: string,
): Promise<Standing | Reply> {
  const about = aboutRequest(request);
  if (samePerson(core.config, request.requester, core.actor(ctx))) {
    return await core.refuse(ctx, 'self_approval', selfApprovalMessage, about);
  }
  const standing = await core.standing(ctx, request);
  if (!('valid' in standing)) return standing;
  const decision = decide({
    person: ctx.person,
    identity: ctx.identity,
    action: 'approve',
    environment: request.environment,
    policy: core.config.policy,
  });
  if (!decision.allowed) return await core.refuse(ctx, 'denied', decision.reason, about);
  return standing;
}

export const approve: Handler = async (core, ctx, tokens) => {
  const id = requestId(tokens, 'approve <id>');
  const request = await loadRequest(core, ctx, id);
  const about = aboutRequest(request);
  const actor = core.actor(ctx);
  const standing = await deciderStanding(
    core,
    ctx,
    request,
    refusalMessage({ ok: false, code: 'self_approval', request }, id),
  );
  if (!('valid' in standing)) return standing;
  if (request.status === 'approved') {
    // An approved request whose run could not start (target busy) is started by dbops when the target is
    // free, or again by one of the approvers whose vote counts: never by a third party.
    if (!standing.counted.some((v) => samePerson(core.config, v, actor))) {
      const by = standing.counted.map((v) => v.person).join(', ');
      return await core.refuse(
        ctx,
        'not_pending',
        `request #${id} is already approved by ${by}; dbops starts it when ${request.target} is free, or one of its approvers can run \`/db approve ${id}\` again`,
        about,
      );
    }
    return await core.runApproved(ctx, request);
  }

  const config = core.config;
  const vote = await core.state.approve(id, actor, core.now(), (r) => {
    const now = judge(config, r);
    return now.valid && now.reached;
  });
  if (!vote.ok) {
    if (vote.code === 'expired') core.changed(vote.request, 'expired');
    return await core.refuse(ctx, vote.code, refusalMessage(vote, id), about);
  }
  const voted = { ...about, event: 'vote' as const, outcome: 'approve' };
  if (!vote.reached) {
    await core.auditOrStop(ctx, voted);
    core.changed(vote.request, 'voted');
    const now = judge(config, vote.request);
    const have = now.valid ? now.counted.length : 0;
    const need = now.valid ? now.required : vote.request.approvalsRequired;
    const stale =
      now.valid && now.discounted.length > 0 ? ` (${now.discounted.map((d) => d.why).join('; ')})` : '';
    return ok(
      ctx,
      `approval ${have} of ${need} recorded for #${id}`,
      `Approval ${have} of ${need} recorded for #${id}${stale}; it needs another approver.`,
      { request: vote.request, ephemeral: false },
    );
  }
  const approvers = vote.request.votes.filter((v) => v.vote === 'approve').map((v) => v.person);
  // The vote and the approval it completed: two records, one statement.
  await core.auditOrStop(ctx, [voted, { ...about, event: 'approved', outcome: 'approved', approvers }]);
  core.changed(vote.request, 'approved');
  return await core.runApproved(ctx, vote.request, { audited: true });
};

export const deny: Handler = async (core, ctx, tokens) => {
  const id = requestId(tokens, 'deny <id> [reason]');
  const reason = words(tokens).slice(1).join(' ').slice(0, 500) || undefined;
  const request = await loadRequest(core, ctx, id);
  const about = aboutRequest(request);
  const actor = core.actor(ctx);
  const standing = await deciderStanding(
    core,
    ctx,
    request,
    `you requested #${id}; use \`/db cancel ${id}\` to withdraw it`,
  );
  if (!('valid' in standing)) return standing;
  const result = await core.state.deny(id, actor, reason, core.now());
  if (!result.ok) return await core.refuse(ctx, result.code, refusalMessage(result, id), about);
  await core.audit(ctx, {
    ...about,
    event: 'denied',
    outcome: 'denied',
    ...(reason ? { error: reason } : {}),
  });
  core.changed(result.request, 'denied');
  return ok(ctx, `#${id} denied`, `Denied #${id}${reason ? `: ${reason}` : ''}.`, {
    request: result.request,
    ephemeral: false,
  });
};

export const cancel: Handler = async (core, ctx, tokens) => {
  const id = requestId(tokens, 'cancel <id>');
  const request = await loadRequest(core, ctx, id);
  const about = aboutRequest(request);
  if (request.status === 'running') return await stopRunning(core, ctx, request);
  const result = await core.state.cancel(id, core.actor(ctx), core.now());
  if (!result.ok) return await core.refuse(ctx, result.code, refusalMessage(result, id), about);
  await core.audit(ctx, { ...about, event: 'cancelled', outcome: 'cancelled' });
  core.changed(result.request, 'cancelled');
  return ok(ctx, `#${id} cancelled`, `Cancelled #${id}.`, { request: result.request, ephemeral: false });
};

/** How long `/db cancel` of a running request waits to say what the stopped run did. */
const STOP_WAIT_MS = 15_000;

/**
 * `/db cancel <id>` of a running request: the requester or an approver asks (recorded in the state
 * database, so the replica running it notices); the run is aborted here when it runs here.
 */
async function stopRunning(
  core: CoreServices,
  ctx: InvocationContext,
  request: ApprovalRequest,
): Promise<Reply> {
  const id = request.id;
  const about = aboutRequest(request);
  const actor = core.actor(ctx);
  const mayApprove = decide({
    person: ctx.person,
    identity: ctx.identity,
    action: 'approve',
    environment: request.environment,
    policy: core.config.policy,
  }).allowed;
  if (!samePerson(core.config, request.requester, actor) && !mayApprove) {
    return await core.refuse(
      ctx,
      'not_requester',
      `#${id} is running; only ${request.requester.person}, who requested it, or an approver on ${request.environment} can stop it`,
      about,
    );
  }
  const asked = await core.state.requestCancel(id, actor, core.now());
  if (!asked.ok) return await core.refuse(ctx, asked.code, refusalMessage(asked, id), about);
  await core.auditOrStop(ctx, { ...about, event: 'cancelled', outcome: 'stop requested' });
  core.stopRun(id, actor);
  const deadline = Date.now() + STOP_WAIT_MS;
  let now: ApprovalRequest | undefined = asked.request;
  while (now?.status === 'running' && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    now = await core.state.getRequest(id);
  }
  if (!now || now.status === 'running') {
    const text = `Asked to stop #${id}; the dbops running it stops it within seconds, and its card will say what was done.`;
    return ok(ctx, `stop of #${id} requested`, text, { request: asked.request, ephemeral: false });
  }
  const outcome =
    now.status === 'cancelled'
      ? `Stopped #${id}: ${now.error ?? 'cancelled while running'}.`
      : `#${id} had already ${now.status === 'succeeded' ? 'succeeded' : `ended (${now.status})`} when the stop arrived${now.error ? `: ${now.error}` : ''}.`;
  return ok(ctx, `#${id} ${now.status}`, outcome, { request: now, ephemeral: false });
}
