// State migration 7: the runs of schedules (one row per slot that was enqueued or run by hand).

export const SCHEDULES_MIGRATION: { version: number; name: string; sql: string } = {
  version: 7,
  name: 'schedule runs',
  sql: `
-- When dbops first saw each schedule: slots before it are not caught up.
CREATE TABLE dbops_schedules (
  name text PRIMARY KEY,
  first_seen timestamptz NOT NULL
);

-- One row per run: a cron slot (enqueued once by whichever replica got there first) or a run by hand.
CREATE TABLE dbops_schedule_runs (
  id bigserial PRIMARY KEY,
  schedule text NOT NULL,
  slot timestamptz NOT NULL,
  trigger text NOT NULL CHECK (trigger IN ('cron', 'manual')),
  triggered_by text,
  state text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'refused', 'interrupted')),
  job_id uuid,
  enqueued_at timestamptz NOT NULL,
  enqueued_by text NOT NULL,
  started_at timestamptz,
  heartbeat_at timestamptz,
  runner text,
  finished_at timestamptz,
  outcome text,
  detail jsonb
);
-- Each cron slot of a schedule is enqueued once, whichever replica gets there first.
CREATE UNIQUE INDEX dbops_schedule_runs_slot_once ON dbops_schedule_runs (schedule, slot) WHERE trigger = 'cron';
-- Never two runs of one schedule at once, whatever started them and on whichever replica.
CREATE UNIQUE INDEX dbops_schedule_runs_one_running ON dbops_schedule_runs (schedule) WHERE state = 'running';
CREATE INDEX dbops_schedule_runs_latest ON dbops_schedule_runs (schedule, slot DESC);
`,
};
