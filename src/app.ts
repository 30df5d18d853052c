// Wires one dbops process together from its config: state store, target pools, catalog and core.

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import { catalog as operations } from '../commands/index.js';
import { coreDiagnose } from './alerts/diagnose.js';
import { createAlertObserver } from './alerts/observe.js';
import { AlertBook } from './alerts/store.js';
import type { Config } from './config/schema.js';
import { BUILTINS, Catalog } from './core/catalog.js';
import { Core, type CoreDeps } from './core/dispatch.js';
import { ConfigError } from './core/errors.js';
import { type Logger, redactSecrets } from './core/log.js';
import { setDisplayTimeZone } from './core/time-format.js';
import { removeAbandonedPartials } from './engine/partial-files.js';
import { registerUrlSecrets } from './engine/redact.js';
import { type OwnBackend, TargetPools } from './engine/target-db.js';
import { createSampler } from './history/sample.js';
import { HistoryStore } from './history/store.js';
import { RoleDirectory } from './identity/directory.js';
import { Escalations } from './identity/escalation.js';
import { attachDirectory } from './identity/people.js';
import { CHAT_SURFACES, wakeAnnouncers } from './notify/approvals-store.js';
import type { ChannelPoster } from './notify/poster.js';
import type { Metrics } from './observability/metrics.js';
import { runPackCommand } from './packs/command.js';
import type { LoadedPack } from './packs/load.js';
import { loadConfiguredPacks, packCatalogEntries } from './packs/registry.js';
import type { AfterScheduledRun, SampleTarget } from './schedules/hooks.js';
import { ScheduleService } from './schedules/service.js';
import { scheduleProblems } from './schedules/validate.js';
import { ReplicaPids } from './state/backends.js';
import { OutcomeJournal } from './state/journal.js';
import { PgStateStore } from './state/pg-store.js';
import type { StateStore } from './state/types.js';

/** Listeners of what happens to approval requests, and progress of long operations: the chat surfaces. */
export interface AppEvents {
  onRequestChange(listener: NonNullable<CoreDeps['onRequestChange']>): () => void;
  onProgress(listener: NonNullable<CoreDeps['onProgress']>): () => void;
}

export interface App {
  core: Core;
  events: AppEvents;
  pools: TargetPools;
  state: PgStateStore;
  /** Alert state and history samples (migration 8), on their own small pool to the state database. */
  alerts: AlertBook;
  history: HistoryStore;
  /** History sampling as schedules call it (`kind: sample`). */
  sampler: SampleTarget;
  /** The alert observer of scheduled runs, posting through `poster` (the surfaces' ChannelPosters). */
  alertObserver(poster: ChannelPoster | undefined): AfterScheduledRun;
  /** Roles held through Slack user groups and Discord roles (the Slack surface connects its reader). */
  directory: RoleDirectory;
  /** Requests escalated once to a second group after `escalate_after` (the sweeper runs it). */
  escalations: Escalations;
  /** Schedules: runs by hand, what `/db schedules` lists; `dbops start` adds the job engine. */
  schedules: ScheduleService;
  /**
   * Starts the periodic sweep (every `seconds`): pending requests past their expiry, and runs left behind
   * by a replica that died (lease ran out), then starts approved requests whose target is free again;
   * returns a stop function.
   */
  startSweeper(seconds?: number): () => void;
  close(): Promise<void>;
}

export interface AppOptions {
  config: Config;
  log: Logger;
  clock?: () => Date;
  onRequestChange?: CoreDeps['onRequestChange'];
  onProgress?: CoreDeps['onProgress'];
  /** Where commands, operation times, approvals, pool usage and audit failures are counted (`dbops start`). */
  metrics?: Metrics;
  /** The lease of an approved run (CoreDeps.runLeaseMs); tests shorten it. */
  runLeaseMs?: number;
  /** Waits between attempts to record a run's outcome before it is journaled (tests shorten them). */
  outcomeRetryDelaysMs?: readonly number[];
  /** These packs instead of the configured ones (`dbops pack test` runs exactly the pack under test). */
  packs?: LoadedPack[];
  /** Where validated packs are kept between processes (the CLI's cache directory); none: no cache. */
  packCacheDir?: string;
}

