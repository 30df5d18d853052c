// Progress lines of long operations (backups, vacuums, batched deletes) into the thread of the request.
// Lines that arrive while a message is being sent go out together in the next one, so a chatty tool cannot
// flood the channel.
import type { Logger } from '../../core/log.js';
import type { Invocation } from '../../core/types.js';
import { type DiscordApi, safeError } from './api.js';
import { renderProgress } from './render.js';

/** Where the progress of one invocation goes. */
export interface ProgressSink {
  push(about: number | string, line: string): void;
  /** Resolves once every line pushed so far has been posted. */
  settled(): Promise<void>;
}

export class ProgressRelay {
  readonly #sinks = new WeakMap<Invocation, ProgressSink>();

  /** Progress of `invocation` (the object handed to dispatch) goes to `sink`. */
  register(invocation: Invocation, sink: ProgressSink | undefined): void {
    if (sink) this.#sinks.set(invocation, sink);
  }

  /** The app.events.onProgress listener. */
  readonly onProgress = (about: number | string, invocation: Invocation, line: string): void => {
    this.#sinks.get(invocation)?.push(about, line);
  };

  /** Waits until the progress of `invocation` has been posted (before its final answer). */
  async settle(invocation: Invocation): Promise<void> {
    await this.#sinks.get(invocation)?.settled();
  }
}

/** Finds (or makes) the channel or thread for the progress of a command, on its first line. */
/** `about`: the approval request's number, or the reference (`r7f3kq`) of a command that ran at once. */
export type ProgressPlace = (about: number | string) => Promise<string | undefined>;

/** Progress of a command typed now: into a thread started from its answer. */
export class ThreadProgress implements ProgressSink {
  readonly #api: DiscordApi;
  readonly #log: Logger;
  readonly #place: ProgressPlace;
  readonly #lines: string[] = [];
  #sending: Promise<void> | undefined;

  constructor(deps: { api: DiscordApi; log: Logger }, place: ProgressPlace) {
    this.#api = deps.api;
    this.#log = deps.log;
    this.#place = place;
  }

  push(about: number | string, line: string): void {
    this.#lines.push(line);
    this.#sending ??= this.#drain(about).finally(() => {
      this.#sending = undefined;
    });
  }

  async #drain(about: number | string): Promise<void> {
    try {
      const channel = await this.#place(about);
      while (this.#lines.length > 0) {
        const lines = this.#lines.splice(0);
        if (channel) await this.#api.send(channel, renderProgress(lines));
      }
    } catch (err) {
      this.#log.warn({ err: safeError(err), about }, 'could not post progress');
      this.#lines.length = 0;
    }
  }

  async settled(): Promise<void> {
    while (this.#sending) await this.#sending;
  }
}
