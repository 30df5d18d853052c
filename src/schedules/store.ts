// The schedule runs in the state database: enqueueing a slot once, starting, heartbeats, outcomes, sweeps.

import pg from 'pg';
import type { Logger } from '../core/log.js';
import { redactSecrets } from '../core/log.js';
import { inTransaction } from '../state/transaction.js';

export const RUN_STATES = ['queued', 'running', 'succeeded', 'failed', 'refused', 'interrupted'] as const;
export type RunState = (typeof RUN_STATES)[number];
export type FinalState = Exclude<RunState, 'queued' | 'running'>;

export interface ScheduleRun {
  id: number;
  schedule: string;
  slot: Date;
  trigger: 'cron' | 'manual';
  triggeredBy: string | null;
  state: RunState;
  jobId: string | null;
  enqueuedAt: Date;
  startedAt: Date | null;
  heartbeatAt: Date | null;
  runner: string | null;
  finishedAt: Date | null;
  outcome: string | null;
  detail: unknown;
}

/** What a queryable connection looks like (a pool or a client inside a transaction). */
export interface Queryable {
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

interface RunRow {
  id: string;
  schedule: string;
  slot: Date;
  trigger: 'cron' | 'manual';
  triggered_by: string | null;
  state: RunState;
  job_id: string | null;
  enqueued_at: Date;
  started_at: Date | null;
  heartbeat_at: Date | null;
  runner: string | null;
  finished_at: Date | null;
  outcome: string | null;
  detail: unknown;
}

function toRun(row: RunRow): ScheduleRun {
  return {
    id: Number(row.id),
    schedule: row.schedule,
    slot: row.slot,
    trigger: row.trigger,
    triggeredBy: row.triggered_by,
    state: row.state,
    jobId: row.job_id,
    enqueuedAt: row.enqueued_at,
    startedAt: row.started_at,
    heartbeatAt: row.heartbeat_at,
    runner: row.runner,
    finishedAt: row.finished_at,
    outcome: row.outcome,
    detail: row.detail,
  };
}

/** A second run of a schedule that is already running (the partial unique index refused it). */
export class AlreadyRunning extends Error {
  constructor(readonly schedule: string) {
    super(`schedule ${schedule} is already running`);
  }
}

function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '23505';
}

export class ScheduleStore {
  private constructor(readonly pool: pg.Pool) {}

