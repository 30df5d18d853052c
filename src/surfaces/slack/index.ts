// The Slack surface: `/db` commands, @mentions in threads and approval buttons, over Socket Mode or HTTP.
import type { Invocation } from '../../core/types.js';
import type { SurfaceOptions } from '../start.js';
import type { RunningSurface } from '../types.js';
import { registerHandlers } from './handlers.js';
import { fileOrigins, readSlackSettings } from './settings.js';
import type { Conversation } from './threads.js';
import { SlackThreads } from './threads.js';
import { createTransport } from './transport.js';

/** How long stop() waits for answers still being posted. */
const DRAIN_MS = 10_000;

/**
 * How many deliveries are worked on at once (the rest wait their turn, in order). The connection pools are
 * small anyway (pool_max defaults to 4), so more would mostly wait on them, holding memory and state-database
 * connections. (Acknowledgements do not wait on this: in HTTP mode they come from their own thread, in
 * Socket Mode from the SDK before the handler runs.)
 */
const MAX_RUNNING = 8;

/** Runs at most `limit` jobs at once, the others in arrival order. */
class WorkQueue {
  readonly #limit: number;
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  async run(job: () => Promise<void>): Promise<void> {
    if (this.#running < this.#limit) this.#running += 1;
    // A finishing job hands its place to the first waiting one.
    else await new Promise<void>((turn) => this.#waiting.push(turn));
    try {
      await job();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running -= 1;
    }
  }
}

/** Starts the Slack surface, or returns undefined when SLACK_BOT_TOKEN is not set. */
export async function startSlack(options: SurfaceOptions): Promise<RunningSurface | undefined> {
  const settings = readSlackSettings(options.env);
  if (!settings) return undefined;
  const log = options.log.child({ surface: 'slack' });
  const transport = createTransport(settings, log, options.metrics);
  const threads = new SlackThreads({
    client: transport.bolt.client,
    app: options.app,
    config: options.config,
    log,
  });
  const conversations = new WeakMap<Invocation, Conversation>();
  const inFlight = new Set<Promise<void>>();
  const queue = new WorkQueue(MAX_RUNNING);
  registerHandlers({
    bolt: transport.bolt,
    app: options.app,
    threads,
    log,
    conversations,
    files: { token: settings.botToken, origins: fileOrigins(settings.apiUrl) },
    track(work) {
      const tracked = queue
        .run(work)
        .catch((err: unknown) => log.error({ err }, 'slack: handling a delivery failed'))
        .finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
    },
  });
  const unsubscribe = [
    options.app.events.onRequestChange((request, change) => threads.onRequestChange(request, change)),
    options.app.events.onProgress((_requestId, invocation, line) =>
      conversations.get(invocation)?.progress(line),
    ),
  ];
  try {
    await transport.start();
  } catch (err) {
    for (const stop of unsubscribe) stop();
    throw err;
  }
  log.info({ mode: settings.mode }, 'slack: connected');
  return {
    name: 'slack',
    healthy: () => transport.healthy(),
    problem: () => transport.problem(),
    async stop() {
      await transport.stop();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...inFlight, threads.idle()]),
        new Promise((resolve) => {
          timer = setTimeout(resolve, DRAIN_MS);
        }),
      ]);
      clearTimeout(timer);
      for (const stop of unsubscribe) stop();
    },
  };
}
