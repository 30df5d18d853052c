// One lazily opened, bounded connection pool per target, and the read / write / direct sessions on it.
import pg from 'pg';
import Cursor from 'pg-cursor';
import type { ResolvedTarget } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import { type Logger, redactSecrets, silentLogger } from '../core/log.js';
import { type ErrorLimits, toUserError } from './pg-errors.js';
import type { QueryLimits, Session, TargetDb } from './types.js';

export interface TargetPoolsOptions {
  /** Sent as application_name on every connection (default "dbops"). */
  applicationName?: string;
  log?: Logger;
}

export interface PoolStats {
  /** Connections open (idle or checked out). */
  total: number;
  idle: number;
  /** Callers waiting for a connection because the pool is at pool_max. */
  waiting: number;
}

type TypeFormat = Parameters<typeof pg.types.getTypeParser>[1];
type TextParser = (text: string) => unknown;

const INT8 = 20;
const NUMERIC = 1700;
const INT8_ARRAY = 1016;
const NUMERIC_ARRAY = 1231;

/** bigint as a JS number when it is exact, else the digits as text. */
function parseInt8(text: string): number | string {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : text;
}

/** numeric as a JS number when finite (and exact, for whole numbers), else the text (NaN, Infinity, huge). */
function parseNumeric(text: string): number | string {
  const n = Number(text);
  if (!Number.isFinite(n)) return text;
  if (/^-?\d+$/.test(text) && !Number.isSafeInteger(n)) return text;
  return n;
}

function mapArray(value: unknown, parse: TextParser): unknown {
  if (Array.isArray(value)) return value.map((item) => mapArray(item, parse));
  return typeof value === 'string' ? parse(value) : value;
}

function arrayOf(oid: number, parse: TextParser): TextParser {
  const parseArray: TextParser = pg.types.getTypeParser(oid, 'text');
  return (text) => mapArray(parseArray(text), parse);
}

/** Per-pool type parsers: pg's global parsers stay untouched for every other user of `pg` in the process. */
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: (oid: number, format?: TypeFormat) => {
    if (format !== 'binary') {
      if (oid === INT8) return parseInt8;
      if (oid === NUMERIC) return parseNumeric;
      if (oid === INT8_ARRAY) return arrayOf(INT8_ARRAY, parseInt8);
      if (oid === NUMERIC_ARRAY) return arrayOf(NUMERIC_ARRAY, parseNumeric);
    }
    return pg.types.getTypeParser(oid, format);
  },
};

/**
 * A timeout as it goes into SQL text: a finite, non-negative number of whole milliseconds (PostgreSQL would
 * round 899.9999999999999 itself; rounding here keeps the statement text plain).
 */
function wholeMs(ms: number): number {
  if (!Number.isFinite(ms) || ms < 0) throw new Error(`not a timeout in milliseconds: ${ms}`);
  return Math.round(ms);
}

/**
 * BEGIN and the transaction's timeouts in one round trip: a simple-protocol statement list cannot take
 * bind parameters, so the two values — numbers computed by dbops, never text from a person — are written
 * in as whole milliseconds.
 */
function beginWithTimeouts(mode: 'read' | 'write', limits: QueryLimits): string {
  const begin = mode === 'read' ? 'BEGIN READ ONLY' : 'BEGIN';
  return `${begin}; SET LOCAL statement_timeout = ${wholeMs(limits.statementTimeoutMs)}; SET LOCAL lock_timeout = ${wholeMs(limits.lockTimeoutMs)}`;
}
const SET_SESSION_TIMEOUTS =
  "SELECT set_config('statement_timeout', $1, false), set_config('lock_timeout', $2, false)";
const RESET_TIMEOUTS = 'RESET statement_timeout; RESET lock_timeout';

/** Rows read per round trip by `cursor()`. */
const CURSOR_BATCH = 500;

type Mode = 'read' | 'write' | 'direct';

