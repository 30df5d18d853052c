// One lazily opened, bounded connection pool per target, and the read / write / direct sessions on it.
import pg from 'pg';
import type { ResolvedTarget } from '../config/schema.js';
import { formatDuration } from '../core/duration.js';
import { UserError } from '../core/errors.js';
import { type Logger, redactSecrets, silentLogger } from '../core/log.js';
import {
  BackendRegistry,
  NO_STATS,
  type OwnBackend,
  type PoolHost,
  type PoolStats,
  type SharedOwnPids,
  serverKeyOf,
  type TargetPoolsOptions,
} from './backend-registry.js';
import { OperationCancelledError } from './cancel.js';
import { ClientGuard, clientDeadlineMs, destroyConnection, GuardedSession } from './guard.js';
import { ReadFlights } from './one-flight.js';
import { type ErrorLimits, toUserError } from './pg-errors.js';
import { TYPES } from './pg-types.js';
import { holdsStaleStatement } from './prepared.js';
import { beginWithTimeouts, RESET_TIMEOUTS, SET_SESSION_TIMEOUTS, wholeMs } from './timeouts-sql.js';
import type { QueryLimits, Session, TargetDb } from './types.js';

export type { OwnBackend, PoolStats, SharedOwnPids, TargetPoolsOptions } from './backend-registry.js';
export { serverKeyOf };

/** TCP keepalive on every target connection: a peer that vanished is noticed even between statements. */
const KEEPALIVE_DELAY_MS = 10_000;

type Mode = 'read' | 'write' | 'direct';

class PooledTargetDb implements TargetDb {
  readonly name: string;
  #pool: pg.Pool | undefined;
  #serverKey: string | undefined;
  #version: Promise<number> | undefined;
  #generation = 0;
  /** Start times (performance.now()) of the units of work under way. */
  readonly #running = new Set<number>();

  constructor(
    private readonly target: ResolvedTarget,
    private readonly host: PoolHost,
  ) {
    this.name = target.name;
  }

  get serverKey(): string {
    this.#serverKey ??= serverKeyOf(this.target.url);
    return this.#serverKey;
  }

  stats(): PoolStats {
    const pool = this.#pool;
    const started = Math.min(...this.#running);
    return {
      ...(pool
        ? { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }
        : { total: 0, idle: 0, waiting: 0 }),
      inFlight: this.#running.size,
      oldestMs: this.#running.size > 0 ? Math.max(0, Math.round(performance.now() - started)) : 0,
    };
  }

  async close(): Promise<void> {
    const pool = this.#pool;
    this.#pool = undefined;
    if (pool && !pool.ending) await pool.end();
  }

  read<R>(
    fn: (session: Session) => Promise<R>,
    limits?: Partial<QueryLimits>,
    signal?: AbortSignal,
  ): Promise<R> {
    return this.#tracked(() => this.#run('read', fn, limits, signal));
  }

  write<R>(
    fn: (session: Session) => Promise<R>,
    limits?: Partial<QueryLimits>,
    signal?: AbortSignal,
  ): Promise<R> {
    return this.#tracked(() => this.#run('write', fn, limits, signal));
  }

  direct<R>(
    fn: (session: Session) => Promise<R>,
    limits?: Partial<QueryLimits>,
    signal?: AbortSignal,
  ): Promise<R> {
    return this.#tracked(() => this.#run('direct', fn, limits, signal));
  }

  async #tracked<R>(work: () => Promise<R>): Promise<R> {
    // A Set of numbers: two starts in the same microsecond are nudged apart so both are counted.
    let started = performance.now();
    while (this.#running.has(started)) started += 1e-6;
    this.#running.add(started);
    try {
      return await work();
    } finally {
      this.#running.delete(started);
    }
  }

  ownPids(): number[] {
    const mine = this.host.registry.pids(this.serverKey);
    const others = this.host.shared?.others(this.serverKey) ?? [];
    return others.length === 0 ? mine : [...new Set([...mine, ...others])];
  }

  generation(): number {
    return this.#generation;
  }

  serverVersion(): Promise<number> {
    if (!this.#version) {
      const version = this.read(async (session) => {
        const rows = await session.query<{ version: number }>(
          "SELECT current_setting('server_version_num')::int AS version",
        );
        const value = rows[0]?.version;
        if (typeof value !== 'number') throw new Error('server_version_num did not come back as a number');
        return value;
      });
      this.#version = version;
      version.catch(() => {
        if (this.#version === version) this.#version = undefined;
      });
    }
    return this.#version;
  }

  #limits(overrides: Partial<QueryLimits> | undefined): QueryLimits {
    const { limits } = this.target;
    return {
      statementTimeoutMs: Math.round(limits.statement_timeout * 1000),
      lockTimeoutMs: Math.round(limits.lock_timeout * 1000),
      rowCap: limits.row_cap,
      ...overrides,
    };
  }

  #errorLimits(limits: QueryLimits): ErrorLimits {
    return {
      statementTimeoutMs: limits.statementTimeoutMs,
      lockTimeoutMs: limits.lockTimeoutMs,
      connectTimeoutMs: Math.round(this.target.limits.connect_timeout * 1000),
      poolMax: this.target.limits.pool_max,
    };
  }

