// Where answers go: one thread per request (a parent message for slash commands), ephemerals to the person,
// file uploads, progress, and the approval card kept up to date through request.refs.
import type { App } from '../../app.js';
import type { Config } from '../../config/schema.js';
import type { RequestChange } from '../../core/dispatch.js';
import type { Logger } from '../../core/log.js';
import { redactSecrets } from '../../core/log.js';
import type { Reply } from '../../core/reply.js';
import { approverNotice } from '../../identity/approvers.js';
import type { ApprovalRequest } from '../../state/types.js';
import { type CardRef, cardRef, renderCard, requestHeadline } from './cards.js';
import {
  type Block,
  type RenderedMessage,
  renderReply,
  resultFiles,
  section,
  tailCodeBlock,
  type UploadFile,
} from './render.js';
import type { SlackApi } from './web-api.js';

/** A thread: the channel and the ts of the message that starts it. */
export interface Place {
  channel: string;
  thread: string;
}

/** Where an invocation came from, and how to answer the person. */
export interface Origin {
  channel: string;
  /** Slack user id of the person, for ephemeral answers. */
  user: string;
  /** The thread answers belong to, when there is one already (a mention in a thread, a card). */
  thread?: string;
  /** Posted as the thread's parent when there is no thread yet (slash commands cannot be used in threads). */
  parentText?: string;
  /** The card a click came from, updated directly if its request has no refs yet. */
  card?: { channel: string; ts: string };
  /** response_url: reaches the person even where the bot cannot post (a private channel it is not in). */
  responseUrl?: string | undefined;
}

/** Slack errors meaning "the bot cannot post here", answered privately with how to fix it. */
const CANNOT_POST = new Set(['not_in_channel', 'channel_not_found', 'is_archived', 'restricted_action']);

function slackError(err: unknown): string | undefined {
  const data = (err as { data?: { error?: unknown } } | undefined)?.data;
  return typeof data?.error === 'string' ? data.error : undefined;
}

function errText(err: unknown): string {
  return redactSecrets(err instanceof Error ? err.message : String(err));
}

const PROGRESS_EVERY_MS = 1500;
/** How many recent card states are remembered (to skip redrawing a card that already shows a state). */
const DRAWN_KEPT = 1000;

/** One invocation's conversation: its thread (created lazily), its ephemerals and its progress message. */
export class Conversation {
  readonly origin: Origin;
  readonly #threads: SlackThreads;
  #place: Promise<Place> | undefined;
  #progressLines: string[] = [];
  /** Lines received so far, and how many of them the progress message shows. */
  #progressSeen = 0;
  #progressShown = 0;
  #progressTs: string | undefined;
  #progressTimer: NodeJS.Timeout | undefined;
  #progressChain: Promise<void> = Promise.resolve();

  constructor(threads: SlackThreads, origin: Origin) {
    this.#threads = threads;
    this.origin = origin;
  }

