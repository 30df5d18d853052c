// Posts to Slack channels through the Bolt app's Web API client: chat.postMessage and the V2 file upload.
import type { App as BoltApp } from '@slack/bolt';
import { redactSecrets } from '../core/log.js';
import {
  type Block,
  codeSections,
  context,
  escapeText,
  SLACK_LIMITS,
  section,
} from '../surfaces/slack/render.js';
import {
  ChannelPostError,
  type ChannelPoster,
  type ChannelRef,
  type OutgoingPost,
  type PostedRef,
  splitPost,
} from './poster.js';

type WebClient = BoltApp['client'];

/** Slack's words for a channel the bot cannot post to, in a sentence that says what fixes it. */
const REASONS: Record<string, string> = {
  not_in_channel: 'the bot is not a member (invite it with /invite @dbops)',
  channel_not_found: 'no such channel, or it is private and the bot is not in it',
  is_archived: 'the channel is archived',
  restricted_action: 'the workspace does not let the bot post there',
  invalid_auth: 'the bot token is not valid',
  not_authed: 'no bot token',
  missing_scope: 'the bot token lacks the chat:write scope',
};

function reasonOf(err: unknown): string {
  const code = (err as { data?: { error?: unknown } } | undefined)?.data?.error;
  if (typeof code === 'string') return REASONS[code] ? `${code}: ${REASONS[code]}` : code;
  return redactSecrets(err instanceof Error ? err.message : String(err));
}

/** The post as blocks: the headline as text, the rest in code blocks, then the buttons. */
export function slackBlocks(message: OutgoingPost): Block[] {
  const { headline, body } = splitPost(message.text);
  const blocks: Block[] = [section(escapeText(headline))];
  if (body !== '') {
    const room = SLACK_LIMITS.blocksPerMessage - 3;
    const { blocks: code, omittedLines } = codeSections(body, room);
    blocks.push(...code);
    if (omittedLines > 0) blocks.push(context(`… ${omittedLines} more lines cut`));
  }
  if (message.buttons && message.buttons.length > 0) {
    blocks.push({
      type: 'actions',
      block_id: 'dbops_alert',
      elements: message.buttons.map((b) => ({
        type: 'button',
        action_id: b.actionId,
        text: { type: 'plain_text', text: b.label.slice(0, 75) },
        value: b.value,
      })),
    });
  }
  return blocks;
}

export class SlackChannelPoster implements ChannelPoster {
  readonly #client: WebClient;

  constructor(client: WebClient) {
    this.#client = client;
  }

  async post(to: ChannelRef, message: OutgoingPost): Promise<PostedRef> {
    const thread = message.thread?.surface === 'slack' ? message.thread.id : undefined;
    let ts: string;
    try {
      const response = await this.#client.chat.postMessage({
        channel: to.channel,
        // The notification text: the headline, escaped (it may quote a table name or a query).
        text: escapeText(splitPost(message.text).headline).slice(0, 3000),
        blocks: slackBlocks(message),
        ...(thread ? { thread_ts: thread } : {}),
        unfurl_links: false,
        unfurl_media: false,
      });
      if (!response.ts) throw new Error('chat.postMessage answered without a ts');
      ts = response.ts;
      for (const file of message.files ?? []) {
        await this.#client.filesUploadV2({
          channel_id: to.channel,
          thread_ts: thread ?? ts,
          filename: file.name,
          title: file.name,
          file: file.data,
        });
      }
    } catch (err) {
      throw new ChannelPostError(to, reasonOf(err));
    }
    return { surface: 'slack', channel: to.channel, id: ts };
  }
}
