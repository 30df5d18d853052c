// Client-side deadlines and cancellation for one checked-out target connection, and the Session on it:
// a target that stops answering after login costs one connection and a clear answer, never a hang.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFromStdin } from 'pg-copy-streams';
import Cursor from 'pg-cursor';
import { formatDuration } from '../core/duration.js';
import { UserError } from '../core/errors.js';
import { FREE_ROWS, reserveRows, tryReserveRows } from '../core/result-budget.js';
import { OperationCancelledError } from './cancel.js';
import { FlightCursor } from './flight-cursor.js';
import type { FlightQuery, ReadFlights } from './one-flight.js';
import { preparedStatementFailed, statementName } from './prepared.js';
import type { QueryLimits, ResultField, Session } from './types.js';

/** Rows read per round trip by `cursor()`. */
const CURSOR_BATCH = 500;
/** How far past the server-side limit the client gives up: at least 2 s, else a tenth of the limit. */
const MIN_MARGIN_MS = 2000;

/**
 * The client-side deadline for a statement whose server-side limit is `serverMs`: a little later, so the
 * server's own timeout (a clear SQLSTATE) wins whenever the server still answers. 0 (no server limit)
 * means no client deadline either; TCP keepalive still notices a dead peer.
 */
export function clientDeadlineMs(serverMs: number): number | undefined {
  if (!Number.isFinite(serverMs) || serverMs <= 0) return undefined;
  return Math.round(serverMs + Math.max(MIN_MARGIN_MS, serverMs / 10));
}

/** Ends a connection now, whatever the peer does (no Terminate message waiting on a silent socket). */
export function destroyConnection(client: pg.ClientBase): void {
  // A Client's protocol connection; PoolClient's declared type (ClientBase) does not name it.
  const { connection } = client as { connection?: { stream?: { destroy(): void } } };
  try {
    connection?.stream?.destroy();
  } catch {
    // Already gone.
  }
}

export interface GuardOptions {
  target: string;
  /** Aborting it cancels the running statement and rejects with OperationCancelledError. */
  signal?: AbortSignal | undefined;
  /** Cancels a backend from another connection (best effort, bounded). */
  cancelBackend: (pid: number) => Promise<void>;
}

/**
 * Watches one connection: every step runs against a deadline and the caller's signal. When either fires,
 * the connection is marked broken (the pool must destroy it, never hand it out again), the backend is
 * cancelled from another connection, and the step rejects at once.
 */
export class ClientGuard {
  #broken: Error | undefined;
  pid: number | undefined;

  constructor(
    private readonly client: pg.ClientBase,
    private readonly options: GuardOptions,
  ) {}

  /** Why this connection must not go back to the pool, if it must not. */
  get broken(): Error | undefined {
    return this.#broken;
  }

  step<T>(work: () => Promise<T>, deadlineMs: number | undefined, what: string): Promise<T> {
    if (this.#broken) return Promise.reject(this.#broken);
    const { signal } = this.options;
    if (signal?.aborted) return Promise.reject(this.#cancel());
    const running = work();
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => {
        settle();
        reject(this.#cancel());
      };
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      if (deadlineMs !== undefined) {
        timer = setTimeout(() => {
          settle();
          reject(this.#unresponsive(deadlineMs, what));
        }, deadlineMs);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      running.then(
        (value) => {
          settle();
          resolve(value);
        },
        (err: unknown) => {
          settle();
          reject(err);
        },
      );
    });
  }

  #cancel(): Error {
    if (this.#broken) return this.#broken;
    const err = new OperationCancelledError(`the work on ${this.options.target}`);
    this.#broken = err;
    this.#stop();
    return err;
  }

  #unresponsive(deadlineMs: number, what: string): Error {
    if (this.#broken) return this.#broken;
    const err = new UserError(
      'target_unresponsive',
      `${this.options.target} stopped answering: no reply to ${what} within ${formatDuration(deadlineMs / 1000)}, ` +
        'so dbops dropped the connection. The server may be frozen, overloaded or cut off by the network; ' +
        `try /db health ${this.options.target} in a minute.`,
      { deadlineMs, what },
    );
    this.#broken = err;
    this.#stop();
    return err;
  }

  /** Cancels the backend from another connection (the socket may be dead), then drops this one. */
  #stop(): void {
    const pid = this.pid;
    destroyConnection(this.client);
    if (pid !== undefined) this.options.cancelBackend(pid).catch(() => {});
  }
}

function extended(sql: string, params: readonly unknown[] | undefined, name: string | undefined) {
  // The extended protocol refuses a second statement even when there are no parameters.
  const config: pg.QueryConfig & { queryMode: 'extended' } = {
    text: sql,
    values: [...(params ?? [])],
    queryMode: 'extended',
    ...(name !== undefined ? { name } : {}),
  };
  return config;
}

/** Runs a flight (one-flight.ts) on the client: resolves with the statement's result. */
function fly(client: pg.PoolClient, flight: FlightQuery): Promise<pg.QueryResult> {
  return new Promise((resolve, reject) => {
    flight.callback = (err, result) => (err ? reject(err) : resolve(result as pg.QueryResult));
    client.query(flight as unknown as pg.Submittable);
  });
}

/** A checked-out connection as an operation sees it: bind parameters only, one statement per query. */
export class GuardedSession implements Session {
  constructor(
    private readonly client: pg.PoolClient,
    private readonly guard: ClientGuard,
    readonly backendPid: number,
    /** The row cap of a cursor, and the command's result scope where a large read holds its rows. */
    private readonly limits: Pick<QueryLimits, 'rowCap' | 'resultScope'>,
    private readonly deadlineMs: number | undefined,
    /** Whether statements may be prepared by name on this target (`prepared_statements`). */
    private readonly prepare = true,
    /** A read's transactions: each statement in one round trip with its BEGIN READ ONLY and ROLLBACK. */
    private readonly flights?: ReadFlights,
  ) {}

  /** Sends one statement, prepared by name when it may be (parsed and planned once per connection). */
  async #send(sql: string, params: readonly unknown[] | undefined, what: string): Promise<pg.QueryResult> {
    const name = statementName(this.client, sql, this.prepare);
    const flight = this.flights?.query(sql, params ?? [], name);
    try {
      return await this.guard.step(
        () => (flight ? fly(this.client, flight) : this.client.query(extended(sql, params, name))),
        this.deadlineMs,
        what,
      );
    } catch (err) {
      if (name !== undefined) preparedStatementFailed(this.client, sql, err);
      throw err;
    }
  }

  /**
   * Before a COPY in a read: it lives across several messages, so the read's transaction is opened
   * (BEGIN READ ONLY with the timeouts) and kept until the read ends.
   */
  async #keepTransaction(what: string): Promise<void> {
    const flights = this.flights;
    if (!flights || flights.open) return;
    flights.opening();
    await this.guard.step(() => this.client.query(flights.begin()), this.deadlineMs, `BEGIN before ${what}`);
  }

