// Stopping running requests: an AbortController per run, cancel requests noticed across replicas (polled
// from the state database), and what a stopped run says it did and did not do.
import type { Actor, StateStore } from '../state/types.js';
import type { Logger } from './log.js';

/** One run under way on this replica. */
export interface LiveRun {
  readonly controller: AbortController;
  /** Units of work (write or direct transactions) that completed before the end or the cancel. */
  committed: number;
  /** The last progress line the operation posted. */
  lastProgress?: string;
  /** Who stopped it, once someone did. */
  by?: Actor;
  /** True when its outcome went to the local journal (the state database could not take it). */
  delayed?: boolean;
}

export class RunControl {
  readonly #live = new Map<number, LiveRun>();
  readonly #state: StateStore;
  readonly #log: Logger;
  readonly #pollMs: number;

  constructor(state: StateStore, log: Logger, pollMs: number) {
    this.#state = state;
    this.#log = log;
    this.#pollMs = pollMs;
  }

  /**
   * Registers a run and watches the state database for a cancel asked on another replica; `end()` stops
   * watching and forgets the run.
   */
  begin(id: number): { run: LiveRun; end(): void } {
    const run: LiveRun = { controller: new AbortController(), committed: 0 };
    this.#live.set(id, run);
    let checking = false;
    const timer = setInterval(() => {
      if (checking || run.controller.signal.aborted) return;
      checking = true;
      this.#state
        .cancelRequested(id)
        .then((by) => {
          if (by) this.stop(id, by);
        })
        .catch((err: unknown) => this.#log.warn({ err, requestId: id }, 'could not check for a cancel'))
        .finally(() => {
          checking = false;
        });
    }, this.#pollMs);
    timer.unref();
    return {
      run,
      end: () => {
        clearInterval(timer);
        this.#live.delete(id);
      },
    };
  }

  /** Aborts the run if this replica runs it; false when it runs elsewhere (or not at all). */
  stop(id: number, by: Actor): boolean {
    const run = this.#live.get(id);
    if (!run) return false;
    if (!run.controller.signal.aborted) {
      run.by = by;
      this.#log.info({ requestId: id, by: by.person }, 'stopping a running request');
      run.controller.abort();
    }
    return true;
  }
}

/** What a stopped run did and did not do, in one sentence for the card, the reply and the audit. */
export function stoppedOutcome(run: LiveRun, target: string): string {
  const who = run.by ? `cancelled by ${run.by.person}` : 'cancelled';
  const done =
    run.committed === 0
      ? `the statement under way on ${target} was cancelled and its transaction rolled back; nothing had been committed, so ${target} is as it was`
      : `the statement under way on ${target} was cancelled and its transaction rolled back; ${run.committed} earlier unit${run.committed === 1 ? '' : 's'} of work had already committed and stay${run.committed === 1 ? 's' : ''} done`;
  return `${who} while running: ${done}${run.lastProgress ? ` (last progress: ${run.lastProgress})` : ''}`;
}
