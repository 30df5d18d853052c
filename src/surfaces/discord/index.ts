// The Discord surface: a gateway bot (discord.js) that takes `/db` commands, `@dbops …` messages and
// Approve/Deny clicks, hands each to the core as one Invocation, and renders the replies.
import { Events } from 'discord.js';
import type { Logger } from '../../core/log.js';
import { DiscordChannelPoster } from '../../notify/discord-poster.js';
import type { SurfaceOptions } from '../start.js';
import type { RunningSurface } from '../types.js';
import { announceRequestCard } from './answers.js';
import { DiscordApi, safeError } from './api.js';
import { DiscordApproverNotices } from './approvers.js';
import { RequestCards } from './cards.js';
import { connectGateway, createGatewayClient, GatewayHealth } from './gateway.js';
import { DiscordHandlers } from './interactions.js';
import { guildMemberReader } from './members.js';
import { ProgressRelay } from './progress.js';
import { attachmentOrigins, type DiscordSettings, readDiscordSettings } from './settings.js';

export { registerDiscordCommands } from './register.js';

export interface DiscordTuning {
  /** How long start-up waits for the gateway to be ready (default 30 s). */
  readyTimeoutMs?: number;
  /** How long a reconnect may take before healthy() turns false (default 60 s). */
  reconnectGraceMs?: number;
  /** How long stop() waits for commands in flight (default 10 s). */
  drainMs?: number;
}

/** Starts the bot when DISCORD_TOKEN is set; undefined when it is not (the surface is not configured). */
export async function startDiscord(options: SurfaceOptions): Promise<RunningSurface | undefined> {
  const settings = readDiscordSettings(options.env);
  if (!settings) return undefined;
  return await startDiscordSurface(options, settings);
}

/** Handlers in flight, so stop() can let them finish. */
class InFlight {
  readonly #tasks = new Set<Promise<void>>();
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  run(what: string, task: () => Promise<void>): void {
    const promise = task()
      .catch((err: unknown) => this.#log.error({ err: safeError(err) }, `discord ${what} failed`))
      .finally(() => this.#tasks.delete(promise));
    this.#tasks.add(promise);
  }

  async settle(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([Promise.allSettled([...this.#tasks]), timeout]);
    clearTimeout(timer);
  }
}

export async function startDiscordSurface(
  options: SurfaceOptions,
  settings: DiscordSettings,
  tuning: DiscordTuning = {},
): Promise<RunningSurface> {
  const { app, config } = options;
  const log = options.log.child({ surface: 'discord' });
  const client = createGatewayClient(settings);
  const api = new DiscordApi(client.rest);
  const health = new GatewayHealth(client, { graceMs: tuning.reconnectGraceMs ?? 60_000 });
  const cards = new RequestCards({ api, config, log });
  const progress = new ProgressRelay();
  const notices = new DiscordApproverNotices({ api, config, log });
  // Opt-in: who holds a Discord role is read from the guilds' member listing too, in the background.
  const members = app.directory.discord;
  if (members.listing) members.useReader(guildMemberReader(client.rest));
  const told = new Set<Promise<void>>();
  const tell = (work: Promise<void>) => {
    const tracked = work.catch((err: unknown) =>
      log.warn({ err: safeError(err) }, 'discord: telling approvers failed'),
    );
    told.add(tracked);
    void tracked.finally(() => told.delete(tracked));
  };
  const offEscalate = app.escalations.onEscalate((request) => tell(notices.escalated(request)));
  const handlers = new DiscordHandlers({
    onCardPosted: (request, channelId) => tell(notices.cardPosted(request, channelId)),
    app,
    config,
    api,
    log,
    client,
    progress,
    cards,
    fileOrigins: attachmentOrigins(settings),
  });
  const inFlight = new InFlight(log);

  const onInteraction = (interaction: Parameters<DiscordHandlers['interaction']>[0]) =>
    inFlight.run('interaction', () => handlers.interaction(interaction));
  const onMessage = (message: Parameters<DiscordHandlers['message']>[0]) =>
    inFlight.run('message', () => handlers.message(message));
  client.on(Events.InteractionCreate, onInteraction);
  client.on(Events.MessageCreate, onMessage);
  client.on(Events.Warn, (message) => log.warn({ detail: message }, 'discord.js warning'));
  client.on(Events.Error, (err) => log.error({ err: safeError(err) }, 'discord.js error'));
  let stopped = false;
  client.on(Events.ShardReconnecting, () => {
    if (!stopped) log.warn('discord gateway reconnecting');
  });
  client.on(Events.ShardResume, (_shard, replayed) => log.info({ replayed }, 'discord gateway resumed'));
  client.on(Events.ShardDisconnect, (event) =>
    log.error({ code: event.code }, 'discord gateway closed for good; restart dbops after fixing the cause'),
  );
  const offChange = app.events.onRequestChange(cards.onChange);
  const offProgress = app.events.onProgress(progress.onProgress);

  try {
    await connectGateway(client, settings.token, tuning.readyTimeoutMs ?? 30_000);
  } catch (err) {
    offChange();
    offProgress();
    offEscalate();
    throw err;
  }
  const applicationId = client.application?.id;
  if (settings.applicationId && applicationId && settings.applicationId !== applicationId) {
    log.warn(
      { configured: settings.applicationId, actual: applicationId },
      'DISCORD_APPLICATION_ID does not match the application of DISCORD_TOKEN',
    );
  }
  log.info(
    { user: client.user?.id, application: applicationId, guilds: client.guilds.cache.size },
    'discord connected',
  );
  const stopListing = members.start();

  return {
    name: 'discord',
    poster: new DiscordChannelPoster(api),
    // Requests made outside chat: their card at the top of the approvals channel (src/notify/approvals.ts).
    approvalCards: {
      postCard: (request, channel) =>
        announceRequestCard(
          {
            app,
            config,
            api,
            log,
            onCardPosted: (posted, where) => tell(notices.cardPosted(posted, where)),
          },
          request,
          channel,
        ),
    },
    healthy: () => !stopped && health.problem() === undefined,
    problem: () => (stopped ? 'the Discord surface is stopped' : health.problem()),
    detail: () => members.problems(),
    async stop() {
      if (stopped) return;
      stopped = true;
      stopListing();
      client.off(Events.InteractionCreate, onInteraction);
      client.off(Events.MessageCreate, onMessage);
      await inFlight.settle(tuning.drainMs ?? 10_000);
      await cards.idle();
      await Promise.allSettled([...told]);
      offChange();
      offProgress();
      offEscalate();
      await client.destroy();
      log.info('discord disconnected');
    },
  };
}