  /** The thread answers go to; posts the parent message the first time when there is none. */
  thread(): Promise<Place> {
    if (!this.#place) {
      const { channel, thread, parentText } = this.origin;
      this.#place = thread
        ? Promise.resolve({ channel, thread })
        : this.#threads.post({ channel }, { text: parentText ?? 'dbops', blocks: [] }).then((ts) => ({
            channel,
            thread: ts,
          }));
      // A failed parent is retried by the next caller rather than remembered.
      this.#place.catch(() => {
        this.#place = undefined;
      });
    }
    return this.#place;
  }

  async ephemeral(message: Pick<RenderedMessage, 'text' | 'blocks'>): Promise<void> {
    const { channel, user, thread, responseUrl } = this.origin;
    try {
      await this.#threads.api.postEphemeral({
        channel,
        user,
        text: message.text,
        blocks: message.blocks,
        ...(thread ? { thread_ts: thread } : {}),
      });
    } catch (err) {
      if (!responseUrl) throw err;
      // Not a member of the channel (a DM, a private channel): the command's response_url still reaches them.
      await this.#threads.api.respond(responseUrl, {
        response_type: 'ephemeral',
        replace_original: false,
        text: message.text,
        blocks: message.blocks,
      });
    }
  }

  /** Lines of a long operation, gathered into one message in the thread that is edited as they come. */
  progress(line: string): void {
    this.#progressLines.push(line);
    this.#progressSeen += 1;
    if (this.#progressLines.length > 200) this.#progressLines.splice(0, this.#progressLines.length - 200);
    this.#progressTimer ??= setTimeout(() => {
      void this.flushProgress();
    }, PROGRESS_EVERY_MS);
  }

  flushProgress(): Promise<void> {
    clearTimeout(this.#progressTimer);
    this.#progressTimer = undefined;
    if (this.#progressSeen === this.#progressShown) return this.#progressChain;
    this.#progressShown = this.#progressSeen;
    const text = tailCodeBlock(this.#progressLines);
    this.#progressChain = this.#progressChain
      .then(async () => {
        const place = await this.thread();
        const message = { text: 'progress', blocks: [section(text)] };
        if (this.#progressTs) {
          await this.#threads.api.update({ channel: place.channel, ts: this.#progressTs, ...message });
        } else {
          this.#progressTs = await this.#threads.post(place, message);
        }
      })
      .catch((err: unknown) => this.#threads.log.warn({ err: errText(err) }, 'slack: progress not posted'));
    return this.#progressChain;
  }
}

/** The newest state of a request waiting to be drawn on its card. */
interface CardUpdate {
  latest: ApprovalRequest;
  ref: CardRef;
  dirty: boolean;
  drained: Promise<void>;
}

export interface ThreadsDeps {
  /** The Web API calls of the reply path (the Bolt client keeps the rest). */
  api: SlackApi;
  app: App;
  config: Config;
  log: Logger;
}

/** Posting for the workspace: messages in threads, uploads, approval cards and their updates. */
export class SlackThreads {
  readonly api: SlackApi;
  readonly log: Logger;
  readonly #app: App;
  readonly #config: Config;
  /** Card updates in progress, per request. */
  readonly #cardUpdates = new Map<number, CardUpdate>();
  /** The state each recently updated card shows, so a refresh does not redraw it for nothing. */
  readonly #drawn = new Map<number, string>();

  /** Told once a new request's card is posted (the approvers are then mentioned or sent a DM). */
  onCardPosted: ((request: ApprovalRequest, place: { channel: string; thread: string }) => void) | undefined;

  constructor(deps: ThreadsDeps) {
    this.api = deps.api;
    this.log = deps.log;
    this.#app = deps.app;
    this.#config = deps.config;
  }

  conversation(origin: Origin): Conversation {
    return new Conversation(this, origin);
  }

  /** Posts a message (in a thread when given) and returns its ts. */
  async post(
    place: { channel: string; thread?: string },
    message: { text: string; blocks: Block[] },
  ): Promise<string> {
    const response = await this.api.postMessage({
      channel: place.channel,
      text: message.text,
      ...(message.blocks.length > 0 ? { blocks: message.blocks } : {}),
      ...(place.thread ? { thread_ts: place.thread } : {}),
      unfurl_links: false,
      unfurl_media: false,
    });
    if (typeof response.ts !== 'string' || !response.ts)
      throw new Error('chat.postMessage answered without a ts');
    return response.ts;
  }

  /** Replaces a message's text and blocks (chat.update). */
  async update(
    where: { channel: string; ts: string },
    message: { text: string; blocks: Block[] },
  ): Promise<void> {
    await this.api.update({
      channel: where.channel,
      ts: where.ts,
      text: message.text,
      blocks: message.blocks,
    });
  }

  /** Uploads files into the thread (files.getUploadURLExternal, the upload, files.completeUploadExternal). */
  async upload(place: Place, files: readonly UploadFile[]): Promise<void> {
    for (const file of files) await this.api.upload(place, file);
  }

  /** Answers one reply where it belongs: privately, in the request's thread, or in the conversation's thread. */
  async deliver(reply: Reply, conversation: Conversation): Promise<void> {
    if (reply.ephemeral) {
      await conversation.ephemeral(renderReply(reply, { attach: false }));
      return;
    }
    try {
      if (reply.status === 'pending' && reply.request && !cardRef(reply.request.refs)) {
        await this.#postCard(reply.request, conversation);
        return;
      }
      const ref = reply.request ? cardRef(reply.request.refs) : undefined;
      const place = ref ? { channel: ref.channel, thread: ref.thread } : await conversation.thread();
      if (reply.request) {
        // The card shows the decision before the result is posted below it.
        if (!ref && conversation.origin.card) await this.#updateCard(reply.request, conversation.origin.card);
        await this.settled(reply.request.id);
      }
      await conversation.flushProgress();
      const rendered = renderReply(
        reply,
        reply.request && reply.result && reply.status === 'ok'
          ? { requestLine: requestHeadline(reply.request) }
          : {},
      );
      await this.post(place, rendered);
      await this.upload(place, rendered.files);
    } catch (err) {
      const code = slackError(err);
      if (!code || !CANNOT_POST.has(code)) throw err;
      // The bot is not in this channel: the person still gets the answer, and how to fix it.
      const hint =
        'I cannot post in this channel: invite me (`/invite @dbops`) to get answers in a thread here.';
      const rendered = renderReply(reply, { attach: false });
      await conversation.ephemeral({
        text: rendered.text,
        blocks: [section(hint), ...rendered.blocks].slice(0, 50),
      });
    }
  }

  async #postCard(request: ApprovalRequest, conversation: Conversation): Promise<void> {
    const place = await conversation.thread();
    await conversation.flushProgress();
    const card = this.renderCard(request);
    const ts = await this.post(place, card);
    const ref: CardRef = { channel: place.channel, ts, thread: place.thread };
    // The card's place is stored with the request: after a restart, or on another replica, it can still be updated.
    await this.#app.state.setRefs(request.id, { slack: ref });
    this.onCardPosted?.(request, { channel: place.channel, thread: place.thread });
    if (card.omittedRows > 0) {
      await this.upload(
        place,
        resultFiles(request.preview.result, card.omittedRows, {
          operation: `${request.operation}-preview`,
          target: request.target,
          requestId: request.id,
        }),
      );
    }
  }

  /**
   * The card of a request made outside chat, at the top of an approvals channel: its thread starts from
   * the card. The caller stores the returned ref with the request (once, across replicas).
   */
  async announceCard(request: ApprovalRequest, channel: string): Promise<CardRef> {
    const card = this.renderCard(request);
    const ts = await this.post({ channel }, card);
    const ref: CardRef = { channel, ts, thread: ts };
    if (card.omittedRows > 0) {
      await this.upload(
        { channel, thread: ts },
        resultFiles(request.preview.result, card.omittedRows, {
          operation: `${request.operation}-preview`,
          target: request.target,
          requestId: request.id,
        }),
      ).catch((err: unknown) =>
        this.log.warn({ err: errText(err), requestId: request.id }, 'slack: preview file not posted'),
      );
    }
    return ref;
  }

  /** The card of a request as it stands, with who is asked to approve it (mentioned per `notify`). */
  renderCard(request: ApprovalRequest): ReturnType<typeof renderCard> {
    const roles = this.#config.policy[request.environment]?.approve ?? [];
    return renderCard(request, roles, approverNotice(this.#config, request));
  }

  async #updateCard(request: ApprovalRequest, where: { channel: string; ts: string }): Promise<void> {
    const card = this.renderCard(request);
    await this.update(where, card);
    this.#drawn.delete(request.id);
    this.#drawn.set(request.id, `${request.status}:${request.votes.length}`);
    if (this.#drawn.size > DRAWN_KEPT) {
      const oldest = this.#drawn.keys().next().value;
      if (oldest !== undefined) this.#drawn.delete(oldest);
    }
  }

  /**
   * A click on a card whose request was decided elsewhere (another surface, a process without Slack):
   * the card still showed buttons, so it is redrawn from the stored request — unless this process drew
   * that state already.
   */
  async refreshCard(requestId: number, where: { channel: string; ts: string } | undefined): Promise<void> {
    await this.settled(requestId);
    const request = await this.#app.state.getRequest(requestId);
    if (!request || request.status === 'pending') return;
    if (this.#drawn.get(requestId) === `${request.status}:${request.votes.length}`) return;
    const ref = cardRef(request.refs) ?? where;
    if (ref) await this.#updateCard(request, ref);
  }

  /**
   * app.events.onRequestChange: every transition after creation redraws the card where refs say it is.
   * Updates of one request run one at a time and skip states already overtaken (approved → running →
   * succeeded in quick succession costs two calls, not three); the newest state is always drawn last.
   */
  onRequestChange(request: ApprovalRequest, change: RequestChange): void {
    if (change === 'created') return;
    const ref = cardRef(request.refs);
    if (!ref) return;
    const queued = this.#cardUpdates.get(request.id);
    if (queued) {
      queued.latest = request;
      queued.ref = ref;
      queued.dirty = true;
      return;
    }
    const entry: CardUpdate = { latest: request, ref, dirty: true, drained: Promise.resolve() };
    this.#cardUpdates.set(request.id, entry);
    entry.drained = (async () => {
      while (entry.dirty) {
        entry.dirty = false;
        const { latest, ref: where } = entry;
        await this.#updateCard(latest, where).catch((err: unknown) =>
          this.log.warn(
            { err: errText(err), requestId: latest.id, status: latest.status },
            'slack: approval card not updated',
          ),
        );
      }
      this.#cardUpdates.delete(request.id);
    })();
  }

  /** Resolves when the card shows every transition of the request seen so far. */
  settled(requestId: number): Promise<void> {
    return this.#cardUpdates.get(requestId)?.drained ?? Promise.resolve();
  }

  async idle(): Promise<void> {
    await Promise.allSettled([...this.#cardUpdates.values()].map((u) => u.drained));
  }
}
