// Where a stored metric has a limit, when it is reached at the current rate: xid age to the wraparound stop,
// database size to the target's disk budget, connections to max_connections.
import { describeForecast, type Forecast, forecastLimit, type Sample } from '../charts/forecast.js';
import type { ResolvedTarget } from '../config/schema.js';
import { DEFAULT_FORECAST_HORIZON_SECONDS } from '../config/schema.js';
import { formatBytes, formatCount } from '../core/render.js';
import { formatTime } from '../core/time-format.js';
import type { Metric } from './metrics.js';
import type { HistoryStore, SeriesPoint } from './store.js';

/**
 * PostgreSQL stops assigning transaction IDs 3 million short of 2^31 (wraparound protection): the hard
 * limit a database's xid age must never reach.
 */
export const WRAPAROUND_STOP = 2 ** 31 - 3_000_000;
/** The samples a forecast is fitted over: recent enough to be the current rate. */
export const FORECAST_WINDOW_SECONDS = 7 * 86_400;
const MAX_POINTS = 5_000;

export interface LimitForecast {
  metric: Metric;
  /** The sequence a forecast is about (sequence_used_percent). */
  subject?: string;
  /** What is reached, in words: "the wraparound stop", "the disk budget 50 GB". */
  what: string;
  limit: number;
  forecast: Forecast;
  /** The forecast as one phrase. */
  text: string;
}

/** Values that are the same series summed per time (connections over all states). */
export function totalPerTime(points: readonly SeriesPoint[]): Sample[] {
  const sums = new Map<number, number>();
  for (const p of points) {
    if (p.value === null) continue;
    sums.set(p.at.getTime(), (sums.get(p.at.getTime()) ?? 0) + p.value);
  }
  return [...sums.entries()].sort((a, b) => a[0] - b[0]).map(([at, value]) => ({ at: new Date(at), value }));
}

/** The limit a metric is forecast against on this target, if it has one. */
export function limitOf(
  metric: Metric,
  target: Pick<ResolvedTarget, 'forecast'>,
  maxConnections: number | undefined,
): { what: string; limit: number } | undefined {
  switch (metric) {
    case 'xid_age':
      return {
        what: `the wraparound stop (${formatCount(WRAPAROUND_STOP)} transactions)`,
        limit: WRAPAROUND_STOP,
      };
    case 'database_bytes': {
      const budget = target.forecast?.diskBudgetBytes;
      return budget === undefined
        ? undefined
        : { what: `the disk budget ${formatBytes(budget)}`, limit: budget };
    }
    case 'sequence_used_percent':
      return { what: "its type's maximum", limit: 100 };
    case 'connections':
      return maxConnections === undefined
        ? undefined
        : { what: `the connection limit (${formatCount(maxConnections)})`, limit: maxConnections };
    default:
      return undefined;
  }
}

/** The forecast of one metric from its points (connections are summed over their states first). */
export function forecastOf(
  metric: Metric,
  points: readonly SeriesPoint[],
  limit: { what: string; limit: number },
  now: Date,
): LimitForecast {
  const samples =
    metric === 'connections'
      ? totalPerTime(points)
      : points.flatMap((p) => (p.value === null ? [] : [{ at: p.at, value: p.value }]));
  const forecast = forecastLimit(samples, limit.limit, now);
  return { metric, ...limit, forecast, text: describeForecast(forecast, limit.what, formatTime) };
}

/** Every limit forecast of a target from the last week of samples (none without samples). */
export async function targetForecasts(
  store: HistoryStore,
  target: Pick<ResolvedTarget, 'name' | 'forecast'>,
  now: Date,
  maxConnections: number | undefined,
): Promise<LimitForecast[]> {
  const since = new Date(now.getTime() - FORECAST_WINDOW_SECONDS * 1000);
  const out: LimitForecast[] = [];
  for (const metric of ['xid_age', 'database_bytes', 'connections', 'sequence_used_percent'] as const) {
    const limit = limitOf(metric, target, maxConnections);
    if (!limit) continue;
    const { points } = await store.series({ target: target.name, metric, since, limit: MAX_POINTS });
    if (points.length === 0) continue;
    if (metric !== 'sequence_used_percent') {
      out.push(forecastOf(metric, points, limit, now));
      continue;
    }
    // Each sequence runs out on its own: one forecast per sequence.
    for (const name of new Set(points.map((p) => p.subject))) {
      const own = points.filter((p) => p.subject === name);
      out.push({
        ...forecastOf(metric, own, { ...limit, what: `sequence ${name} ${limit.what}` }, now),
        subject: name,
      });
    }
  }
  return out;
}

/** True when the forecast reaches its limit within the target's horizon (or already has). */
export function withinHorizon(f: LimitForecast, target: Pick<ResolvedTarget, 'forecast'>): boolean {
  const horizonDays = (target.forecast?.horizonSeconds ?? DEFAULT_FORECAST_HORIZON_SECONDS) / 86_400;
  return f.forecast.kind === 'reached' || (f.forecast.kind === 'reaches' && f.forecast.days <= horizonDays);
}
