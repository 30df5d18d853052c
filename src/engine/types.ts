// What an operation may do with a target database; implemented by src/engine/target-db.ts.
import type { ResultScope } from '../core/types.js';

/** Effective limits for one query or transaction. */
export interface QueryLimits {
  statementTimeoutMs: number;
  lockTimeoutMs: number;
  /** Most rows `cursor()` returns before it stops reading and reports truncation. */
  rowCap: number;
  /** The command's result scope: a large cursor read holds its rows there until the answer is delivered. */
  resultScope?: ResultScope;
}

/** A result column and, when it is a plain column of a table or view, where it comes from (else 0, 0). */
export interface ResultField {
  name: string;
  /** pg_class oid of the relation the value comes straight from. */
  tableID: number;
  /** Its attnum in that relation. */
  columnID: number;
}

/**
 * A connection checked out for one unit of work. In a write, every statement runs in one transaction; in
 * a read, each statement runs in its own read-only transaction with the timeouts, sent with it in one
 * round trip, until a cursor, a COPY or a statement that needs a transaction across statements
 * (a savepoint, set_config, SET LOCAL, PREPARE, DECLARE, an xact advisory lock: one-flight.ts) opens one
 * that lasts to the end of the read.
 */
export interface Session {
  /** A small query whose whole result is wanted (catalog checks, single values). Bind parameters only. */
  query<T extends object = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /**
   * Streams a query through a server-side cursor and keeps at most `cap` rows (default: the row cap),
   * so a huge table costs no memory. `truncated` says more rows existed; `fields` are the result's columns
   * as the server described them (empty only when no row was read).
   */
  cursor<T extends object = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
    cap?: number,
  ): Promise<{ rows: T[]; truncated: boolean; fields?: ResultField[] }>;
  /** A data-changing statement (UPDATE, DELETE, …) whose affected row count matters. Bind parameters only. */
  execute(sql: string, params?: readonly unknown[]): Promise<{ rowCount: number }>;
  /**
   * `COPY … FROM STDIN` fed with `data` (the exact bytes, in chunks); resolves with the rows copied. The
   * statement text must come from the catalog (quoted identifiers), never from what a person typed.
   */
  copyFrom(sql: string, data: Iterable<Uint8Array>): Promise<{ rowCount: number }>;
  /** The backend pid of this session. */
  readonly backendPid: number;
}

/**
 * Every unit of work has client-side deadlines as well as the server's: getting a connection (login and
 * first query) within connect_timeout plus a margin, and each statement, cursor read and COMMIT within
 * statement_timeout plus a margin (clientDeadlineMs in guard.ts). A connection that misses one is
 * destroyed, never returned to the pool, and the call rejects with UserError `target_unresponsive`.
 *
 * `signal` (optional, e.g. from OperationContext): when it aborts, the running statement's backend is
 * cancelled with pg_cancel_backend from another connection, the connection is dropped, and the call
 * rejects at once with an OperationCancelledError (code `cancelled`, see cancel.ts; `isCancelled(err)`).
 * An abort before a connection is checked out rejects the same way without touching the target.
 */
export interface TargetDb {
  readonly name: string;
  // `signal`, when given and aborted (a person cancelled the run): the statement under way is cancelled on
  // the server (pg_cancel_backend of the session's backend), its transaction rolls back, and no further
  // statement is sent.
  /**
   * Runs `fn` read-only: each statement inside `BEGIN READ ONLY` with `statement_timeout` and `lock_timeout`
   * set locally, always rolled back (see Session for when one transaction spans statements).
   */
  read<R>(
    fn: (session: Session) => Promise<R>,
    limits?: Partial<QueryLimits>,
    signal?: AbortSignal,
  ): Promise<R>;
  /** Runs `fn` inside a read-write transaction with the timeouts set locally; commits when `fn` resolves. */
  write<R>(
    fn: (session: Session) => Promise<R>,
    limits?: Partial<QueryLimits>,
    signal?: AbortSignal,
  ): Promise<R>;
  /**
   * Runs `fn` outside any transaction block (VACUUM, REINDEX CONCURRENTLY) with session-level timeouts
   * that are reset before the connection returns to the pool.
   */
  direct<R>(
    fn: (session: Session) => Promise<R>,
    limits?: Partial<QueryLimits>,
    signal?: AbortSignal,
  ): Promise<R>;
  /** Backend pids of every connection dbops currently holds to this target's server. */
  ownPids(): number[];
  /** `server_version_num` of the target (cached after the first call). */
  serverVersion(): Promise<number>;
  /**
   * Grows each time the pool reconnects: it opens a connection after having none, or loses one to an
   * error. Caches of what the target holds (its schema) read again when it changes.
   */
  generation?(): number;
  /** The pool's own handle when this one wraps it (e.g. with an operation's limits); caches key on it. */
  readonly base?: TargetDb;
}
