// The core's work under way — dispatches, sweeps and the writes made after a reply — which a graceful
// shutdown waits for, and app.close() waits for the writes after replies.
import type { Logger } from './log.js';

export class InFlight {
  #count = 0;
  readonly #whenIdle = new Set<() => void>();
  /** Writes made after their reply (closing audit records) still under way. */
  readonly #afterReply = new Set<Promise<void>>();

  constructor(private readonly log: Logger) {}

  /** Work under way right now. */
  get count(): number {
    return this.#count;
  }

  /** Runs `work`, counted as under way until it ends. */
  async track<T>(work: () => Promise<T>): Promise<T> {
    this.#count += 1;
    try {
      return await work();
    } finally {
      this.#count -= 1;
      if (this.#count === 0) {
        for (const notify of [...this.#whenIdle]) notify();
        this.#whenIdle.clear();
      }
    }
  }

  /**
   * Runs `work` once the reply being made has been handed to its surface (the next turn of the event
   * loop, after the promise callbacks that carry the reply on); counted as under way until it is done.
   */
  later(work: () => Promise<void>): void {
    const done = this.track(async () => {
      await new Promise((resolve) => setImmediate(resolve));
      await work();
    }).catch((err: unknown) => this.log.error({ err }, 'a write after the reply failed'));
    this.#afterReply.add(done);
    void done.finally(() => this.#afterReply.delete(done));
  }

  /** Resolves when every write made after its reply has ended. */
  async settled(): Promise<void> {
    while (this.#afterReply.size > 0) await Promise.all([...this.#afterReply]);
  }

  /** Resolves true once nothing is under way, or false after `timeoutMs`. */
  async idle(timeoutMs: number): Promise<boolean> {
    if (this.#count === 0) return true;
    return await new Promise<boolean>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.#whenIdle.delete(done);
        resolve(false);
      }, timeoutMs);
      this.#whenIdle.add(done);
    });
  }
}
