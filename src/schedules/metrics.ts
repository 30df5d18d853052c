// Prometheus series of schedules: runs by schedule and outcome, lag behind the slot, slots collapsed.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

// From a tick's delay (a second) to a catch-up after hours of downtime.
const LAG_BUCKETS = [0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600];

export class ScheduleMetrics {
  readonly #runs: Counter<'schedule' | 'outcome'>;
  readonly #lag: Histogram<'schedule'>;
  readonly #lastLag: Gauge<'schedule'>;
  readonly #collapsed: Counter<'schedule'>;

  constructor(registry: Registry) {
    this.#runs = new Counter({
      name: 'dbops_schedule_runs_total',
      help: 'Scheduled runs finished, by schedule and outcome (succeeded, failed, refused, interrupted), counted by the replica that saw the end',
      labelNames: ['schedule', 'outcome'] as const,
      registers: [registry],
    });
    this.#lag = new Histogram({
      name: 'dbops_schedule_lag_seconds',
      help: 'Time from a cron slot to its run starting, by schedule (a caught-up run after downtime shows here)',
      labelNames: ['schedule'] as const,
      buckets: LAG_BUCKETS,
      registers: [registry],
    });
    this.#lastLag = new Gauge({
      name: 'dbops_schedule_last_lag_seconds',
      help: 'Lag behind schedule of the last run this replica started, by schedule',
      labelNames: ['schedule'] as const,
      registers: [registry],
    });
    this.#collapsed = new Counter({
      name: 'dbops_schedule_slots_collapsed_total',
      help: 'Cron slots not run on their own because an earlier run of the schedule was still waiting (never two at once)',
      labelNames: ['schedule'] as const,
      registers: [registry],
    });
  }

  finished(schedule: string, outcome: string): void {
    this.#runs.inc({ schedule, outcome });
  }

  started(schedule: string, lagSeconds: number): void {
    const lag = Math.max(0, lagSeconds);
    this.#lag.observe({ schedule }, lag);
    this.#lastLag.set({ schedule }, lag);
  }

  collapsed(schedule: string): void {
    this.#collapsed.inc({ schedule });
  }
}

const byRegistry = new WeakMap<Registry, ScheduleMetrics>();

/** The schedule series of a registry, made once (an app built again after a failed start reuses them). */
export function scheduleMetricsOf(registry: Registry): ScheduleMetrics {
  let metrics = byRegistry.get(registry);
  if (!metrics) {
    metrics = new ScheduleMetrics(registry);
    byRegistry.set(registry, metrics);
  }
  return metrics;
}
