// Starts the chat surfaces whose settings are present in the environment (Slack, Discord).
import type { App } from '../app.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../core/log.js';
import { ApprovalAnnouncer } from '../notify/approvals.js';
import { SurfacePosters } from '../notify/poster.js';
import type { Metrics } from '../observability/metrics.js';
import { startSchedules } from '../schedules/start.js';
import { startDiscord } from './discord/index.js';
import { startSlack } from './slack/index.js';
import type { RunningSurface } from './types.js';

export interface SurfaceOptions {
  app: App;
  config: Config;
  /** The process environment, read only by cli.ts and handed down. */
  env: Readonly<Record<string, string | undefined>>;
  log: Logger;
  /** Where a surface counts what only it sees (Slack: refused requests, acknowledgement time). */
  metrics?: Metrics;
  /** How often the approvals announcer looks for requests made outside chat (default 2 s; tests go faster). */
  announceEveryMs?: number;
}

/** Each surface returns undefined when it is not configured; one that is configured but fails throws. */
export async function startSurfaces(options: SurfaceOptions): Promise<RunningSurface[]> {
  const started: RunningSurface[] = [];
  try {
    const slack = await startSlack(options);
    if (slack) started.push(slack);
    const discord = await startDiscord(options);
    if (discord) started.push(discord);
    // Schedules post through the running chat surfaces, tell the alert observer of every run, and sample
    // history; they run where the chat surfaces run: in `dbops start`, never in exec or the console.
    const posters = {
      ...(slack?.poster ? { slack: slack.poster } : {}),
      ...(discord?.poster ? { discord: discord.poster } : {}),
    };
    const poster = Object.keys(posters).length > 0 ? new SurfacePosters(posters) : undefined;
    const service = options.app.schedules;
    service.poster = poster;
    service.observe(options.app.alertObserver(poster));
    const schedules = startSchedules(options);
    if (schedules) started.push(schedules);
    const announcer = startAnnouncer(options, slack, discord);
    if (announcer) started.push(announcer);
  } catch (err) {
    await Promise.allSettled(started.map((s) => s.stop()));
    throw err;
  }
  return started;
}

/**
 * Requests made outside chat (`dbops exec`, the console, schedules) announced in their environment's
 * approvals channel by whichever replica claims them first; undefined when no environment has one here.
 */
function startAnnouncer(
  options: SurfaceOptions,
  slack: RunningSurface | undefined,
  discord: RunningSurface | undefined,
): RunningSurface | undefined {
  const announcer = new ApprovalAnnouncer({
    config: options.config,
    state: options.app.state,
    stateUrl: options.config.state.url,
    posters: {
      ...(slack?.approvalCards ? { slack: slack.approvalCards } : {}),
      ...(discord?.approvalCards ? { discord: discord.approvalCards } : {}),
    },
    log: options.log,
  });
  if (announcer.environments().length === 0) {
    void announcer.stop();
    return undefined;
  }
  announcer.start(options.announceEveryMs);
  return {
    name: 'approvals',
    healthy: () => true,
    problem: () => undefined,
    detail: () => announcer.problems(),
    stop: () => announcer.stop(),
  };
}
