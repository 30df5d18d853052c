// One background reading of a platform directory at a time, again every `refresh` seconds: the Slack user
// groups and the Discord member listing both read this way.
export class Refresher {
  readonly #read: () => Promise<void>;
  #running: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  /** `read` must not throw for a platform failure (it keeps the last known state and reports it). */
  constructor(read: () => Promise<void>) {
    this.#read = read;
  }

  /** True while a reading is under way. */
  get running(): boolean {
    return this.#running !== undefined;
  }

  /** Reads now, or joins the reading under way. */
  async run(): Promise<void> {
    this.#running ??= this.#read().finally(() => {
      this.#running = undefined;
    });
    return await this.#running;
  }

  /** Reads now, then every `seconds` (the timer keeps no process alive); returns a stop function. */
  start(seconds: number): () => void {
    this.run().catch(() => {});
    this.stop();
    this.#timer = setInterval(() => this.run().catch(() => {}), seconds * 1000);
    this.#timer.unref();
    return () => this.stop();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
