// Delivers one core Reply into a conversation: refusals privately, results publicly (CSV when too big),
// and a pending request as an approval card with its own thread, remembered in request.refs.
import type { App } from '../../app.js';
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../core/log.js';
import type { Reply } from '../../core/reply.js';
import { approverNotice } from '../../identity/approvers.js';
import type { ApprovalRequest } from '../../state/types.js';
import { type DiscordApi, discordErrorCode, type OutgoingMessage, safeError } from './api.js';
import type { Conversation } from './conversation.js';
import { refsValue } from './refs.js';
import {
  type CardContext,
  clip,
  LIMITS,
  renderRequestCard,
  renderRequestIntro,
  renderResultReply,
  renderText,
  threadName,
} from './render.js';

export interface AnswerDeps {
  app: App;
  config: Config;
  api: DiscordApi;
  log: Logger;
  /** Told once a new request's card is posted, with where its conversation goes (its thread or channel). */
  onCardPosted?: (request: ApprovalRequest, channelId: string) => void;
}

/** Discord's "request entity too large" (the attachments): answer without them rather than not at all. */
const TOO_LARGE = 40005;

export function approverRoles(config: Config, request: ApprovalRequest): readonly string[] {
  return config.policy[request.environment]?.approve ?? [];
}

/** What a card of the request shows about its approvers; `ping` only when the card is first posted. */
export function cardContext(config: Config, request: ApprovalRequest, ping = false): CardContext {
  return { approverRoles: approverRoles(config, request), notice: approverNotice(config, request), ping };
}

export async function deliverReply(
  deps: AnswerDeps,
  conversation: Conversation,
  reply: Reply,
): Promise<void> {
  if (conversation.privateOnly) {
    await conversation.answer(privateLine(reply));
    return;
  }
  if (reply.ephemeral) {
    await conversation.whisper(renderText(reply.text));
    return;
  }
  if (reply.status === 'pending' && reply.request) {
    await postRequestCard(deps, conversation, reply.request);
    return;
  }
  const message = reply.result
    ? renderResultReply(reply)
    : (renderText(reply.text, 1)[0] ?? { content: '…' });
  await answerWithFiles(deps, conversation, message);
}

/** What a clicker sees: the refusal, or one line about what their click did (the card and thread show the rest). */
function privateLine(reply: Reply): OutgoingMessage {
  const text = reply.ephemeral || !reply.result ? reply.text : `✅ ${reply.message}`;
  return renderText(text, 1)[0] ?? { content: clip(reply.message, LIMITS.content) };
}

async function answerWithFiles(deps: AnswerDeps, conversation: Conversation, message: OutgoingMessage) {
  try {
    await conversation.answer(message);
  } catch (err) {
    if (discordErrorCode(err) !== TOO_LARGE || !message.files?.length) throw err;
    deps.log.warn(
      { err: safeError(err) },
      'discord refused the attachment as too large; answering without it',
    );
    const { files: _files, ...rest } = message;
    await conversation.answer({
      ...rest,
      content: clip(
        `${rest.content ?? ''}\n(the CSV was too large for Discord; use \`dbops exec --json\`)`,
        LIMITS.content,
      ),
    });
  }
}

/** The card with its buttons, its location in request.refs, then a thread for the conversation about it. */
export async function postRequestCard(
  deps: AnswerDeps,
  conversation: Conversation,
  request: ApprovalRequest,
): Promise<void> {
  const context = cardContext(deps.config, request);
  // The card is the one message that pings the approver roles (notify: mention).
  const card = await conversation.answer(renderRequestCard(request, { ...context, ping: true }));
  const refs = { channel: card.channelId, message: card.id };
  await deps.app.state.setRefs(request.id, refsValue(refs));
  let thread: string | undefined;
  try {
    thread = await conversation.thread(threadName(request.id, request.command));
  } catch (err) {
    deps.log.warn(
      { err: safeError(err), requestId: request.id },
      'could not start a thread for the request; outcomes will be posted as replies to the card',
    );
  }
  if (thread === undefined) {
    deps.onCardPosted?.(request, card.channelId);
    return;
  }
  await deps.app.state.setRefs(request.id, refsValue({ ...refs, thread }));
  await deps.api.send(thread, renderRequestIntro(request, context));
  deps.onCardPosted?.(request, thread);
}

/**
 * The card of a request made outside chat, at the top of an approvals channel, with a thread started from
 * it; returns its refs for the caller to store with the request (once, across replicas).
 */
export async function announceRequestCard(
  deps: AnswerDeps,
  request: ApprovalRequest,
  channel: string,
): Promise<Record<string, unknown>> {
  const context = cardContext(deps.config, request);
  const card = await deps.api.send(channel, renderRequestCard(request, { ...context, ping: true }));
  const refs = { channel: card.channelId, message: card.id };
  let thread: string | undefined;
  try {
    thread = await deps.api.startThread(card.channelId, card.id, threadName(request.id, request.command));
    await deps.api.send(thread, renderRequestIntro(request, context));
  } catch (err) {
    deps.log.warn(
      { err: safeError(err), requestId: request.id },
      'could not start a thread for the announced request; outcomes will be replies to the card',
    );
  }
  deps.onCardPosted?.(request, thread ?? card.channelId);
  return refsValue(thread ? { ...refs, thread } : refs);
}
