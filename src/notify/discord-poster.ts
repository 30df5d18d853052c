// Posts to Discord channels over REST: a message (mentions disabled), follow-ups in a thread started from it.
import {
  type APIActionRowComponent,
  type APIComponentInMessageActionRow,
  ButtonStyle,
  ComponentType,
} from 'discord.js';
import { redactSecrets } from '../core/log.js';
import { showInvisible } from '../core/visible.js';
import { type DiscordApi, discordErrorCode, type OutgoingMessage } from '../surfaces/discord/api.js';
import { codeBlock, escapeText } from '../surfaces/discord/render.js';
import {
  ChannelPostError,
  type ChannelPoster,
  type ChannelRef,
  type OutgoingPost,
  type PostedRef,
  splitPost,
} from './poster.js';

const CONTENT_MAX = 2000;
const UNKNOWN_CHANNEL = 10003;

/** Discord's error codes for a channel the bot cannot post to, in words that say what fixes it. */
const REASONS: Record<string, string> = {
  '10003': 'unknown channel (deleted, or not a channel id)',
  '50001': 'missing access: the bot cannot see this channel',
  '50013': 'missing permissions: the bot may not send messages there',
  '50008': 'cannot send messages in a non-text channel',
  '50024': 'cannot post in this type of channel',
};

function reasonOf(err: unknown): string {
  const code = discordErrorCode(err);
  const message = redactSecrets(err instanceof Error ? err.message : String(err));
  if (code === undefined) return message;
  return `${code}: ${REASONS[String(code)] ?? message}`;
}

/** The headline escaped, then the rest as a code block cut at a line so the whole fits 2000 characters. */
export function discordContent(text: string): string {
  const { headline, body } = splitPost(text);
  const head = escapeText(headline).slice(0, 400);
  if (body === '') return head;
  const room = CONTENT_MAX - head.length - 1;
  const whole = codeBlock(body);
  if (whole.length <= room) return `${head}\n${whole}`;
  const lines = body.split('\n');
  const note = '… (cut: too long for one Discord message)';
  while (lines.length > 0 && codeBlock([...lines, note].join('\n')).length > room) lines.pop();
  return `${head}\n${codeBlock([...lines, note].join('\n'))}`;
}

function buttonRows(message: OutgoingPost): APIActionRowComponent<APIComponentInMessageActionRow>[] {
  const buttons = message.buttons ?? [];
  const rows: APIActionRowComponent<APIComponentInMessageActionRow>[] = [];
  for (let i = 0; i < buttons.length && rows.length < 5; i += 5) {
    rows.push({
      type: ComponentType.ActionRow,
      components: buttons.slice(i, i + 5).map((b) => ({
        type: ComponentType.Button,
        style: ButtonStyle.Secondary,
        label: b.label.slice(0, 80),
        // `<action>:<value>`, at most 100 characters (Discord's custom_id limit).
        custom_id: `${b.actionId}:${b.value}`.slice(0, 100),
      })),
    });
  }
  return rows;
}

/** How many recent posts' headlines are remembered to name the thread started from them. */
const REMEMBERED = 500;

export class DiscordChannelPoster implements ChannelPoster {
  readonly #api: DiscordApi;
  /** message id → its headline: a thread is named after the post it starts from (after a restart: the follow-up). */
  readonly #headlines = new Map<string, string>();

  constructor(api: DiscordApi) {
    this.#api = api;
  }

  async post(to: ChannelRef, message: OutgoingPost): Promise<PostedRef> {
    const outgoing: OutgoingMessage = {
      content: discordContent(message.text),
      ...(message.buttons && message.buttons.length > 0 ? { components: buttonRows(message) } : {}),
      ...(message.files && message.files.length > 0
        ? {
            files: message.files.map((f) => ({
              name: f.name,
              contentType: 'application/octet-stream',
              data: f.data,
            })),
          }
        : {}),
    };
    try {
      const thread = message.thread?.surface === 'discord' ? message.thread : undefined;
      if (!thread) {
        const sent = await this.#api.send(to.channel, outgoing);
        this.#headlines.set(sent.id, splitPost(message.text).headline);
        if (this.#headlines.size > REMEMBERED) {
          const [oldest] = this.#headlines.keys();
          if (oldest !== undefined) this.#headlines.delete(oldest);
        }
        return { surface: 'discord', channel: to.channel, id: sent.id };
      }
      // A thread started from a message has that message's id; it is started at the first follow-up.
      try {
        const sent = await this.#api.send(thread.id, outgoing);
        return { surface: 'discord', channel: to.channel, id: sent.id };
      } catch (err) {
        if (discordErrorCode(err) !== UNKNOWN_CHANNEL) throw err;
      }
      const headline = this.#headlines.get(thread.id) ?? splitPost(message.text).headline;
      // Thread names are plain text (no markdown): invisible characters shown, length within Discord's 100.
      const name = showInvisible(headline, { newlines: false }).slice(0, 90) || 'dbops';
      await this.#api.startThread(thread.channel, thread.id, name);
      const sent = await this.#api.send(thread.id, outgoing);
      return { surface: 'discord', channel: to.channel, id: sent.id };
    } catch (err) {
      throw new ChannelPostError(to, reasonOf(err));
    }
  }
}
