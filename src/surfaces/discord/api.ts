// The Discord REST calls dbops makes, through discord.js' REST client; every message body passes through
// messageBody(), so no message can ping anyone (allowed_mentions with nothing to parse).
import {
  type APIActionRowComponent,
  type APIAllowedMentions,
  type APIComponentInMessageActionRow,
  type APIEmbed,
  DiscordAPIError,
  type RawFile,
  type REST,
  Routes,
} from 'discord.js';

/** Mentions written in a message (a database value like `@everyone`, `<@id>`, `<@&role>`) ping nobody. */
export const NO_MENTIONS = { parse: [] } as const satisfies APIAllowedMentions;

export interface OutgoingFile {
  name: string;
  contentType: string;
  data: Buffer;
}

/** A message as dbops builds it; `components: []` removes buttons on an edit. */
export interface OutgoingMessage {
  content?: string;
  embeds?: APIEmbed[];
  components?: APIActionRowComponent<APIComponentInMessageActionRow>[];
  files?: OutgoingFile[];
  /** 64 = ephemeral (interaction responses and follow-ups only). */
  flags?: number;
  /**
   * The only mentions that may ping: these role ids (an approval card's approver roles, when first
   * posted). Absent, nothing pings. Never sent as a field of its own.
   */
  mentionRoles?: readonly string[];
}

/** Where a message landed. */
export interface PostedMessage {
  id: string;
  channelId: string;
}

/**
 * The JSON body of a message create or edit, with mentions disabled (or limited to `mentionRoles`) and
 * attachments declared.
 */
export function messageBody(
  message: OutgoingMessage,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const files = message.files ?? [];
  return {
    ...(message.content !== undefined ? { content: message.content } : {}),
    ...(message.embeds !== undefined ? { embeds: message.embeds } : {}),
    ...(message.components !== undefined ? { components: message.components } : {}),
    ...(message.flags !== undefined ? { flags: message.flags } : {}),
    ...(files.length > 0 ? { attachments: files.map((f, i) => ({ id: i, filename: f.name })) } : {}),
    ...extra,
    allowed_mentions:
      message.mentionRoles && message.mentionRoles.length > 0
        ? { parse: [], roles: [...message.mentionRoles] }
        : NO_MENTIONS,
  };
}

function rawFiles(message: OutgoingMessage): RawFile[] | undefined {
  const files = message.files ?? [];
  if (files.length === 0) return undefined;
  return files.map((f) => ({ name: f.name, contentType: f.contentType, data: f.data }));
}

function posted(data: unknown): PostedMessage {
  const message = data as { id?: unknown; channel_id?: unknown };
  if (typeof message?.id !== 'string' || typeof message.channel_id !== 'string') {
    throw new Error('Discord returned a message without id or channel_id');
  }
  return { id: message.id, channelId: message.channel_id };
}

/** Discord's JSON error code of a failed call (e.g. 10062 unknown interaction), if it is one. */
export function discordErrorCode(err: unknown): number | string | undefined {
  return err instanceof DiscordAPIError ? err.code : undefined;
}

/** Interaction tokens and webhook paths are secrets: describe a failed call without them. */
export function safeError(err: unknown): Record<string, unknown> {
  if (err instanceof DiscordAPIError) {
    return {
      code: err.code,
      status: err.status,
      method: err.method,
      path: redactPath(err.url),
      message: err.message,
    };
  }
  if (err instanceof Error) return { name: err.name, message: redactPath(err.message) };
  return { message: String(err) };
}

export function redactPath(text: string): string {
  return text
    .replace(/\/webhooks\/(\d+)\/[^/?\s]+/g, '/webhooks/$1/***')
    .replace(/\/interactions\/(\d+)\/[^/?\s]+/g, '/interactions/$1/***');
}

export class DiscordApi {
  readonly #rest: REST;

  constructor(rest: REST) {
    this.#rest = rest;
  }

  /** Edits the first response of an interaction (the deferred "thinking" message). */
  async editOriginal(applicationId: string, token: string, message: OutgoingMessage): Promise<PostedMessage> {
    const data = await this.#rest.patch(Routes.webhookMessage(applicationId, token, '@original'), {
      body: messageBody(message),
      files: rawFiles(message),
      auth: false,
    });
    return posted(data);
  }

  /**
   * The initial response of an interaction with its answer (callback type 4), instead of a deferral; flags
   * 64 makes it ephemeral. Discord answers 204 with no message, so nothing is returned.
   */
  async respond(interactionId: string, token: string, message: OutgoingMessage): Promise<void> {
    await this.#rest.post(Routes.interactionCallback(interactionId, token), {
      body: { type: 4, data: messageBody(message) },
      files: rawFiles(message),
      auth: false,
    });
  }

  async deleteOriginal(applicationId: string, token: string): Promise<void> {
    await this.#rest.delete(Routes.webhookMessage(applicationId, token, '@original'), { auth: false });
  }

  /** A follow-up message to an interaction (flags 64 makes it ephemeral). */
  async followUp(applicationId: string, token: string, message: OutgoingMessage): Promise<PostedMessage> {
    const data = await this.#rest.post(Routes.webhook(applicationId, token), {
      body: messageBody(message),
      files: rawFiles(message),
      auth: false,
    });
    return posted(data);
  }

  /** Posts in a channel or thread, optionally as a reply to a message there. */
  async send(channelId: string, message: OutgoingMessage, replyTo?: string): Promise<PostedMessage> {
    const reference =
      replyTo !== undefined
        ? { message_reference: { message_id: replyTo, fail_if_not_exists: false } }
        : undefined;
    const data = await this.#rest.post(Routes.channelMessages(channelId), {
      body: messageBody(message, reference),
      files: rawFiles(message),
    });
    return posted(data);
  }

  /** Edits one of the bot's own messages (approval cards, after the interaction token has expired). */
  async edit(channelId: string, messageId: string, message: OutgoingMessage): Promise<PostedMessage> {
    const data = await this.#rest.patch(Routes.channelMessage(channelId, messageId), {
      body: messageBody(message),
      files: rawFiles(message),
    });
    return posted(data);
  }

  /** Starts a public thread from a message; its id is the message's id. */
  async startThread(channelId: string, messageId: string, name: string): Promise<string> {
    const data = (await this.#rest.post(Routes.threads(channelId, messageId), {
      body: { name, auto_archive_duration: 1440 },
    })) as { id?: unknown };
    if (typeof data?.id !== 'string') throw new Error('Discord returned a thread without id');
    return data.id;
  }

  /**
   * Posts text that pings exactly these roles (an approver group) and nobody else: `allowed_mentions`
   * parses nothing and lists only `roles` (ids the config names).
   */
  async announce(channelId: string, content: string, roles: readonly string[]): Promise<PostedMessage> {
    const data = await this.#rest.post(Routes.channelMessages(channelId), {
      body: { content, allowed_mentions: { parse: [], roles: [...roles] } },
    });
    return posted(data);
  }

  /** The direct-message channel with a user. */
  async openDm(userId: string): Promise<string> {
    const data = (await this.#rest.post(Routes.userChannels(), { body: { recipient_id: userId } })) as {
      id?: unknown;
    };
    if (typeof data?.id !== 'string') throw new Error('Discord returned a DM channel without id');
    return data.id;
  }
}