export async function createApp(options: AppOptions): Promise<App> {
  const packs =
    options.packs ??
    loadConfiguredPacks(
      options.config,
      options.packCacheDir !== undefined ? { cacheDir: options.packCacheDir } : {},
    );
  // Text answers of this process read their times in the configured zone (one deployment, one zone).
  setDisplayTimeZone(options.config.timeZone);
  const catalog = new Catalog(operations, packCatalogEntries(packs, { runCommand: runPackCommand }));
  // A schedule the catalog or the policy would refuse is a config error, before anything starts.
  const scheduleErrors = scheduleProblems(options.config, catalog);
  if (scheduleErrors.length > 0) throw new ConfigError(scheduleErrors);
  const state = await PgStateStore.open(options.config.state.url, { log: options.log });
  try {
    await state.migrate();
  } catch (err) {
    await state.close();
    throw err;
  }
  // Tool output is redacted of every configured password, not only the one its target's env holds.
  registerUrlSecrets(options.config.state.url);
  for (const target of Object.values(options.config.targets)) registerUrlSecrets(target.url);
  // What a run of an earlier (killed) process left behind: partial dumps, restore scripts.
  await removeAbandonedPartials(options.config.backupsDir, { log: options.log });
  // dbops' own connections are known by pid across replicas (published in the state database).
  const sharedPids: ReplicaPids = new ReplicaPids({
    url: options.config.state.url,
    local: (): OwnBackend[] => pools.ownBackends(),
    log: options.log,
  }).start();
  const pools: TargetPools = new TargetPools(options.config.targets, { log: options.log, sharedPids });
  const records = new pg.Pool({
    connectionString: options.config.state.url,
    max: 2,
    application_name: 'dbops-records',
    connectionTimeoutMillis: 5_000,
    statement_timeout: 10_000,
    query_timeout: 15_000,
    idle_in_transaction_session_timeout: 60_000,
    idleTimeoutMillis: 30_000,
  });
  records.on('error', (err) => {
    options.log.warn({ error: redactSecrets(err.message) }, 'state database connection lost (records)');
  });
  const alerts = new AlertBook(records);
  const history = new HistoryStore(records);
  // Group-derived roles: every resolution of a person under this config consults the directory.
  const directory = new RoleDirectory(options.config, {
    ...(options.clock ? { clock: options.clock } : {}),
    onProblem: (group, message) =>
      options.log.warn(
        { group, error: message },
        'a Slack user group cannot be read; its last known membership is kept',
      ),
    onDiscordProblem: (message) =>
      options.log.warn(
        { error: message },
        'the Discord guild members cannot be read; the last listing is kept',
      ),
  });
  attachDirectory(options.config, directory);
  // Discord roles seen in payloads are stored for every replica (migration 12).
  directory.discord.useStore(state);
  const changeListeners = new Set<NonNullable<CoreDeps['onRequestChange']>>();
  const progressListeners = new Set<NonNullable<CoreDeps['onProgress']>>();
  if (options.onRequestChange) changeListeners.add(options.onRequestChange);
  if (options.onProgress) progressListeners.add(options.onProgress);
  const { metrics } = options;
  // One name for this replica on approved runs and on scheduled runs alike.
  const runner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  // Scheduled runs go through the core like anyone's command, as their service person.
  const schedules: ScheduleService = new ScheduleService({
    config: options.config,
    log: options.log,
    dispatch: (inv) => core.dispatch(inv),
    state,
    runner,
    ...(options.clock ? { clock: options.clock } : {}),
  });
  if (metrics) changeListeners.add((request, change) => metrics.requestChanged(request, change));
  // A request made here outside chat wakes the running bots, which post its card in the approvals channel.
  changeListeners.add((request, change) => {
    if (change !== 'created' || !options.config.policy[request.environment]?.approvals_channel) return;
    if ((CHAT_SURFACES as readonly string[]).includes(request.requester.surface)) return;
    wakeAnnouncers(records, request.id).catch((err: unknown) =>
      options.log.debug({ err, requestId: request.id }, 'could not wake the approvals announcers'),
    );
  });
  const core: Core = new Core({
    config: options.config,
    runner,
    schedules,
    catalog,
    targets: pools,
    state: metrics ? countingAuditFailures(state, metrics) : state,
    log: options.log,
    alerts,
    history,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.runLeaseMs !== undefined ? { runLeaseMs: options.runLeaseMs } : {}),
    // Outcomes the state database cannot take when a run ends wait here, fsynced, until it is back.
    journal: new OutcomeJournal(options.config.backupsDir),
    ...(options.outcomeRetryDelaysMs ? { outcomeRetryDelaysMs: options.outcomeRetryDelaysMs } : {}),
    ...(metrics
      ? {
          onDispatched: (inv, reply, ms) => metrics.commandDispatched(inv, reply, ms),
          onOperationRun: (run) => metrics.operationRan(run),
        }
      : {}),
    onRequestChange: (request, change) => {
      for (const listener of changeListeners) {
        try {
          listener(request, change);
        } catch (err) {
          options.log.error({ err, requestId: request.id }, 'request listener failed');
        }
      }
    },
    onProgress: (requestId, invocation, line) => {
      for (const listener of progressListeners) {
        try {
          listener(requestId, invocation, line);
        } catch (err) {
          options.log.error({ err, requestId }, 'progress listener failed');
        }
      }
    },
  });
  // What a previous run of this dbops journaled and could not record before it stopped.
  core.replayJournal().catch(() => {});
  metrics?.attachApp({
    operationNames: [...catalog.allNames(), ...BUILTINS],
    pools: () => pools.stats(),
    inFlight: () => core.inFlight,
    draining: () => core.draining,
  });
  const escalations = new Escalations({
    config: options.config,
    state,
    clock: options.clock ?? (() => new Date()),
    log: options.log,
  });
  const timers = new Set<NodeJS.Timeout>();
  const events: AppEvents = {
    onRequestChange(listener) {
      changeListeners.add(listener);
      return () => changeListeners.delete(listener);
    },
    onProgress(listener) {
      progressListeners.add(listener);
      return () => progressListeners.delete(listener);
    },
  };
  const sampler = createSampler({
    targets: pools,
    store: history,
    log: options.log,
    ...(options.config.history
      ? {
          retentionSeconds: options.config.history.retentionSeconds,
          topTables: options.config.history.topTables,
        }
      : {}),
  });
  // History sampling works wherever schedules run by hand (`/db run-schedule` in exec or the console too).
  schedules.sample = sampler;
  return {
    core,
    events,
    pools,
    state,
    alerts,
    history,
    sampler,
    alertObserver: (poster) =>
      createAlertObserver({
        book: alerts,
        ...(poster ? { poster } : {}),
        diagnose: coreDiagnose(core),
        log: options.log,
        ...(options.config.alerts ? { remindEverySeconds: options.config.alerts.remindEverySeconds } : {}),
      }),
    directory,
    escalations,
    schedules,
    startSweeper(seconds = 30) {
      const timer = setInterval(() => {
        core
          .sweepExpired()
          .then(() => core.startWaitingRuns())
          .then(() => escalations.sweep())
          .catch((err: unknown) => options.log.warn({ err }, 'expiry sweep failed'));
      }, seconds * 1000);
      timer.unref();
      timers.add(timer);
      return () => {
        clearInterval(timer);
        timers.delete(timer);
      };
    },
    async close() {
      // The closing audit records of the last replies are written before anything closes.
      await core.settled();
      for (const timer of timers) clearInterval(timer);
      directory.stop();
      core.stopJournal();
      await pools.closeAll();
      await sharedPids.close();
      await schedules.close();
      await records.end();
      await state.close();
    },
  };
}

/** The same store, counting each audit write that fails (the core's and the expiry sweeper's alike). */
function countingAuditFailures(state: PgStateStore, metrics: Metrics): StateStore {
  return new Proxy(state, {
    get(target, property) {
      if (property === 'audit') {
        const audit: StateStore['audit'] = async (event, now) => {
          try {
            await target.audit(event, now);
          } catch (err) {
            metrics.auditWriteFailed(event.event);
            throw err;
          }
        };
        return audit;
      }
      if (property === 'auditLater') {
        const auditLater: NonNullable<StateStore['auditLater']> = async (event, now) => {
          try {
            await target.auditLater(event, now);
          } catch (err) {
            metrics.auditWriteFailed(event.event);
            throw err;
          }
        };
        return auditLater;
      }
      if (property === 'auditAll') {
        const auditAll: StateStore['auditAll'] = async (events, now) => {
          try {
            await target.auditAll(events, now);
          } catch (err) {
            for (const event of events) metrics.auditWriteFailed(event.event);
            throw err;
          }
        };
        return auditAll;
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
