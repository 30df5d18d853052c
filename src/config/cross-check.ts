// Cross-checks of a parsed config that zod alone cannot express: references between sections, secrets written literally.
import { EVERYONE } from '../core/policy.js';
import { closest, orList } from '../core/suggest.js';
import { IDENTITY_KINDS } from '../core/types.js';
import { crossCheckSchedules } from '../schedules/schema.js';
import { isRecord, type ProblemList, quoted } from './problems.js';
import { dotted, type Path } from './yaml-locator.js';

const POLICY_ROLE_FIELDS = ['read', 'write', 'request', 'approve', 'escalate_to'] as const;

export function envVarFor(path: Path): string {
  if (path[0] === 'state') return 'DBOPS_STATE_URL';
  const name = String(path[1] ?? 'target')
    .toUpperCase()
    .replace(/[^A-Z0-9]/g, '_');
  return `${name}_DATABASE_URL`;
}

/** True when a connection string, as written in the file, carries a password that is not a ${VAR}. */
export function hasLiteralPassword(raw: string): boolean {
  // Drop every ${VAR}; a `$${` is literal text, so it stays.
  const masked = raw.replace(/\$\$\{|\$\{[^}]*\}/g, (m) => (m === '$${' ? '${' : ''));
  const isLiteral = (secret: string) => secret !== '';
  const userinfo = /^[a-z][a-z0-9+.-]*:\/\/([^/?#@]*)@/i.exec(masked)?.[1];
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    if (colon >= 0 && isLiteral(userinfo.slice(colon + 1))) return true;
  }
  for (const match of masked.matchAll(/(?:^|[?&\s])password\s*=\s*([^&\s]*)/gi)) {
    if (isLiteral(match[1] ?? '')) return true;
  }
  return false;
}

export function crossCheck(data: unknown, raw: Map<string, string>, problems: ProblemList): void {
  if (!isRecord(data)) return;
  const targets = isRecord(data.targets) ? data.targets : {};
  const people = isRecord(data.people) ? data.people : {};
  const policy = isRecord(data.policy) ? data.policy : {};
  const channels = isRecord(data.channels) ? data.channels : {};
  const environments = Object.keys(policy);
  const targetNames = Object.keys(targets);

  // Secrets stay in the environment.
  const urlPaths: Path[] = [['state', 'url'], ...targetNames.map((name) => ['targets', name, 'url'])];
  for (const path of urlPaths) {
    const text = raw.get(dotted(path));
    if (text === undefined || !hasLiteralPassword(text)) continue;
    const variable = envVarFor(path);
    const passwordVar = variable.replace(/_URL$/, '_PASSWORD').replace('_DATABASE_', '_');
    problems.add(
      path,
      `contains a literal password; keep secrets out of the file: write \${${variable}} (or postgres://user:\${${passwordVar}}@host/db) and set the variable in the environment`,
    );
  }

  // Every target's environment has a policy.
  // (Each check runs only when the section it compares against is valid, so one mistake is reported once.)
  for (const [name, target] of isRecord(data.policy) ? Object.entries(targets) : []) {
    if (!isRecord(target) || typeof target.environment !== 'string') continue;
    const env = target.environment;
    if (environments.includes(env)) continue;
    const known = environments.length > 0 ? `use one of ${environments.join(', ')} or add` : 'add';
    problems.add(
      ['targets', name, 'environment'],
      `'${env}' is not an environment in policy; ${known} policy.${env}`,
    );
  }

  // People: at least one identity each, and no identity shared by two people.
  const owners = new Map<string, { person: string; line: number }>();
  const heldRoles = new Set<string>();
  for (const [name, person] of Object.entries(people)) {
    if (!isRecord(person)) continue;
    if (Array.isArray(person.roles)) {
      for (const role of person.roles) if (typeof role === 'string') heldRoles.add(role);
    }
    let identities = 0;
    for (const kind of IDENTITY_KINDS) {
      const identity = person[kind];
      if (typeof identity !== 'string' || identity.trim() === '') continue;
      identities++;
      const key = `${kind}\u0000${identity}`;
      const owner = owners.get(key);
      const { line } = problems.where(['people', name, kind]);
      if (owner) {
        problems.add(
          ['people', name, kind],
          `${kind} identity '${identity.slice(0, 60)}' already belongs to people.${owner.person} (line ${owner.line}); an identity can be one person only — remove one of them`,
        );
      } else {
        owners.set(key, { person: name, line });
      }
    }
    if (person.service === true) {
      if (identities > 0) {
        problems.add(
          ['people', name],
          `is a service person (schedules run as it), so it may have no slack, discord or cli identity — nobody may act as ${name}; remove them`,
          true,
        );
      }
    } else if (identities === 0) {
      problems.add(
        ['people', name],
        `has no identity, so nobody can act as ${name}; add at least one of slack (T…/U…), discord (user id) or cli (login name)`,
        true,
      );
    }
  }

  // Roles held through Slack groups or Discord roles are held too.
  const sources =
    isRecord(data.role_sources) && isRecord(data.role_sources.roles) ? data.role_sources.roles : {};
  for (const role of Object.keys(sources)) heldRoles.add(role);

  // Policy roles must be held by someone (else a typo silently denies everyone).
  const roleChoices = [...heldRoles, EVERYONE];
  for (const [env, rules] of isRecord(data.people) ? Object.entries(policy) : []) {
    if (!isRecord(rules)) continue;
    for (const field of POLICY_ROLE_FIELDS) {
      const roles = rules[field];
      if (!Array.isArray(roles)) continue;
      roles.forEach((role, index) => {
        if (typeof role !== 'string' || role === EVERYONE || heldRoles.has(role)) return;
        const suggestion = closest(role, roleChoices);
        const hint = suggestion.length > 0 ? `did you mean ${orList(quoted(suggestion))}? ` : '';
        problems.add(
          ['policy', env, field, index],
          `role '${role}' is held by no one; ${hint}give it to someone in people.<name>.roles, use '${EVERYONE}', or remove it`,
        );
      });
    }
  }

  // Schedules: cron and zone, targets, the service person they run as.
  crossCheckSchedules(data, (path, what) => problems.add(path, what));

  // Channel bindings name real targets.
  for (const [channel, binding] of isRecord(data.targets) ? Object.entries(channels) : []) {
    if (!isRecord(binding) || typeof binding.target !== 'string') continue;
    const target = binding.target;
    if (targetNames.includes(target)) continue;
    const suggestion = closest(target, targetNames);
    const hint = suggestion.length > 0 ? `did you mean ${orList(quoted(suggestion))}? ` : '';
    problems.add(
      ['channels', channel, 'target'],
      `'${target}' is not a target; ${hint}use one of ${targetNames.length > 0 ? orList(targetNames) : 'the targets (none are configured)'}`,
    );
  }
}
