// Wires one dbops process together from its config: state store, target pools, catalog and core.
import { catalog as operations } from '../commands/index.js';
import type { Config } from './config/schema.js';
import { Catalog } from './core/catalog.js';
import { Core, type CoreDeps } from './core/dispatch.js';
import type { Logger } from './core/log.js';
import { TargetPools } from './engine/target-db.js';
import { runPackCommand } from './packs/command.js';
import { loadConfiguredPacks, packCatalogEntries } from './packs/registry.js';
import { PgStateStore } from './state/pg-store.js';

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
  /** Starts the periodic expiry sweep (every `seconds`); returns a stop function. */
  startSweeper(seconds?: number): () => void;
  close(): Promise<void>;
}

export interface AppOptions {
  config: Config;
  log: Logger;
  clock?: () => Date;
  onRequestChange?: CoreDeps['onRequestChange'];
  onProgress?: CoreDeps['onProgress'];
}

export async function createApp(options: AppOptions): Promise<App> {
  const packs = loadConfiguredPacks(options.config);
  const catalog = new Catalog(operations, packCatalogEntries(packs, { runCommand: runPackCommand }));
  const state = await PgStateStore.open(options.config.state.url, { log: options.log });
  try {
    await state.migrate();
  } catch (err) {
    await state.close();
    throw err;
  }
  const pools = new TargetPools(options.config.targets, { log: options.log });
  const changeListeners = new Set<NonNullable<CoreDeps['onRequestChange']>>();
  const progressListeners = new Set<NonNullable<CoreDeps['onProgress']>>();
  if (options.onRequestChange) changeListeners.add(options.onRequestChange);
  if (options.onProgress) progressListeners.add(options.onProgress);
  const core = new Core({
    config: options.config,
    catalog,
    targets: pools,
    state,
    log: options.log,
    ...(options.clock ? { clock: options.clock } : {}),
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
        core.sweepExpired().catch((err: unknown) => options.log.warn({ err }, 'expiry sweep failed'));
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
      await pools.closeAll();
      await state.close();
    },
  };
}
