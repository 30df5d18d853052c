// Names for the statements operations send again and again, so each target connection parses and plans
// them once (a named prepared statement) instead of on every call; bounded, and dropped when PostgreSQL
// says a prepared plan no longer fits (the table under a `SELECT *` changed).
import { createHash } from 'node:crypto';

/** Prepared statements one connection keeps at most; later statements go unnamed. */
export const MAX_PREPARED_PER_CONNECTION = 100;
/** Longer statements are sent unnamed (ad-hoc SQL can be up to 100 KiB). */
const MAX_PREPARED_TEXT = 16 * 1024;

const perConnection = new WeakMap<object, Set<string>>();
/** Statements PostgreSQL refused to reuse: sent unnamed by this process from then on. */
const unpreparable = new Set<string>();
/** Connections holding a prepared statement that cannot run again: the pool must drop them. */
const stale = new WeakSet<object>();

/** Names of texts already hashed (the same few statements again and again); emptied when it grows past this. */
const NAMES_KEPT = 200;
const names = new Map<string, string>();

function nameOf(text: string): string {
  let name = names.get(text);
  if (name === undefined) {
    name = `dbops_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    if (names.size >= NAMES_KEPT) names.clear();
    names.set(text, name);
  }
  return name;
}

/**
 * The name to prepare `text` under on `connection`, or undefined to send it unnamed: preparing is off
 * for the target (a pooler in transaction mode), the text is too long or refused before, or the
 * connection already holds its share of statements.
 */
export function statementName(connection: object, text: string, enabled: boolean): string | undefined {
  if (!enabled || text.length > MAX_PREPARED_TEXT || unpreparable.has(text)) return undefined;
  const name = nameOf(text);
  let names = perConnection.get(connection);
  if (!names) {
    names = new Set();
    perConnection.set(connection, names);
  }
  if (names.has(name)) return name;
  if (names.size >= MAX_PREPARED_PER_CONNECTION) return undefined;
  names.add(name);
  return name;
}

/**
 * After a named statement failed: when PostgreSQL will not reuse its plan (SQLSTATE 0A000, "cached plan
 * must not change result type"), the statement is never named again and this connection, which keeps
 * the stale statement, is marked to be dropped. Other errors change nothing.
 */
export function preparedStatementFailed(connection: object, text: string, err: unknown): void {
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : '';
  if (code !== '0A000' || !/cached plan/i.test(message)) return;
  unpreparable.add(text);
  stale.add(connection);
}

/** Whether the connection holds a prepared statement that cannot run again. */
export function holdsStaleStatement(connection: object): boolean {
  return stale.has(connection);
}
