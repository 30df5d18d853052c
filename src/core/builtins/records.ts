// Built-ins about records and channels: `audit`, `lookup`, `bind`, `unbind`.
import { findTarget } from '../../config/find-target.js';
import type { AuditRecord } from '../../state/types.js';
import { parseAuditFilter } from '../audit-filter.js';
import { UserError } from '../errors.js';
import { widthFor } from '../layout.js';
import { isRef } from '../refs.js';
import { renderTable } from '../render.js';
import { clipInput, closest } from '../suggest.js';
import type { Column, Row } from '../types.js';
import { type Handler, isAdmin, ok, words } from './common.js';

export const audit: Handler = async (core, ctx, tokens) => {
  const { target: givenTarget, filter, limit } = parseAuditFilter(tokens, core.now());
  // `audit r7f3kq`: the records of one reply, by its reference.
  const ref =
    givenTarget !== undefined && isRef(givenTarget) && !core.config.targets[givenTarget.toLowerCase()]
      ? givenTarget.toLowerCase()
      : undefined;
  const targetName = ref === undefined ? givenTarget?.toLowerCase() : undefined;
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
      ...filter,
      ...(targetName ? { target: targetName } : {}),
      ...(ref !== undefined ? { ref } : {}),
      limit: limit * 3,
    })
  )
    .filter((r: AuditRecord) => (r.target ? visible.has(r.target) : r.person === ctx.person?.name))
    .slice(0, limit);
  const columns: Column[] = [
    // Within 80 columns (or a phone) the channel goes first, then the time; who, what and where stay.
    { key: 'at', label: 'at', kind: 'timestamp', importance: 'normal' },
    { key: 'request', label: '# / ref', kind: 'id' },
    { key: 'event', label: 'event', kind: 'text', importance: 'high' },
    { key: 'person', label: 'person', kind: 'text', importance: 'key' },
    { key: 'surface', label: 'via', kind: 'text', importance: 'low' },
    { key: 'operation', label: 'operation', kind: 'text', importance: 'key' },
    { key: 'target', label: 'target', kind: 'text', importance: 'key' },
    { key: 'outcome', label: 'outcome', kind: 'text' },
  ];
  const rows: Row[] = records.map((r) => ({
    at: r.at.toISOString(),
    request: r.requestId !== null ? `#${r.requestId}` : (r.ref ?? ''),
    event: r.event,
    person: r.person ?? r.identity,
    surface: r.surface,
    operation: r.operation ?? '',
    target: r.target ?? '',
    outcome: r.error ? `${r.outcome}: ${r.error}` : outcomeOf(r, ctx.now),
  }));
  return ok(
    ctx,
    `${rows.length} audit records`,
    rows.length ? renderTable(columns, rows, { maxWidth: widthFor(ctx.inv.surface) }) : 'No audit records.',
    {
      result: { columns, rows, truncated: false },
    },
  );
};

/** Past this age a run's start without a closing record is not running any more: its end was never recorded. */
const UNFINISHED_AFTER_MS = 15 * 60_000;

function outcomeOf(record: AuditRecord, now: Date): string {
  if (!record.unfinished || now.getTime() - record.at.getTime() < UNFINISHED_AFTER_MS) return record.outcome;
  return 'no outcome recorded';
}

export const lookup: Handler = async (core, ctx, tokens) => {
  const usage = 'usage: /db lookup [target] <what> <key>';
  const wordAt = tokens.flatMap((t, i) => (t.kind === 'word' ? [i] : []));
  let rest = [...tokens];
  const firstAt = wordAt[0];
  const first = firstAt !== undefined ? tokens[firstAt] : undefined;
  let target = first?.kind === 'word' ? findTarget(core.config.targets, first.text) : undefined;
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

export const bind: Handler = async (core, ctx, tokens) => {
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
  const target = findTarget(core.config.targets, name);
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

export const unbind: Handler = async (core, ctx) => {
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
