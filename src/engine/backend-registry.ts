// The pools' bookkeeping: options, statistics and the registry of dbops' own backends per server.
import pg from 'pg';
import type { Logger } from '../core/log.js';

export interface TargetPoolsOptions {
  /** Sent as application_name on every connection (default "dbops"). */
  applicationName?: string;
  log?: Logger;
  /** The pids other dbops replicas hold (src/state/backends.ts); without it only this process's count. */
  sharedPids?: SharedOwnPids;
}

/** dbops' own backends across replicas: recognised by pid, never by a name a client can choose. */
export interface SharedOwnPids {
  /** Pids other replicas hold on `server` (host:port), as last read. */
  others(server: string): readonly number[];
  /** This process opened or closed a connection: publish soon. */
  changed(): void;
  /** Brings `others` up to date before a transaction starts; cheap when recent, never throws. */
  refresh(): Promise<void>;
}

/** One backend this process holds: the server (host:port) and its pid. */
export interface OwnBackend {
  server: string;
  pid: number;
}

export interface PoolStats {
  /** Connections open (idle or checked out). */
  total: number;
  idle: number;
  /** Callers waiting for a connection because the pool is at pool_max. */
  waiting: number;
  /** Units of work (read / write / direct) started and not finished, waiting for a connection included. */
  inFlight: number;
  /** How long the oldest of them has been running, in ms (0 when none). */
  oldestMs: number;
}

export const NO_STATS: PoolStats = { total: 0, idle: 0, waiting: 0, inFlight: 0, oldestMs: 0 };

/** Pids dbops holds, per server (host:port), so no operation ever signals the bot's own connections. */
export class BackendRegistry {
  readonly #byServer = new Map<string, Map<pg.ClientBase, number>>();

  add(server: string, client: pg.ClientBase, pid: number): void {
    let clients = this.#byServer.get(server);
    if (!clients) {
      clients = new Map();
      this.#byServer.set(server, clients);
    }
    clients.set(client, pid);
  }

  remove(server: string, client: pg.ClientBase): void {
    const clients = this.#byServer.get(server);
    clients?.delete(client);
    if (clients?.size === 0) this.#byServer.delete(server);
  }

  pidOf(server: string, client: pg.ClientBase): number | undefined {
    return this.#byServer.get(server)?.get(client);
  }

  pids(server: string): number[] {
    return [...(this.#byServer.get(server)?.values() ?? [])];
  }

  all(): OwnBackend[] {
    return [...this.#byServer].flatMap(([server, clients]) =>
      [...clients.values()].map((pid) => ({ server, pid })),
    );
  }
}

/** host:port exactly as node-postgres resolves the URL (environment defaults, socket directories). */
export function serverKeyOf(url: string): string {
  const resolved = new pg.Client({ connectionString: url });
  return `${resolved.host}:${resolved.port}`;
}

export interface PoolHost {
  readonly registry: BackendRegistry;
  readonly shared: SharedOwnPids | undefined;
  readonly applicationName: string;
  readonly log: Logger;
  readonly closed: boolean;
}
