// The state database's client prepares parameterised statements by name, once per connection, and
// survives another replica's migration changing a table under a prepared `RETURNING *` or `SELECT *`.
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NamedStatementClient } from '../src/state/named-client.js';
import { createDatabase } from './helpers/db.js';

/** Used as the pool uses it: through pg.Client's own signatures. */
let client: pg.Client;

beforeAll(async () => {
  const db = await createDatabase('statenamed', 'CREATE TABLE rows_ (id int PRIMARY KEY, v text)');
  client = new NamedStatementClient({ connectionString: db.url });
  await client.connect();
});

afterAll(async () => {
  await client?.end();
});

async function preparedTexts(): Promise<string[]> {
  const { rows } = await client.query<{ statement: string }>(
    'SELECT statement FROM pg_prepared_statements WHERE name LIKE $1',
    ['dbops\\_%'],
  );
  return rows.map((r) => r.statement);
}

describe('NamedStatementClient', () => {
  it('prepares statements with values once, leaves the others simple', async () => {
    const insert = 'INSERT INTO rows_ (id, v) VALUES ($1, $2) RETURNING *';
    for (let i = 1; i <= 3; i++) {
      const { rows } = await client.query(insert, [i, `v${i}`]);
      expect(rows).toEqual([{ id: i, v: `v${i}` }]);
    }
    // The callback form (what pg.Pool uses) too.
    const viaCallback = await new Promise<unknown>((resolve, reject) => {
      client.query('SELECT v FROM rows_ WHERE id = $1', [2], (err: Error | null, result: pg.QueryResult) =>
        err ? reject(err) : resolve(result?.rows),
      );
    });
    expect(viaCallback).toEqual([{ v: 'v2' }]);
    await client.query('SELECT count(*) FROM rows_');
    const texts = await preparedTexts();
    expect(texts.filter((t) => t === insert)).toHaveLength(1);
    expect(texts).toContain('SELECT v FROM rows_ WHERE id = $1');
    expect(texts).not.toContain('SELECT count(*) FROM rows_');
  });

  it('after a migration changes the table, answers with the new shape (retried unnamed)', async () => {
    const select = 'SELECT * FROM rows_ WHERE id = $1';
    expect((await client.query(select, [1])).rows).toEqual([{ id: 1, v: 'v1' }]);
    await client.query("ALTER TABLE rows_ ADD COLUMN extra text DEFAULT 'x'");
    expect((await client.query(select, [1])).rows).toEqual([{ id: 1, v: 'v1', extra: 'x' }]);
    expect((await client.query(select, [2])).rows).toEqual([{ id: 2, v: 'v2', extra: 'x' }]);
    // Inside a transaction the refused statement cannot be retried: it fails once, the caller rolls back.
    const other = 'SELECT * FROM rows_ WHERE v = $1';
    await client.query(other, ['v1']);
    await client.query('ALTER TABLE rows_ DROP COLUMN extra');
    await client.query('BEGIN');
    await expect(client.query(other, ['v1'])).rejects.toThrow(/cached plan/);
    await client.query('ROLLBACK');
    expect((await client.query(other, ['v1'])).rows).toEqual([{ id: 1, v: 'v1' }]);
  });
});
