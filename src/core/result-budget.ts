// A process-wide budget on result rows held at once (read, rendered, attached, delivered), so a few
// concurrent large reads cannot take the process past its memory limit: a large result waits its turn.
import { UserError } from './errors.js';
import type { ResultScope } from './types.js';

export type { ResultScope };

/**
 * Rows any result may hold without asking (most operations return fewer): the budget is only consulted
 * past them, and a result asks once for the rest of its cap, so readers never wait holding a part.
 */
export const FREE_ROWS = 1_000;
/** Rows of large results held at once by the whole process (4 × 100,000-row reads took ~550 MB). */
export const DEFAULT_BUDGET_ROWS = 150_000;
/** How long a large result waits for room before the person is told to retry. */
export const DEFAULT_WAIT_MS = 120_000;

interface Waiter {
  rows: number;
  grant: () => void;
}

/** A FIFO semaphore counted in rows. A request larger than the whole budget takes all of it, alone. */
export class RowBudget {
  #inUse = 0;
  readonly #queue: Waiter[] = [];

  constructor(
    public total = DEFAULT_BUDGET_ROWS,
    public waitMs = DEFAULT_WAIT_MS,
  ) {}

  get inUse(): number {
    return this.#inUse;
  }

  /** Results waiting for room now. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Resolves with a release function once `rows` fit; refuses (busy) after waitMs. */
  async acquire(rows: number): Promise<() => void> {
    const want = Math.min(Math.max(0, Math.ceil(rows)), this.total);
    if (this.#queue.length === 0 && this.#inUse + want <= this.total) return this.#take(want);
    return await new Promise<() => void>((resolve, reject) => {
      const waiter: Waiter = {
        rows: want,
        grant: () => {
          clearTimeout(timer);
          resolve(this.#take(want));
        },
      };
      const timer = setTimeout(() => {
        const at = this.#queue.indexOf(waiter);
        if (at >= 0) this.#queue.splice(at, 1);
        this.#drain();
        reject(
          new UserError(
            'busy',
            `too many large results are being read at once (${this.#inUse.toLocaleString('en-US')} rows held ` +
              `of ${this.total.toLocaleString('en-US')}): try again in a minute, or narrow the read`,
          ),
        );
      }, this.waitMs);
      timer.unref();
      this.#queue.push(waiter);
    });
  }

  /** The rows' release function when they fit now and nobody waits before them; undefined otherwise. */
  tryAcquire(rows: number): (() => void) | undefined {
    const want = Math.min(Math.max(0, Math.ceil(rows)), this.total);
    return this.#queue.length === 0 && this.#inUse + want <= this.total ? this.#take(want) : undefined;
  }

  #take(rows: number): () => void {
    this.#inUse += rows;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#inUse -= rows;
      this.#drain();
    };
  }

  #drain(): void {
    while (this.#queue.length > 0) {
      const next = this.#queue[0];
      if (!next || this.#inUse + next.rows > this.total) return;
      this.#queue.shift();
      next.grant();
    }
  }
}

/** The process's budget (tests and `dbops start` may resize it). */
export const resultBudget = new RowBudget();

/**
 * Runs one command's whole handling (dispatch, rendering, attachments, delivery) with a scope: rows
 * reserved in it are held until `fn` ends, since the answer holds them until then.
 */
export async function withResultScope<T>(fn: (scope: ResultScope) => Promise<T>): Promise<T> {
  const scope: ResultScope = { releases: [] };
  try {
    return await fn(scope);
  } finally {
    for (const release of scope.releases.splice(0)) release();
  }
}

/**
 * Reserves room for `rows` more rows of a result. In a scope the reservation lasts until the scope ends,
 * and a scope that already holds one does not wait again (it could otherwise wait on itself); without a
 * scope the caller gets the release function and calls it when the rows are gone.
 */
export async function reserveRows(
  rows: number,
  scope: ResultScope | undefined,
  budget: RowBudget = resultBudget,
): Promise<(() => void) | undefined> {
  if (scope && scope.releases.length > 0) return undefined;
  const release = await budget.acquire(rows);
  if (!scope) return release;
  scope.releases.push(release);
  return undefined;
}

/**
 * Like reserveRows, but never waits: undefined when the rows do not fit now (nothing is reserved), else
 * what reserveRows would have resolved with.
 */
export function tryReserveRows(
  rows: number,
  scope: ResultScope | undefined,
  budget: RowBudget = resultBudget,
): { release: (() => void) | undefined } | undefined {
  if (scope && scope.releases.length > 0) return { release: undefined };
  const release = budget.tryAcquire(rows);
  if (!release) return undefined;
  if (!scope) return { release };
  scope.releases.push(release);
  return { release: undefined };
}
