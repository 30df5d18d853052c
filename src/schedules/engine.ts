// The job engine of schedules: pg-boss in the state database (schema dbops_jobs). Every replica ticks:
// it enqueues each schedule's latest due slot once (advisory lock + a unique run row, in the same
// transaction as the pg-boss job), fetches jobs of each schedule's singleton queue (one active job per
// schedule), runs them through the ScheduleService, and reports runs whose replica died. pg-boss's own cron
// is not used: it fires only within the current minute, so a slot missed while every replica was down
// would never run. One queue per schedule: pg-boss 10's fetch of a singleton queue fails as a whole when
// its next job's key is active, so a shared queue would let one long run hold back every other schedule.
import { randomUUID } from 'node:crypto';
import PgBoss from 'pg-boss';
import type { Logger } from '../core/log.js';
import { redactSecrets } from '../core/log.js';
import type { ScheduleMetrics } from './metrics.js';
import { latestSlot, type ResolvedSchedule } from './schema.js';
import type { ScheduleService } from './service.js';
import { AlreadyRunning } from './store.js';

export const JOB_SCHEMA = 'dbops_jobs';
/** The pg-boss queue of one schedule (schedule names are [a-z0-9_-], which pg-boss accepts). */
export function queueOf(schedule: string): string {
  return `dbops-schedule-${schedule}`;
}
/** A job's longest life before pg-boss expires it (a dump may take 2 h, then verification). */
const JOB_EXPIRE_SECONDS = 6 * 3600;
/** A queued run older than this has its job looked at (lost, or taken by a replica that died). */
const LOST_AFTER_MS = 2 * 60_000;

export interface EngineOptions {
  service: ScheduleService;
  log: Logger;
  metrics?: ScheduleMetrics;
  /** How often this replica enqueues due slots, fetches jobs and sweeps (default 5 s). */
  tickMs?: number;
  /** Runs this replica may hold at once (of different schedules; default 2). */
  concurrency?: number;
}

interface JobData {
  runId: number;
  schedule: string;
  slot: string;
}

export class ScheduleEngine {
  readonly #options: EngineOptions;
  readonly #service: ScheduleService;
  readonly #log: Logger;
  #boss: PgBoss | undefined;
  #timer: NodeJS.Timeout | undefined;
  #ticking = false;
  #stopping = false;
  readonly #active = new Set<Promise<void>>();
  readonly #collapsedSlots = new Map<string, number>();
  #problem: string | undefined;
  #lastErrorLog = 0;

  constructor(options: EngineOptions) {
    this.#options = options;
    this.#service = options.service;
    this.#log = options.log.child({ component: 'schedules' });
  }

  /** Why the engine cannot work right now (state database unreachable…), for /readyz detail. */
  problem(): string | undefined {
    return this.#problem;
  }

