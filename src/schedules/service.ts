// Schedules as a service of one dbops process: runs by hand (`/db run-schedule`), queued runs handed over
// by the job engine, heartbeats, interrupted runs of dead replicas, and what `/db schedules` lists.
import type { Config } from '../config/schema.js';
import type { Logger } from '../core/log.js';
import type { Reply } from '../core/reply.js';
import type { Invocation } from '../core/types.js';
import type { ChannelPoster, ChannelRef } from '../notify/poster.js';
import type { StateStore } from '../state/types.js';
import { type ExecuteDeps, executeSchedule, type RunResult, report } from './execute.js';
import type { AfterScheduledRun, SampleTarget } from './hooks.js';
import type { ScheduleMetrics } from './metrics.js';
import { channelText, latestSlot, nextSlot, type ResolvedSchedule } from './schema.js';
import { AlreadyRunning, type ScheduleRun, ScheduleStore } from './store.js';

/** How long a run may go without a heartbeat before another replica reports it interrupted. */
export const DEFAULT_LEASE_MS = 30_000;

export interface ScheduleServiceOptions {
  config: Config;
  log: Logger;
  dispatch(inv: Invocation): Promise<Reply>;
  state: Pick<StateStore, 'audit'>;
  runner: string;
  clock?: () => Date;
  poster?: ChannelPoster;
  sample?: SampleTarget;
  observers?: readonly AfterScheduledRun[];
  metrics?: ScheduleMetrics;
  leaseMs?: number;
}

export interface ScheduleOverview {
  schedule: ResolvedSchedule;
  last?: ScheduleRun;
  running?: ScheduleRun;
  next?: Date;
}

export class ScheduleService {
  readonly store: ScheduleStore;
  #options: ScheduleServiceOptions;
  readonly #clock: () => Date;
  #leaseMs: number;
  readonly #postProblems = new Map<string, string>();
  readonly #observers: AfterScheduledRun[];
  poster: ChannelPoster | undefined;
  sample: SampleTarget | undefined;

  constructor(options: ScheduleServiceOptions) {
    this.#options = options;
    this.#clock = options.clock ?? (() => new Date());
    this.#leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.#observers = [...(options.observers ?? [])];
    this.poster = options.poster;
    this.sample = options.sample;
    this.store = ScheduleStore.open(options.config.state.url, options.log);
  }

  get config(): Config {
    return this.#options.config;
  }

  get runner(): string {
    return this.#options.runner;
  }

  get leaseMs(): number {
    return this.#leaseMs;
  }

  /** How long a run may miss heartbeats before it is reported interrupted (`DBOPS_SCHEDULE_LEASE`). */
  setLease(ms: number): void {
    this.#leaseMs = ms;
  }

  /** Counts runs in the metrics registry (`dbops start` only: exec and the console load no registry). */
  useMetrics(metrics: ScheduleMetrics): void {
    this.#options = { ...this.#options, metrics };
  }

  now(): Date {
    return this.#clock();
  }

  /** Adds an observer of every run (h7's alerts); returns a function that removes it. */
  observe(observer: AfterScheduledRun): () => void {
    this.#observers.push(observer);
    return () => {
      const at = this.#observers.indexOf(observer);
      if (at >= 0) this.#observers.splice(at, 1);
    };
  }

  /** Records that posting to a channel fails (error) or works again (undefined), for /readyz detail. */
  postProblem(channel: ChannelRef, error: string | undefined): void {
    if (error === undefined) this.#postProblems.delete(channelText(channel));
    else this.#postProblems.set(channelText(channel), error.slice(0, 300));
  }

  /** Channels the last post to failed, with why (for /readyz detail). */
  problems(): string[] {
    return [...this.#postProblems].map(([channel, error]) => `cannot post to ${channel}: ${error}`);
  }

  schedule(name: string): ResolvedSchedule | undefined {
    return Object.hasOwn(this.config.schedules, name) ? this.config.schedules[name] : undefined;
  }

  #deps(): ExecuteDeps {
    return {
      config: this.config,
      dispatch: (inv) => this.#options.dispatch(inv),
      state: this.#options.state,
      log: this.#options.log,
      clock: this.#clock,
      poster: this.poster,
      sample: this.sample,
      observers: this.#observers,
      postProblem: (channel: ChannelRef, error: string | undefined) => this.postProblem(channel, error),
    };
  }

