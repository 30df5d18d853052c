// Migration 8: alert state per target and check, the alerts (episodes) it opens, and history samples.

/*
 * dbops_check_states holds the last verdict of each (target, check); a verdict other than ok belongs to
 * an open alert in dbops_alerts, whose first post is the thread every follow-up goes into. Samples are
 * one row per (target, metric, subject, time): the primary key serves "this metric of this target since"
 * for tables and later charts, the time index serves pruning.
 */
export const ALERTS_HISTORY_MIGRATION: { version: number; name: string; sql: string } = {
  version: 8,
  name: 'alerts with state, and history samples',
  sql: `
CREATE TABLE dbops_alerts (
  id bigserial PRIMARY KEY,
  target text NOT NULL,
  check_name text NOT NULL,
  status text NOT NULL CHECK (status IN ('warn', 'fail')),
  detail text NOT NULL DEFAULT '',
  source text NOT NULL,
  channel jsonb,
  thread jsonb,
  post_error text,
  opened_at timestamptz NOT NULL,
  last_posted_at timestamptz,
  resolved_at timestamptz,
  acked_by text,
  acked_at timestamptz,
  muted_by text,
  muted_until timestamptz
);
-- At most one open alert per target and check.
CREATE UNIQUE INDEX dbops_alerts_open ON dbops_alerts (target, check_name) WHERE resolved_at IS NULL;
CREATE INDEX dbops_alerts_opened ON dbops_alerts (opened_at);

CREATE TABLE dbops_check_states (
  target text NOT NULL,
  check_name text NOT NULL,
  status text NOT NULL CHECK (status IN ('ok', 'warn', 'fail')),
  detail text NOT NULL DEFAULT '',
  since timestamptz NOT NULL,
  checked_at timestamptz NOT NULL,
  alert_id bigint REFERENCES dbops_alerts (id),
  PRIMARY KEY (target, check_name)
);

CREATE TABLE dbops_samples (
  target text NOT NULL,
  metric text NOT NULL,
  subject text NOT NULL DEFAULT '',
  at timestamptz NOT NULL,
  value double precision,
  PRIMARY KEY (target, metric, subject, at)
);
CREATE INDEX dbops_samples_at ON dbops_samples (at);
`,
};
