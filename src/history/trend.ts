// `/db trend <target> <metric> [--since 7d] [--table t]`: a stored metric as a chart (PNG in the thread, saved
// by console and exec), a one-line summary, a sparkline per series, and the forecast where a limit exists.
import {
  type ChartSeries,
  type ChartUnit,
  formatUnit,
  limitSeries,
  renderChartPng,
} from '../charts/chart.js';
import { rateOf } from '../charts/forecast.js';
import { sparkline } from '../charts/sparkline.js';
import { type Handler, ok } from '../core/builtins/common.js';
import { wrapWords } from '../core/operation.js';
import { renderTable } from '../core/render.js';
import { displayTimeZone, formatTime } from '../core/time-format.js';
import type { Column, ColumnKind, Row } from '../core/types.js';
import { visible } from '../core/visible.js';
import { readMetric } from './args.js';
import { forecastOf, type LimitForecast, limitOf, totalPerTime } from './forecasts.js';
import { METRICS, type Metric } from './metrics.js';
import type { HistoryStore, SeriesPoint } from './store.js';

const USAGE = 'usage: /db trend <target> <metric> [--since 7d] [--table t | --sequence s]';
const WIDTH = 80;
const SPARK = 24;
/** Enough points for a week of samples every two minutes; older ones are left out with a note. */
const MAX_POINTS = 5_000;
const DAY_MS = 86_400_000;

const UNITS: Readonly<Partial<Record<ColumnKind, ChartUnit>>> = {
  bytes: 'bytes',
  count: 'count',
  percent: 'percent',
  seconds: 'seconds',
};

function unitOf(metric: Metric): ChartUnit {
  return UNITS[METRICS[metric].kind] ?? 'count';
}

/** One series per subject (table, state), or one for the metric itself. */
export function seriesOf(metric: Metric, target: string, points: readonly SeriesPoint[]): ChartSeries[] {
  const bySubject = new Map<string, { at: Date; value: number }[]>();
  for (const p of points) {
    if (p.value === null) continue;
    const list = bySubject.get(p.subject) ?? [];
    list.push({ at: p.at, value: p.value });
    bySubject.set(p.subject, list);
  }
  return [...bySubject.entries()].map(([subject, list]) => ({
    name: subject === '' ? `${target} ${metric}` : subject,
    points: list,
  }));
}

function signed(perDay: number, unit: ChartUnit): string {
  const magnitude = formatUnit(Math.abs(perDay), unit);
  if (magnitude === formatUnit(0, unit)) return 'no change';
  return `${perDay > 0 ? '+' : '−'}${magnitude}/day`;
}

function spanDays(series: readonly ChartSeries[]): number {
  const times = series.flatMap((s) => s.points.map((p) => p.at.getTime()));
  return times.length < 2 ? 0 : (Math.max(...times) - Math.min(...times)) / DAY_MS;
}

function overDays(days: number): string {
  if (days >= 1.5) return `over ${Math.round(days)} days`;
  const hours = days * 24;
  return hours >= 1.5
    ? `over ${Math.round(hours)} hours`
    : `over ${Math.max(1, Math.round(hours * 60))} minutes`;
}

/** The growth of each table between its first and last sample in the window, largest first. */
export async function tableGrowth(
  store: HistoryStore,
  target: string,
  since: Date,
): Promise<{ table: string; grewBytes: number; nowBytes: number }[]> {
  const { points } = await store.series({ target, metric: 'table_bytes', since, limit: MAX_POINTS });
  return seriesOf('table_bytes', target, points)
    .map((s) => ({
      table: s.name,
      grewBytes: (s.points.at(-1)?.value ?? 0) - (s.points[0]?.value ?? 0),
      nowBytes: s.points.at(-1)?.value ?? 0,
    }))
    .filter((g) => g.grewBytes > 0)
    .sort((a, b) => b.grewBytes - a.grewBytes);
}

/** "+1.2 GB/day over 7 days; public.events is 61% of it" — the line above the chart. */
async function summaryOf(
  store: HistoryStore,
  target: string,
  metric: Metric,
  series: readonly ChartSeries[],
  since: Date,
): Promise<string> {
  const unit = unitOf(metric);
  const days = spanDays(series);
  if (series.length === 0) return 'no samples';
  if (days === 0) return 'one sample so far: a trend needs two';
  const total =
    series.length === 1 ? series[0]?.points : metric === 'connections' ? mergeSum(series) : undefined;
  if (total) {
    const rate = rateOf(total);
    const first = total[0]?.value ?? 0;
    const last = total.at(-1)?.value ?? 0;
    let line = `${rate ? signed(rate.perDay, unit) : 'no change'} ${overDays(days)} (${formatUnit(first, unit)} → ${formatUnit(last, unit)})`;
    if (metric === 'connections') {
      const peak = total.reduce((a, p) => (p.value > a.value ? p : a));
      line += `; peak ${formatUnit(peak.value, unit)} at ${formatTime(peak.at)}`;
    }
    if (metric === 'database_bytes' && last > first) {
      const [top] = await tableGrowth(store, target, since);
      if (top) {
        const share = Math.round((100 * top.grewBytes) / (last - first));
        if (share > 0) line += `; ${visible(top.table, 63)} is ${Math.min(share, 100)}% of it`;
      }
    }
    return line;
  }
  const growers = series
    .map((s) => ({ name: s.name, rate: rateOf(s.points) }))
    .filter((g) => g.rate !== undefined)
    .sort((a, b) => (b.rate?.perDay ?? 0) - (a.rate?.perDay ?? 0));
  const top = growers[0];
  return top?.rate
    ? `${series.length} series ${overDays(days)}; fastest: ${visible(top.name, 63)} ${signed(top.rate.perDay, unit)}`
    : `${series.length} series ${overDays(days)}`;
}

