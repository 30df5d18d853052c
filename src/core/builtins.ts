// Built-in commands beside the catalog: help, targets, pending, status, approve, deny, cancel, audit.

import { helpSpec, helpTarget } from '../packs/help-target.js';
import type { ApprovalRequest, AuditRecord, TransitionRefusal } from '../state/types.js';
import type { Builtin } from './catalog.js';
import { BUILTINS } from './catalog.js';
import type { Core, InvocationContext } from './dispatch.js';
import { clipInput, reply } from './dispatch.js';
import { UserError } from './errors.js';
import type { Token } from './grammar.js';
import { unavailableLines, unavailableOn } from './operation.js';
import { actionForRisk, allowedActions, decide } from './policy.js';
import { renderTable } from './render.js';
import type { Reply } from './reply.js';
import { requestCard, requestLine } from './reply-text.js';
import { closest } from './suggest.js';
import type { Column, Row } from './types.js';

type Handler = (core: Core, ctx: InvocationContext, tokens: readonly Token[]) => Promise<Reply>;

const BUILTIN_HELP: Record<Builtin, string> = {
  help: 'help [operation] — what you can run, or one operation in detail',
  targets: 'targets — the databases you may use and what you may do there',
  pending: 'pending [target] — requests waiting for approval',
  status: 'status <id> — one request: preview, votes, outcome',
  approve: 'approve <id> — approve someone else’s request (runs it when enough approvals are in)',
  deny: 'deny <id> [reason] — refuse a pending request',
  cancel: 'cancel <id> — withdraw your own pending request',
  audit: 'audit [target] [--limit n] — recent audit records',
  lookup: 'lookup [target] <what> <key> — a pack lookup shown as a card (e.g. lookup kasm user alice)',
  bind: 'bind <target> — admins: bind this channel to a target, so commands here may leave it out',
  unbind: 'unbind — admins: remove this channel’s binding',
};

function words(tokens: readonly Token[]): string[] {
  return tokens.flatMap((t) => (t.kind === 'word' ? [t.text] : []));
}

function option(tokens: readonly Token[], name: string): string | undefined {
  const at = tokens.findIndex((t) => t.kind === 'option' && t.name === name);
  const token = tokens[at];
  if (token?.kind !== 'option') return undefined;
  if (token.value !== undefined) return token.value;
  const next = tokens[at + 1];
  return next?.kind === 'word' ? next.text : undefined;
}

function requestId(tokens: readonly Token[], usage: string): number {
  const [first] = words(tokens);
  if (!first || !/^#?\d{1,15}$/.test(first)) {
    throw new UserError('invalid_argument', `which request? usage: /db ${usage}`);
  }
  return Number(first.replace('#', ''));
}

function ok(ctx: InvocationContext, message: string, text: string, extra: Partial<Reply> = {}): Reply {
  return reply({ status: 'ok', requestId: ctx.requestId, message, text, ephemeral: true, ...extra });
}

async function loadRequest(core: Core, ctx: InvocationContext, id: number): Promise<ApprovalRequest> {
  await core.sweepExpired();
  const request = await core.state.getRequest(id);
  if (!request)
    throw new UserError('not_found', `there is no request #${id}; \`/db pending\` lists open ones`);
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
    throw new UserError('not_found', `there is no request #${id}; \`/db pending\` lists open ones`);
  }
  return request;
}

/** Why a transition was refused, in words. */
function refusalMessage(refusal: TransitionRefusal, id: number): string {
  switch (refusal.code) {
    case 'not_found':
      return `there is no request #${id}`;
    case 'self_approval':
      return `you requested #${id}; a different person must approve it (no role bypasses this)`;
    case 'already_voted':
      return `you already voted on #${id}; it needs another person's approval`;
    case 'expired':
      return `request #${id} expired at ${refusal.request.expiresAt.toISOString().slice(11, 16)}Z; ask for it again if it is still needed`;
    case 'not_requester':
      return `only ${refusal.request.requester.person}, who requested #${id}, can cancel it; approvers can deny it`;
    case 'target_busy':
      return `another destructive operation is running on ${refusal.request.target}`;
    case 'not_pending': {
      const r = refusal.request;
      const by = r.votes.filter((v) => v.vote === 'approve').map((v) => v.person);
      const detail =
        r.status === 'denied'
          ? `denied${r.reason ? ` (${r.reason})` : ''}`
          : by.length > 0 && ['approved', 'running', 'succeeded', 'failed'].includes(r.status)
            ? `${r.status}, approved by ${by.join(', ')}`
            : r.status;
      return `request #${id} is already ${detail}; it can not be decided again`;
    }
  }
}

