// Who may do what where: one pure function over the configured policy. Deny by default.
import type { EnvironmentPolicy, ResolvedPerson } from '../config/schema.js';
import type { Risk } from './types.js';

export const ACTIONS = ['read', 'write', 'request', 'approve', 'sql_read', 'sql_write'] as const;
export type Action = (typeof ACTIONS)[number];

/** The role every known person holds. */
export const EVERYONE = 'everyone';

export type Decision =
  | { allowed: true; action: Action; needsApproval: boolean; approvalsRequired: number }
  | { allowed: false; action: Action; reason: string };

const ACTION_WORDS: Record<Action, string> = {
  read: 'run read operations',
  write: 'run write operations',
  request: 'request destructive operations',
  approve: 'approve requests',
  sql_read: 'run ad-hoc SQL reads',
  sql_write: 'request ad-hoc SQL writes',
};

/** What permission running an operation of this risk needs. */
export function actionForRisk(risk: Risk): Action {
  return risk === 'read' ? 'read' : risk === 'write' ? 'write' : 'request';
}

export function holdsAnyRole(person: ResolvedPerson, roles: readonly string[]): boolean {
  return roles.includes(EVERYONE) || person.roles.some((role) => roles.includes(role));
}

/**
 * Decides whether `person` may take `action` on a target of `environment`.
 * `person` undefined means the identity is not in config.people: always refused.
 */
export function decide(input: {
  person: ResolvedPerson | undefined;
  identity: string;
  action: Action;
  environment: string;
  policy: Readonly<Record<string, EnvironmentPolicy>>;
}): Decision {
  const { person, action, environment } = input;
  if (!person) {
    return {
      allowed: false,
      action,
      reason: `your identity ${input.identity} is not in dbops' people list; ask an admin to add it to a person in the config`,
    };
  }
  const rules = input.policy[environment];
  if (!rules) {
    return {
      allowed: false,
      action,
      reason: `environment ${environment} has no policy, so nothing is allowed there (deny by default)`,
    };
  }
  // keys added later (sql_read, sql_write) may be absent: nobody holds them then
  const roles = rules[action] ?? [];
  if (!holdsAnyRole(person, roles)) {
    const needed =
      roles.length > 0 ? `one of the roles ${roles.join(', ')}` : 'a role, but policy grants it to nobody';
    const held = person.roles.length > 0 ? person.roles.join(', ') : 'no roles';
    return {
      allowed: false,
      action,
      reason: `${person.name} may not ${ACTION_WORDS[action]} on ${environment}: that needs ${needed} (${person.name} has ${held})`,
    };
  }
  const needsApproval =
    action === 'request' ||
    action === 'sql_write' ||
    (action === 'write' && rules.approve_writes) ||
    (action === 'sql_read' && rules.approve_sql_reads === true);
  return { allowed: true, action, needsApproval, approvalsRequired: needsApproval ? rules.approvals : 0 };
}

/** Every action the person may take on an environment (for `targets` and `help`). */
export function allowedActions(
  person: ResolvedPerson | undefined,
  environment: string,
  policy: Readonly<Record<string, EnvironmentPolicy>>,
): Action[] {
  return ACTIONS.filter((action) => decide({ person, identity: '', action, environment, policy }).allowed);
}
