// Turns Discord gateway events into invocations: `/db` commands, their autocomplete, Approve/Deny clicks,
// the deny-reason modal and `@dbops …` messages. Each is claimed once (replicas, replays), acknowledged
// within Discord's 3 seconds, then dispatched to the core as the person who acted; the core decides.
import {
  type AutocompleteInteraction,
  type ButtonInteraction,
  ChannelType,
  type ChatInputCommandInteraction,
  type Client,
  type Interaction,
  type Message,
  MessageFlags,
  type ModalSubmitInteraction,
} from 'discord.js';
import { alertCommandOfCustomId } from '../../alerts/buttons.js';
import { reply as replyOf } from '../../core/dispatch.js';
import { isUserError } from '../../core/errors.js';
import type { Reply } from '../../core/reply.js';
import { withResultScope } from '../../core/result-budget.js';
import type { Invocation, InvocationFile, ResultScope } from '../../core/types.js';
import { downloadFile, type RemoteFile } from '../download.js';
import { fileByteCap } from '../files.js';
import { answerWindow, settlesWithin } from './answer-window.js';
import { type AnswerDeps, deliverReply } from './answers.js';
import { type DiscordApi, safeError } from './api.js';
import { autocompleteChoices } from './autocomplete.js';
import type { RequestCards } from './cards.js';
import { COMMAND_NAME, commandText, OPTION } from './command.js';
import { denyCommand, denyModal, isPageId, parseCustomId, parsePageId, REASON_INPUT } from './components.js';
import {
  CommandConversation,
  type Conversation,
  MentionConversation,
  type Place,
  PrivateConversation,
} from './conversation.js';
import { identityOf, memberRoleIds, personOf } from './identity.js';
import { type ProgressRelay, type ProgressSink, ThreadProgress } from './progress.js';
import { renderResultReply, renderText, threadName } from './render.js';

export interface HandlerDeps extends AnswerDeps {
  client: Client;
  progress: ProgressRelay;
  cards: RequestCards;
  /** Origins attachments may be downloaded from (Discord's CDN). */
  fileOrigins?: readonly string[];
}

type Channelish = Interaction['channel'] | Message['channel'];

/** Where something was typed, and the channel/thread the invocation reports (a thread's parent is its channel). */
function locate(channel: Channelish, channelId: string): { place: Place; channel: string; thread?: string } {
  if (channel?.isThread()) {
    return {
      place: { channelId, inThread: true, canStartThread: false },
      channel: channel.parentId ?? channelId,
      thread: channelId,
    };
  }
  const canStartThread =
    !channel || channel.type === ChannelType.GuildText || channel.type === ChannelType.GuildAnnouncement;
  return { place: { channelId, inThread: false, canStartThread }, channel: channelId };
}

function invocation(
  identity: string,
  text: string,
  where: { channel: string; thread?: string },
  from: { guildId: string | null; member?: unknown },
): Invocation {
  return {
    surface: 'discord',
    identity,
    text,
    channel: where.channel,
    ...(where.thread !== undefined ? { thread: where.thread } : {}),
    // Roles come from a guild payload's member only (a member without roles holds none); a DM carries no
    // member, so the roles last observed (or listed) for this user apply.
    ...(from.guildId !== null ? { memberRoles: memberRoleIds(from.member) } : {}),
  };
}

export class DiscordHandlers {
  readonly #deps: HandlerDeps;

  constructor(deps: HandlerDeps) {
    this.#deps = deps;
  }

