// Recording what a run did, durably: retried with backoff, and journaled locally (fsynced) when the state
// database cannot take it, then replayed when it is back — so audit and card show what really happened.
import type { JournalEntry, OutcomeJournal } from '../state/journal.js';
import type { ApprovalRequest, AuditEvent, StateStore, Transition } from '../state/types.js';
import type { RequestChange } from './context.js';
import type { Logger } from './log.js';
import type { OperationResult } from './types.js';

export type RunOutcome = {
  status: 'succeeded' | 'failed' | 'cancelled';
  result?: OperationResult;
  error?: string;
};

export interface OutcomesDeps {
  state: StateStore;
  /** Undefined: no journal (outcomes that cannot be stored after the retries are logged and lost). */
  journal: OutcomeJournal | undefined;
  log: Logger;
  changed: (request: ApprovalRequest, change: RequestChange) => void;
  /** Waits between attempts to store an outcome (default 100 ms, 400 ms, 1.6 s). */
  retryDelaysMs?: readonly number[];
  /** First wait before replaying the journal; doubles up to 30 s (default 1 s). */
  replayDelayMs?: number;
}

const DEFAULT_RETRY_DELAYS = [100, 400, 1600];
const MAX_REPLAY_DELAY_MS = 30_000;

export class DurableOutcomes {
  readonly #deps: OutcomesDeps;
  #replaying: Promise<number> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #nextDelay: number;
  /** Requests whose outcome waits in the journal, with who waits for it to be recorded. */
  readonly #waiting = new Map<number, (() => void)[]>();

  constructor(deps: OutcomesDeps) {
    this.#deps = deps;
    this.#nextDelay = deps.replayDelayMs ?? 1000;
  }

  /**
   * running → succeeded | failed | cancelled. `delayed` when the state database could not take it: the
   * outcome is then in the journal and recorded on replay.
   */
  async finish(
    id: number,
    outcome: RunOutcome,
    now: Date,
    runner: string,
  ): Promise<{ transition?: Transition; delayed: boolean }> {
    try {
      return {
        transition: await this.#retried(() => this.#deps.state.finishRun(id, outcome, now, runner)),
        delayed: false,
      };
    } catch (err) {
      this.#journal({ kind: 'finish', id, outcome, at: now.toISOString(), runner }, err, id);
      return { delayed: true };
    }
  }

  /** Writes an audit record after a run; `delayed` when it went to the journal instead. */
  async audit(event: AuditEvent, now: Date): Promise<{ delayed: boolean }> {
    const { state } = this.#deps;
    try {
      // After the reply: it may wait a moment to share its statement (state/group-commit.ts).
      await this.#retried(() => state.auditLater?.(event, now) ?? state.audit(event, now));
      return { delayed: false };
    } catch (err) {
      this.#journal({ kind: 'audit', event, at: now.toISOString() }, err, event.requestId ?? undefined);
      return { delayed: true };
    }
  }

  /** Resolves once nothing about this request waits in this process's journal any more. */
  whenRecorded(id: number): Promise<void> {
    if (!this.#waiting.has(id)) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.get(id)?.push(resolve));
  }

  /** Applies every journaled entry the state database takes now, in order; returns how many were applied. */
  replay(): Promise<number> {
    this.#replaying ??= this.#replay().finally(() => {
      this.#replaying = undefined;
    });
    return this.#replaying;
  }

  /** Stops the replay timer (shutdown). */
  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #replay(): Promise<number> {
    const journal = this.#deps.journal;
    if (!journal) return 0;
    let applied = 0;
    let blocked = false;
    for (const { file, entries } of journal.pending()) {
      let at = 0;
      for (; at < entries.length; at++) {
        const entry = entries[at];
        if (!entry) continue;
        try {
          await this.#apply(entry);
          applied += 1;
        } catch (err) {
          this.#deps.log.warn(
            { err },
            'the state database still cannot take journaled outcomes; retrying later',
          );
          blocked = true;
          break;
        }
      }
      if (blocked) {
        journal.keep(file, entries.slice(at));
        break;
      }
      journal.done(file);
    }
    if (blocked) this.#schedule();
    else {
      this.#nextDelay = this.#deps.replayDelayMs ?? 1000;
      for (const [id, waiters] of this.#waiting) {
        this.#waiting.delete(id);
        for (const resolve of waiters) resolve();
      }
    }
    if (applied > 0) this.#deps.log.info({ applied }, 'journaled outcomes recorded in the state database');
    return applied;
  }

  async #apply(entry: JournalEntry): Promise<void> {
    const { state, changed } = this.#deps;
    if (entry.kind === 'audit') {
      // Written once even if an earlier attempt did commit before its connection was lost.
      const at = new Date(entry.at);
      state.hurry?.();
      await (state.auditLater?.(entry.event, at) ?? state.audit(entry.event, at));
      return;
    }
    const done = await state.finishRun(entry.id, entry.outcome, new Date(entry.at), entry.runner);
    // Not ok: already recorded (a replay that was cut short after this entry): nothing left to do.
    if (done.ok) changed(done.request, entry.outcome.status);
  }

  #journal(entry: JournalEntry, err: unknown, id: number | undefined): void {
    const { journal, log } = this.#deps;
    if (!journal) {
      log.error({ err, entry }, 'the state database cannot record this outcome and there is no journal');
      return;
    }
    journal.append(entry);
    log.warn(
      { err, requestId: id, kind: entry.kind },
      'state database unreachable: outcome journaled locally',
    );
    if (id !== undefined && !this.#waiting.has(id)) this.#waiting.set(id, []);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer) return;
    const delay = this.#nextDelay;
    this.#nextDelay = Math.min(MAX_REPLAY_DELAY_MS, delay * 2);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.replay().catch((err: unknown) => this.#deps.log.warn({ err }, 'journal replay failed'));
    }, delay);
    this.#timer.unref();
  }

  async #retried<T>(work: () => Promise<T>): Promise<T> {
    const delays = this.#deps.retryDelaysMs ?? DEFAULT_RETRY_DELAYS;
    for (let attempt = 0; ; attempt++) {
      try {
        return await work();
      } catch (err) {
        const wait = delays[attempt];
        if (wait === undefined) throw err;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }
}
