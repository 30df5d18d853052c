// The Slack surface: `/db` commands, @mentions in threads and approval buttons, over Socket Mode or HTTP.
import type { Invocation } from '../../core/types.js';
import type { ApprovalCardPoster } from '../../notify/approvals.js';
import { SlackChannelPoster } from '../../notify/slack-poster.js';
import { LaneQueue, laneOf } from '../lanes.js';
import type { SurfaceOptions } from '../start.js';
import type { RunningSurface } from '../types.js';
import { SlackApproverNotices } from './approvers.js';
import { registerHandlers } from './handlers.js';
import { fileOrigins, readSlackSettings } from './settings.js';
import type { Conversation } from './threads.js';
import { SlackThreads } from './threads.js';
import { createTransport } from './transport.js';

/** How long stop() waits for answers still being posted. */
const DRAIN_MS = 10_000;

/** Starts the Slack surface, or returns undefined when SLACK_BOT_TOKEN is not set. */
export async function startSlack(options: SurfaceOptions): Promise<RunningSurface | undefined> {
  const settings = readSlackSettings(options.env);
  if (!settings) return undefined;
  const log = options.log.child({ surface: 'slack' });
  const transport = createTransport(settings, log, options.metrics);
  const threads = new SlackThreads({
    api: transport.api,
    app: options.app,
    config: options.config,
    log,
  });
  const { directory } = options.app;
  if (directory.usesSlack) {
    // Roles from Slack user groups (scope usergroups:read); read again in the background every `refresh`.
    directory.useSlack(async (usergroup) => {
      const answer = await transport.bolt.client.usergroups.users.list({ usergroup });
      return answer.users ?? [];
    });
  }
  const notices = new SlackApproverNotices({ client: transport.bolt.client, config: options.config, log });
  const conversations = new WeakMap<Invocation, Conversation>();
  const inFlight = new Set<Promise<void>>();
  // Per target: a sick target's commands wait behind each other, never in front of a healthy target's.
  const queue = new LaneQueue();
  const targets = Object.keys(options.config.targets);
  registerHandlers({
    bolt: transport.bolt,
    app: options.app,
    threads,
    log,
    conversations,
    files: { token: settings.botToken, origins: fileOrigins(settings.apiUrl) },
    track(work, command) {
      const lane = command
        ? laneOf(options.app, targets, {
            surface: 'slack',
            channel: command.channel,
            text: command.text,
            boundTarget: command.channel && options.config.channels[`slack:${command.channel}`]?.target,
          })
        : Promise.resolve('builtins');
      const tracked = lane
        .then((name) => queue.run(name, work))
        .catch((err: unknown) => log.error({ err }, 'slack: handling a delivery failed'))
        .finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
    },
  });
  const told = new Set<Promise<void>>();
  const tell = (work: Promise<void>) => {
    const tracked = work.catch((err: unknown) => log.warn({ err }, 'slack: telling approvers failed'));
    told.add(tracked);
    void tracked.finally(() => told.delete(tracked));
  };
  threads.onCardPosted = (request, place) => tell(notices.cardPosted(request, place));
  // Requests made outside chat: their card at the top of the approvals channel (src/notify/approvals.ts).
  const approvalCards: ApprovalCardPoster = {
    async postCard(request, channel) {
      const ref = await threads.announceCard(request, channel);
      tell(notices.cardPosted(request, { channel, thread: ref.thread }));
      return { slack: ref };
    },
  };
  const unsubscribe = [
    options.app.escalations.onEscalate((request) => tell(notices.escalated(request))),
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
  const stopDirectory = directory.start();
  return {
    name: 'slack',
    poster: new SlackChannelPoster(transport.bolt.client),
    approvalCards,
    healthy: () => transport.healthy(),
    lanes: () => queue.stats(),
    problem: () => transport.problem(),
    detail: () => directory.problems(),
    async stop() {
      stopDirectory();
      await transport.stop();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...inFlight, ...told, threads.idle()]),
        new Promise((resolve) => {
          timer = setTimeout(resolve, DRAIN_MS);
        }),
      ]);
      clearTimeout(timer);
      for (const stop of unsubscribe) stop();
    },
  };
}
