// inTransaction: a connection dropped between two statements of a transaction is an error of that call,
// never an unhandled 'error' event that ends the process; the broken client leaves the pool.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inTransaction } from '../src/state/transaction.js';
import { adminQuery, createDatabase } from './helpers/db.js';

let db: { name: string; url: string };
let pool: pg.Pool;

beforeAll(async () => {
  db = await createDatabase('txn');
  pool = new pg.Pool({ connectionString: db.url, max: 1 });
  pool.on('error', () => {});
});

afterAll(async () => {
  await pool?.end();
});

describe('inTransaction', () => {
  it('turns a connection killed between statements into a failed call, and the pool recovers', async () => {
    const failed = await inTransaction(pool, async (client) => {
      const [{ pid }] = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows as [
        { pid: number },
      ];
      await adminQuery('SELECT pg_terminate_backend($1)', [pid], db.name);
      // No statement runs while the server closes the connection: the client emits 'error' with none active.
      await new Promise((resolve) => setTimeout(resolve, 300));
      return 'committed';
    }).catch((err: unknown) => err);
    expect(failed).toBeInstanceOf(Error);
    // The broken client was destroyed, not handed out again.
    expect(await inTransaction(pool, async (client) => (await client.query('SELECT 1 AS one')).rows)).toEqual(
      [{ one: 1 }],
    );
  });

  it('commits what the function did, and rolls back when it throws', async () => {
    await adminQuery('CREATE TABLE t (n int)', [], db.name);
    await inTransaction(pool, (c) => c.query('INSERT INTO t VALUES (1)'));
    await inTransaction(pool, async (c) => {
      await c.query('INSERT INTO t VALUES (2)');
      throw new Error('no');
    }).catch(() => {});
    expect(await adminQuery('SELECT n FROM t', [], db.name)).toEqual([{ n: 1 }]);
  });
});
