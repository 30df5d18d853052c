// The metrics history keeps per target: names people type, what each measures, and how its values read.
import type { ColumnKind } from '../core/types.js';

export interface MetricInfo {
  /** What one sample is, in words (help and the table headline). */
  summary: string;
  /** How the value reads in a table. */
  kind: ColumnKind;
  /** What `subject` holds for this metric ('' when it has none). */
  subject?: 'table' | 'state' | 'sequence';
}

const METRIC_INFO = {
  database_bytes: { summary: 'size of the database (pg_database_size)', kind: 'bytes' },
  table_bytes: {
    summary: 'total size of the largest tables, indexes and TOAST included (pg_total_relation_size)',
    kind: 'bytes',
    subject: 'table',
  },
  connections: {
    summary: "client connections to the database by state (pg_stat_activity, dbops' own included)",
    kind: 'count',
    subject: 'state',
  },
  cache_hit_percent: {
    summary: 'share of block reads served from shared buffers since the statistics reset',
    kind: 'percent',
  },
  xid_age: { summary: 'age(datfrozenxid) of the database, in transactions', kind: 'count' },
  replication_lag_seconds: {
    summary: 'replay lag: the slowest standby (on a primary) or this standby behind its primary',
    kind: 'seconds',
  },
  sequence_used_percent: {
    summary: "share of each sequence's range used (pg_sequences), the most used ones",
    kind: 'percent',
    subject: 'sequence',
  },
  slow_query_calls: { summary: 'calls counted by pg_stat_statements for this database', kind: 'count' },
  slow_query_seconds: {
    summary: 'execution time counted by pg_stat_statements for this database',
    kind: 'seconds',
  },
} as const satisfies Record<string, MetricInfo>;

export type Metric = keyof typeof METRIC_INFO;

export const METRICS: Readonly<Record<Metric, MetricInfo>> = METRIC_INFO;

export const METRIC_NAMES = Object.keys(METRICS) as Metric[];

export function isMetric(name: string): name is Metric {
  return Object.hasOwn(METRICS, name);
}

/** Words people use for the metrics ("size", "xid-age", "lag"); the stored names work as well. */
export const METRIC_ALIASES: Readonly<Record<string, Metric>> = {
  size: 'database_bytes',
  'database-size': 'database_bytes',
  'db-size': 'database_bytes',
  table: 'table_bytes',
  'table-size': 'table_bytes',
  'table-sizes': 'table_bytes',
  'cache-hit': 'cache_hit_percent',
  'xid-age': 'xid_age',
  wraparound: 'xid_age',
  lag: 'replication_lag_seconds',
  'replication-lag': 'replication_lag_seconds',
  'slow-queries': 'slow_query_seconds',
  sequences: 'sequence_used_percent',
  sequence: 'sequence_used_percent',
};

/** The metric a word names, in any case, stored name or alias. */
export function metricNamed(word: string): Metric | undefined {
  const lower = word.toLowerCase();
  if (isMetric(lower)) return lower;
  return METRIC_ALIASES[lower] ?? METRIC_ALIASES[lower.replaceAll('_', '-')];
}

/** One stored value; `value` null means the target could not say (e.g. pg_stat_statements not installed). */
export interface Sample {
  target: string;
  metric: Metric;
  subject: string;
  at: Date;
  value: number | null;
}
