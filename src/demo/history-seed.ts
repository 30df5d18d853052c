// The demo's week of history: one real sample of each target now, and hourly samples before it drawn back
// from that value along a plausible trend, so `/db trend`, `/db history` and `/db digest` have something to show.
import type { Metric } from '../history/metrics.js';
import type { HistoryStore } from '../history/store.js';
import type { SampleTarget } from '../schedules/hooks.js';

const HOUR = 3_600_000;
const HOURS = 7 * 24;

/** How each metric moved over the demo's week: growth per hour as a share of today's value, and a daily wave. */
const SHAPES: Readonly<Record<string, { growth: number; wave: number }>> = {
  database_bytes: { growth: 0.004, wave: 0 },
  table_bytes: { growth: 0.005, wave: 0 },
  connections: { growth: 0, wave: 0.4 },
  xid_age: { growth: 0.004, wave: 0 },
  sequence_used_percent: { growth: 0.002, wave: 0 },
};

export async function seedDemoHistory(
  targets: readonly string[],
  sample: SampleTarget,
  store: HistoryStore,
  now: Date,
): Promise<number> {
  let stored = 0;
  for (const target of targets) {
    await sample(target, now);
    for (const [metric, shape] of Object.entries(SHAPES)) {
      const { points } = await store.series({
        target,
        metric: metric as Metric,
        since: new Date(now.getTime() - 1000),
        limit: 200,
      });
      const past = points.flatMap((p) =>
        p.value === null
          ? []
          : Array.from({ length: HOURS }, (_, i) => {
              const hoursAgo = HOURS - i;
              const trend = 1 - shape.growth * hoursAgo;
              const wave = 1 + shape.wave * Math.sin((2 * Math.PI * (i % 24)) / 24);
              const value = Math.max(0, (p.value ?? 0) * trend * wave);
              return {
                target,
                metric: metric as Metric,
                subject: p.subject,
                at: new Date(now.getTime() - hoursAgo * HOUR),
                value: metric === 'connections' ? Math.round(value) : value,
              };
            }),
      );
      stored += await store.insert(past);
    }
  }
  return stored;
}
