// Where a request's approval card and thread live, stored with the request (request.refs.discord) so the
// card can be updated after a restart or by another replica.
import type { ApprovalRequest } from '../../state/types.js';

export interface DiscordRefs {
  /** The channel (or thread) holding the card. */
  channel: string;
  /** The card message. */
  message: string;
  /** The thread where the conversation about the request goes, when there is one. */
  thread?: string;
}

export function discordRefs(request: Pick<ApprovalRequest, 'refs'>): DiscordRefs | undefined {
  const value = request.refs.discord as Partial<Record<keyof DiscordRefs, unknown>> | undefined;
  if (!value || typeof value.channel !== 'string' || typeof value.message !== 'string') return undefined;
  return {
    channel: value.channel,
    message: value.message,
    ...(typeof value.thread === 'string' ? { thread: value.thread } : {}),
  };
}

export function refsValue(refs: DiscordRefs): Record<string, unknown> {
  return { discord: { ...refs } };
}
