// dbops' own backend pids of every replica, kept in the state database with a heartbeat and an expiry, so
// operations recognise dbops' connections by pid (of any replica) and never by an application_name.
import { hostname } from 'node:os';
import pg from 'pg';
import { type Logger, redactSecrets } from '../core/log.js';
import type { OwnBackend, SharedOwnPids } from '../engine/target-db.js';

/** Migration 6 (5 is the journal's): one row per backend a replica holds, until it expires. */
export const BACKENDS_MIGRATION: { version: number; name: string; sql: string } = {
  version: 6,
  name: "dbops' own backend pids, per replica",
  sql: `
CREATE TABLE dbops_backends (
  replica text NOT NULL,
  server text NOT NULL,
  pid int NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (replica, server, pid)
);
CREATE INDEX dbops_backends_server ON dbops_backends (server, expires_at);
`,
};

/** After a failed read, others' pids are read again this much later than usual. */
const FAILURE_PAUSE_MS = 5_000;

/** Replaces what this replica published: its rows now, with a fresh expiry; long-expired rows go. */
const PUBLISH_SQL = `
WITH gone AS (
  DELETE FROM dbops_backends
  WHERE replica = $1 OR expires_at < now() - interval '10 minutes'
)
INSERT INTO dbops_backends (replica, server, pid, expires_at)
SELECT $1, b.server, b.pid, now() + make_interval(secs => $4)
FROM unnest($2::text[], $3::int[]) AS b(server, pid)
ON CONFLICT (replica, server, pid) DO UPDATE SET expires_at = EXCLUDED.expires_at`;

const OTHERS_SQL = `
SELECT server, array_agg(DISTINCT pid) AS pids
FROM dbops_backends
WHERE replica <> $1 AND expires_at > now()
GROUP BY server`;

export interface ReplicaPidsOptions {
  /** The state database. */
  url: string;
  /** What this process holds now (TargetPools.ownBackends). */
  local: () => OwnBackend[];
  log: Logger;
  /** Unique per process; default host, pid and a random suffix. */
  replica?: string;
  /** Published rows live this long without a heartbeat (default 60 s): a killed replica's pids expire. */
  ttlMs?: number;
  /** Heartbeat period (default 15 s); a change is published within `debounceMs` anyway. */
  heartbeatMs?: number;
  debounceMs?: number;
  /** Others' pids are re-read before a transaction when older than this (default 1 s). */
  freshMs?: number;
  /** A state database that does not answer in this long is skipped (default 2 s): last known pids stay. */
  timeoutMs?: number;
}

/**
 * This replica's half of the registry: publishes the pids its pools hold (at every change and on a
 * heartbeat) and reads the other replicas' unexpired ones. A state database that is down or slow costs
 * at most `timeoutMs` per refresh: the last pids read stay in use, and the failure is logged.
 */
export class ReplicaPids implements SharedOwnPids {
  readonly replica: string;
  readonly #pool: pg.Pool;
  readonly #options: Required<Omit<ReplicaPidsOptions, 'replica'>>;
  #others = new Map<string, readonly number[]>();
  #readAt = Number.NEGATIVE_INFINITY;
  #reading: Promise<void> | undefined;
  #publishing: Promise<void> | undefined;
  #again = false;
  #debounce: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: ReplicaPidsOptions) {
    this.replica =
      options.replica ?? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 10)}`;
    this.#options = {
      url: options.url,
      local: options.local,
      log: options.log,
      ttlMs: options.ttlMs ?? 60_000,
      heartbeatMs: options.heartbeatMs ?? 15_000,
      debounceMs: options.debounceMs ?? 20,
      freshMs: options.freshMs ?? 1_000,
      timeoutMs: options.timeoutMs ?? 2_000,
    };
    this.#pool = new pg.Pool({
      connectionString: options.url,
      max: 2,
      application_name: 'dbops-registry',
      connectionTimeoutMillis: this.#options.timeoutMs,
      statement_timeout: this.#options.timeoutMs,
      idleTimeoutMillis: 30_000,
    });
    this.#pool.on('error', (err) => {
      this.#options.log.warn({ error: redactSecrets(err.message) }, 'pid registry connection lost');
    });
  }

  /** Starts the heartbeat. */
  start(): this {
    this.#heartbeat = setInterval(() => this.changed(), this.#options.heartbeatMs);
    this.#heartbeat.unref();
    return this;
  }

  others(server: string): readonly number[] {
    return this.#others.get(server) ?? [];
  }

  changed(): void {
    if (this.#closed || this.#debounce) return;
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      void this.publish();
    }, this.#options.debounceMs);
    this.#debounce.unref();
  }

  /** Publishes what this process holds now; one at a time, the latest state always last. */
  async publish(): Promise<void> {
    if (this.#closed) return;
    if (this.#publishing) {
      this.#again = true;
      return await this.#publishing;
    }
    this.#publishing = (async () => {
      do {
        this.#again = false;
        const held = this.#options.local();
        try {
          await this.#bounded(
            this.#pool.query(PUBLISH_SQL, [
              this.replica,
              held.map((b) => b.server),
              held.map((b) => b.pid),
              this.#options.ttlMs / 1000,
            ]),
          );
        } catch (err) {
          this.#options.log.warn(
            { error: redactSecrets(err instanceof Error ? err.message : String(err)) },
            "could not publish dbops' own pids to the state database",
          );
        }
      } while (this.#again && !this.#closed);
    })();
    try {
      await this.#publishing;
    } finally {
      this.#publishing = undefined;
    }
  }

  async refresh(): Promise<void> {
    if (this.#closed || performance.now() - this.#readAt < this.#options.freshMs) return;
    this.#reading ??= (async () => {
      try {
        const { rows } = await this.#bounded(
          this.#pool.query<{ server: string; pids: number[] }>(OTHERS_SQL, [this.replica]),
        );
        this.#others = new Map(rows.map((r) => [r.server, r.pids]));
        this.#readAt = performance.now();
      } catch (err) {
        // Tried again only after a pause: a state database that hangs must not cost every transaction.
        this.#readAt = performance.now() + FAILURE_PAUSE_MS;
        this.#options.log.warn(
          { error: redactSecrets(err instanceof Error ? err.message : String(err)) },
          "could not read other replicas' pids; the last ones read stay in use",
        );
      } finally {
        this.#reading = undefined;
      }
    })();
    await this.#reading;
  }

  /** Withdraws this replica's rows and closes the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#debounce);
    await this.#publishing?.catch(() => {});
    this.#closed = true;
    try {
      await this.#bounded(this.#pool.query('DELETE FROM dbops_backends WHERE replica = $1', [this.replica]));
    } catch {
      // They expire on their own.
    }
    await this.#pool.end().catch(() => {});
  }

  #bounded<T>(work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the state database did not answer in ${this.#options.timeoutMs} ms`)),
        this.#options.timeoutMs,
      );
    });
    work.catch(() => {});
    return Promise.race([work, limit]).finally(() => clearTimeout(timer));
  }
}
