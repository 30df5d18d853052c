// Forecasts from a series of samples: the least-squares rate of change, and when a limit is reached at that rate.

export interface Sample {
  at: Date;
  value: number;
}

export interface Rate {
  /** Change per day fitted over the samples (least squares). */
  perDay: number;
  first: Sample;
  last: Sample;
  /** The fitted value at the last sample's time: a less noisy "now" than the last sample alone. */
  fittedNow: number;
}

const DAY_MS = 86_400_000;
/** Beyond this a forecast says "not within 10 years" rather than a date nobody can plan for. */
const HORIZON_DAYS = 3650;

/** The trend of the samples, or undefined when there are fewer than two samples at distinct times. */
export function rateOf(samples: readonly Sample[]): Rate | undefined {
  const points = samples
    .filter((s) => Number.isFinite(s.value))
    .sort((a, b) => a.at.getTime() - b.at.getTime());
  if (points.length < 2) return undefined;
  const first = points[0] as Sample;
  const last = points.at(-1) as Sample;
  const origin = first.at.getTime();
  const xs = points.map((p) => (p.at.getTime() - origin) / DAY_MS);
  const meanX = xs.reduce((a, b) => a + b, 0) / xs.length;
  const meanY = points.reduce((a, p) => a + p.value, 0) / points.length;
  let sxx = 0;
  let sxy = 0;
  for (const [i, x] of xs.entries()) {
    sxx += (x - meanX) ** 2;
    sxy += (x - meanX) * ((points[i] as Sample).value - meanY);
  }
  if (sxx === 0) return undefined;
  const perDay = sxy / sxx;
  const fittedNow = meanY + perDay * ((xs.at(-1) as number) - meanX);
  return { perDay, first, last, fittedNow };
}

export type Forecast =
  | { kind: 'unknown'; reason: string }
  | { kind: 'reached'; rate?: Rate }
  | { kind: 'no-growth'; rate: Rate }
  | { kind: 'shrinking'; rate: Rate }
  | { kind: 'beyond-horizon'; rate: Rate }
  | { kind: 'reaches'; rate: Rate; at: Date; days: number };

/**
 * When the series reaches `limit` at its current rate, counted from `now`. A flat or shrinking series is an
 * answer ("no growth"), not a division by zero; a rate within rounding noise (a millionth of a millionth of the values per day)
 * counts as flat, and slower growth than the horizon allows says so instead of naming a date.
 */
export function forecastLimit(samples: readonly Sample[], limit: number, now: Date): Forecast {
  const rate = rateOf(samples);
  const latest = [...samples].sort((a, b) => a.at.getTime() - b.at.getTime()).at(-1);
  if (latest && latest.value >= limit) return rate ? { kind: 'reached', rate } : { kind: 'reached' };
  if (!rate) return { kind: 'unknown', reason: 'needs two samples at different times' };
  const flatBelow = Math.max(Math.abs(limit), Math.abs(rate.last.value), 1) * 1e-12;
  if (Math.abs(rate.perDay) <= flatBelow) return { kind: 'no-growth', rate };
  if (rate.perDay < 0) return { kind: 'shrinking', rate };
  const start = Math.max(rate.fittedNow, rate.last.value);
  const daysFromLast = (limit - start) / rate.perDay;
  const days = daysFromLast - (now.getTime() - rate.last.at.getTime()) / DAY_MS;
  if (days > HORIZON_DAYS) return { kind: 'beyond-horizon', rate };
  if (days <= 0) return { kind: 'reached', rate };
  return { kind: 'reaches', rate, days, at: new Date(now.getTime() + days * DAY_MS) };
}

/** "in 41 days", "in 5 hours": the distance a forecast gives, in the largest unit that is at least 1. */
export function inDays(days: number): string {
  if (days >= 2) return `in ${Math.round(days).toLocaleString('en-US')} days`;
  const hours = days * 24;
  if (hours >= 2) return `in ${Math.round(hours)} hours`;
  return `in ${Math.max(1, Math.round(hours * 60))} minutes`;
}

/** One phrase for a forecast toward `what` ("the wraparound limit"), with the date in `formatDate`'s form. */
export function describeForecast(forecast: Forecast, what: string, formatDate: (d: Date) => string): string {
  switch (forecast.kind) {
    case 'unknown':
      return `${what}: no forecast yet (${forecast.reason})`;
    case 'reached':
      return `${what} is reached`;
    case 'no-growth':
      return `${what}: no growth, not reached at the current rate`;
    case 'shrinking':
      return `${what}: shrinking, not reached at the current rate`;
    case 'beyond-horizon':
      return `${what}: not within 10 years at the current rate`;
    case 'reaches':
      return `${what} ${inDays(forecast.days)} (${formatDate(forecast.at)}) at the current rate`;
  }
}
