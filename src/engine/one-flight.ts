// One statement of a read in one write and one round trip: BEGIN READ ONLY, the transaction's timeouts,
// the statement and ROLLBACK go out together before one Sync (extended protocol), and only the
// statement's own answers reach its result. Statements that need a transaction across statements open
// one that stays (ROLLBACK once at the end of the read).
/// <reference path="./pg-lib-utils.d.ts" />
import pg from 'pg';
import { prepareValue } from 'pg/lib/utils.js';
import { statementName } from './prepared.js';
import { beginWithTimeouts, wholeMs } from './timeouts-sql.js';
import type { QueryLimits } from './types.js';

/** One statement of a flight: its text, its prepared name (or none) and its bind values. */
export interface FlightStep {
  text: string;
  name: string | undefined;
  values: readonly unknown[];
}

/** What of pg's protocol connection a flight uses (pg-protocol messages; pg's prepared-name bookkeeping). */
export interface Connection {
  stream: { cork?: () => void; uncork?: () => void };
  parse(msg: { text: string; name?: string; types?: number[] }): void;
  bind(msg: { portal?: string; statement?: string; values?: unknown[] }): void;
  execute(msg: { portal?: string; rows?: number }): void;
  sync(): void;
  parsedStatements: Record<string, string | undefined>;
  submittedNamedStatements: Record<string, string | undefined>;
  once(event: 'readyForQuery' | 'end', listener: () => void): unknown;
  removeListener(event: 'readyForQuery' | 'end', listener: () => void): unknown;
}

/** The parts of pg.Query (lib/query.js) a flight builds on; its typings declare only `submit`. */
interface QueryInternals {
  portal: string;
  callback: ((err: Error | null, result?: pg.QueryResult) => void) | undefined;
  prepare(connection: Connection): void;
  _getRows(connection: Connection, rows: number | undefined): void;
  handleRowDescription(msg: unknown): void;
  handleDataRow(msg: unknown): void;
  handleCommandComplete(msg: unknown, connection: Connection): void;
  handleEmptyQuery(connection: Connection): void;
  handleError(err: Error, connection: Connection): void;
}
const QueryBase = pg.Query as unknown as new (
  config: pg.QueryConfig & { queryMode: 'extended' },
) => QueryInternals;

/**
 * A pg.Query that sends `before` steps, itself (Parse, Bind, Describe, Execute, as pg.Query does) and
 * `after` steps, then one Sync, all inside one cork (one writev). The answers of the other steps
 * (BindComplete, a DataRow, CommandComplete) are passed over: the result is the statement's alone, with
 * pg's type parsers, fields and rowCount. An error in any step rejects with PostgreSQL's error; the steps
 * after it are skipped by the server until the Sync.
 */
export class FlightQuery extends QueryBase {
  readonly #steps: FlightStep[];
  readonly #main: number;
  /** The step whose answers are arriving (steps end with CommandComplete or, the statement, EmptyQuery). */
  #at = 0;
  #sending = false;
  /** Named steps whose Parse went out in this flight, by index. */
  readonly #parsing = new Set<number>();

  constructor(main: FlightStep, before: readonly FlightStep[], after: readonly FlightStep[]) {
    super({
      text: main.text,
      // Encoded now, so a value pg cannot encode throws before anything is sent (pg.Query would Sync
      // after a BEGIN already on its way); encoded values pass through pg's encoding unchanged.
      values: main.values.map((value) => prepareValue(value)),
      queryMode: 'extended',
      ...(main.name !== undefined ? { name: main.name } : {}),
    });
    this.#steps = [...before, main, ...after];
    this.#main = before.length;
    // pg's client reads `name` and `text` of the active query when a ParseComplete or an ErrorResponse
    // arrives, to keep track of the named statements the connection holds: they must be the answered step's.
    const current = () => this.#steps[this.#sending ? this.#main : this.#at];
    Object.defineProperty(this, 'name', { get: () => current()?.name, configurable: true });
    Object.defineProperty(this, 'text', { get: () => current()?.text, configurable: true });
  }