  /**
   * Runs a schedule now, in this process (`/db run-schedule`): a manual run row, then the same execution
   * as a cron slot. 'busy' when a run of it is under way (never two at once).
   */
  async runNow(name: string, by: string): Promise<{ run: ScheduleRun; result: RunResult } | 'busy'> {
    const schedule = this.schedule(name);
    if (!schedule) throw new Error(`no schedule ${name}`);
    const now = this.#clock();
    const queued = await this.store.insertRun(this.store.pool, {
      schedule: name,
      slot: now,
      trigger: 'manual',
      triggeredBy: by,
      now,
      by: this.runner,
    });
    try {
      const started = await this.store.start(queued.id, this.runner, this.#clock());
      if (!started) throw new Error(`run ${queued.id} was taken by someone else`);
      return { run: started, result: await this.#execute(schedule, started) };
    } catch (err) {
      if (err instanceof AlreadyRunning) {
        await this.store.pool.query(
          `UPDATE dbops_schedule_runs SET state = 'refused', finished_at = $2,
             outcome = 'not run: another run of the schedule was under way' WHERE id = $1 AND state = 'queued'`,
          [queued.id, this.#clock()],
        );
        return 'busy';
      }
      throw err;
    }
  }

  /**
   * Runs a queued cron run handed over by the job engine. 'gone' when it is not queued any more (it ran,
   * or was reported interrupted: a job delivered again after its replica died does not run twice).
   * Throws AlreadyRunning when a run by hand holds the schedule (the engine retries later).
   */
  async runQueued(runId: number): Promise<'ran' | 'gone'> {
    const started = await this.store.start(runId, this.runner, this.#clock());
    if (!started) return 'gone';
    const schedule = this.schedule(started.schedule);
    if (!schedule) {
      await this.store.finish(
        started.id,
        this.runner,
        'refused',
        'not run: the schedule is no longer in the config',
        null,
        this.#clock(),
      );
      return 'ran';
    }
    this.#options.metrics?.started(schedule.name, (this.#clock().getTime() - started.slot.getTime()) / 1000);
    await this.#execute(schedule, started);
    return 'ran';
  }

  async #execute(schedule: ResolvedSchedule, run: ScheduleRun): Promise<RunResult> {
    const log = this.#options.log.child({ schedule: schedule.name, run: run.id });
    log.info({ slot: run.slot.toISOString(), trigger: run.trigger }, 'scheduled run started');
    const beat = setInterval(
      () => {
        this.store.heartbeat(run.id, this.runner, this.#clock()).catch((err: unknown) => {
          log.warn({ error: err instanceof Error ? err.message : String(err) }, 'schedule heartbeat failed');
        });
      },
      Math.max(200, Math.floor(this.#leaseMs / 3)),
    );
    beat.unref();
    let result: RunResult;
    try {
      result = await executeSchedule(this.#deps(), schedule, run);
      // The heartbeat goes on while the outcome is recorded: a state database that is down just now is
      // waited for (about two minutes), and the run is not taken for dead meanwhile.
      let recorded: 'running' | 'interrupted' | undefined;
      for (let attempt = 0; attempt < 30 && !recorded; attempt++) {
        try {
          recorded = await this.store.finish(
            run.id,
            this.runner,
            result.state,
            result.outcome,
            { targets: result.targets },
            this.#clock(),
          );
          if (!recorded) break;
        } catch (err) {
          log.warn(
            { error: err instanceof Error ? err.message : String(err) },
            'could not record the run; retrying',
          );
          await new Promise((r) => setTimeout(r, Math.min(5_000, 500 * (attempt + 1))));
        }
      }
      if (recorded === 'interrupted') {
        log.warn(
          'the run was reported interrupted (heartbeats were lost) but finished: its outcome is recorded',
        );
      } else if (!recorded) {
        log.error({ state: result.state }, 'the outcome of the run could not be recorded');
      }
    } finally {
      clearInterval(beat);
    }
    this.#options.metrics?.finished(schedule.name, result.state);
    log.info({ state: result.state, outcome: result.outcome }, 'scheduled run finished');
    return result;
  }

  /** Runs whose replica died: marked interrupted once (whichever replica sweeps first) and reported. */
  async sweepInterrupted(): Promise<ScheduleRun[]> {
    const runs = await this.store.sweepInterrupted(this.#leaseMs, this.#clock());
    for (const run of runs) {
      this.#options.metrics?.finished(run.schedule, 'interrupted');
      this.#options.log.warn(
        { schedule: run.schedule, run: run.id, runner: run.runner },
        'scheduled run interrupted',
      );
      const schedule = this.schedule(run.schedule);
      if (!schedule) continue;
      const as = schedule.as ?? 'dbops';
      for (const target of schedule.targets) {
        await this.#options.state
          .audit(
            {
              requestId: null,
              event: 'interrupted',
              person: as,
              identity: `service:${as}`,
              surface: 'schedule',
              operation: schedule.operation,
              target,
              outcome: `scheduled run ${run.id} of ${schedule.name} was interrupted: its replica stopped (${run.runner ?? '?'})`,
              detail: { schedule: schedule.name, run: run.id, slot: run.slot.toISOString() },
            },
            this.#clock(),
          )
          .catch((err: unknown) => this.#options.log.error({ err }, 'could not audit an interrupted run'));
        await report(this.#deps(), schedule, {
          schedule: schedule.name,
          target,
          operation: schedule.operation,
          person: as,
          outcome: 'interrupted',
          startedAt: run.startedAt ?? run.slot,
          finishedAt: run.finishedAt ?? this.#clock(),
          error: `the replica running it (${run.runner ?? '?'}) stopped before it finished; its outcome is unknown`,
          ...(schedule.post ? { post: schedule.post } : {}),
        });
      }
    }
    return runs;
  }

  /** Every configured schedule with its last finished run, the run under way and the next slot. */
  async overview(): Promise<ScheduleOverview[]> {
    const names = Object.keys(this.config.schedules);
    const [finished, latest] = await Promise.all([
      this.store.latestFinished(names),
      this.store.latestRuns(names),
    ]);
    const now = this.#clock();
    return names.map((name) => {
      const schedule = this.config.schedules[name] as ResolvedSchedule;
      const last = finished.get(name);
      const current = latest.get(name);
      const next = nextSlot(schedule, now);
      return {
        schedule,
        ...(last ? { last } : {}),
        ...(current && (current.state === 'running' || current.state === 'queued')
          ? { running: current }
          : {}),
        ...(next ? { next } : {}),
      };
    });
  }

  /** The latest slot at or before now (what a tick would enqueue). */
  latestSlot(schedule: ResolvedSchedule): Date | undefined {
    return latestSlot(schedule, this.#clock());
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}