  #poolNow(): pg.Pool {
    if (this.host.closed) throw new Error(`target pools are closed; ${this.name} can no longer be used`);
    if (this.#pool) return this.#pool;
    const { limits } = this.target;
    const server = this.serverKey;
    const { registry, log } = this.host;
    const pool = new pg.Pool({
      connectionString: this.target.url,
      max: limits.pool_max,
      idleTimeoutMillis: Math.round(limits.pool_idle * 1000),
      connectionTimeoutMillis: Math.round(limits.connect_timeout * 1000),
      application_name: this.host.applicationName,
      types: TYPES,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
      onConnect: async (client) => {
        // pg-pool's connect timeout ends at login: a server that goes silent right after is caught here.
        const timer = setTimeout(() => destroyConnection(client), this.#connectDeadlineMs());
        try {
          const rows = (await client.query('SELECT pg_backend_pid() AS pid')).rows;
          const pid: unknown = rows[0]?.pid;
          if (typeof pid !== 'number') throw new Error('pg_backend_pid() did not return a number');
          registry.add(server, client, pid);
          // The first connection after having none: whatever was learnt of the target may be out of date.
          if ((this.#pool?.totalCount ?? 0) <= 1) this.#generation++;
          this.host.shared?.changed();
        } finally {
          clearTimeout(timer);
        }
      },
    });
    // A connection dropped by the server while idle must never crash the process.
    pool.on('error', (err) => {
      this.#generation++;
      log.warn({ target: this.name, err: redactSecrets(err.message) }, 'idle connection to target failed');
    });
    pool.on('remove', (client) => {
      registry.remove(server, client);
      if (pool.totalCount === 0) this.#generation++;
      this.host.shared?.changed();
    });
    this.#pool = pool;
    return pool;
  }

  /** How long a connection (login and the first query) may take: connect_timeout plus a margin. */
  #connectDeadlineMs(): number {
    return clientDeadlineMs(this.target.limits.connect_timeout * 1000) ?? 30_000;
  }

  /** Cancels a backend from a one-off connection (the pool may be full of hung ones), bounded. */
  async #cancelBackend(pid: number): Promise<void> {
    const client = new pg.Client({
      connectionString: this.target.url,
      connectionTimeoutMillis: Math.round(this.target.limits.connect_timeout * 1000),
      application_name: this.host.applicationName,
      keepAlive: true,
    });
    client.on('error', () => {});
    const timer = setTimeout(() => destroyConnection(client), this.#connectDeadlineMs());
    try {
      await client.connect();
      await client.query('SELECT pg_cancel_backend($1)', [pid]);
    } finally {
      clearTimeout(timer);
      await client.end().catch(() => {});
    }
  }

  /** A pooled connection within the connect deadline; one that arrives later goes straight back. */
  async #connect(signal: AbortSignal | undefined): Promise<pg.PoolClient> {
    if (signal?.aborted) throw new OperationCancelledError(`the work on ${this.name}`);
    const connecting = this.#poolNow().connect();
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const late = (client: pg.PoolClient) => client.release(new Error('arrived after its caller gave up'));
    try {
      return await new Promise<pg.PoolClient>((resolve, reject) => {
        const giveUp = (err: Error) => {
          reject(err);
          connecting.then(late, () => {});
        };
        timer = setTimeout(() => {
          giveUp(
            new UserError(
              'target_unresponsive',
              `${this.name} did not give dbops a connection within ${formatDuration(this.#connectDeadlineMs() / 1000)}: ` +
                'the server is not answering or every connection to it is busy; try again shortly.',
            ),
          );
        }, this.#connectDeadlineMs());
        onAbort = () => giveUp(new OperationCancelledError(`the work on ${this.name}`));
        signal?.addEventListener('abort', onAbort, { once: true });
        connecting.then(resolve, reject);
      });
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  async #run<R>(
    mode: Mode,
    fn: (session: Session) => Promise<R>,
    overrides: Partial<QueryLimits> | undefined,
    signal: AbortSignal | undefined,
  ): Promise<R> {
    const limits = this.#limits(overrides);
    await this.host.shared?.refresh();
    let client: pg.PoolClient;
    try {
      client = await this.#connect(signal);
    } catch (err) {
      throw toUserError(err, this.name, this.#errorLimits(limits)) ?? err;
    }
    // While checked out, the pool does not listen for socket errors; without this, one would crash the process.
    const onError = (err: Error) => {
      this.host.log.warn(
        { target: this.name, err: redactSecrets(err.message) },
        'connection to target failed',
      );
    };
    client.on('error', onError);
    const guard = new ClientGuard(client, {
      target: this.name,
      signal,
      cancelBackend: (pid) => this.#cancelBackend(pid),
    });
    let discard: Error | undefined;
    const stopCancel = signal ? this.#cancelOnAbort(client, signal) : () => {};
    try {
      return await this.#transaction(client, guard, mode, fn, limits);
    } catch (err) {
      discard = guard.broken ?? (await this.#restore(guard, client, mode));
      if (guard.broken) {
        this.host.log.warn(
          { target: this.name, err: redactSecrets(guard.broken.message) },
          'target connection dropped',
        );
      }
      throw toUserError(err, this.name, this.#errorLimits(limits)) ?? err;
    } finally {
      stopCancel();
      client.removeListener('error', onError);
      discard ??= guard.broken;
      if (!discard && holdsStaleStatement(client)) discard = new Error('a prepared plan went stale');
      if (!discard && client.getTransactionStatus() !== 'I') {
        discard = new Error('connection left inside a transaction');
      }
      // With an error the pool destroys the connection instead of handing it out dirty.
      if (discard) this.#generation++;
      client.release(discard);
    }
  }

  async #transaction<R>(
    client: pg.PoolClient,
    guard: ClientGuard,
    mode: Mode,
    fn: (session: Session) => Promise<R>,
    limits: QueryLimits,
  ): Promise<R> {
    const deadline = clientDeadlineMs(limits.statementTimeoutMs);
    const connectDeadline = this.#connectDeadlineMs();
    guard.pid = this.host.registry.pidOf(this.serverKey, client);
    if (mode === 'direct') {
      const timeouts = [String(wholeMs(limits.statementTimeoutMs)), String(wholeMs(limits.lockTimeoutMs))];
      await guard.step(() => client.query(SET_SESSION_TIMEOUTS, timeouts), connectDeadline, 'SET');
    }
    // A read sends each statement with its own BEGIN READ ONLY, timeouts and ROLLBACK (one-flight.ts).
    // Without a statement timeout a statement has no client deadline: the BEGIN apart keeps the connect
    // deadline's check that the server still answers.
    const prepare = this.target.preparedStatements !== false;
    const flights = mode === 'read' && deadline ? new ReadFlights(client, limits, prepare) : undefined;
    if (mode === 'write' || (mode === 'read' && !flights))
      await guard.step(() => client.query(beginWithTimeouts(mode, limits)), connectDeadline, 'BEGIN');
    guard.pid ??= await guard.step(() => this.#backendPid(client), connectDeadline, 'a pid query');
    const session = new GuardedSession(client, guard, guard.pid, limits, deadline, prepare, flights);
    const result = await fn(session);
    if (mode === 'read') {
      if (!flights || flights.open)
        await guard.step(() => client.query('ROLLBACK'), connectDeadline, 'ROLLBACK');
    } else if (mode === 'write') {
      await guard.step(
        () => client.query('COMMIT'),
        deadline ?? connectDeadline,
        'COMMIT (whether it took effect is unknown)',
      );
    } else await guard.step(() => client.query(RESET_TIMEOUTS), connectDeadline, 'RESET');
    return result;
  }

  /**
   * On abort, cancels the statement the session's backend is running, from a separate short-lived
   * connection (the pool may be full). Returns a function that stops listening.
   */
  #cancelOnAbort(client: pg.PoolClient, signal: AbortSignal): () => void {
    const cancel = () => {
      const pid = this.host.registry.pidOf(this.serverKey, client);
      if (pid === undefined) return;
      const side = new pg.Client({
        connectionString: this.target.url,
        application_name: this.host.applicationName,
        connectionTimeoutMillis: Math.round(this.target.limits.connect_timeout * 1000),
      });
      side.on('error', () => {});
      side
        .connect()
        .then(() => side.query('SELECT pg_cancel_backend($1)', [pid]))
        .catch((err: unknown) =>
          this.host.log.warn(
            { target: this.name, pid, err: redactSecrets(String(err)) },
            'could not cancel the backend of a cancelled run',
          ),
        )
        .finally(() => side.end().catch(() => {}));
    };
    signal.addEventListener('abort', cancel, { once: true });
    return () => signal.removeEventListener('abort', cancel);
  }

  async #backendPid(client: pg.PoolClient): Promise<number> {
    const rows = (await client.query('SELECT pg_backend_pid() AS pid')).rows;
    const pid: unknown = rows[0]?.pid;
    if (typeof pid !== 'number') throw new Error('pg_backend_pid() did not return a number');
    return pid;
  }

  /** After a failure: brings the connection back to a clean idle state, or returns why it must be destroyed. */
  async #restore(guard: ClientGuard, client: pg.PoolClient, mode: Mode): Promise<Error | undefined> {
    const deadline = this.#connectDeadlineMs();
    try {
      // An error before its ReadyForQuery: pg does not know the transaction's state yet (assume open).
      const answered = (client as { readyForQuery?: boolean }).readyForQuery !== false;
      if (mode === 'write' || (mode === 'read' && !answered) || client.getTransactionStatus() !== 'I')
        await guard.step(() => client.query('ROLLBACK'), deadline, 'ROLLBACK');
      if (mode === 'direct') await guard.step(() => client.query(RESET_TIMEOUTS), deadline, 'RESET');
      return client.getTransactionStatus() === 'I' ? undefined : new Error('transaction state unknown');
    } catch (err) {
      return err instanceof Error ? err : new Error('could not restore the connection');
    }
  }
}

/** Connection pools for every configured target; nothing is opened until a target is first used. */
export class TargetPools {
  readonly #targets: Readonly<Record<string, ResolvedTarget>>;
  readonly #dbs = new Map<string, PooledTargetDb>();
  readonly #host: {
    registry: BackendRegistry;
    shared: SharedOwnPids | undefined;
    applicationName: string;
    log: Logger;
    closed: boolean;
  };

  constructor(targets: Readonly<Record<string, ResolvedTarget>>, opts: TargetPoolsOptions = {}) {
    this.#targets = targets;
    this.#host = {
      registry: new BackendRegistry(),
      shared: opts.sharedPids,
      applicationName: opts.applicationName ?? 'dbops',
      log: opts.log ?? silentLogger(),
      closed: false,
    };
  }

  /** The target's database handle; throws `unknown_target` for a name that is not configured. */
  get(name: string): TargetDb {
    const existing = this.#dbs.get(name);
    if (existing) return existing;
    const target = Object.hasOwn(this.#targets, name) ? this.#targets[name] : undefined;
    if (!target) throw new UserError('unknown_target', `unknown target "${name}"`);
    const db = new PooledTargetDb(target, this.#host);
    this.#dbs.set(name, db);
    return db;
  }

  /** Every backend this process holds, on every server (published for the other replicas). */
  ownBackends(): OwnBackend[] {
    return this.#host.registry.all();
  }

  /** Per target: open, idle and waiting counts (zeros for a target never used). */
  stats(): Record<string, PoolStats> {
    const out: Record<string, PoolStats> = {};
    for (const name of Object.keys(this.#targets)) {
      out[name] = this.#dbs.get(name)?.stats() ?? NO_STATS;
    }
    return out;
  }

  /** Ends every pool (waiting for checked-out connections to come back); the pools cannot be used afterwards. */
  async closeAll(): Promise<void> {
    this.#host.closed = true;
    await Promise.all([...this.#dbs.values()].map((db) => db.close()));
  }
}