  get #api(): DiscordApi {
    return this.#deps.api;
  }

  /** Exactly once across replicas and gateway replays (interaction and message ids are unique). */
  async #claim(key: string): Promise<boolean> {
    try {
      return await this.#deps.app.state.claimDelivery(`discord:${key}`, new Date());
    } catch (err) {
      // Without the state database nothing can run anyway; let dispatch() say so to the person.
      this.#deps.log.warn({ err, key }, 'could not claim a discord delivery; handling it here');
      return true;
    }
  }

  async interaction(interaction: Interaction): Promise<void> {
    if (interaction.isAutocomplete()) return await this.#autocomplete(interaction);
    if (interaction.isChatInputCommand() && interaction.commandName === COMMAND_NAME) {
      return await this.#command(interaction);
    }
    if (interaction.isButton()) return await this.#button(interaction);
    if (interaction.isModalSubmit()) return await this.#modal(interaction);
  }

  async #autocomplete(interaction: AutocompleteInteraction): Promise<void> {
    if (interaction.commandName !== COMMAND_NAME) return;
    if (!(await this.#claim(`interaction:${interaction.id}`))) return;
    const focused = interaction.options.getFocused(true);
    const identity = identityOf(interaction.user);
    const choices = autocompleteChoices(
      this.#deps.app.core,
      personOf(this.#deps.config, identity),
      identity,
      {
        focused: focused.name,
        typed: String(focused.value ?? ''),
        operation: interaction.options.getString(OPTION.operation),
        target: interaction.options.getString(OPTION.target),
      },
    );
    await interaction.respond(choices);
  }

  async #command(interaction: ChatInputCommandInteraction): Promise<void> {
    const receivedAt = Date.now();
    if (!(await this.#claim(`interaction:${interaction.id}`))) return;
    const text = commandText({
      operation: interaction.options.getString(OPTION.operation),
      target: interaction.options.getString(OPTION.target),
      args: interaction.options.getString(OPTION.args),
    });
    const where = locate(interaction.channel, interaction.channelId ?? '');
    const conversation = new CommandConversation(this.#api, interaction, where.place, () =>
      interaction.deferReply(),
    );
    // The command runs while Discord waits: parsing and policy answer within the window, so a refusal or
    // usage error is answered privately without a public "thinking…" first; anything slower is deferred.
    // Delivered too late for a window (a replay, a slow claim): deferred first, and nothing runs unless
    // Discord takes the deferral.
    const window = answerWindow(interaction.createdTimestamp, receivedAt, Date.now());
    if (window === 0 && !(await this.#ack(interaction, () => conversation.defer()))) return;
    // The rows of a large result count against the process's budget until the answer is delivered.
    await withResultScope(async (scope) => {
      const work = this.#commandReply(interaction, text, where, conversation, scope);
      if (!(await settlesWithin(work, window)) && !conversation.acknowledged()) {
        if (!(await this.#ack(interaction, () => conversation.defer()))) {
          // Too late for Discord: the command still finishes (and is audited), but cannot be answered.
          await work.catch(() => undefined);
          return;
        }
      }
      await this.#deliver(conversation, await work);
    });
  }

  /** The core's reply to a `/db` command: its file downloaded (or the reason it could not be), then dispatched. */
  async #commandReply(
    interaction: ChatInputCommandInteraction,
    text: string,
    where: { channel: string; thread?: string },
    conversation: CommandConversation,
    scope: ResultScope,
  ): Promise<Reply> {
    const attached = interaction.options.getAttachment(OPTION.file);
    let files: { attachments?: InvocationFile[] };
    try {
      files = await this.#fetchFiles(attached ? [attached] : []);
    } catch (err) {
      if (!isUserError(err)) throw err;
      return replyOf({ status: 'invalid', requestId: null, code: err.code, message: err.message });
    }
    const inv = { ...invocation(identityOf(interaction.user), text, where, interaction), ...files };
    return await this.#dispatch(inv, this.#threadFor(conversation, text), scope);
  }

  /**
   * Downloads the files sent with a command (size-capped, from Discord's CDN only) as `{ attachments }`;
   * undefined, with the reason answered, when one cannot be had.
   */
  async #download(
    remote: readonly RemoteFile[],
    conversation: Conversation,
  ): Promise<{ attachments?: InvocationFile[] } | undefined> {
    try {
      return await this.#fetchFiles(remote);
    } catch (err) {
      if (!isUserError(err)) throw err;
      const answer = replyOf({ status: 'invalid', requestId: null, code: err.code, message: err.message });
      await this.#deliver(conversation, answer);
      return undefined;
    }
  }

  /** The files sent with a command as `{ attachments }`; a user error when one cannot be had. */
  async #fetchFiles(remote: readonly RemoteFile[]): Promise<{ attachments?: InvocationFile[] }> {
    if (remote.length === 0) return {};
    const attachments: InvocationFile[] = [];
    for (const file of remote) {
      attachments.push(
        await downloadFile(
          { name: file.name, size: file.size, url: file.url },
          { cap: fileByteCap(this.#deps.config), origins: this.#deps.fileOrigins ?? [] },
        ),
      );
    }
    return { attachments };
  }

  async #button(interaction: ButtonInteraction): Promise<void> {
    const alertText = alertCommandOfCustomId(interaction.customId);
    if (alertText) return await this.#alertButton(interaction, alertText);
    if (isPageId(interaction.customId)) {
      await this.#page(interaction);
      return;
    }
    const parsed = parseCustomId(interaction.customId);
    if (!parsed || parsed.action === 'deny-reason') return;
    if (!(await this.#claim(`interaction:${interaction.id}`))) return;
    if (parsed.action === 'deny') {
      // The reason is asked first; the modal's submission is the decision.
      await this.#ack(interaction, () => interaction.showModal(denyModal(parsed.requestId)));
      return;
    }
    if (!(await this.#ack(interaction, () => interaction.deferReply({ flags: MessageFlags.Ephemeral }))))
      return;
    const where = locate(interaction.channel, interaction.channelId);
    const inv = invocation(
      identityOf(interaction.user),
      `/db approve ${parsed.requestId}`,
      where,
      interaction,
    );
    const progress = await this.#requestProgress(parsed.requestId);
    const reply = await this.#run(inv, new PrivateConversation(this.#api, interaction), progress);
    if (reply.code === 'not_pending') {
      const request = await this.#deps.app.state.getRequest(parsed.requestId).catch(() => undefined);
      if (request && request.status !== 'pending') this.#deps.cards.redraw(request);
    }
  }

  /** Acknowledge / Mute on an alert post: the command it stands for, as the person who clicked. */
  async #alertButton(interaction: ButtonInteraction, text: string): Promise<void> {
    if (!(await this.#claim(`interaction:${interaction.id}`))) return;
    if (!(await this.#ack(interaction, () => interaction.deferReply({ flags: MessageFlags.Ephemeral }))))
      return;
    const where = locate(interaction.channel, interaction.channelId);
    const inv = invocation(identityOf(interaction.user), text, where, interaction);
    await this.#run(inv, new PrivateConversation(this.#api, interaction), undefined);
  }

  /**
   * Next page: `/db page <ref> <n>` as whoever pressed (their permissions, the policy in force); the page
   * replaces the message the button is on. Refusals and forged buttons answer privately, editing nothing.
   */
  async #page(interaction: ButtonInteraction): Promise<void> {
    if (!(await this.#claim(`interaction:${interaction.id}`))) return;
    const wanted = parsePageId(interaction.customId);
    if (!wanted) {
      this.#deps.log.warn('discord: a page button with an id dbops did not make');
      await this.#ack(interaction, () =>
        interaction.reply({
          content: 'This button does not name a page of a dbops answer, so nothing was run.',
          flags: MessageFlags.Ephemeral,
        }),
      );
      return;
    }
    if (!(await this.#ack(interaction, () => interaction.deferUpdate()))) return;
    const where = locate(interaction.channel, interaction.channelId);
    const inv = invocation(
      identityOf(interaction.user),
      `/db page ${wanted.ref} ${wanted.page}`,
      where,
      interaction,
    );
    await withResultScope(async (scope) => {
      const reply = await this.#dispatch(inv, undefined, scope);
      const { applicationId, token } = interaction;
      try {
        if (reply.status === 'ok' && !reply.ephemeral && reply.result) {
          await this.#api.editOriginal(applicationId, token, renderResultReply(reply));
        } else {
          const [first] = renderText(reply.text, 1);
          await this.#api.followUp(applicationId, token, {
            ...(first ?? { content: reply.message }),
            flags: 64,
          });
        }
      } catch (err) {
        this.#deps.log.error({ err: safeError(err), ref: reply.ref }, 'could not deliver a page to discord');
      }
    });
  }

  async #modal(interaction: ModalSubmitInteraction): Promise<void> {
    const parsed = parseCustomId(interaction.customId);
    if (parsed?.action !== 'deny-reason') return;
    if (!(await this.#claim(`interaction:${interaction.id}`))) return;
    if (!(await this.#ack(interaction, () => interaction.deferReply({ flags: MessageFlags.Ephemeral }))))
      return;
    const reason = interaction.fields.getTextInputValue(REASON_INPUT);
    const where = locate(interaction.channel, interaction.channelId ?? '');
    const inv = invocation(
      identityOf(interaction.user),
      denyCommand(parsed.requestId, reason),
      where,
      interaction,
    );
    await this.#run(inv, new PrivateConversation(this.#api, interaction), undefined);
  }

  /** `@dbops sizes kasm` (the bot mentioned first) in a channel or thread of a server. */
  async message(message: Message): Promise<void> {
    if (message.author.bot || message.webhookId || !message.inGuild()) return;
    const me = this.#deps.client.user;
    if (!me) return;
    const botRole = message.guild.roles.botRoleFor(me)?.id;
    const text = commandFromMention(message.content, me.id, botRole);
    if (text === undefined) return;
    if (!(await this.#claim(`message:${message.id}`))) return;
    const where = locate(message.channel, message.channelId);
    const conversation = new MentionConversation(
      this.#api,
      { id: message.id, authorId: message.author.id },
      where.place,
    );
    const files = await this.#download([...message.attachments.values()], conversation);
    if (!files) return;
    const inv = {
      ...invocation(identityOf(message.author), text || 'help', where, message),
      ...files,
    };
    await this.#run(inv, conversation, this.#threadFor(conversation, text));
  }

  /** Sends the acknowledgement; false (and nothing runs) when Discord did not take it. */
  async #ack(interaction: Interaction, send: () => Promise<unknown>): Promise<boolean> {
    try {
      await send();
      return true;
    } catch (err) {
      this.#deps.log.warn(
        { err: safeError(err), interaction: interaction.id },
        'discord did not accept the acknowledgement; nothing was run',
      );
      return false;
    }
  }

  async #run(
    inv: Invocation,
    conversation: Conversation,
    progress: ProgressSink | undefined,
  ): Promise<Reply> {
    // The rows of a large result count against the process's budget until the answer is delivered.
    return await withResultScope(async (scope) => {
      const reply = await this.#dispatch(inv, progress, scope);
      await this.#deliver(conversation, reply);
      return reply;
    });
  }

  async #dispatch(inv: Invocation, progress: ProgressSink | undefined, scope: ResultScope): Promise<Reply> {
    inv.resultScope = scope;
    this.#deps.progress.register(inv, progress);
    const reply = await this.#deps.app.core.dispatch(inv);
    await this.#deps.progress.settle(inv);
    return reply;
  }

  async #deliver(conversation: Conversation, reply: Reply): Promise<void> {
    try {
      await deliverReply(this.#deps, conversation, reply);
    } catch (err) {
      this.#deps.log.error(
        { err: safeError(err), requestId: reply.requestId },
        'could not deliver the answer to discord',
      );
    }
  }

  /** Progress of a command goes in a thread started from its answer ("running…" until it is done). */
  #threadFor(conversation: Conversation, text: string): ProgressSink {
    return new ThreadProgress(this.#deps, async (about) => {
      if (!conversation.answered()) {
        const shown = text.replace(/`/g, "'").slice(0, 200);
        const named = typeof about === 'number' ? `#${about}` : `ref ${about}`;
        await conversation.answer({
          content: `⏳ Running \`${shown}\` (${named}) — progress in the thread.`,
        });
      }
      return await conversation.thread(threadName(about, text));
    });
  }

  /** Progress of an approved request's run goes in that request's thread, before its outcome. */
  async #requestProgress(requestId: number): Promise<ProgressSink | undefined> {
    try {
      const request = await this.#deps.app.state.getRequest(requestId);
      return request ? this.#deps.cards.progressSink(request) : undefined;
    } catch {
      return undefined;
    }
  }
}

/** The command after a leading mention of the bot (`<@id>`, `<@!id>` or its managed role); else undefined. */
export function commandFromMention(content: string, botId: string, botRoleId?: string): string | undefined {
  const match = /^\s*<@([!&]?)(\d{1,25})>\s*([\s\S]*)$/.exec(content);
  if (!match) return undefined;
  const [, kind, id, rest = ''] = match;
  const isBot = kind === '&' ? botRoleId !== undefined && id === botRoleId : id === botId;
  if (!isBot) return undefined;
  // `@dbops \`sizes kasm\`` reads the same as without the backticks.
  return rest
    .trim()
    .replace(/^`([^`]*)`$/, '$1')
    .trim();
}
