// Who is acting: the immutable Discord user id is the identity the core maps to a person (never a name).
import { resolvePerson } from '../../config/load.js';
import type { Config, ResolvedPerson } from '../../config/schema.js';
import type { Actor } from '../../state/types.js';

/** The identity dbops audits and authorizes: the Discord user id (a snowflake). */
export function identityOf(user: { id: string }): string {
  return user.id;
}

/** The configured person for a Discord user, for autocomplete only; dispatch() decides everything else. */
export function personOf(config: Config, userId: string): ResolvedPerson | undefined {
  return resolvePerson(config, 'discord', userId);
}

/** ` (<@id>)` when the actor acted from Discord: shows their name, pings nobody (mentions are disabled). */
export function mentionOfActor(actor: Actor): string {
  const match = /^discord:(\d{1,25})$/.exec(actor.identity);
  return match ? ` (<@${match[1]}>)` : '';
}

const SNOWFLAKE = /^\d{5,25}$/;

/**
 * The role ids of a guild member as the gateway payload carried them: discord.js gives a GuildMember
 * (roles.cache) or the raw API member (roles: string[]). No member, or no roles, means no roles.
 * @everyone is not a role: nobody can be granted a dbops role for merely being in the guild.
 */
export function memberRoleIds(member: unknown): string[] {
  if (typeof member !== 'object' || member === null) return [];
  const roles: unknown = (member as { roles?: unknown }).roles;
  let ids: unknown[] = [];
  if (Array.isArray(roles)) ids = roles;
  else if (typeof roles === 'object' && roles !== null) {
    const cache: unknown = (roles as { cache?: unknown }).cache;
    if (cache instanceof Map) ids = [...cache.keys()];
  }
  // discord.js lists @everyone (its id is the guild's) among a GuildMember's roles: it is no role held.
  const guild: unknown = (member as { guild?: { id?: unknown } }).guild?.id;
  return ids.filter((id): id is string => typeof id === 'string' && SNOWFLAKE.test(id) && id !== guild);
}
