// `/db history <target> <metric> [--since 7d] [--table t]`: a stored metric of a target as a table over time.

import { type Handler, ok } from '../core/builtins/common.js';
import { wrapWords } from '../core/operation.js';
import { formatValue, renderTable } from '../core/render.js';
import { formatTime } from '../core/time-format.js';
import type { Column, Row } from '../core/types.js';
import { readMetric } from './args.js';
import { METRICS, type Metric } from './metrics.js';
import type { SeriesPoint } from './store.js';

const USAGE = 'usage: /db history <target> <metric> [--since 7d] [--table t | --sequence s]';
/** Rows one answer shows; older ones are left out with a note. */
const MAX_POINTS = 200;
const WIDTH = 80;

function notAvailable(metric: Metric): string {
  if (metric === 'slow_query_calls' || metric === 'slow_query_seconds')
    return 'not available (pg_stat_statements is not installed or not loaded)';
  if (metric === 'replication_lag_seconds') return 'not available (no standby)';
  return 'not available';
}

/** Connections read best as one row per sample with a column per state; other metrics one row per point. */
function layout(
  metric: Metric,
  points: readonly SeriesPoint[],
  bySubject: boolean,
): { columns: Column[]; rows: Row[] } {
  const { kind } = METRICS[metric];
  const value = (v: number | null) => (v === null ? notAvailable(metric) : v);
  const valueColumn = (key: string, label: string): Column => ({
    key,
    label,
    kind: points.some((p) => p.value === null) ? 'text' : kind,
  });
  if (metric === 'connections' && bySubject) {
    const states = [...new Set(points.map((p) => p.subject))];
    const rows = new Map<number, Row>();
    for (const p of points) {
      const row = rows.get(p.at.getTime()) ?? { at: formatTime(p.at) };
      row[`s:${p.subject}`] = p.value === null ? null : p.value;
      rows.set(p.at.getTime(), row);
    }
    return {
      columns: [
        { key: 'at', label: 'at', kind: 'text' },
        ...states.map((s): Column => ({ key: `s:${s}`, label: s, kind: 'count' })),
      ],
      rows: [...rows.values()],
    };
  }
  if (bySubject) {
    return {
      columns: [
        { key: 'at', label: 'at', kind: 'text' },
        { key: 'subject', label: METRICS[metric].subject ?? 'subject', kind: 'text' },
        valueColumn('value', metric),
      ],
      rows: points.map((p) => ({ at: formatTime(p.at), subject: p.subject, value: value(p.value) })),
    };
  }
  return {
    columns: [{ key: 'at', label: 'at', kind: 'text' }, valueColumn('value', metric)],
    rows: points.map((p) => ({ at: formatTime(p.at), value: value(p.value) })),
  };
}

/** "1.2 MB → 1.5 MB" from the first to the last known value of a single series. */
function trend(metric: Metric, points: readonly SeriesPoint[]): string {
  const known = points.filter((p) => p.value !== null);
  const first = known[0];
  const last = known.at(-1);
  if (!first || !last || first === last) return '';
  const { kind } = METRICS[metric];
  return `, ${formatValue(first.value, kind)} → ${formatValue(last.value, kind)}`;
}

export const history: Handler = async (core, ctx, tokens) => {
  const { target, metric, subject, since, points, more } = await readMetric(
    core,
    ctx,
    tokens,
    USAGE,
    MAX_POINTS,
  );
  const bySubject = METRICS[metric].subject !== undefined && subject === undefined;
  const about = `${metric} of ${target.name}${subject ? ` (${subject})` : ''} since ${formatTime(since)}`;
  const { columns, rows } = layout(metric, points, bySubject);
  const headline = `${about}: ${rows.length} sample${rows.length === 1 ? '' : 's'}${bySubject ? '' : trend(metric, points)}`;
  const notes = [`${metric}: ${METRICS[metric].summary}`];
  if (more) notes.push(`older samples left out: narrow it with --since${bySubject ? ' or --table' : ''}`);
  const text =
    points.length === 0
      ? wrapWords(
          `${about}: no samples. History is sampled by a schedule of kind sample for this target.`,
          WIDTH,
          '',
        ).join('\n')
      : [
          ...wrapWords(headline, WIDTH, ''),
          renderTable(columns, rows, { maxWidth: WIDTH }),
          ...notes.flatMap((n) => wrapWords(n, WIDTH, '')),
        ].join('\n');
  return ok(ctx, headline, text, {
    target: target.name,
    result: {
      headline,
      columns,
      rows,
      truncated: more,
      notes,
      data: {
        target: target.name,
        metric,
        ...(subject ? { subject } : {}),
        since: since.toISOString(),
        series: points.map((p) => ({ subject: p.subject, at: p.at.toISOString(), value: p.value })),
      },
    },
  });
};
