// Where the answers to one invocation go: the initial or deferred reply of a `/db` command, a reply to an `@dbops`
// message, or the private (ephemeral) reply to a button click or modal. Each knows how to answer publicly,
// how to tell only the person, and which thread continues the conversation.
import type { DiscordApi, OutgoingMessage, PostedMessage } from './api.js';

const EPHEMERAL = 64;
/** Interaction tokens live 15 minutes; after 14 the bot's own token is used for its messages. */
const TOKEN_FRESH_MS = 14 * 60_000;

export interface Conversation {
  /** Button clicks and modal submissions answer only the clicker. */
  readonly privateOnly: boolean;
  /** The public answer: posted on the first call, edited on later ones. */
  answer(message: OutgoingMessage): Promise<PostedMessage>;
  /** Whether the public answer exists yet. */
  answered(): boolean;
  /** Messages only the person sees. */
  whisper(messages: readonly OutgoingMessage[]): Promise<void>;
  /** The thread the conversation continues in: the thread it is in, or one started from the answer. */
  thread(name: string): Promise<string | undefined>;
}

/** Where a command was typed. */
export interface Place {
  /** The channel or thread the message or interaction came from. */
  channelId: string;
  /** True when that is a thread: answers stay in it. */
  inThread: boolean;
  /** Whether a thread can be started from a message there (text and announcement channels). */
  canStartThread: boolean;
}

/** Where a request's conversation goes on: the thread it was asked in, or one started from its answer. */
class RequestThread {
  readonly #api: DiscordApi;
  readonly #place: Place;
  #id: string | undefined;

  constructor(api: DiscordApi, place: Place) {
    this.#api = api;
    this.#place = place;
  }