  static open(url: string, log: Logger): ScheduleStore {
    const pool = new pg.Pool({
      connectionString: url,
      max: 3,
      application_name: 'dbops-schedules',
      connectionTimeoutMillis: 5_000,
      statement_timeout: 10_000,
      query_timeout: 15_000,
      keepAlive: true,
      idle_in_transaction_session_timeout: 60_000,
      idleTimeoutMillis: 30_000,
    });
    pool.on('error', (err) =>
      log.warn({ error: redactSecrets(err.message) }, 'schedules: state connection lost'),
    );
    return new ScheduleStore(pool);
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => {});
  }

  /** Runs `work` in one transaction holding the schedule's advisory lock (enqueueing serializes per schedule). */
  async locked<T>(schedule: string, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return await inTransaction(this.pool, async (client) => {
      await client.query("SELECT pg_advisory_xact_lock(hashtext('dbops:schedule:' || $1))", [schedule]);
      return await work(client);
    });
  }

  /** When dbops first saw the schedule (recorded now if never): slots before it are not caught up. */
  async firstSeen(db: Queryable, schedule: string, now: Date): Promise<Date> {
    const { rows } = await db.query<{ first_seen: Date }>(
      `WITH ins AS (INSERT INTO dbops_schedules (name, first_seen) VALUES ($1, $2)
         ON CONFLICT (name) DO NOTHING RETURNING first_seen)
       SELECT first_seen FROM ins UNION ALL SELECT first_seen FROM dbops_schedules WHERE name = $1 LIMIT 1`,
      [schedule, now],
    );
    return rows[0]?.first_seen ?? now;
  }

  /**
   * Why a cron slot is not enqueued, or undefined when it should be: 'done' when a run of this or a later
   * slot exists (another replica got there first) or a cron run started after the slot was due (it was
   * waiting behind a long run: its data is as fresh as this slot's would be); 'waiting' when one still
   * waits its turn. Either way slots collapse: never two at once, and no backlog after a long run.
   */
  async slotBlocked(db: Queryable, schedule: string, slot: Date): Promise<'done' | 'waiting' | undefined> {
    const { rows } = await db.query<{ done: boolean; waiting: boolean }>(
      `SELECT
         EXISTS (SELECT 1 FROM dbops_schedule_runs WHERE schedule = $1 AND trigger = 'cron'
                   AND (slot >= $2 OR started_at >= $2)) AS done,
         EXISTS (SELECT 1 FROM dbops_schedule_runs WHERE schedule = $1 AND state = 'queued') AS waiting`,
      [schedule, slot],
    );
    if (rows[0]?.done) return 'done';
    if (rows[0]?.waiting) return 'waiting';
    return undefined;
  }

  async insertRun(
    db: Queryable,
    run: {
      schedule: string;
      slot: Date;
      trigger: 'cron' | 'manual';
      triggeredBy?: string;
      jobId?: string;
      now: Date;
      by: string;
    },
  ): Promise<ScheduleRun> {
    const { rows } = await db.query<RunRow>(
      `INSERT INTO dbops_schedule_runs (schedule, slot, trigger, triggered_by, state, job_id, enqueued_at, enqueued_by)
       VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7) RETURNING *`,
      [run.schedule, run.slot, run.trigger, run.triggeredBy ?? null, run.jobId ?? null, run.now, run.by],
    );
    return toRun(rows[0] as RunRow);
  }

  /**
   * Moves a queued run to running for this runner. Undefined when it is not queued any more (it ran, or was
   * reported interrupted); AlreadyRunning when another run of the schedule runs now.
   */
  async start(id: number, runner: string, now: Date): Promise<ScheduleRun | undefined> {
    try {
      const { rows } = await this.pool.query<RunRow>(
        `UPDATE dbops_schedule_runs SET state = 'running', started_at = $3, heartbeat_at = $3, runner = $2
         WHERE id = $1 AND state = 'queued' RETURNING *`,
        [id, runner, now],
      );
      return rows[0] ? toRun(rows[0]) : undefined;
    } catch (err) {
      if (isUniqueViolation(err)) {
        const { rows } = await this.pool.query<{ schedule: string }>(
          'SELECT schedule FROM dbops_schedule_runs WHERE id = $1',
          [id],
        );
        throw new AlreadyRunning(rows[0]?.schedule ?? '?');
      }
      throw err;
    }
  }

  async heartbeat(id: number, runner: string, now: Date): Promise<boolean> {
    const result = await this.pool.query(
      `UPDATE dbops_schedule_runs SET heartbeat_at = $3 WHERE id = $1 AND runner = $2 AND state = 'running'`,
      [id, runner, now],
    );
    return result.rowCount === 1;
  }

  /**
   * Records the outcome of a run this runner held: what it was before ('running', or 'interrupted' when
   * its heartbeats were lost and another replica reported it — the real outcome then replaces the guess),
   * undefined when it is not this runner's.
   */
  async finish(
    id: number,
    runner: string,
    state: FinalState,
    outcome: string,
    detail: unknown,
    now: Date,
  ): Promise<'running' | 'interrupted' | undefined> {
    const { rows } = await this.pool.query<{ before: 'running' | 'interrupted' }>(
      `UPDATE dbops_schedule_runs r SET state = $3, outcome = $4, detail = $5::jsonb, finished_at = $6
       FROM (SELECT id, state AS before FROM dbops_schedule_runs WHERE id = $1 FOR UPDATE) b
       WHERE r.id = b.id AND r.runner = $2 AND r.state IN ('running', 'interrupted')
       RETURNING b.before`,
      [id, runner, state, outcome, JSON.stringify(detail ?? null), now],
    );
    return rows[0]?.before;
  }

  /**
   * Runs whose runner stopped heartbeating for `leaseMs` (its replica died): marked interrupted, each
   * returned to exactly one sweeper (the UPDATE decides).
   */
  async sweepInterrupted(leaseMs: number, now: Date): Promise<ScheduleRun[]> {
    const { rows } = await this.pool.query<RunRow>(
      `UPDATE dbops_schedule_runs SET state = 'interrupted', finished_at = $2,
         outcome = 'interrupted: the replica running it stopped before it finished (' || coalesce(runner, '?') || ')'
       WHERE state = 'running' AND heartbeat_at < $2::timestamptz - make_interval(secs => $1::double precision / 1000)
       RETURNING *`,
      [leaseMs, now],
    );
    return rows.map(toRun);
  }

  /** Cron runs still queued that were enqueued before `before` (their job may be lost or stuck). */
  async staleQueued(before: Date): Promise<ScheduleRun[]> {
    const { rows } = await this.pool.query<RunRow>(
      `SELECT * FROM dbops_schedule_runs WHERE state = 'queued' AND trigger = 'cron' AND enqueued_at < $1
       ORDER BY id LIMIT 20`,
      [before],
    );
    return rows.map(toRun);
  }

  /** Ends a run that never started (its job is gone), so later slots are not held back by it forever. */
  async abandon(id: number, outcome: string, now: Date): Promise<ScheduleRun | undefined> {
    const { rows } = await this.pool.query<RunRow>(
      `UPDATE dbops_schedule_runs SET state = 'interrupted', outcome = $2, finished_at = $3
       WHERE id = $1 AND state = 'queued' RETURNING *`,
      [id, outcome, now],
    );
    return rows[0] ? toRun(rows[0]) : undefined;
  }

  /** The latest run of each schedule (any trigger), by name. */
  async latestRuns(names: readonly string[]): Promise<Map<string, ScheduleRun>> {
    const { rows } = await this.pool.query<RunRow>(
      `SELECT DISTINCT ON (schedule) * FROM dbops_schedule_runs WHERE schedule = ANY($1::text[])
       ORDER BY schedule, enqueued_at DESC, id DESC`,
      [names],
    );
    return new Map(rows.map((r) => [r.schedule, toRun(r)]));
  }

  /** The latest finished run of each schedule, by name. */
  async latestFinished(names: readonly string[]): Promise<Map<string, ScheduleRun>> {
    const { rows } = await this.pool.query<RunRow>(
      `SELECT DISTINCT ON (schedule) * FROM dbops_schedule_runs
       WHERE schedule = ANY($1::text[]) AND finished_at IS NOT NULL
       ORDER BY schedule, finished_at DESC, id DESC`,
      [names],
    );
    return new Map(rows.map((r) => [r.schedule, toRun(r)]));
  }

  async runs(schedule: string, limit = 50): Promise<ScheduleRun[]> {
    const { rows } = await this.pool.query<RunRow>(
      'SELECT * FROM dbops_schedule_runs WHERE schedule = $1 ORDER BY slot DESC, id DESC LIMIT $2',
      [schedule, limit],
    );
    return rows.map(toRun);
  }
}
