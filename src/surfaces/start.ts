// Starts the chat surfaces whose settings are present in the environment (Slack, Discord).
import type { App } from '../app.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../core/log.js';
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
}

/** Each surface returns undefined when it is not configured; one that is configured but fails throws. */
export async function startSurfaces(options: SurfaceOptions): Promise<RunningSurface[]> {
  const started: RunningSurface[] = [];
  try {
    const slack = await startSlack(options);
    if (slack) started.push(slack);
    const discord = await startDiscord(options);
    if (discord) started.push(discord);
    // Schedules run where the chat surfaces run: in `dbops start`, never in exec or the console.
    const schedules = startSchedules(options);
    if (schedules) started.push(schedules);
  } catch (err) {
    await Promise.allSettled(started.map((s) => s.stop()));
    throw err;
  }
  return started;
}
