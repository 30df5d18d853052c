// Reads the members of every guild the bot is in over REST (role_sources.discord_member_listing): who holds
// a Discord role is then known before they act. Needs the privileged Server Members intent enabled.
import { DiscordAPIError, type REST, Routes } from 'discord.js';
import type { DiscordMemberReader } from '../../identity/discord-members.js';

/** Discord's page sizes: guilds (GET /users/@me/guilds) and members (GET /guilds/{id}/members). */
const GUILD_PAGE = 200;
const MEMBER_PAGE = 1000;
/** A bound on the pages read per guild (a million members), so a misbehaving API cannot loop forever. */
const MAX_PAGES = 1000;
const SNOWFLAKE = /^\d{5,25}$/;

interface Member {
  user?: { id?: unknown };
  roles?: unknown;
}

/** The highest id of a page: the cursor of the next one (ids are compared as numbers, not strings). */
function highest(ids: readonly string[], after: string): string {
  let top = BigInt(after);
  for (const id of ids) if (BigInt(id) > top) top = BigInt(id);
  return top.toString();
}

async function pages<T>(
  read: (after: string) => Promise<T[]>,
  idOf: (item: T) => string | undefined,
  size: number,
): Promise<T[]> {
  const all: T[] = [];
  let after = '0';
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const items = await read(after);
    all.push(...items);
    const ids = items.flatMap((item) => idOf(item) ?? []);
    const next = highest(ids, after);
    if (items.length < size || next === after) return all;
    after = next;
  }
  throw new Error(`more than ${MAX_PAGES} pages of ${size}: stopped reading`);
}

/** What to do about a refused listing, named in check-config and /readyz. */
export function describeListingError(err: unknown): string {
  if (err instanceof DiscordAPIError && (err.code === 50001 || err.status === 403)) {
    return `${err.message} (${err.code}): enable the Server Members intent for the application in the Discord Developer Portal (Bot → Privileged Gateway Intents)`;
  }
  if (err instanceof DiscordAPIError) return `${err.message} (${err.code}, HTTP ${err.status})`;
  return err instanceof Error ? err.message : String(err);
}

/** user id → role ids, over every guild the bot is in (a member of two guilds holds the roles of both). */
export function guildMemberReader(rest: REST): DiscordMemberReader {
  return async () => {
    try {
      const guilds = await pages(
        async (after) =>
          (await rest.get(Routes.userGuilds(), {
            query: new URLSearchParams({ limit: String(GUILD_PAGE), after }),
          })) as { id?: unknown }[],
        (guild) => (typeof guild.id === 'string' && SNOWFLAKE.test(guild.id) ? guild.id : undefined),
        GUILD_PAGE,
      );
      const members = new Map<string, string[]>();
      for (const guild of guilds) {
        if (typeof guild.id !== 'string' || !SNOWFLAKE.test(guild.id)) continue;
        const guildId = guild.id;
        const listed = await pages(
          async (after) =>
            (await rest.get(Routes.guildMembers(guildId), {
              query: new URLSearchParams({ limit: String(MEMBER_PAGE), after }),
            })) as Member[],
          (member) => userIdOf(member),
          MEMBER_PAGE,
        );
        for (const member of listed) {
          const user = userIdOf(member);
          if (!user) continue;
          const roles = Array.isArray(member.roles)
            ? member.roles.filter((id): id is string => typeof id === 'string' && SNOWFLAKE.test(id))
            : [];
          members.set(user, [...new Set([...(members.get(user) ?? []), ...roles])]);
        }
      }
      return members;
    } catch (err) {
      throw new Error(describeListingError(err));
    }
  };
}

function userIdOf(member: Member): string | undefined {
  const id = member.user?.id;
  return typeof id === 'string' && SNOWFLAKE.test(id) ? id : undefined;
}
