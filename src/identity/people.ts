// A person as the platforms see them now: roles listed by hand plus roles held through groups and roles.
import type { Config, ResolvedPerson } from '../config/schema.js';
import type { IdentityKind } from '../core/types.js';
import type { RoleDirectory } from './directory.js';

const directories = new WeakMap<Config, RoleDirectory>();

/** Makes `directory` the source of platform roles for everything that resolves people under `config`. */
export function attachDirectory(config: Config, directory: RoleDirectory): void {
  directories.set(config, directory);
}

export function directoryOf(config: Config): RoleDirectory | undefined {
  return directories.get(config);
}

/** The Slack user id of an identity "T01/U02" (Slack user ids are unique across workspaces). */
function slackUser(identity: string): string | undefined {
  const match = /^[A-Z0-9]{2,32}\/([A-Z0-9]{2,32})$/.exec(identity);
  return match?.[1];
}

/** The roles an identity holds through the platforms (none for CLI identities). */
export function platformRoles(config: Config, kind: IdentityKind, identity: string): string[] {
  const directory = directories.get(config);
  if (!directory || !config.roleSources) return [];
  if (kind === 'slack') {
    const user = slackUser(identity);
    return user ? directory.slackRoles(user) : [];
  }
  if (kind === 'discord') return directory.discordRoles(identity);
  return [];
}

/**
 * The person behind an identity: the listed person (if any) with the roles their groups add, or — for
 * someone only a group names — a person of their own, named by the identity, so that a Slack and a
 * Discord identity are one person only when config.people links them.
 */
export function withPlatformRoles(
  config: Config,
  kind: IdentityKind,
  identity: string,
  listed: ResolvedPerson | undefined,
): ResolvedPerson | undefined {
  const extra = platformRoles(config, kind, identity);
  if (extra.length === 0) return listed;
  if (listed) {
    const roles = [...new Set([...listed.roles, ...extra])];
    return { name: listed.name, roles, identities: listed.identities };
  }
  return { name: `${kind}:${identity}`, roles: extra, identities: { [kind]: identity } };
}

/**
 * Why someone may be missing roles they had: Slack groups that cannot be read (past keep_last_known), for
 * the refusal of an identity dbops does not know. Empty when nothing is wrong or the identity is not Slack.
 */
export function membershipProblems(config: Config, identity: string): string[] {
  const directory = directories.get(config);
  if (!directory || !identity.startsWith('slack:')) return [];
  return directory.slackGroups.flatMap((group) => directory.groupProblem(group) ?? []);
}
