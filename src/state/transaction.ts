// One transaction on one checked-out connection of a pool, shared by the state store, migrations, alerts
// and schedules.
import type pg from 'pg';

/**
 * BEGIN, `fn`, COMMIT; ROLLBACK when `fn` throws. A checked-out client has no pool listener: a connection
 * dropped between two statements would emit an unhandled 'error' and end the process. It is caught here,
 * and a client that broke is destroyed on release instead of going back to the pool.
 */
export async function inTransaction<R>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<R>): Promise<R> {
  const client = await pool.connect();
  let lost: Error | undefined;
  const onError = (err: Error): void => {
    lost = err;
  };
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    try {
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
        lost ??= rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
      });
      throw err;
    }
  } finally {
    client.off('error', onError);
    client.release(lost);
  }
}
