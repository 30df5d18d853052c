// Built-ins that explain: `help [operation|target]` and `targets`.

import { findTarget } from '../../config/find-target.js';
import { BUILTINS, type Builtin } from '../catalog.js';
import { UserError } from '../errors.js';
import { widthFor, wrapLines } from '../layout.js';
import { unavailableLines, unavailableOn } from '../operation.js';
import { actionForRisk, allowedActions, decide } from '../policy.js';
import { renderTable } from '../render.js';
import { clipInput, closest } from '../suggest.js';
import type { Column, Row } from '../types.js';
import { type Handler, ok, words } from './common.js';
import { helpSpec, helpTarget } from './help-target.js';

export const BUILTIN_HELP: Record<Builtin, string> = {
  help: 'help [operation] — what you can run, or one operation in detail',
  targets: 'targets — the databases you may use and what you may do there',
  pending: 'pending [target] — requests waiting for approval',
  status: 'status <id> — one request: preview, votes, outcome',
  approve: 'approve <id> — approve someone else’s request (runs it when enough approvals are in)',
  deny: 'deny <id> [reason] — refuse a pending request',
  cancel: 'cancel <id> — withdraw your own request, or stop a running one (requester or approver)',
  audit: 'audit [target | ref] [--limit n] — recent audit records, or one reply’s',
  lookup: 'lookup [target] <what> <key> — a pack lookup shown as a card (e.g. lookup kasm user alice)',
  bind: 'bind <target> — admins: bind this channel to a target, so commands here may leave it out',
  unbind: 'unbind — admins: remove this channel’s binding',
  alerts: 'alerts [target] — open alerts; alerts ack <id> | mute <id> --for 4h',
  history: 'history <target> <metric> [--since 7d] [--table t] — a metric over time',
  page: 'page <ref> <n> — page n of a long answer, as its Next page button asks for it',
  csv: 'csv <ref> — a read’s answer again as a CSV file with every column (its All columns button)',
  digest: 'digest <target> [--since 7d] — growers, new slow queries, new unused indexes, forecasts',
  trend: 'trend <target> <metric> [--since 7d] [--table t] — a chart, the rate and the forecast',
  schedules: 'schedules [name] — what dbops runs by itself: cron, last run and outcome, next run',
  'run-schedule': 'run-schedule <name> — run a schedule now (admins, or who may run its operation)',
};

/** Operations as a table whose descriptions wrap within their column. */
const HELP_COLUMNS: Column[] = [
  { key: 'name', label: 'operation', kind: 'text', importance: 'key' },
  { key: 'risk', label: 'risk', kind: 'text', importance: 'key' },
  { key: 'summary', label: 'what it does', kind: 'text', wrap: true },
];

export const help: Handler = async (core, ctx, tokens) => {
  const width = widthFor(ctx.inv.surface);
  const answer = (message: string, text: string) => ok(ctx, message, wrapLines(text, width));
  const [topic, about] = words(tokens);
  if (topic) {
    const name = topic.toLowerCase();
    if ((BUILTINS as readonly string[]).includes(name)) {
      return answer(`help ${name}`, `/db ${BUILTIN_HELP[name as Builtin]}`);
    }
    const asTarget = findTarget(core.config.targets, name);
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
        HELP_COLUMNS,
        ops.map((o) => ({ name: o.name, risk: o.risk, summary: o.summary })),
        { maxWidth: width },
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
      return answer(`help ${asTarget.name}`, lines.join('\n'));
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
    return answer(`help ${spec.name}`, lines.join('\n'));
  }
  const bound = await core.boundTarget(ctx.inv);
  const columns = HELP_COLUMNS;
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
          renderTable(columns, packRows, { maxWidth: width }),
          ...(lookups.length > 0 ? [`lookups: ${lookups.map((l) => `lookup ${l} <key>`).join(', ')}`] : []),
          '',
          'PostgreSQL operations:',
        ]
      : []),
    renderTable(columns, rows, { maxWidth: width }),
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
  return answer('help', lines.join('\n'));
};

export const targets: Handler = async (core, ctx) => {
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
  const table = renderTable(columns, rows, { maxWidth: widthFor(ctx.inv.surface) });
  return ok(ctx, `${rows.length} targets`, table, {
    result: { columns, rows, truncated: false },
  });
};
