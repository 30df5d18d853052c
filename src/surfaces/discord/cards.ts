// Keeps approval cards and their threads up to date as requests change in this process (votes, approval,
// outcome, expiry): the card is edited to its latest state (buttons gone once decided), and each change
// that matters is posted in the request's thread. Works from request.refs, so it survives restarts.
import type { Config } from '../../config/schema.js';
import type { RequestChange } from '../../core/dispatch.js';
import type { Logger } from '../../core/log.js';
import type { ApprovalRequest } from '../../state/types.js';
import { cardContext } from './answers.js';
import { type DiscordApi, type OutgoingMessage, safeError } from './api.js';
import type { ProgressSink } from './progress.js';
import { type DiscordRefs, discordRefs } from './refs.js';
import { renderProgress, renderRequestCard, renderRequestChange } from './render.js';

export class RequestCards {
  readonly #api: DiscordApi;
  readonly #config: Config;
  readonly #log: Logger;
  /** The newest state of each request whose card is being edited: edits coalesce to the latest. */
  readonly #latest = new Map<number, ApprovalRequest>();
  readonly #editing = new Map<number, Promise<void>>();
  /** Thread messages of one request go out in order. */
  readonly #posting = new Map<number, Promise<void>>();

  constructor(deps: { api: DiscordApi; config: Config; log: Logger }) {
    this.#api = deps.api;
    this.#config = deps.config;
    this.#log = deps.log;
  }

  /** The app.events.onRequestChange listener. */
  readonly onChange = (request: ApprovalRequest, change: RequestChange): void => {
    // A new request's card is posted by the invocation that created it.
    if (change === 'created') return;
    const refs = discordRefs(request);
    if (!refs) return;
    this.#editCard(request, refs);
    const note = renderRequestChange(request, change);
    if (note) this.#post(request.id, refs, note);
  };

  /**
   * Redraws a card whose request was decided where this process could not see it (`dbops exec`, another
   * process without Discord): a click on it tells the clicker, and the card catches up.
   */
  redraw(request: ApprovalRequest): void {
    const refs = discordRefs(request);
    if (refs) this.#editCard(request, refs);
  }

  #editCard(request: ApprovalRequest, refs: DiscordRefs): void {
    this.#latest.set(request.id, request);
    if (this.#editing.has(request.id)) return;
    const run = async () => {
      for (;;) {
        const latest = this.#latest.get(request.id);
        if (!latest) break;
        this.#latest.delete(request.id);
        // An edit never pings again: without `ping`, allowed_mentions parses nothing.
        const card = renderRequestCard(latest, cardContext(this.#config, latest));
        await this.#api.edit(refs.channel, refs.message, card).catch((err: unknown) => {
          this.#log.warn({ err: safeError(err), requestId: latest.id }, 'could not update the approval card');
        });
      }
    };
    const done = run().finally(() => this.#editing.delete(request.id));
    this.#editing.set(request.id, done);
  }

  /** Runs `job` after every earlier message of the request, in order. */
  #enqueue(requestId: number, job: () => Promise<void>): Promise<void> {
    const previous = this.#posting.get(requestId) ?? Promise.resolve();
    const next = previous.then(job);
    this.#posting.set(requestId, next);
    void next.finally(() => {
      if (this.#posting.get(requestId) === next) this.#posting.delete(requestId);
    });
    return next;
  }

  /** Into the thread; without one (none could be started), as a reply to the card. */
  async #send(requestId: number, refs: DiscordRefs, message: OutgoingMessage): Promise<void> {
    try {
      if (refs.thread) await this.#api.send(refs.thread, message);
      else await this.#api.send(refs.channel, message, refs.message);
    } catch (err) {
      this.#log.warn({ err: safeError(err), requestId }, 'could not post to the request thread');
    }
  }

  #post(requestId: number, refs: DiscordRefs, message: OutgoingMessage): void {
    void this.#enqueue(requestId, () => this.#send(requestId, refs, message));
  }

  /**
   * Progress of an approved request's run, in the same ordered stream as its outcome (the progress event
   * comes before the outcome's, so it is posted before it); lines waiting for their turn go out together.
   */
  progressSink(request: ApprovalRequest): ProgressSink | undefined {
    const refs = discordRefs(request);
    if (!refs) return undefined;
    const lines: string[] = [];
    let queued: Promise<void> | undefined;
    return {
      push: (_invocationId, line) => {
        lines.push(line);
        queued ??= this.#enqueue(request.id, async () => {
          queued = undefined;
          await this.#send(request.id, refs, renderProgress(lines.splice(0)));
        });
      },
      settled: async () => {
        while (queued) await queued;
      },
    };
  }

  /** Resolves when every card edit and thread message started so far has been sent. */
  async idle(): Promise<void> {
    while (this.#editing.size > 0 || this.#posting.size > 0) {
      await Promise.allSettled([...this.#editing.values(), ...this.#posting.values()]);
    }
  }
}