/** A checked-out connection as an operation sees it: bind parameters only, one statement per query. */
class PoolSession implements Session {
  constructor(
    private readonly client: pg.PoolClient,
    readonly backendPid: number,
    private readonly rowCap: number,
  ) {}

  async query<T extends object = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<T[]> {
    // The extended protocol refuses a second statement even when there are no parameters.
    const config: pg.QueryConfig & { queryMode: 'extended' } = {
      text: sql,
      values: [...(params ?? [])],
      queryMode: 'extended',
    };
    const result = await this.client.query(config);
    return result.rows;
  }

  async execute(sql: string, params?: readonly unknown[]): Promise<{ rowCount: number }> {
    const config: pg.QueryConfig & { queryMode: 'extended' } = {
      text: sql,
      values: [...(params ?? [])],
      queryMode: 'extended',
    };
    const result = await this.client.query(config);
    return { rowCount: result.rowCount ?? 0 };
  }

  async cursor<T extends object = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
    cap: number = this.rowCap,
  ): Promise<{ rows: T[]; truncated: boolean }> {
    if (!Number.isSafeInteger(cap) || cap < 0)
      throw new RangeError(`cursor cap must be a whole number, got ${cap}`);
    const cursor = this.client.query(new Cursor<T>(sql, [...(params ?? [])]));
    const rows: T[] = [];
    const batch = Math.min(cap + 1, CURSOR_BATCH);
    // One row past the cap tells whether more existed, without reading them.
    while (rows.length <= cap) {
      const want = Math.min(batch, cap + 1 - rows.length);
      // A failed read leaves the cursor already closed by the server; the error propagates as is.
      const got = await cursor.read(want);
      rows.push(...got);
      if (got.length < want) break;
    }
    await cursor.close();
    const truncated = rows.length > cap;
    return { rows: truncated ? rows.slice(0, cap) : rows, truncated };
  }
}

/** Pids dbops holds, per server (host:port), so no operation ever signals the bot's own connections. */
class BackendRegistry {
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
}

/** host:port exactly as node-postgres resolves the URL (environment defaults, socket directories). */
function serverKeyOf(url: string): string {
  const resolved = new pg.Client({ connectionString: url });
  return `${resolved.host}:${resolved.port}`;
}

interface PoolHost {
  readonly registry: BackendRegistry;
  readonly applicationName: string;
  readonly log: Logger;
  readonly closed: boolean;
}

