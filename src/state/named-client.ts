// The state database's pg client: every parameterised statement (all of them constants in the store)
// is prepared by name on its connection, so PostgreSQL parses and plans it once, not on every command.
import pg from 'pg';
import { preparedStatementFailed, statementName } from '../engine/prepared.js';

type Callback = (err: Error | null, result?: pg.QueryResult) => void;

/**
 * A pg.Client that names `query(text, values)` calls (texts without values — BEGIN, migrations — stay
 * simple queries). When PostgreSQL refuses to reuse a plan because another replica's migration changed
 * a table (SQLSTATE 0A000), the statement is sent unnamed from then on, and a call outside a transaction
 * is retried at once unnamed: the refused execution did nothing.
 */
export class NamedStatementClient extends pg.Client {
  override query(...args: unknown[]): never {
    const [text, values, callback] = args;
    if (typeof text !== 'string' || !Array.isArray(values) || values.length === 0) {
      return (super.query as (...a: unknown[]) => never)(...args);
    }
    const name = statementName(this, text, true);
    const send = (config: pg.QueryConfig) => super.query(config) as Promise<pg.QueryResult>;
    const run = async (): Promise<pg.QueryResult> => {
      if (name === undefined) return await send({ text, values });
      try {
        return await send({ name, text, values });
      } catch (err) {
        preparedStatementFailed(this, text, err);
        const refused = (err as { code?: unknown }).code === '0A000';
        const idle = (this as unknown as { getTransactionStatus?: () => string }).getTransactionStatus?.();
        if (refused && idle === 'I') return await send({ text, values });
        throw err;
      }
    };
    const running = run();
    if (typeof callback === 'function') {
      running.then(
        (result) => (callback as Callback)(null, result),
        (err: Error) => (callback as Callback)(err),
      );
      return undefined as never;
    }
    return running as never;
  }
}
