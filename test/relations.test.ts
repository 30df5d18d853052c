import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasRole, quoteIdent, resolveRelation } from '../src/engine/relations.js';
import { createDatabase } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';

let harness: OpHarness;

beforeAll(async () => {
  const db = await createDatabase(
    'relations',
    `CREATE TABLE users (id int primary key);
     CREATE SCHEMA billing; CREATE TABLE billing."Invoices" (id int);
     CREATE INDEX users_id_idx ON users (id);`,
  );
  harness = new OpHarness([testTarget('t', db.url)]);
});
afterAll(async () => harness.close());

const resolve = (typed: string, kinds: Parameters<typeof resolveRelation>[2] = ['r', 'p', 'm']) =>
  harness.pools.get('t').read((s) => resolveRelation(s, typed, kinds, '<table>'));

describe('resolveRelation', () => {
  it('finds tables by plain and qualified names and quotes them', async () => {
    expect(await resolve('users')).toMatchObject({
      schema: 'public',
      name: 'users',
      qualified: '"public"."users"',
    });
    expect(await resolve('billing."Invoices"')).toMatchObject({
      qualified: '"billing"."Invoices"',
      relkind: 'r',
    });
  });

  it('refuses unknown names with a suggestion and wrong kinds with what it is', async () => {
    await expect(resolve('user')).rejects.toThrow(
      /no table, partitioned table or materialized view matching user .*`users`/,
    );
    await expect(resolve('users_id_idx')).rejects.toThrow('public.users_id_idx is an index, not a table');
    expect((await resolve('users_id_idx', ['i'])).relkind).toBe('i');
  });

  it('treats SQL in a name as a name that does not exist', async () => {
    await expect(resolve('users; DROP TABLE users')).rejects.toThrow();
    expect((await resolve('users')).name).toBe('users');
  });

  it('quotes identifiers and checks roles', async () => {
    expect(quoteIdent('a"b')).toBe('"a""b"');
    expect(await harness.pools.get('t').read((s) => hasRole(s, 'pg_monitor'))).toBe(true); // superuser
  });
});
