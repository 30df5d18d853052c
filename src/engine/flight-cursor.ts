// A read's cursor in its own read-only transaction without round trips of its own for it: BEGIN READ ONLY
// and the timeouts go out with the cursor's Parse / Bind / Describe, and ROLLBACK with its Close and Sync.
import Cursor from 'pg-cursor';
import { type Connection, type FlightStep, forgetSkippedParses, sendStep } from './one-flight.js';

/** The parts of pg-cursor's Cursor (index.js) a flight builds on; its typings declare only the public API. */
interface CursorInternals {
  state: string;
  connection: (Connection & { close(msg: { type: 'P'; name: string }): void }) | null;
  _portal: string | null;
  submit(connection: Connection): void;
  _closePortal(): void;
  handleDataRow(msg: unknown): void;
  handleCommandComplete(msg: unknown): void;
  handleEmptyQuery(): void;
  handleError(msg: unknown): void;
}
const CursorBase = Cursor as unknown as new (
  text: string,
  values: unknown[],
) => CursorInternals & Omit<Cursor<unknown>, 'submit'>;

/**
 * A pg-cursor Cursor whose portal lives in a transaction opened by `before` (BEGIN READ ONLY, the
 * timeouts) in the cursor's first write and ended by `end` (ROLLBACK) in its last: the answers of those
 * steps are passed over, the rows are the cursor's alone. An error anywhere leaves the transaction
 * aborted (the read rolls it back, as after any failed read).
 */
export class FlightCursor extends CursorBase {
  readonly #steps: FlightStep[];
  readonly #text: string;
  /** Steps of `before` answered so far; past them come the cursor's own answers. */
  #at = 0;
  #sending = false;
  #closing = false;
  readonly #parsing = new Set<number>();

  constructor(text: string, values: readonly unknown[], before: readonly FlightStep[], end: FlightStep) {
    super(text, [...values]);
    this.#text = text;
    // steps: before…, the cursor's own statement (unnamed, never sent by sendStep), end.
    this.#steps = [...before, { text, name: undefined, values }, end];
    // As in FlightQuery: pg's client reads `name` / `text` of the active query on ParseComplete and errors.
    const current = (): { name: string | undefined; text: string } => {
      if (this.#sending) return { name: undefined, text: this.#text };
      if (this.#closing) return this.#steps[this.#steps.length - 1] ?? end;
      return this.#steps[Math.min(this.#at, before.length)] ?? end;
    };
    Object.defineProperty(this, 'name', { get: () => current().name, configurable: true });
    Object.defineProperty(this, 'text', { get: () => current().text, configurable: true });
  }

  get #before(): number {
    return this.#steps.length - 2;
  }

  override submit(connection: Connection): void {
    connection.stream.cork?.();
    try {
      for (let i = 0; i < this.#before; i++) {
        const step = this.#steps[i];
        if (step && sendStep(connection, step)) this.#parsing.add(i);
      }
      this.#sending = true;
      super.submit(connection);
    } finally {
      this.#sending = false;
      connection.stream.uncork?.();
    }
  }

  override _closePortal(): void {
    const connection = this.connection;
    if (this.state === 'done' || !connection) return;
    if (this.state === 'error') {
      // The cursor already sent its Sync after the error; the read rolls back the aborted transaction.
      super._closePortal();
      return;
    }
    this.#end(connection, () => connection.close({ type: 'P', name: this._portal ?? '' }));
    this.state = 'done';
  }

  /** An empty statement: pg-cursor would only Sync; the transaction ends with it. */
  override handleEmptyQuery(): void {
    if (this.connection) this.#end(this.connection, () => {});
  }

  /** `first` (closing the portal), then ROLLBACK and Sync, in one write. */
  #end(connection: Connection, first: () => void): void {
    connection.stream.cork?.();
    try {
      first();
      this.#closing = true;
      const end = this.#steps[this.#steps.length - 1];
      if (end && sendStep(connection, end)) this.#parsing.add(this.#steps.length - 1);
      connection.sync();
    } finally {
      connection.stream.uncork?.();
    }
  }

  override handleDataRow(msg: unknown): void {
    if (this.#at >= this.#before && !this.#closing) super.handleDataRow(msg);
  }

  override handleCommandComplete(msg: unknown): void {
    if (this.#closing) return;
    if (this.#at < this.#before) {
      this.#at++;
      return;
    }
    super.handleCommandComplete(msg);
  }

  override handleError(msg: unknown): void {
    const connection = this.connection;
    if (connection) forgetSkippedParses(connection, this.#steps, this.#parsing, this.#at);
    super.handleError(msg);
  }
}
