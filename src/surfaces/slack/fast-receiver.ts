// HTTP mode's receiver: a thread of its own verifies each request's signature and answers Slack's 200 at
// once (ack-thread.ts); the bodies come back here and Bolt processes them with an ack that has nothing left
// to do.
import { Worker } from 'node:worker_threads';
import type { App, Receiver } from '@slack/bolt';
import type { AckThreadCommand, AckThreadData, AckThreadMessage } from './ack-thread.js';
import type { RefusalReason } from './signed-requests.js';

/** Compiled next to this module (dist/src/surfaces/slack/ack-thread.js). */
const ACK_THREAD = new URL('./ack-thread.js', import.meta.url);
/** How long stop() waits for the thread to close its connections before ending it. */
const CLOSE_TIMEOUT_MS = 5_000;
/** A thread that died is started again after this long, doubling up to the maximum. */
const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;

export interface FastAckReceiverOptions {
  signingSecret: string;
  path: string;
  healthPath: string;
  /** What Bolt could not process after the ack (logged by the transport). */
  onError: (err: unknown) => void;
  /** A request refused before anything read it: forged, stale, too large or unparseable (answered 4xx). */
  onRefused?: (reason: RefusalReason, remote: string | undefined) => void;
  /** How long an accepted request took from its headers to its 200 being written out, in milliseconds. */
  onAcked?: (ms: number) => void;
  /** The acknowledging thread ended without being asked to; it is started again. */
  onThreadLost?: (why: string) => void;
  /** The module the thread runs (default: ack-thread.js beside this one); tests wrap it. */
  threadModule?: URL;
  /** From connect to a request's complete headers (default 10 s); tests shorten it. */
  headersTimeoutMs?: number;
}

/**
 * Bolt's HTTPReceiver parses, verifies and runs the middleware chain before a listener can ack, on the one
 * event loop that also runs every command's work: under a burst the acks queue behind that work, and a
 * busy loop accepts one new connection per turn. Here the socket, the signature check and the 200 live on
 * a thread whose loop does nothing else.
 */
export class FastAckReceiver implements Receiver {
  #app: App | undefined;
  #worker: Worker | undefined;
  #port = 0;
  #stopping = false;
  #restartDelay = RESTART_MIN_MS;
  #restartTimer: NodeJS.Timeout | undefined;
  /** Shared with the thread: 1 while this receiver takes work, read by its health path. */
  readonly #health = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  readonly #options: FastAckReceiverOptions;

  constructor(options: FastAckReceiverOptions) {
    this.#options = options;
  }

  init(app: App): void {
    this.#app = app;
  }

  /** True while the acknowledging thread listens. */
  get listening(): boolean {
    return Atomics.load(this.#health, 0) === 1;
  }

  /** Listens on `port` (0: any free port); resolves with the port once the thread accepts requests. */
  async start(port: number): Promise<number> {
    this.#stopping = false;
    this.#port = await this.#spawn(port);
    return this.#port;
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    Atomics.store(this.#health, 0, 0);
    const worker = this.#worker;
    this.#worker = undefined;
    if (!worker) return;
    const exited = new Promise<void>((done) => worker.once('exit', () => done()));
    const closed = new Promise<void>((done) => {
      worker.on('message', (m: AckThreadMessage) => {
        if (m.type === 'closed') done();
      });
    });
    worker.postMessage({ type: 'close' } satisfies AckThreadCommand);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, exited, new Promise((done) => (timer = setTimeout(done, CLOSE_TIMEOUT_MS)))]);
    clearTimeout(timer);
    await worker.terminate();
    await exited;
  }

  #spawn(port: number): Promise<number> {
    const data: AckThreadData = {
      signingSecret: this.#options.signingSecret,
      port,
      path: this.#options.path,
      healthPath: this.#options.healthPath,
      health: this.#health,
      ...(this.#options.headersTimeoutMs !== undefined
        ? { headersTimeoutMs: this.#options.headersTimeoutMs }
        : {}),
    };
    let worker: Worker;
    try {
      worker = new Worker(this.#options.threadModule ?? ACK_THREAD, {
        workerData: data,
        name: 'dbops slack ack',
      });
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      const module = (this.#options.threadModule ?? ACK_THREAD).pathname;
      return Promise.reject(new Error(`cannot start the Slack acknowledging thread (${module}): ${why}`));
    }
    this.#worker = worker;
    return new Promise<number>((resolve, reject) => {
      let started = false;
      worker.on('message', (m: AckThreadMessage) => {
        if (m.type === 'listening') {
          started = true;
          this.#restartDelay = RESTART_MIN_MS;
          Atomics.store(this.#health, 0, 1);
          resolve(m.port);
        } else if (m.type === 'failed' && !started) {
          reject(new Error(`cannot listen for Slack requests on port ${port}: ${m.message}`));
          void worker.terminate();
        } else this.#receive(m);
      });
      worker.on('error', (err) => {
        if (!started) reject(err);
        else this.#options.onError(err);
      });
      worker.on('exit', (code) => {
        if (!started) {
          reject(new Error(`the Slack acknowledging thread exited (code ${code}) before listening`));
          return;
        }
        if (this.#stopping || this.#worker !== worker) return;
        Atomics.store(this.#health, 0, 0);
        this.#worker = undefined;
        this.#options.onThreadLost?.(`the acknowledging thread exited with code ${code}`);
        this.#restart();
      });
    });
  }

  /** Starts a lost thread again on the same port, backing off while that fails. */
  #restart(): void {
    const delay = this.#restartDelay;
    this.#restartDelay = Math.min(delay * 2, RESTART_MAX_MS);
    this.#restartTimer = setTimeout(() => {
      if (this.#stopping) return;
      this.#spawn(this.#port).catch((err: unknown) => {
        this.#options.onThreadLost?.(err instanceof Error ? err.message : String(err));
        if (!this.#stopping) this.#restart();
      });
    }, delay);
  }

  #receive(m: AckThreadMessage): void {
    if (m.type === 'refused') {
      this.#options.onRefused?.(m.reason, m.remote);
      return;
    }
    if (m.type !== 'events') return;
    const onAcked = this.#options.onAcked;
    if (onAcked) for (const ms of m.ackMs) onAcked(ms);
    const app = this.#app;
    for (const event of m.events) {
      if (!app) {
        this.#options.onError(new Error('a Slack request arrived before Bolt was initialised'));
        continue;
      }
      app
        .processEvent({
          body: event.body,
          ack: async () => {},
          ...(event.retryNum !== undefined ? { retryNum: event.retryNum } : {}),
          ...(event.retryReason !== undefined ? { retryReason: event.retryReason } : {}),
        })
        .catch((err: unknown) => this.#options.onError(err));
    }
  }
}