class PooledTargetDb implements TargetDb {
  readonly name: string;
  #pool: pg.Pool | undefined;
  #serverKey: string | undefined;
  #version: Promise<number> | undefined;

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
    return pool
      ? { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }
      : { total: 0, idle: 0, waiting: 0 };
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
    return this.#run('read', fn, limits, signal);
  }

  write<R>(
    fn: (session: Session) => Promise<R>,
    limits?: Partial<QueryLimits>,
    signal?: AbortSignal,
  ): Promise<R> {
    return this.#run('write', fn, limits, signal);
  }

  direct<R>(
    fn: (session: Session) => Promise<R>,
    limits?: Partial<QueryLimits>,
    signal?: AbortSignal,
  ): Promise<R> {
    return this.#run('direct', fn, limits, signal);
  }

  ownPids(): number[] {
    return this.host.registry.pids(this.serverKey);
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
      onConnect: async (client) => {
        const rows = (await client.query('SELECT pg_backend_pid() AS pid')).rows;
        const pid: unknown = rows[0]?.pid;
        if (typeof pid !== 'number') throw new Error('pg_backend_pid() did not return a number');
        registry.add(server, client, pid);
      },
    });
    // A connection dropped by the server while idle must never crash the process.
    pool.on('error', (err) => {
      log.warn({ target: this.name, err: redactSecrets(err.message) }, 'idle connection to target failed');
    });
    pool.on('remove', (client) => registry.remove(server, client));
    this.#pool = pool;
    return pool;
  }

  async #run<R>(
    mode: Mode,
    fn: (session: Session) => Promise<R>,
    overrides?: Partial<QueryLimits>,
    signal?: AbortSignal,
  ): Promise<R> {
    const limits = this.#limits(overrides);
    if (signal?.aborted) throw cancelledError(this.name);
    let client: pg.PoolClient;
    try {
      client = await this.#poolNow().connect();
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
    let discard: Error | undefined;
    const stopCancel = signal ? this.#cancelOnAbort(client, signal) : () => {};
    try {
      return await this.#transaction(client, mode, fn, limits, signal);
    } catch (err) {
      discard = await this.#restore(client, mode);
      if (signal?.aborted) throw cancelledError(this.name);
      throw toUserError(err, this.name, this.#errorLimits(limits)) ?? err;
    } finally {
      stopCancel();
      client.removeListener('error', onError);
      if (!discard && client.getTransactionStatus() !== 'I') {
        discard = new Error('connection left inside a transaction');
      }
      // With an error the pool destroys the connection instead of handing it out dirty.
      client.release(discard);
    }
  }

  async #transaction<R>(
    client: pg.PoolClient,
    mode: Mode,
    fn: (session: Session) => Promise<R>,
    limits: QueryLimits,
    signal?: AbortSignal,
  ): Promise<R> {
    if (mode === 'direct') {
      const timeouts = [String(wholeMs(limits.statementTimeoutMs)), String(wholeMs(limits.lockTimeoutMs))];
      await client.query(SET_SESSION_TIMEOUTS, timeouts);
    } else {
      await client.query(beginWithTimeouts(mode, limits));
    }
    const pid = this.host.registry.pidOf(this.serverKey, client) ?? (await this.#backendPid(client));
    const session = new PoolSession(client, pid, limits.rowCap);
    const result = await fn(signal ? stopsWhenAborted(session, signal, this.name) : session);
    if (signal?.aborted) throw cancelledError(this.name);
    if (mode === 'read') await client.query('ROLLBACK');
    else if (mode === 'write') await client.query('COMMIT');
    else await client.query(RESET_TIMEOUTS);
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
  async #restore(client: pg.PoolClient, mode: Mode): Promise<Error | undefined> {
    try {
      if (mode !== 'direct' || client.getTransactionStatus() !== 'I') await client.query('ROLLBACK');
      if (mode === 'direct') await client.query(RESET_TIMEOUTS);
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
  readonly #host: { registry: BackendRegistry; applicationName: string; log: Logger; closed: boolean };

  constructor(targets: Readonly<Record<string, ResolvedTarget>>, opts: TargetPoolsOptions = {}) {
    this.#targets = targets;
    this.#host = {
      registry: new BackendRegistry(),
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

  /** Per target: open, idle and waiting counts (zeros for a target never used). */
  stats(): Record<string, PoolStats> {
    const out: Record<string, PoolStats> = {};
    for (const name of Object.keys(this.#targets)) {
      out[name] = this.#dbs.get(name)?.stats() ?? { total: 0, idle: 0, waiting: 0 };
    }
    return out;
  }

  /** Ends every pool (waiting for checked-out connections to come back); the pools cannot be used afterwards. */
  async closeAll(): Promise<void> {
    this.#host.closed = true;
    await Promise.all([...this.#dbs.values()].map((db) => db.close()));
  }
}

/** What a statement stopped by a person's cancel answers. */
function cancelledError(target: string): UserError {
  return new UserError('cancelled', `the run on ${target} was cancelled: nothing more was sent`, {
    cancelled: true,
  });
}

/** A session that sends nothing more once the run was cancelled. */
function stopsWhenAborted(session: Session, signal: AbortSignal, target: string): Session {
  const check = () => {
    if (signal.aborted) throw cancelledError(target);
  };
  return {
    backendPid: session.backendPid,
    query: async (sql, params) => {
      check();
      return await session.query(sql, params);
    },
    execute: async (sql, params) => {
      check();
      return await session.execute(sql, params);
    },
    cursor: async (sql, params, cap) => {
      check();
      return await session.cursor(sql, params, cap);
    },
  };
}
