// check-config's warnings about approval rules nobody can satisfy: too few approvers, or only the requester.
import { LineCounter, parseDocument } from 'yaml';
import { type Action, holdsAnyRole } from '../core/policy.js';
import type { Config, EnvironmentPolicy, ResolvedPerson } from './schema.js';
import { Locator, type Path } from './yaml-locator.js';

/** One unsatisfiable rule: where it is written and what it means for the people it names. */
export interface ApprovalWarning {
  environment: string;
  /** The YAML path of the rule (`policy.production.approvals`; `approve` names the line when it is left out). */
  path: Path;
  message: string;
}

/** What waits for approval on an environment, and how the warning names it. */
function approvalActions(rules: EnvironmentPolicy): { action: Action; what: string }[] {
  const actions: { action: Action; what: string }[] = [
    { action: 'request', what: 'destructive operations' },
    { action: 'sql_write', what: 'SQL writes' },
  ];
  if (rules.approve_writes) actions.push({ action: 'write', what: 'write operations' });
  if (rules.approve_sql_reads === true) actions.push({ action: 'sql_read', what: 'SQL reads' });
  return actions;
}

/** "alice", "alice and dave", "alice, bob and dave". */
function andList(names: readonly string[]): string {
  if (names.length <= 1) return names.join('');
  return `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}

function people(count: number): string {
  return count === 1 ? '1 person' : `${count} people`;
}

function approverText(count: number): string {
  return count === 1 ? 'an approver' : `${count} approvers`;
}

/**
 * Every environment whose approval rule cannot be met: fewer people may approve than `approvals` asks for,
 * or the people who may request would each need approvers other than themselves that do not exist (the
 * requester never counts, whatever role they hold). Environments nobody may request anything on are fine.
 */
export function unsatisfiableApprovals(
  config: Pick<Config, 'people' | 'policy' | 'targets'>,
): ApprovalWarning[] {
  const everybody: ResolvedPerson[] = Object.values(config.people);
  const warnings: ApprovalWarning[] = [];
  for (const [environment, rules] of Object.entries(config.policy)) {
    const needed = rules.approvals;
    const approvers = everybody.filter((p) => holdsAnyRole(p, rules.approve)).map((p) => p.name);
    const targets = Object.values(config.targets)
      .filter((t) => t.environment === environment)
      .map((t) => t.name);
    const on =
      targets.length > 0 ? ` (${targets.length === 1 ? 'target' : 'targets'} ${targets.join(', ')})` : '';
    const path: Path = ['policy', environment, 'approvals'];
    const approveRule = `approve: [${rules.approve.join(', ')}]`;
    const only =
      approvers.length === 0
        ? `nobody may approve (${approveRule} matches no person)`
        : approvers.length === 1
          ? `${approvers[0]} is the only person who may approve (${approveRule})`
          : `only ${andList(approvers)} may approve (${approveRule})`;
    // Actions whose blocked people are the same are said in one sentence: "destructive operations and SQL writes".
    const findings = new Map<string, { whats: string[]; blocked: string[]; everyone: boolean }>();
    for (const { action, what } of approvalActions(rules)) {
      const requesters = everybody.filter((p) => holdsAnyRole(p, rules[action] ?? [])).map((p) => p.name);
      const blocked = requesters.filter((r) => approvers.filter((a) => a !== r).length < needed);
      if (blocked.length === 0) continue;
      const everyone = approvers.length < needed;
      const key = `${everyone}:${blocked.join(',')}`;
      const finding = findings.get(key) ?? { whats: [], blocked, everyone };
      finding.whats.push(what);
      findings.set(key, finding);
    }
    for (const { whats, blocked, everyone } of findings.values()) {
      const what = andList(whats);
      const message = everyone
        ? `policy.${environment}${on}: approvals: ${needed} needs ${approverText(needed)}, but ` +
          `${approvers.length < 2 ? only : `only ${people(approvers.length)} may: ${andList(approvers)} (${approveRule})`}; ` +
          `${what} requested there by ${andList(blocked)} can never run`
        : `policy.${environment}${on}: ${what} requested by ${andList(blocked)} can never be approved: ` +
          `approvals: ${needed} needs ${needed === 1 ? 'an approver' : `${needed} approvers`} other than the ` +
          `requester (nobody approves their own request), and ${only}`;
      warnings.push({ environment, path, message });
    }
  }
  return warnings;
}

/** The warnings as check-config prints them: `dbops.yaml:42: policy.production …` (the line when known). */
export function approvalWarningLines(config: Config, yamlText: string | undefined): string[] {
  const warnings = unsatisfiableApprovals(config);
  if (warnings.length === 0) return [];
  if (yamlText === undefined) return warnings.map((w) => `${config.source}: ${w.message}`);
  const lines = new LineCounter();
  const doc = parseDocument(yamlText, { lineCounter: lines });
  const locator = new Locator(doc, lines);
  return warnings.map((w) => {
    // `approvals` left out means its default of 1: the line of the `approve` rule says who is missing.
    const path = doc.hasIn(w.path) ? w.path : [...w.path.slice(0, -1), 'approve'];
    return `${config.source}:${locator.line(path, true)}: ${w.message}`;
  });
}