  submit(connection: Connection): Error | null {
    connection.stream.cork?.();
    try {
      this.#steps.slice(0, this.#main).forEach((step, i) => {
        this.#send(connection, step, i);
      });
      this.#sending = true;
      const main = this.#steps[this.#main];
      if (main?.name !== undefined && !known(connection, main.name)) this.#parsing.add(this.#main);
      // pg.Query's own Parse / Bind / Describe, then _getRows (below): Execute, the after steps, Sync.
      this.prepare(connection);
    } finally {
      this.#sending = false;
      connection.stream.uncork?.();
    }
    return null;
  }

  override _getRows(connection: Connection, rows: number | undefined): void {
    connection.execute({ portal: this.portal, rows: rows ?? 0 });
    this.#steps.slice(this.#main + 1).forEach((step, i) => {
      this.#send(connection, step, this.#main + 1 + i);
    });
    connection.sync();
  }

  #send(connection: Connection, step: FlightStep, index: number): void {
    if (sendStep(connection, step)) this.#parsing.add(index);
  }

  override handleRowDescription(msg: unknown): void {
    if (this.#at === this.#main) super.handleRowDescription(msg);
  }

  override handleDataRow(msg: unknown): void {
    if (this.#at === this.#main) super.handleDataRow(msg);
  }

  override handleCommandComplete(msg: unknown, connection: Connection): void {
    if (this.#at === this.#main) super.handleCommandComplete(msg, connection);
    this.#at++;
  }

  override handleEmptyQuery(connection: Connection): void {
    if (this.#at === this.#main) super.handleEmptyQuery(connection);
    this.#at++;
  }

  override handleError(err: Error, connection: Connection): void {
    forgetSkippedParses(connection, this.#steps, this.#parsing, this.#at);
    this.#at = this.#steps.length;
    if (!(err instanceof pg.DatabaseError)) {
      super.handleError(err, connection);
      return;
    }
    // PostgreSQL's error comes before the Sync's ReadyForQuery, which tells whether the transaction is
    // still open (a failed BEGIN READ ONLY … ROLLBACK leaves it aborted): the caller, who cleans up,
    // learns of the error once pg knows that too, or once the connection ended (a FATAL error).
    const settle = () => {
      connection.removeListener('readyForQuery', settle);
      connection.removeListener('end', settle);
      super.handleError(err, connection);
    };
    connection.once('readyForQuery', settle);
    connection.once('end', settle);
  }
}

/**
 * Sends Parse (unless the connection holds the named statement), Bind and Execute of `step` on the unnamed
 * portal; returns whether a named statement was parsed (pg's record says so until its answer comes).
 */
export function sendStep(connection: Connection, step: FlightStep): boolean {
  let parsed = false;
  if (step.name === undefined || !known(connection, step.name)) {
    connection.parse({ text: step.text, name: step.name ?? '', types: [] });
    if (step.name !== undefined) {
      connection.submittedNamedStatements[step.name] = step.text;
      parsed = true;
    }
  }
  connection.bind({ portal: '', statement: step.name ?? '', values: [...step.values] });
  connection.execute({ portal: '', rows: 0 });
  return parsed;
}

/**
 * After an error answering step `at`: the server skipped every later step up to the Sync, so a Parse
 * among them (indexes in `parsing`) never happened and pg must not count its statement as submitted.
 */
export function forgetSkippedParses(
  connection: Connection,
  steps: readonly FlightStep[],
  parsing: ReadonlySet<number>,
  at: number,
): void {
  for (const index of parsing) {
    const name = steps[index]?.name;
    if (index > at && name !== undefined && connection.parsedStatements[name] === undefined) {
      delete connection.submittedNamedStatements[name];
    }
  }
}

function known(connection: Connection, name: string): boolean {
  return (
    connection.parsedStatements[name] !== undefined || connection.submittedNamedStatements[name] !== undefined
  );
}

export const BEGIN_READ_ONLY = 'BEGIN READ ONLY';
/** The transaction's timeouts as bind parameters (text, fixed), so one prepared statement serves them all. */
export const LOCAL_TIMEOUTS =
  "SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $2, true)";
export const ROLLBACK = 'ROLLBACK';

/*
 * Statements that only make sense in a transaction that outlives them: a savepoint, a transaction-local
 * setting (SET LOCAL, set_config(…, true)), a prepared statement or cursor declared in SQL, a
 * transaction-level advisory lock. From such a statement on, the read keeps one transaction.
 */
const NEEDS_TRANSACTION =
  /^\s*(?:savepoint|set\s+local|prepare|declare)\b|\bset_config\s*\(|\bpg_(?:try_)?advisory_xact_lock(?:_shared)?\s*\(/i;

/** Whether `sql` needs the read to keep one transaction open after it (see NEEDS_TRANSACTION). */
export function needsTransaction(sql: string): boolean {
  return NEEDS_TRANSACTION.test(sql);
}

/**
 * The read-only transactions of one read session on one connection: each statement (and each cursor,
 * flight-cursor.ts) in its own BEGIN READ ONLY … ROLLBACK sent with it, until a statement or a COPY needs
 * one transaction across statements; from then on one stays open and `open` says the read must end it.
 */
export class ReadFlights {
  #open = false;
  readonly #timeouts: string[];

  constructor(
    private readonly connection: object,
    private readonly limits: QueryLimits,
    private readonly prepare: boolean,
  ) {
    this.#timeouts = [String(wholeMs(limits.statementTimeoutMs)), String(wholeMs(limits.lockTimeoutMs))];
  }

  /** BEGIN READ ONLY with the timeouts, one simple-protocol round trip (before a COPY). */
  begin(): string {
    return beginWithTimeouts('read', this.limits);
  }

  /** Whether an explicit transaction is open (or being opened): the read ends it with ROLLBACK. */
  get open(): boolean {
    return this.#open;
  }

  /** Marks the transaction open: the caller is about to BEGIN it another way (before a COPY). */
  opening(): void {
    this.#open = true;
  }

  #step(text: string, values: readonly unknown[] = []): FlightStep {
    return { text, name: statementName(this.connection, text, this.prepare), values };
  }

  /** The steps that open a statement's transaction (BEGIN READ ONLY, the timeouts) and the one that ends it. */
  steps(): { before: FlightStep[]; end: FlightStep } {
    return {
      before: [this.#step(BEGIN_READ_ONLY), this.#step(LOCAL_TIMEOUTS, this.#timeouts)],
      end: this.#step(ROLLBACK),
    };
  }

  /**
   * The query that sends `sql` (prepared as `name`, or unnamed): inside the open transaction as it is;
   * otherwise after BEGIN READ ONLY and the timeouts, followed by ROLLBACK unless it opens the transaction.
   */
  query(sql: string, params: readonly unknown[], name: string | undefined): FlightQuery | undefined {
    if (this.#open) return undefined;
    const { before, end } = this.steps();
    const main = { text: sql, name, values: params };
    if (needsTransaction(sql)) {
      this.#open = true;
      return new FlightQuery(main, before, []);
    }
    return new FlightQuery(main, before, [end]);
  }
}
