// Autocomplete for `/db`: the operations the person may run (with the target's pack operations) and the
// targets they may see. A convenience only: dispatch() decides again when the command arrives.
import type { APIApplicationCommandOptionChoice } from 'discord.js';
import type { Config, ResolvedPerson, ResolvedTarget } from '../../config/schema.js';
import { BUILTINS } from '../../core/catalog.js';
import type { Core } from '../../core/dispatch.js';
import type { AnyOperation } from '../../core/operation.js';
import { actionForRisk, decide } from '../../core/policy.js';
import { OPTION } from './command.js';

const MAX_CHOICES = 25;
const MAX_NAME = 100;

type Choice = APIApplicationCommandOptionChoice<string>;

function choiceName(text: string): string {
  return text.length <= MAX_NAME ? text : `${text.slice(0, MAX_NAME - 1)}…`;
}

/** Prefix matches first, then matches anywhere, each in catalog order. */
function rank<T>(items: readonly T[], key: (item: T) => string, typed: string): T[] {
  const q = typed.trim().toLowerCase();
  if (q === '') return [...items];
  const starts = items.filter((item) => key(item).toLowerCase().startsWith(q));
  const contains = items.filter((item) => !starts.includes(item) && key(item).toLowerCase().includes(q));
  return [...starts, ...contains];
}

function mayRun(config: Config, person: ResolvedPerson, spec: AnyOperation, target: ResolvedTarget): boolean {
  return decide({
    person,
    identity: '',
    action: actionForRisk(spec.risk),
    environment: target.environment,
    policy: config.policy,
  }).allowed;
}

export interface AutocompleteInput {
  focused: string;
  typed: string;
  operation: string | null;
  target: string | null;
}

/** Choices for the focused option of `/db`. */
export function autocompleteChoices(
  core: Core,
  person: ResolvedPerson | undefined,
  identity: string,
  input: AutocompleteInput,
): Choice[] {
  if (!person) {
    return [
      {
        name: choiceName(`You are not set up in dbops: ask an admin to add Discord id ${identity}`),
        value: 'help',
      },
    ];
  }
  const visible = core.visibleTargets(person);
  const targetName = input.target?.trim();
  const chosenTarget = targetName ? visible.find((t) => t.name === targetName) : undefined;
  if (input.focused === OPTION.target) {
    const spec = input.operation ? resolveSpec(core, input.operation.trim(), undefined) : undefined;
    const targets = visible.filter((t) => {
      if (!spec) return true;
      const onTarget = core.catalog.resolve(spec.name, t);
      return onTarget !== undefined && mayRun(core.config, person, onTarget, t);
    });
    return rank(targets, (t) => t.name, input.typed)
      .slice(0, MAX_CHOICES)
      .map((t) => ({
        name: choiceName(`${t.name} — ${t.environment}${t.description ? ` · ${t.description}` : ''}`),
        value: t.name,
      }));
  }
  if (input.focused !== OPTION.operation) return [];
  // Operations the person may run somewhere among the targets in question, then the built-ins.
  const targets = chosenTarget ? [chosenTarget] : visible;
  const seen = new Set<string>();
  const operations: { name: string; summary: string; risk: string }[] = [];
  const consider = (spec: AnyOperation, target: ResolvedTarget) => {
    if (seen.has(spec.name) || !mayRun(core.config, person, spec, target)) return;
    seen.add(spec.name);
    operations.push({ name: spec.name, summary: spec.summary, risk: spec.risk });
  };
  // With a target chosen, its own runbook comes first (as in `/db help <target>`).
  const packOps = () => {
    for (const target of targets) for (const spec of core.catalog.forTarget(target)) consider(spec, target);
  };
  if (chosenTarget) packOps();
  for (const spec of core.catalog.all()) for (const target of targets) consider(spec, target);
  if (!chosenTarget) packOps();
  const builtins = BUILTINS.filter(
    (b) => !['bind', 'unbind'].includes(b) || isAdmin(core.config, person),
  ).map((b) => ({ name: b, summary: builtinSummary(b), risk: '' }));
  return rank([...operations, ...builtins], (o) => o.name, input.typed)
    .slice(0, MAX_CHOICES)
    .map((o) => ({
      name: choiceName(`${o.name} — ${o.summary}${o.risk && o.risk !== 'read' ? ` (${o.risk})` : ''}`),
      value: o.name,
    }));
}

function resolveSpec(core: Core, name: string, target: ResolvedTarget | undefined): AnyOperation | undefined {
  return core.catalog.resolve(name, target) ?? core.catalog.anyPackSpec(name);
}

function isAdmin(config: Config, person: ResolvedPerson): boolean {
  return person.roles.some((role) => config.adminRoles.includes(role));
}

function builtinSummary(name: (typeof BUILTINS)[number]): string {
  switch (name) {
    case 'help':
      return 'what you can run';
    case 'targets':
      return 'the databases you may use';
    case 'pending':
      return 'requests waiting for approval';
    case 'status':
      return 'one request: preview, votes, outcome';
    case 'approve':
      return 'approve a request by id';
    case 'deny':
      return 'deny a request by id, with a reason';
    case 'cancel':
      return 'withdraw your own request';
    case 'audit':
      return 'recent audit records';
    case 'lookup':
      return 'a pack lookup, e.g. lookup kasm user alice';
    case 'bind':
      return 'bind this channel to a target';
    case 'unbind':
      return "remove this channel's binding";
    case 'alerts':
      return 'open alerts; ack or mute one';
    case 'history':
      return 'a stored metric over time';
    case 'page':
      return 'a page of a long answer (its Next page button)';
    case 'csv':
      return "a read's answer as CSV with every column";
    case 'digest':
      return 'the weekly review of a target, with charts';
    case 'trend':
      return 'a stored metric as a chart, with its forecast';
    case 'schedules':
      return 'what dbops runs by itself, last and next run';
    case 'run-schedule':
      return 'run a schedule now';
  }
}