  async open(answer: PostedMessage | undefined, name: string): Promise<string | undefined> {
    if (this.#place.inThread) return this.#place.channelId;
    if (this.#id) return this.#id;
    if (!answer || !this.#place.canStartThread) return undefined;
    this.#id = await this.#api.startThread(answer.channelId, answer.id, name);
    return this.#id;
  }
}

/**
 * A `/db` command. Nothing is shown until the answer is known or the command turns out slow: a private
 * answer (a refusal, a usage error) is then the ephemeral initial response itself, so the channel never
 * sees "thinking…"; a public answer or a slow command is deferred publicly and answered by editing.
 */
export class CommandConversation implements Conversation {
  readonly privateOnly = false;
  readonly #api: DiscordApi;
  readonly #interactionId: string;
  readonly #applicationId: string;
  readonly #token: string;
  readonly #place: Place;
  readonly #receivedAt: number;
  readonly #sendDeferral: () => Promise<unknown>;
  #deferral: Promise<void> | undefined;
  /** The initial response was the private answer itself. */
  #respondedPrivately = false;
  #posted: PostedMessage | undefined;
  readonly #thread: RequestThread;

  constructor(
    api: DiscordApi,
    interaction: { id: string; applicationId: string; token: string },
    place: Place,
    /** The public deferral ("thinking…"), sent at most once, when `defer()` is first called. */
    sendDeferral: () => Promise<unknown>,
  ) {
    this.#api = api;
    this.#interactionId = interaction.id;
    this.#applicationId = interaction.applicationId;
    this.#token = interaction.token;
    this.#place = place;
    this.#sendDeferral = sendDeferral;
    this.#thread = new RequestThread(api, place);
    this.#receivedAt = Date.now();
  }

  #fresh(): boolean {
    return Date.now() - this.#receivedAt < TOKEN_FRESH_MS;
  }

  /** Whether Discord has had its initial response (a deferral or the answer). */
  acknowledged(): boolean {
    return this.#deferral !== undefined || this.#respondedPrivately;
  }

  /** Defers publicly, once; later calls wait for the same deferral. */
  async defer(): Promise<void> {
    this.#deferral ??= this.#sendDeferral().then(() => undefined);
    await this.#deferral;
  }

  answered(): boolean {
    return this.#posted !== undefined;
  }

  async answer(message: OutgoingMessage): Promise<PostedMessage> {
    if (this.#respondedPrivately) throw new Error('the command was already answered privately');
    await this.defer();
    if (message.mentionRoles?.length && !this.#posted) {
      // Mentions in the edit of a deferred response ping nobody (discord/discord-api-docs#5497): a card
      // that must ping its approver roles is a new message of the bot's, and the "thinking" one goes.
      const sent = await this.#api.send(this.#place.channelId, message).catch(() => undefined);
      if (sent) {
        this.#posted = sent;
        if (this.#fresh()) {
          await this.#api.deleteOriginal(this.#applicationId, this.#token).catch(() => undefined);
        }
        return sent;
      }
      // The bot may not post here (slash commands work without that permission): the card, unpinged.
    }
    if (this.#fresh()) {
      this.#posted = await this.#api.editOriginal(this.#applicationId, this.#token, message);
    } else if (this.#posted) {
      this.#posted = await this.#api.edit(this.#posted.channelId, this.#posted.id, message);
    } else {
      this.#posted = await this.#api.send(this.#place.channelId, message);
    }
    return this.#posted;
  }

  /**
   * Not acknowledged yet: the first message is the ephemeral initial response, the rest ephemeral
   * follow-ups. Deferred publicly already: a follow-up sent right after a deferral only replaces the
   * "thinking" message (keeping it public), so the deferred reply is settled first, the private answer
   * follows as ephemeral follow-ups, and the settled reply is deleted.
   */
  async whisper(messages: readonly OutgoingMessage[]): Promise<void> {
    if (!this.acknowledged()) {
      const [first, ...rest] = messages;
      if (!first) return;
      this.#respondedPrivately = true;
      await this.#api.respond(this.#interactionId, this.#token, { ...first, flags: EPHEMERAL });
      for (const message of rest) {
        await this.#api.followUp(this.#applicationId, this.#token, { ...message, flags: EPHEMERAL });
      }
      return;
    }
    await this.#deferral;
    if (!this.#fresh()) return;
    const settle = !this.#posted;
    if (settle) {
      await this.#api.editOriginal(this.#applicationId, this.#token, { content: 'Answered privately.' });
    }
    for (const message of messages) {
      await this.#api.followUp(this.#applicationId, this.#token, { ...message, flags: EPHEMERAL });
    }
    if (settle) await this.#api.deleteOriginal(this.#applicationId, this.#token);
  }

  async thread(name: string): Promise<string | undefined> {
    return await this.#thread.open(this.#posted, name);
  }
}

/** `@dbops sizes kasm` typed in a channel or thread: answered with a reply to that message. */
export class MentionConversation implements Conversation {
  readonly privateOnly = false;
  readonly #api: DiscordApi;
  readonly #place: Place;
  readonly #messageId: string;
  readonly #authorId: string;
  #posted: PostedMessage | undefined;
  readonly #thread: RequestThread;

  constructor(api: DiscordApi, message: { id: string; authorId: string }, place: Place) {
    this.#api = api;
    this.#place = place;
    this.#thread = new RequestThread(api, place);
    this.#messageId = message.id;
    this.#authorId = message.authorId;
  }

  answered(): boolean {
    return this.#posted !== undefined;
  }

  async answer(message: OutgoingMessage): Promise<PostedMessage> {
    this.#posted = this.#posted
      ? await this.#api.edit(this.#posted.channelId, this.#posted.id, message)
      : await this.#api.send(this.#place.channelId, message, this.#messageId);
    return this.#posted;
  }

  /** A message cannot be ephemeral: the private answer goes by direct message, else as a reply. */
  async whisper(messages: readonly OutgoingMessage[]): Promise<void> {
    try {
      const dm = await this.#api.openDm(this.#authorId);
      for (const message of messages) await this.#api.send(dm, message);
      return;
    } catch {
      // fall through
    }
    // Direct messages are closed (privacy settings): answer in place rather than not at all.
    for (const message of messages) await this.#api.send(this.#place.channelId, message, this.#messageId);
  }

  async thread(name: string): Promise<string | undefined> {
    return await this.#thread.open(this.#posted, name);
  }
}

/** A button click or modal submission: deferred ephemerally, answered only to the clicker. */
export class PrivateConversation implements Conversation {
  readonly privateOnly = true;
  readonly #api: DiscordApi;
  readonly #applicationId: string;
  readonly #token: string;
  #posted: PostedMessage | undefined;

  constructor(api: DiscordApi, interaction: { applicationId: string; token: string }) {
    this.#api = api;
    this.#applicationId = interaction.applicationId;
    this.#token = interaction.token;
  }

  answered(): boolean {
    return this.#posted !== undefined;
  }

  async answer(message: OutgoingMessage): Promise<PostedMessage> {
    this.#posted = await this.#api.editOriginal(this.#applicationId, this.#token, message);
    return this.#posted;
  }

  async whisper(messages: readonly OutgoingMessage[]): Promise<void> {
    const [first, ...rest] = messages;
    if (first) await this.answer(first);
    for (const message of rest) {
      await this.#api.followUp(this.#applicationId, this.#token, { ...message, flags: EPHEMERAL });
    }
  }

  async thread(): Promise<string | undefined> {
    return undefined;
  }
}