function aboutRequest(request: ApprovalRequest) {
  return {
    requestId: request.id,
    operation: request.operation,
    target: request.target,
    args: request.args,
    risk: request.risk,
  };
}

const help: Handler = async (core, ctx, tokens) => {
  const [topic, about] = words(tokens);
  if (topic) {
    const name = topic.toLowerCase();
    if ((BUILTINS as readonly string[]).includes(name)) {
      return ok(ctx, `help ${name}`, `/db ${BUILTIN_HELP[name as Builtin]}`);
    }
    const asTarget = core.config.targets[name];
    if (asTarget && core.visibleTargets(ctx.person).some((t) => t.name === asTarget.name)) {
      // `/db help kasm`: the target's own runbook.
      const ops = core.catalog.forTarget(asTarget);
      const lookups = core.catalog.lookupsFor(asTarget);
      // Pack operations its schema cannot serve, with what is missing (read from its catalog, cached).
      const lookupNames = new Map(lookups.map((l) => [core.catalog.lookup(asTarget, l)?.name ?? l, l]));
      const unavailable = unavailableLines(
        await unavailableOn(ops, core.targetDb(asTarget.name)),
        lookupNames,
      );
      const table = renderTable(
        [
          { key: 'name', label: 'operation', kind: 'text' },
          { key: 'risk', label: 'risk', kind: 'text' },
          { key: 'summary', label: 'what it does', kind: 'text' },
        ],
        ops.map((o) => ({ name: o.name, risk: o.risk, summary: o.summary })),
        { maxColumnWidth: 80 },
      );
      const lines = [
        `${asTarget.name} (${asTarget.environment})${asTarget.description ? ` — ${asTarget.description}` : ''}`,
        ops.length > 0
          ? `Its runbook (${asTarget.packs.join(', ')}):\n${table}`
          : 'No runbook pack: the PostgreSQL operations of `/db help` apply.',
        ...(lookups.length > 0
          ? [`Lookups: ${lookups.map((l) => `/db lookup ${asTarget.name} ${l} <key>`).join(', ')}`]
          : []),
        ...unavailable,
        'Every PostgreSQL operation of `/db help` works here too.',
      ];
      return ok(ctx, `help ${asTarget.name}`, lines.join('\n'));
    }
    // `help users kasm`: the operation of that target's pack, not whichever pack defines it first.
    const bound = about ? helpTarget(core, ctx.person, about) : await core.boundTarget(ctx.inv);
    const spec =
      about && bound
        ? helpSpec(core.catalog, name, bound)
        : (core.catalog.resolve(name, bound) ?? core.catalog.anyPackSpec(name));
    const isGlobal = core.catalog.get(name) !== undefined;
    if (!spec) {
      const guesses = closest(name, [...core.catalog.allNames(), ...BUILTINS]);
      throw new UserError(
        'unknown_operation',
        `unknown operation \`${clipInput(name)}\`${guesses.length > 0 ? ` — did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?` : ''}`,
      );
    }
    const lines = [`/db ${spec.usage}`, '', spec.summary];
    if (spec.description) lines.push('', spec.description);
    lines.push('', `risk: ${spec.risk}${spec.riskFor ? ' (some options raise it)' : ''}`);
    const action = actionForRisk(spec.risk);
    const packs = isGlobal ? [] : core.catalog.packsDefining(name);
    const where = Object.values(core.config.targets)
      .filter((t) => isGlobal || t.packs.some((p) => packs.includes(p)))
      .filter(
        (t) =>
          decide({
            person: ctx.person,
            identity: ctx.identity,
            action,
            environment: t.environment,
            policy: core.config.policy,
          }).allowed,
      )
      .map((t) => t.name);
    lines.push(
      where.length > 0
        ? `you may ${action === 'request' ? 'request it' : 'run it'} on: ${where.join(', ')}`
        : 'you may not run it on any target',
    );
    if (spec.risk === 'destructive') lines.push('it runs only after another person approves it');
    return ok(ctx, `help ${spec.name}`, lines.join('\n'));
  }
  const bound = await core.boundTarget(ctx.inv);
  const columns: Column[] = [
    { key: 'name', label: 'operation', kind: 'text' },
    { key: 'risk', label: 'risk', kind: 'text' },
    { key: 'summary', label: 'what it does', kind: 'text' },
  ];
  const toRow = (s: { name: string; risk: string; summary: string }): Row => ({
    name: s.name,
    risk: s.risk,
    summary: s.summary,
  });
  const rows: Row[] = core.catalog.all().map(toRow);
  // In a channel bound to a target, that target's own runbook comes first.
  const packRows: Row[] = bound ? core.catalog.forTarget(bound).map(toRow) : [];
  const lookups = bound ? core.catalog.lookupsFor(bound) : [];
  const elsewhere = core
    .visibleTargets(ctx.person)
    .filter((t) => t.packs.length > 0 && t.name !== bound?.name)
    .map((t) => `${t.name} (${t.packs.join(', ')})`);
  const lines = [
    'Usage: /db <operation> [target] [args] [--option value] [--flag]',
    bound ? `This channel is bound to ${bound.name}: the target may be left out.` : '',
    '',
    ...(bound && packRows.length > 0
      ? [
          `${bound.name} runbook (${bound.packs.join(', ')}):`,
          renderTable(columns, packRows, { maxColumnWidth: 80 }),
          ...(lookups.length > 0 ? [`lookups: ${lookups.map((l) => `lookup ${l} <key>`).join(', ')}`] : []),
          '',
          'PostgreSQL operations:',
        ]
      : []),
    renderTable(columns, rows, { maxColumnWidth: 80 }),
    '',
    ...(elsewhere.length > 0
      ? [
          `Runbook packs on: ${elsewhere.join(', ')} — \`/db help <target>\` lists a target's own operations.`,
          '',
        ]
      : []),
    'Built-ins:',
    ...BUILTINS.map((b) => `  ${BUILTIN_HELP[b]}`),
    '',
    'Destructive operations wait for another person’s approval. `/db help <operation>` for details.',
  ].filter((line, i, all) => line !== '' || all[i - 1] !== '');
  return ok(ctx, 'help', lines.join('\n'));
};