  /** A cursor: inside the read's open transaction, or in one of its own that its Close ends (a read). */
  #cursor<T>(sql: string, params: readonly unknown[]): Cursor<T> {
    if (!this.flights || this.flights.open) return new Cursor<T>(sql, [...params]);
    const { before, end } = this.flights.steps();
    return new FlightCursor(sql, params, before, end) as unknown as Cursor<T>;
  }

  async query<T extends object = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<T[]> {
    const result = await this.#send(sql, params, 'a query');
    return result.rows as T[];
  }

  async execute(sql: string, params?: readonly unknown[]): Promise<{ rowCount: number }> {
    const result = await this.#send(sql, params, 'a statement');
    return { rowCount: result.rowCount ?? 0 };
  }

  async copyFrom(sql: string, data: Iterable<Uint8Array>): Promise<{ rowCount: number }> {
    if (!/^\s*COPY\s[\s\S]*\sFROM\s+STDIN\b/i.test(sql))
      throw new Error('copyFrom takes a COPY … FROM STDIN statement');
    await this.#keepTransaction('a COPY');
    const stream = this.client.query(copyFromStdin(sql));
    await this.guard.step(
      () => pipeline(Readable.from(data, { objectMode: false }), stream),
      this.deadlineMs,
      'a COPY',
    );
    return { rowCount: stream.rowCount };
  }

  async cursor<T extends object = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
    cap: number = this.limits.rowCap,
  ): Promise<{ rows: T[]; truncated: boolean; fields: ResultField[] }> {
    if (!Number.isSafeInteger(cap) || cap < 0)
      throw new RangeError(`cursor cap must be a whole number, got ${cap}`);
    let cursor = this.client.query(this.#cursor<T>(sql, params ?? []));
    let rows: T[] = [];
    let fields: ResultField[] = [];
    // The callback form of read() also hands over the result's description (names, source columns).
    const read = (want: number) =>
      new Promise<T[]>((resolve, reject) => {
        cursor.read(want, (err, got, result) => {
          if (err) return reject(err);
          // A cursor already at its end calls back without a result: the fields read before stay.
          const described = (result as pg.QueryResult | undefined)?.fields;
          if (described) {
            fields = described.map((f) => ({ name: f.name, tableID: f.tableID, columnID: f.columnID }));
          }
          resolve(got);
        });
      });
    const batch = Math.min(cap + 1, CURSOR_BATCH);
    // Past FREE_ROWS a result asks the process-wide budget once for the rest of its cap (src/core/result-budget.ts).
    let reserved = cap + 1 <= FREE_ROWS;
    let release: (() => void) | undefined;
    try {
      // One row past the cap tells whether more existed, without reading them.
      while (rows.length <= cap) {
        if (!reserved && rows.length >= FREE_ROWS) {
          const now = tryReserveRows(cap + 1 - rows.length, this.limits.resultScope);
          if (now) release = now.release;
          else {
            // No room now. Waiting with the cursor open would keep its statement running on the server,
            // where statement_timeout counts on while a portal is suspended: the read would be cancelled
            // for waiting its turn. So the cursor closes, the wait holds no statement, and the read starts
            // again from its first row once the room is granted (one statement, one snapshot).
            await this.guard.step(() => cursor.close(), this.deadlineMs, 'closing a cursor');
            rows = [];
            release = await reserveRows(cap + 1 - FREE_ROWS, this.limits.resultScope);
            cursor = this.client.query(this.#cursor<T>(sql, params ?? []));
          }
          reserved = true;
        }
        const want = Math.min(batch, cap + 1 - rows.length, reserved ? cap + 1 : FREE_ROWS - rows.length);
        // A failed read leaves the cursor already closed by the server; the error propagates as is.
        const got = await this.guard.step(() => read(want), this.deadlineMs, 'a cursor read');
        rows.push(...got);
        if (got.length < want) break;
      }
    } finally {
      // Outside a command's scope the rows are the caller's once returned: the reservation ends here.
      release?.();
    }
    await this.guard.step(() => cursor.close(), this.deadlineMs, 'closing a cursor');
    const truncated = rows.length > cap;
    return { rows: truncated ? rows.slice(0, cap) : rows, truncated, fields };
  }
}
