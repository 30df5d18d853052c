// Wires one dbops process together from its config: state store, target pools, catalog and core.
import { catalog as operations } from '../commands/index.js';
import type { Config } from './config/schema.js';
import { BUILTINS, Catalog } from './core/catalog.js';
import { Core, type CoreDeps } from './core/dispatch.js';
import type { Logger } from './core/log.js';
import { removeAbandonedPartials } from './engine/partial-files.js';
import { registerUrlSecrets } from './engine/redact.js';
import { type OwnBackend, TargetPools } from './engine/target-db.js';
import type { Metrics } from './observability/metrics.js';
import { runPackCommand } from './packs/command.js';
import type { LoadedPack } from './packs/load.js';
import { loadConfiguredPacks, packCatalogEntries } from './packs/registry.js';
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
  const catalog = new Catalog(operations, packCatalogEntries(packs, { runCommand: runPackCommand }));
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
  const changeListeners = new Set<NonNullable<CoreDeps['onRequestChange']>>();
  const progressListeners = new Set<NonNullable<CoreDeps['onProgress']>>();
  if (options.onRequestChange) changeListeners.add(options.onRequestChange);
  if (options.onProgress) progressListeners.add(options.onProgress);
  const { metrics } = options;
  if (metrics) changeListeners.add((request, change) => metrics.requestChanged(request, change));
  const core = new Core({
    config: options.config,
    catalog,
    targets: pools,
    state: metrics ? countingAuditFailures(state, metrics) : state,
    log: options.log,
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
  return {
    core,
    events,
    pools,
    state,
    startSweeper(seconds = 30) {
      const timer = setInterval(() => {
        core
          .sweepExpired()
          .then(() => core.startWaitingRuns())
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
      for (const timer of timers) clearInterval(timer);
      core.stopJournal();
      await pools.closeAll();
      await sharedPids.close();
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
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