  /** Starts ticking at once; pg-boss is started (and retried) by the ticks, so a down database is waited for. */
  start(): this {
    const tickMs = this.#options.tickMs ?? 5_000;
    const loop = () => {
      if (this.#stopping) return;
      this.tick()
        .catch(() => {})
        .finally(() => {
          if (!this.#stopping) this.#timer = setTimeout(loop, tickMs);
        });
    };
    this.#timer = setTimeout(loop, 0);
    return this;
  }

  /** pg-boss, started (and its queues created) on first use. */
  async jobs(): Promise<PgBoss> {
    return await this.#ensureBoss();
  }

  async #ensureBoss(): Promise<PgBoss> {
    if (this.#boss) return this.#boss;
    const boss = new PgBoss({
      connectionString: this.#service.config.state.url,
      schema: JOB_SCHEMA,
      max: 3,
      application_name: 'dbops-jobs',
      schedule: false, // slots are computed by the ticks (catch-up), not by pg-boss cron
      supervise: true, // expiration of jobs whose replica died, archiving, retention
      migrate: true,
    });
    boss.on('error', (err: Error) => this.#logError('job engine error', err));
    try {
      await boss.start();
      for (const name of Object.keys(this.#service.config.schedules)) {
        const queue = queueOf(name);
        if (await boss.getQueue(queue)) continue;
        await boss
          .createQueue(queue, {
            name: queue,
            policy: 'singleton', // one active job at a time: never two runs of a schedule at once
            retryLimit: 1_000_000, // a job held back by a run by hand is retried, never dropped
            retryDelay: 5,
            expireInSeconds: JOB_EXPIRE_SECONDS,
            retentionDays: 7,
          })
          .catch(async (err: unknown) => {
            if (!(await boss.getQueue(queue))) throw err; // another replica created it meanwhile
          });
      }
    } catch (err) {
      await boss.stop({ graceful: false, wait: false }).catch(() => {});
      throw err;
    }
    this.#boss = boss;
    this.#log.info({ schema: JOB_SCHEMA }, 'job engine started');
    return boss;
  }

  #logError(message: string, err: unknown): void {
    const error = redactSecrets(err instanceof Error ? err.message : String(err));
    this.#problem = `${message}: ${error}`;
    // At most one line every 10 s while the state database is down.
    if (Date.now() - this.#lastErrorLog > 10_000) {
      this.#lastErrorLog = Date.now();
      this.#log.warn({ error }, message);
    }
  }

  /** One round: start pg-boss if needed, report interrupted runs, enqueue due slots, fetch and run jobs. */
  async tick(): Promise<void> {
    if (this.#ticking || this.#stopping) return;
    this.#ticking = true;
    try {
      const boss = await this.#ensureBoss();
      // A run whose replica died: reported once, and its job failed so the schedule's queue is free again
      // (pg-boss delivers it again later; the run is no longer queued, so it does not run twice).
      for (const run of await this.#service.sweepInterrupted()) {
        if (run.jobId) {
          const jobId = run.jobId;
          await this.#settle(() => boss.fail(queueOf(run.schedule), jobId, { error: 'interrupted' }));
        }
      }
      await this.#recoverLostJobs(boss);
      for (const schedule of Object.values(this.#service.config.schedules)) {
        await this.enqueueDue(boss, schedule);
      }
      await this.#fetchAndRun(boss);
      this.#problem = undefined;
    } catch (err) {
      this.#logError('schedules could not reach the state database', err);
      throw err;
    } finally {
      this.#ticking = false;
    }
  }

  /**
   * Enqueues the schedule's latest due slot unless a run of it (or of a later slot) exists or one still
   * waits. Slots missed while no replica ran collapse into this one: caught up once.
   */
  async enqueueDue(boss: PgBoss, schedule: ResolvedSchedule): Promise<boolean> {
    const now = this.#service.now();
    const slot = latestSlot(schedule, now);
    if (!slot) return false;
    const store = this.#service.store;
    return await store.locked(schedule.name, async (client) => {
      const firstSeen = await store.firstSeen(client, schedule.name, now);
      if (slot.getTime() < firstSeen.getTime()) return false;
      const blocked = await store.slotBlocked(client, schedule.name, slot);
      if (blocked === 'done') return false;
      if (blocked === 'waiting') {
        if (this.#collapsedSlots.get(schedule.name) !== slot.getTime()) {
          this.#collapsedSlots.set(schedule.name, slot.getTime());
          this.#options.metrics?.collapsed(schedule.name);
          this.#log.warn(
            { schedule: schedule.name, slot: slot.toISOString() },
            'slot not enqueued: the previous run of this schedule still waits to start (never two at once)',
          );
        }
        return false;
      }
      const jobId = randomUUID();
      const run = await store.insertRun(client, {
        schedule: schedule.name,
        slot,
        trigger: 'cron',
        jobId,
        now,
        by: this.#service.runner,
      });
      const data: JobData = { runId: run.id, schedule: schedule.name, slot: slot.toISOString() };
      const sent = await boss.send(queueOf(schedule.name), data, {
        id: jobId,
        singletonKey: schedule.name,
        db: { executeSql: async (text, values) => await client.query(text, values) },
      });
      if (sent === null)
        throw new Error(`the job of ${schedule.name} ${slot.toISOString()} was not accepted`);
      this.#log.info(
        { schedule: schedule.name, slot: slot.toISOString(), run: run.id },
        'scheduled run enqueued',
      );
      return true;
    });
  }

  /**
   * A queued run whose job is gone (deleted by retention after a long downtime) would hold its schedule
   * back forever: it is ended as interrupted. One whose job was taken by a replica that died before it
   * started the run is failed back to the queue, so pg-boss delivers it again now, not at expiry.
   */
  async #recoverLostJobs(boss: PgBoss): Promise<void> {
    const now = this.#service.now();
    for (const run of await this.#service.store.staleQueued(new Date(now.getTime() - LOST_AFTER_MS))) {
      const queue = queueOf(run.schedule);
      const job = run.jobId ? await boss.getJobById(queue, run.jobId) : null;
      if (job?.state === 'created' || job?.state === 'retry') continue; // waiting its turn
      if (job?.state === 'active') {
        if (now.getTime() - new Date(job.startedOn).getTime() > LOST_AFTER_MS) {
          this.#log.warn(
            { schedule: run.schedule, run: run.id },
            'a job was taken but never started; redelivering it',
          );
          await this.#settle(() => boss.fail(queue, job.id, { error: 'taken but never started' }));
        }
        continue;
      }
      const ended = await this.#service.store.abandon(
        run.id,
        `not run: its job ${job ? `ended ${job.state}` : 'is gone'} before the run started`,
        now,
      );
      if (ended)
        this.#log.warn({ schedule: run.schedule, run: run.id }, 'a queued run lost its job; ended it');
    }
  }