const targets: Handler = async (core, ctx) => {
  const columns: Column[] = [
    { key: 'target', label: 'target', kind: 'text' },
    { key: 'environment', label: 'environment', kind: 'text' },
    { key: 'may', label: 'you may', kind: 'text' },
    { key: 'description', label: 'description', kind: 'text' },
  ];
  const rows: Row[] = core.visibleTargets(ctx.person).map((t) => ({
    target: t.name,
    environment: t.environment,
    may: allowedActions(ctx.person, t.environment, core.config.policy).join(', '),
    description: t.description ?? '',
  }));
  await core.audit(ctx, { event: 'builtin', outcome: 'targets' }).catch(() => {});
  if (rows.length === 0) return ok(ctx, 'no targets', 'You may not use any target; ask an admin for a role.');
  return ok(ctx, `${rows.length} targets`, renderTable(columns, rows), {
    result: { columns, rows, truncated: false },
  });
};

const pending: Handler = async (core, ctx, tokens) => {
  await core.sweepExpired();
  const [targetName] = words(tokens);
  if (targetName && !core.config.targets[targetName]) {
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
      : requests.map((r) => requestLine(r, now)).join('\n');
  return ok(ctx, `${requests.length} pending`, text, { requests });
};

const status: Handler = async (core, ctx, tokens) => {
  const id = requestId(tokens, 'status <id>');
  const request = await loadRequest(core, ctx, id);
  const roles = core.config.policy[request.environment]?.approve ?? [];
  return ok(ctx, requestLine(request, core.now()), requestCard(request, core.now(), roles), { request });
};

const approve: Handler = async (core, ctx, tokens) => {
  const id = requestId(tokens, 'approve <id>');
  const request = await loadRequest(core, ctx, id);
  const about = aboutRequest(request);
  const actor = core.actor(ctx);
  // The requester never approves their own request, whatever their roles (checked again in the store).
  if (request.requester.person === actor.person) {
    return await core.refuse(
      ctx,
      'self_approval',
      refusalMessage({ ok: false, code: 'self_approval', request }, id),
      about,
    );
  }
  const decision = decide({
    person: ctx.person,
    identity: ctx.identity,
    action: 'approve',
    environment: request.environment,
    policy: core.config.policy,
  });
  if (!decision.allowed) return await core.refuse(ctx, 'denied', decision.reason, about);
  // An approved request whose run could not start (target busy) may be started again by an approver.
  if (request.status === 'approved') return await core.runApproved(ctx, request);

  const vote = await core.state.approve(id, actor, core.now());
  if (!vote.ok) {
    if (vote.code === 'expired') core.changed(vote.request, 'expired');
    return await core.refuse(ctx, vote.code, refusalMessage(vote, id), about);
  }
  await core.auditOrStop(ctx, { ...about, event: 'vote', outcome: 'approve' });
  if (!vote.reached) {
    core.changed(vote.request, 'voted');
    const have = vote.request.votes.filter((v) => v.vote === 'approve').length;
    return ok(
      ctx,
      `approval ${have} of ${vote.request.approvalsRequired} recorded for #${id}`,
      `Approval ${have} of ${vote.request.approvalsRequired} recorded for #${id}; it needs another approver.`,
      { request: vote.request, ephemeral: false },
    );
  }
  core.changed(vote.request, 'approved');
  const approvers = vote.request.votes.filter((v) => v.vote === 'approve').map((v) => v.person);
  await core.auditOrStop(ctx, { ...about, event: 'approved', outcome: 'approved', approvers });
  return await core.runApproved(ctx, vote.request);
};

const deny: Handler = async (core, ctx, tokens) => {
  const id = requestId(tokens, 'deny <id> [reason]');
  const reason = words(tokens).slice(1).join(' ').slice(0, 500) || undefined;
  const request = await loadRequest(core, ctx, id);
  const about = aboutRequest(request);
  const actor = core.actor(ctx);
  if (request.requester.person === actor.person) {
    return await core.refuse(
      ctx,
      'self_approval',
      `you requested #${id}; use \`/db cancel ${id}\` to withdraw it`,
      about,
    );
  }
  const decision = decide({
    person: ctx.person,
    identity: ctx.identity,
    action: 'approve',
    environment: request.environment,
    policy: core.config.policy,
  });
  if (!decision.allowed) return await core.refuse(ctx, 'denied', decision.reason, about);
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

const cancel: Handler = async (core, ctx, tokens) => {
  const id = requestId(tokens, 'cancel <id>');
  const request = await loadRequest(core, ctx, id);
  const about = aboutRequest(request);
  const result = await core.state.cancel(id, core.actor(ctx), core.now());
  if (!result.ok) return await core.refuse(ctx, result.code, refusalMessage(result, id), about);
  await core.audit(ctx, { ...about, event: 'cancelled', outcome: 'cancelled' });
  core.changed(result.request, 'cancelled');
  return ok(ctx, `#${id} cancelled`, `Cancelled #${id}.`, { request: result.request, ephemeral: false });
};

const audit: Handler = async (core, ctx, tokens) => {
  const [targetName] = words(tokens);
  const limitText = option(tokens, 'limit') ?? '20';
  if (!/^\d{1,3}$/.test(limitText) || Number(limitText) < 1) {
    throw new UserError(
      'invalid_argument',
      'argument --limit: expected a number from 1 to 999. usage: /db audit [target] [--limit n]',
    );
  }
  const visible = new Set(core.visibleTargets(ctx.person).map((t) => t.name));
  if (targetName && !visible.has(targetName)) {
    const guesses = closest(targetName, [...visible]);
    throw new UserError(
      'unknown_target',
      `unknown target \`${clipInput(targetName)}\`${guesses.length > 0 ? ` — did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?` : ''}`,
    );
  }
  const records = (
    await core.state.listAudit({
      ...(targetName ? { target: targetName } : {}),
      limit: Number(limitText) * 3,
    })
  )
    .filter((r: AuditRecord) => (r.target ? visible.has(r.target) : r.person === ctx.person?.name))
    .slice(0, Number(limitText));
  const columns: Column[] = [
    { key: 'at', label: 'at', kind: 'timestamp' },
    { key: 'request', label: '#', kind: 'id' },
    { key: 'event', label: 'event', kind: 'text' },
    { key: 'person', label: 'person', kind: 'text' },
    { key: 'surface', label: 'via', kind: 'text' },
    { key: 'operation', label: 'operation', kind: 'text' },
    { key: 'target', label: 'target', kind: 'text' },
    { key: 'outcome', label: 'outcome', kind: 'text' },
  ];
  const rows: Row[] = records.map((r) => ({
    at: r.at.toISOString(),
    request: r.requestId,
    event: r.event,
    person: r.person ?? r.identity,
    surface: r.surface,
    operation: r.operation ?? '',
    target: r.target ?? '',
    outcome: r.error ? `${r.outcome}: ${r.error}` : r.outcome,
  }));
  return ok(
    ctx,
    `${rows.length} audit records`,
    rows.length ? renderTable(columns, rows) : 'No audit records.',
    {
      result: { columns, rows, truncated: false },
    },
  );
};

const lookup: Handler = async (core, ctx, tokens) => {
  const usage = 'usage: /db lookup [target] <what> <key>';
  const wordAt = tokens.flatMap((t, i) => (t.kind === 'word' ? [i] : []));
  let rest = [...tokens];
  const firstAt = wordAt[0];
  const first = firstAt !== undefined ? tokens[firstAt] : undefined;
  let target = first?.kind === 'word' ? core.config.targets[first.text] : undefined;
  if (target && firstAt !== undefined) rest = rest.filter((_, i) => i !== firstAt);
  else target = await core.boundTarget(ctx.inv);
  if (!target) {
    const visible = core.visibleTargets(ctx.person).map((t) => t.name);
    throw new UserError(
      'missing_target',
      `which target? ${usage}. Targets you may use: ${visible.join(', ')}.`,
    );
  }
  const whatAt = rest.findIndex((t) => t.kind === 'word');
  const whatToken = rest[whatAt];
  const available = core.catalog.lookupsFor(target);
  if (whatToken?.kind !== 'word') {
    throw new UserError(
      'invalid_argument',
      `what to look up? ${usage}. On ${target.name}: ${available.join(', ') || 'no lookups (no pack with lookups)'}.`,
    );
  }
  const spec = core.catalog.lookup(target, whatToken.text);
  if (!spec) {
    const guesses = closest(whatToken.text, available);
    throw new UserError(
      'invalid_argument',
      `there is no lookup \`${clipInput(whatToken.text)}\` on ${target.name}${guesses.length > 0 ? ` — did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?` : ''}. Lookups there: ${available.join(', ') || 'none'}.`,
    );
  }
  return await core.runOperation(
    ctx,
    spec,
    target,
    rest.filter((_, i) => i !== whatAt),
  );
};

function isAdmin(core: Core, ctx: InvocationContext): boolean {
  return ctx.person?.roles.some((role) => core.config.adminRoles.includes(role)) ?? false;
}

const bind: Handler = async (core, ctx, tokens) => {
  const key = core.channelKey(ctx.inv);
  if (!key) throw new UserError('invalid_argument', 'bind works in a channel: run it in the channel to bind');
  if (!isAdmin(core, ctx)) {
    return await core.refuse(
      ctx,
      'denied',
      `binding channels needs one of the roles ${core.config.adminRoles.join(', ')} (${ctx.person?.name ?? ctx.identity} has ${ctx.person?.roles.join(', ') || 'no roles'})`,
    );
  }
  const [name] = words(tokens);
  const target = name ? core.config.targets[name] : undefined;
  if (!name || !target) {
    const guesses = name ? closest(name, Object.keys(core.config.targets)) : [];
    throw new UserError(
      'unknown_target',
      `usage: /db bind <target>${name ? ` — unknown target \`${clipInput(name)}\`` : ''}${guesses.length > 0 ? `; did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?` : ''}`,
    );
  }
  await core.auditOrStop(ctx, {
    event: 'builtin',
    outcome: `bind ${key} → ${target.name}`,
    target: target.name,
  });
  await core.state.setBinding({
    channel: key,
    target: target.name,
    boundBy: ctx.person?.name ?? ctx.identity,
    boundAt: core.now(),
  });
  return ok(
    ctx,
    `bound ${key} to ${target.name}`,
    `This channel is now bound to ${target.name}: commands here may leave the target out.`,
    {
      ephemeral: false,
    },
  );
};

const unbind: Handler = async (core, ctx) => {
  const key = core.channelKey(ctx.inv);
  if (!key) throw new UserError('invalid_argument', 'unbind works in a channel: run it in the bound channel');
  if (!isAdmin(core, ctx)) {
    return await core.refuse(
      ctx,
      'denied',
      `unbinding channels needs one of the roles ${core.config.adminRoles.join(', ')}`,
    );
  }
  await core.auditOrStop(ctx, { event: 'builtin', outcome: `unbind ${key}` });
  const removed = await core.state.removeBinding(key);
  const fromConfig = core.config.channels[key]?.target;
  const text = removed
    ? `Removed this channel's binding.${fromConfig ? ` The config file still binds it to ${fromConfig}.` : ''}`
    : fromConfig
      ? `This channel is bound to ${fromConfig} in the config file; change it there.`
      : 'This channel was not bound.';
  return ok(ctx, text, text, { ephemeral: false });
};

export const builtinHandlers: Record<Builtin, Handler> = {
  help,
  targets,
  pending,
  status,
  approve,
  deny,
  cancel,
  audit,
  lookup,
  bind,
  unbind,
};