/** Several series summed per time (connections over their states), as forecasts sum them. */
function mergeSum(series: readonly ChartSeries[]): { at: Date; value: number }[] {
  return totalPerTime(
    series.flatMap((s) => s.points.map((p) => ({ subject: s.name, at: p.at, value: p.value }))),
  );
}

/** max_connections of the target, read live (the limit connections are forecast against). */
async function maxConnections(core: Parameters<Handler>[0], target: string): Promise<number | undefined> {
  try {
    return await core.targetDb(target).read(async (session) => {
      const rows = await session.query<{ n: string }>("SELECT current_setting('max_connections') AS n");
      return Number(rows[0]?.n);
    });
  } catch {
    return undefined;
  }
}

const COLUMNS: Column[] = [
  { key: 'series', label: 'series', kind: 'text' },
  { key: 'trend', label: 'trend', kind: 'text' },
  { key: 'first', label: 'from', kind: 'text' },
  { key: 'last', label: 'to', kind: 'text' },
  { key: 'per_day', label: 'per day', kind: 'text' },
];

export const trend: Handler = async (core, ctx, tokens) => {
  const { store, target, metric, subject, since, points, more } = await readMetric(
    core,
    ctx,
    tokens,
    USAGE,
    MAX_POINTS,
  );
  const unit = unitOf(metric);
  const all = seriesOf(metric, target.name, points);
  const shown = limitSeries(all);
  const about = `${metric} of ${target.name}${subject ? ` (${subject})` : ''} since ${formatTime(since)}`;
  if (all.length === 0) {
    const text = wrapWords(
      `${about}: no samples. History is sampled by a schedule of kind sample for this target (see \`/db schedules\`).`,
      WIDTH,
      '',
    ).join('\n');
    return ok(ctx, `${about}: no samples`, text, {
      target: target.name,
      result: {
        headline: `${about}: no samples`,
        columns: COLUMNS,
        rows: [],
        truncated: false,
        data: { series: [] },
      },
    });
  }
  const summary = await summaryOf(store, target.name, metric, shown, since);
  // A sequence's forecast is its own: with --sequence; the others are about the whole database.
  const forecastable = metric === 'sequence_used_percent' ? subject !== undefined : subject === undefined;
  const limit = forecastable
    ? limitOf(metric, target, metric === 'connections' ? await maxConnections(core, target.name) : undefined)
    : undefined;
  const forecast: LimitForecast | undefined = limit
    ? forecastOf(metric, points, limit, core.now())
    : undefined;
  const rows: Row[] = shown.map((s) => {
    const rate = rateOf(s.points);
    return {
      series: s.name,
      trend: sparkline(
        s.points.map((p) => p.value),
        SPARK,
      ),
      first: formatUnit(s.points[0]?.value ?? 0, unit),
      last: formatUnit(s.points.at(-1)?.value ?? 0, unit),
      per_day: rate ? signed(rate.perDay, unit) : '',
    };
  });
  const headline = `${about}: ${summary}`;
  const notes = [
    ...(forecast ? [forecast.text] : []),
    ...(all.length > shown.length
      ? [`${all.length - shown.length + 1} smallest series summed as "other"`]
      : []),
    ...(more ? ['older samples left out: narrow it with --since'] : []),
  ];
  const chartTitle = `${target.name}: ${metric}${subject ? ` ${subject}` : ''}`;
  const png = await renderChartPng({
    title: chartTitle,
    unit,
    series: shown,
    timeZone: displayTimeZone(),
    ...(limit && forecast && forecast.forecast.kind !== 'unknown'
      ? { limit: { value: limit.limit, label: limit.what } }
      : {}),
  });
  const filename = `trend-${target.name}-${metric}.png`.replace(/[^\w.-]/g, '_');
  const text = [
    ...wrapWords(headline, WIDTH, ''),
    renderTable(COLUMNS, rows, { maxWidth: WIDTH }),
    ...notes.flatMap((n) => wrapWords(n, WIDTH, '')),
  ].join('\n');
  return ok(ctx, headline, text, {
    target: target.name,
    result: {
      headline,
      columns: COLUMNS,
      rows,
      truncated: more,
      notes,
      attachments: [{ filename, contentType: 'image/png', content: '', bytes: png }],
      data: {
        target: target.name,
        metric,
        ...(subject ? { subject } : {}),
        since: since.toISOString(),
        summary,
        ...(forecast
          ? {
              forecast: {
                limit: forecast.limit,
                what: forecast.what,
                kind: forecast.forecast.kind,
                ...(forecast.forecast.kind === 'reaches'
                  ? { at: forecast.forecast.at.toISOString(), days: forecast.forecast.days }
                  : {}),
                ...('rate' in forecast.forecast && forecast.forecast.rate
                  ? { perDay: forecast.forecast.rate.perDay }
                  : {}),
              },
            }
          : {}),
        series: points.map((p) => ({ subject: p.subject, at: p.at.toISOString(), value: p.value })),
      },
    },
  });
};
