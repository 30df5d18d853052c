// A person as the platforms see them now: roles listed by hand plus roles held through groups and roles.
import type { Config, ResolvedPerson } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import { redactSecrets } from '../core/log.js';
import type { IdentityKind, Invocation } from '../core/types.js';
import type { ApprovalRequest } from '../state/types.js';
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
 * Why someone may be missing roles they had: Slack groups, or the Discord member listing, that cannot be
 * read (past keep_last_known), for the refusal of an identity dbops does not know. Empty when nothing is
 * wrong, or for CLI identities.
 */
export function membershipProblems(config: Config, identity: string): string[] {
  const directory = directories.get(config);
  if (directory && identity.startsWith('discord:')) {
    const stale = directory.discord.staleness(identity.slice('discord:'.length));
    const problem = directory.discord.listingProblem();
    return [...(problem ? [problem] : []), ...(stale ? [stale] : [])];
  }
  if (!directory || !identity.startsWith('slack:')) return [];
  return directory.slackGroups.flatMap((group) => directory.groupProblem(group) ?? []);
}

/**
 * Before a request is judged: the Discord roles of its requester and voters as any replica last stored
 * them, so that every replica, and a restarted one, counts the same votes. Fails (nothing is decided)
 * when the state database cannot be read.
 */
export async function prepareJudgement(config: Config, request: ApprovalRequest): Promise<void> {
  const directory = directories.get(config);
  if (!directory?.discord.enabled) return;
  try {
    await directory.prepare([request.requester.identity, ...request.votes.map((v) => v.identity)]);
  } catch (err) {
    const why = redactSecrets(err instanceof Error ? err.message : String(err));
    throw new UserError(
      'state_unavailable',
      `the Discord roles of #${request.id}'s voters cannot be read from the state database right now (${why}), so nothing was decided; try again shortly`,
    );
  }
}

/**
 * Before a Discord command: the guild payload's roles are stored for every replica (from a DM, which has
 * no member, the stored ones are loaded). The refusal to answer with, and its cause, when the state
 * database cannot do that: nothing may be decided on roles the other replicas cannot see.
 */
export async function keepDiscordRoles(
  config: Config,
  inv: Invocation,
): Promise<{ error: UserError; cause: unknown } | undefined> {
  const directory = directories.get(config);
  if (inv.surface !== 'discord' || !directory) return undefined;
  try {
    await directory.discordActor(inv.identity, inv.memberRoles);
    return undefined;
  } catch (cause) {
    const error = new UserError(
      'state_unavailable',
      'your Discord roles could not be kept in the state database, so nothing was done; try again shortly',
    );
    return { error, cause };
  }
}
