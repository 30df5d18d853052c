// `dbops start`'s scheduler: the job engine over the app's ScheduleService, shown to /readyz like a surface
// (healthy while it works; channels it cannot post to and a lost state database in its detail).
import type { App } from '../app.js';
import { ConfigError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../observability/metrics.js';
import type { RunningSurface } from '../surfaces/types.js';
import { ScheduleEngine } from './engine.js';
import { scheduleMetricsOf } from './metrics.js';
import { channelText } from './schema.js';

export interface ScheduleStartOptions {
  app: App;
  env: Readonly<Record<string, string | undefined>>;
  log: Logger;
  metrics?: Metrics | undefined;
}

function seconds(env: ScheduleStartOptions['env'], name: string, fallback: number): number {
  const text = env[name]?.trim();
  if (!text) return fallback;
  const value = Number(text.replace(/s$/, ''));
  if (!/^\d+(\.\d+)?s?$/.test(text) || !(value > 0)) {
    throw new ConfigError([`${name}: expected seconds like 5 or 5s, got "${text}"`]);
  }
  return value;
}

/** Starts the engine when schedules are configured; undefined when there are none. */
export function startSchedules(options: ScheduleStartOptions): RunningSurface | undefined {
  const service = options.app.schedules;
  if (Object.keys(service.config.schedules).length === 0) return undefined;
  const tickMs = seconds(options.env, 'DBOPS_SCHEDULE_TICK', 5) * 1000;
  service.setLease(seconds(options.env, 'DBOPS_SCHEDULE_LEASE', 30) * 1000);
  if (options.metrics) service.useMetrics(scheduleMetricsOf(options.metrics.registry));
  const engine = new ScheduleEngine({
    service,
    log: options.log,
    tickMs,
    ...(options.metrics ? { metrics: scheduleMetricsOf(options.metrics.registry) } : {}),
  }).start();
  options.log.info(
    { schedules: Object.keys(service.config.schedules), tickMs, leaseMs: service.leaseMs },
    'scheduler started',
  );
  // A channel nothing can post to is said now (logs, /readyz detail), not at the first failed run.
  if (!service.poster) {
    for (const schedule of Object.values(service.config.schedules)) {
      if (!schedule.post) continue;
      service.postProblem(schedule.post, 'no chat surface is running that can post there');
      options.log.error(
        { schedule: schedule.name, channel: channelText(schedule.post) },
        'a schedule posts to a channel no running chat surface can post to',
      );
    }
  }
  return {
    name: 'schedules',
    // The bot still takes commands when the scheduler cannot post somewhere: reported, not "not ready".
    healthy: () => true,
    problem: () => engine.problem(),
    detail: () => [...(engine.problem() ? [engine.problem() as string] : []), ...service.problems()],
    async stop() {
      await engine.stop();
    },
  };
}
