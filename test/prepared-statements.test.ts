// Operations' statements are prepared by name on each target connection (parsed and planned once),
// unless the target says `prepared_statements: false`; a plan PostgreSQL will not reuse costs one error
// and that connection, never a connection that fails forever.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../src/config/load.js';
import type { Limits, ResolvedTarget } from '../src/config/schema.js';
import { ConfigError } from '../src/core/errors.js';
import { MAX_PREPARED_PER_CONNECTION } from '../src/engine/prepared.js';
import { TargetPools } from '../src/engine/target-db.js';
import type { Session } from '../src/engine/types.js';
import { createDatabase } from './helpers/db.js';

const LIMITS: Limits = {
  statement_timeout: 5,
  lock_timeout: 1,
  row_cap: 200,
  pool_max: 1,
  pool_idle: 30,
  connect_timeout: 2,
};

let url: string;
const pools: TargetPools[] = [];

beforeAll(async () => {
  const db = await createDatabase(
    'prepared',
    'CREATE TABLE things (id int PRIMARY KEY, name text); INSERT INTO things VALUES (1, $$one$$), (2, $$two$$)',
  );
  url = db.url;
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.closeAll()));
});

/** One pool of a single connection, so every call below uses the same backend. */
function pool(extra: Partial<ResolvedTarget> = {}): ReturnType<TargetPools['get']> {
  const target: ResolvedTarget = { name: 't', url, environment: 'test', packs: [], limits: LIMITS, ...extra };
  const created = new TargetPools({ t: target });
  pools.push(created);
  return created.get('t');
}

/** The dbops statements prepared on this session's connection, by their text. */
async function prepared(session: Session): Promise<string[]> {
  // Where statements are prepared, this one is too: the checks look for the others by their text.
  const rows = await session.query<{ statement: string }>(
    "SELECT statement FROM pg_prepared_statements WHERE name LIKE 'dbops\\_%' ORDER BY prepare_time",
  );
  return rows.map((r) => r.statement);
}

const SQL = 'SELECT name FROM things WHERE id = $1';

describe('prepared statements on targets', () => {
  it('prepares each statement once per connection and reuses it', async () => {
    const db = pool();
    for (const id of [1, 2, 1]) {
      const rows = await db.read((s) => s.query<{ name: string }>(SQL, [id]));
      expect(rows).toEqual([{ name: id === 1 ? 'one' : 'two' }]);
    }
    const names = await db.read(prepared);
    // Exactly one prepared copy of the statement, whatever the number of calls.
    expect(names.filter((s) => s === SQL)).toHaveLength(1);
    // Writes (execute) too, and the results still come back right.
    const changed = await db.write((s) => s.execute('UPDATE things SET name = $1 WHERE id = $2', ['uno', 1]));
    expect(changed.rowCount).toBe(1);
    await db.write((s) => s.execute('UPDATE things SET name = $1 WHERE id = $2', ['one', 1]));
    expect(await db.read(prepared)).toContain('UPDATE things SET name = $1 WHERE id = $2');
  });

  it('prepares nothing on a target with prepared_statements: false', async () => {
    const db = pool({ preparedStatements: false });
    for (const id of [1, 2]) await db.read((s) => s.query(SQL, [id]));
    expect(await db.read(prepared)).toEqual([]);
  });

  it('keeps at most its share of statements per connection (ad-hoc SQL cannot pile them up)', async () => {
    const db = pool();
    await db.read(async (s) => {
      for (let i = 0; i < MAX_PREPARED_PER_CONNECTION + 20; i++) await s.query(`SELECT ${i} AS n`);
    });
    const names = await db.read(prepared);
    expect(names.length).toBeLessThanOrEqual(MAX_PREPARED_PER_CONNECTION);
    expect(names.length).toBeGreaterThan(MAX_PREPARED_PER_CONNECTION / 2);
    // Past the cap statements still run, unnamed.
    expect(await db.read((s) => s.query(`SELECT ${MAX_PREPARED_PER_CONNECTION + 100} AS n`))).toEqual([
      { n: MAX_PREPARED_PER_CONNECTION + 100 },
    ]);
  });

  it('after a table changes under SELECT *, fails once, then runs unnamed on a fresh connection', async () => {
    const db = pool();
    await db.write((s) => s.execute('CREATE TABLE shifting (a int)'));
    await db.write((s) => s.execute('INSERT INTO shifting VALUES (1)'));
    const star = 'SELECT * FROM shifting';
    expect(await db.read((s) => s.query(star))).toEqual([{ a: 1 }]);
    const before = await db.read(async (s) => s.backendPid);
    await db.write((s) => s.execute('ALTER TABLE shifting ADD COLUMN b int DEFAULT 2'));
    // PostgreSQL refuses to reuse the plan of the prepared statement (SQLSTATE 0A000).
    await expect(db.read((s) => s.query(star))).rejects.toThrow(/cached plan/i);
    // That connection held the stale statement: it was dropped, and the statement now goes unnamed.
    const after = await db.read(async (s) => s.backendPid);
    expect(after).not.toBe(before);
    for (let i = 0; i < 3; i++) expect(await db.read((s) => s.query(star))).toEqual([{ a: 1, b: 2 }]);
    expect(await db.read(prepared)).not.toContain(star);
  });

  it('reads prepared_statements from the config (default on)', () => {
    const yaml = (extra: string) => `
state: { url: postgres://x@localhost/state }
targets:
  pooled: { url: postgres://x@localhost/a, environment: dev${extra} }
people: { alice: { cli: alice } }
policy: { dev: { read: [everyone] } }
`;
    expect(loadConfigText(yaml(''), 'c.yaml', {}).targets.pooled?.preparedStatements).toBeUndefined();
    const off = loadConfigText(yaml(', prepared_statements: false'), 'c.yaml', {});
    expect(off.targets.pooled?.preparedStatements).toBe(false);
    expect(() => loadConfigText(yaml(', prepared_statements: sometimes'), 'c.yaml', {})).toThrow(ConfigError);
  });
});