  async #fetchAndRun(boss: PgBoss): Promise<void> {
    for (const name of Object.keys(this.#service.config.schedules)) {
      if (this.#active.size >= (this.#options.concurrency ?? 2) || this.#stopping) return;
      const [job] = await boss.fetch<JobData>(queueOf(name), { batchSize: 1 });
      if (!job) continue;
      const work = this.#runJob(boss, job).finally(() => this.#active.delete(work));
      this.#active.add(work);
    }
  }

  async #runJob(boss: PgBoss, job: PgBoss.Job<JobData>): Promise<void> {
    try {
      await this.#service.runQueued(job.data.runId);
      await this.#settle(() => boss.complete(queueOf(job.data.schedule), job.id));
    } catch (err) {
      if (err instanceof AlreadyRunning) {
        this.#log.info(
          { schedule: job.data.schedule },
          'a run by hand holds the schedule; its slot runs after it',
        );
      } else {
        this.#log.error({ err, schedule: job.data.schedule }, 'scheduled job failed');
      }
      // Failed jobs are retried by pg-boss after retryDelay; a run that ran is 'gone' on the next delivery.
      await this.#settle(() => boss.fail(queueOf(job.data.schedule), job.id, { error: String(err) }));
    }
  }

  /** pg-boss completion calls, retried a few times: a state blip must not leave a job active until expiry. */
  async #settle(call: () => Promise<unknown>): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await call();
        return;
      } catch (err) {
        this.#logError('could not settle a job', err);
        await new Promise((r) => setTimeout(r, 1000 * (attempt + 1)));
      }
    }
  }

  /** Stops ticking, lets runs under way finish (bounded by the caller), stops pg-boss. */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.#stopping = true;
    if (this.#timer) clearTimeout(this.#timer);
    const finished = Promise.allSettled([...this.#active]);
    await Promise.race([finished, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    await this.#boss?.stop({ graceful: false, wait: true }).catch(() => {});
    this.#boss = undefined;
  }

  /** Resolves when the runs this replica holds now have finished (tests). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#active]);
  }

  /** Runs this replica holds now. */
  get running(): number {
    return this.#active.size;
  }
}
