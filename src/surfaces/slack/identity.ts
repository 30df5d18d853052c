// Who is acting, from Slack's immutable ids only (team id + user id); display names are never read.
import type { Actor } from '../../state/types.js';
import { escapeText } from './render.js';

/** Slack ids are upper-case letters and digits (T…, U…, W…, C…); anything else is refused, not guessed. */
const SLACK_ID = /^[A-Z0-9]{2,32}$/;

/** "T01/U02BOB": what config.people[…].slack holds and what the core resolves to a person. */
export function slackIdentity(teamId: string | undefined, userId: string | undefined): string | undefined {
  if (!teamId || !userId || !SLACK_ID.test(teamId) || !SLACK_ID.test(userId)) return undefined;
  return `${teamId}/${userId}`;
}

/** The person's own workspace wins over the workspace the payload came through (Slack Connect, Grid). */
export function identityOfUser(
  user: { id?: string; team_id?: string } | undefined,
  fallbackTeam: string | undefined,
): string | undefined {
  return slackIdentity(user?.team_id ?? fallbackTeam, user?.id);
}

/** A mention Slack renders as the person's current name — safe because the id is checked. */
export function mentionUser(userId: string): string {
  return SLACK_ID.test(userId) ? `<@${userId}>` : escapeText(userId);
}

/** How a card names someone: a Slack identity becomes a mention, any other (CLI, Discord) the person's name. */
export function actorMention(actor: Pick<Actor, 'identity' | 'person'>): string {
  const match = /^slack:[A-Z0-9]+\/([A-Z0-9]+)$/.exec(actor.identity);
  return match?.[1] ? `<@${match[1]}>` : escapeText(actor.person);
}

/**
 * The command a person typed, from Slack's message markup: the bot's own mention is dropped, links and
 * e-mail addresses become their visible text, and entities are decoded.
 */
export function commandText(slackText: string, botUserId?: string): string {
  const withoutBot =
    botUserId && SLACK_ID.test(botUserId)
      ? slackText.replace(new RegExp(`<@${botUserId}(\\|[^>]*)?>`, 'g'), ' ')
      : slackText;
  return withoutBot
    .replace(/<([^<>]*)>/g, (_all, inner: string) => {
      const bar = inner.indexOf('|');
      const target = bar >= 0 ? inner.slice(0, bar) : inner;
      const label = bar >= 0 ? inner.slice(bar + 1) : '';
      if (label) return label;
      if (target.startsWith('mailto:')) return target.slice('mailto:'.length);
      if (target.startsWith('!')) return `@${target.slice(1).split('^')[0] ?? ''}`;
      return target;
    })
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .trim();
}
