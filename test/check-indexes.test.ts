// `check-indexes` against real PostgreSQL 15 and 17: a B-tree index corrupted for real (two indexes of
// opposite order swap their files), a healthy one, skipped ones, a lock, no amcheck, and a role without EXECUTE.
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import checkIndexes from '../commands/check-indexes.js';
import { renderResult } from '../src/core/render.js';
import type { OperationResult } from '../src/core/types.js';
import { adminQuery, createDatabase, majors, openClient } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';

const SCHEMA = `
CREATE EXTENSION amcheck;
CREATE TABLE t (x int, s text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3000) g;
CREATE INDEX t_asc ON t (x);
CREATE INDEX t_desc ON t (x DESC);
CREATE INDEX t_healthy ON t (s);
CREATE SCHEMA uniq;
CREATE TABLE uniq.u (x int);
INSERT INTO uniq.u SELECT generate_series(1, 3000);
CREATE UNIQUE INDEX u_asc ON uniq.u (x);
CREATE UNIQUE INDEX u_desc ON uniq.u (x DESC);
CREATE TABLE "Odd ""Name"" ü" (id int PRIMARY KEY);
INSERT INTO "Odd ""Name"" ü" SELECT generate_series(1, 100);
CREATE TABLE broken (x int);
INSERT INTO broken VALUES (0);
CREATE TABLE busy (id int PRIMARY KEY);
CREATE TABLE parted (id int) PARTITION BY RANGE (id);
CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (0) TO (100);
CREATE TABLE parted_high PARTITION OF parted FOR VALUES FROM (100) TO (200);
CREATE INDEX parted_id ON parted (id);
INSERT INTO parted SELECT generate_series(0, 199);
CREATE TABLE gist_only (r int4range);
CREATE INDEX gist_only_r ON gist_only USING gist (r);
`;

/**
 * The corruption: t_asc's file now holds keys in descending order and t_desc's in ascending order, so
 * amcheck's "item order invariant" fails on both, exactly as when a page of an index is scrambled.
 */
function swapFiles(a: string, b: string): string {
  return `
UPDATE pg_class SET relfilenode = CASE relname
  WHEN '${a}' THEN (SELECT relfilenode FROM pg_class WHERE relname = '${b}')
  ELSE (SELECT relfilenode FROM pg_class WHERE relname = '${a}') END
WHERE relname IN ('${a}', '${b}')`;
}

interface Outcome {
  index: string;
  status: string;
  detail: string | null;
}

function outcomes(result: OperationResult): Map<string, Outcome> {
  const list = result.data?.indexes as Outcome[] | undefined;
  if (!list) throw new Error('no data.indexes');
  return new Map(list.map((o) => [o.index, o]));
}

describe.each(majors())('PostgreSQL %i', (major) => {
  const suffix = randomBytes(4).toString('hex');
  const plainRole = `chkidx_plain_${suffix}`;
  let db: string;
  let url: string;
  let bare: string;
  let harness: OpHarness;
  let tempHolder: pg.Client;
  const sql = <T extends pg.QueryResultRow>(text: string, params: unknown[] = []) =>
    adminQuery<T>(text, params, db, major);

  beforeAll(async () => {
    let bareUrl: string;
    ({ name: db, url } = await createDatabase('chkidx', SCHEMA, major));
    ({ name: bare, url: bareUrl } = await createDatabase(
      'chkidx_bare',
      'CREATE TABLE a (id int PRIMARY KEY)',
      major,
    ));
    await sql(swapFiles('t_asc', 't_desc'));
    await sql(swapFiles('u_asc', 'u_desc'));
    const setup = await openClient(url);
    try {
      await expect(
        setup.query('CREATE INDEX CONCURRENTLY broken_inverse ON broken ((1 / x))'),
      ).rejects.toThrow(/division by zero/);
    } finally {
      await setup.end();
    }
    // Another session's temporary table and its index: nobody else can read them.
    tempHolder = await openClient(url, 'temp-holder');
    await tempHolder.query('CREATE TEMP TABLE scratch (id int PRIMARY KEY)');
    await adminQuery(`CREATE ROLE ${plainRole} LOGIN PASSWORD 'pw-${suffix}'`, [], 'postgres', major);
    const plain = new URL(url);
    plain.username = plainRole;
    plain.password = `pw-${suffix}`;
    harness = new OpHarness([
      testTarget('t', url),
      testTarget('bare', bareUrl),
      testTarget('plain', plain.toString()),
    ]);
  }, 60_000);

  afterAll(async () => {
    await harness?.close();
    await tempHolder?.end();
    for (const name of [db, bare]) {
      await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`, [], 'postgres', major);
    }
    await adminQuery(`DROP ROLE IF EXISTS ${plainRole}`, [], 'postgres', major);
  });

  it('finds the corrupted indexes, passes the healthy ones, and skips what it cannot check', async () => {
    const truth = await sql<{ name: string }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS name
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_class tc ON tc.oid = i.indrelid
       LEFT JOIN pg_class owner ON owner.reltoastrelid = tc.oid
       WHERE am.amname = 'btree' AND c.relkind = 'i'
         AND COALESCE(owner.relnamespace, c.relnamespace) NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
       ORDER BY n.nspname, c.relname`,
    );
    const result = await harness.run(checkIndexes, 't');
    const got = outcomes(result);
    expect([...got.keys()].sort()).toEqual(truth.map((t) => t.name).sort());
    expect(got.get('public.t_asc')?.status).toBe('corrupt');
    expect(got.get('public.t_asc')?.detail).toMatch(/item order invariant violated for index "t_asc"/);
    expect(got.get('public.t_desc')?.status).toBe('corrupt');
    expect(got.get('public.t_healthy')?.status).toBe('ok');
    expect(got.get('public."Odd ""Name"" ü_pkey"')?.status).toBe('ok');
    expect(got.get('public.broken_inverse')).toMatchObject({ status: 'skipped' });
    expect(got.get('public.broken_inverse')?.detail).toMatch(/^invalid/);
    const temp = [...got.values()].find((o) => o.index.endsWith('.scratch_pkey'));
    expect(temp).toMatchObject({ status: 'skipped', detail: expect.stringMatching(/^temporary index/) });
    expect(got.has('public.gist_only_r')).toBe(false);
    expect(result.headline).toBe(
      `4 of ${[...got.values()].filter((o) => o.status === 'ok' || o.status === 'corrupt').length} B-tree indexes CORRUPT in database ${db} (bt_index_check)`,
    );
    expect(result.notes).toContain('next: REINDEX INDEX CONCURRENTLY public.t_asc;');
    expect(result.notes).toContain('or: /db reindex t public.t_asc --concurrently');
    expect(got.get('uniq.u_asc')?.status).toBe('corrupt');
    const text = renderResult(result).split('\n');
    for (const line of text) expect(line.length).toBeLessThanOrEqual(80);
    expect(text.some((l) => l.startsWith('CORRUPT  public.t_asc (public.t, '))).toBe(true);
    const at = text.findIndex((l) => l.startsWith('CORRUPT  public.t_asc (public.t, '));
    expect(text[at + 1]).toMatch(/^ {9}item order invariant violated for index "t_asc" — Lower index/);
  });

  it('checks one table with --heapallindexed and --parent, and says writes waited', async () => {
    const healthy = await harness.run(checkIndexes, 't', `'"Odd ""Name"" ü"' --heapallindexed --parent`);
    expect([...outcomes(healthy).values()].map((o) => [o.index, o.status])).toEqual([
      ['public."Odd ""Name"" ü_pkey"', 'ok'],
    ]);
    expect(healthy.headline).toBe(
      '1 of 1 B-tree indexes ok in public.Odd "Name" ü (bt_index_parent_check + heapallindexed)',
    );
    expect(healthy.notes?.join(' ')).toContain('bt_index_parent_check held a ShareLock on each table');
    const table = await harness.run(checkIndexes, 't', 't --parent');
    // Neither corrupt index of t is unique: no word about duplicates.
    expect(table.notes?.join(' ')).not.toContain('duplicates');
    // The table's TOAST index is checked with it.
    const toast = [...outcomes(table).values()].filter((o) => o.index.startsWith('pg_toast.'));
    expect(toast.map((o) => o.status)).toEqual(['ok']);
    const own = [...outcomes(table).entries()].filter(([name]) => name.startsWith('public.'));
    expect(own.map(([name, o]) => [name, o.status])).toEqual([
      ['public.t_asc', 'corrupt'],
      ['public.t_desc', 'corrupt'],
      ['public.t_healthy', 'ok'],
    ]);
    // Each check ran in its own transaction: no lock of the checks is left.
    const [{ n } = { n: '1' }] = await sql<{ n: string }>(
      `SELECT count(*) AS n FROM pg_locks WHERE relation = 'public.t'::regclass AND mode = 'ShareLock'`,
    );
    expect(Number(n)).toBe(0);
  });

  it('an index behind a DDL lock is reported as locked and the others are still checked', async () => {
    const holder = await openClient(url, 'lock-holder');
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE busy IN ACCESS EXCLUSIVE MODE');
      const result = await harness.run(checkIndexes, 't');
      const got = outcomes(result);
      expect(got.get('public.busy_pkey')?.status).toBe('locked');
      expect(got.get('public.t_healthy')?.status).toBe('ok');
      expect(got.get('public.t_asc')?.status).toBe('corrupt');
      expect(result.notes?.some((n) => n.startsWith('not checked: 1 locked — public.busy_pkey'))).toBe(true);
    } finally {
      await holder.end();
    }
  });

  it('without amcheck it says CREATE EXTENSION and who may run it', async () => {
    const result = await harness.run(checkIndexes, 'bare');
    expect(result.headline).toBe(`amcheck is not installed in database ${bare}: no index was checked`);
    expect(result.notes?.[0]).toBe(`to install it, connected to ${bare}: CREATE EXTENSION amcheck;`);
    expect(result.notes?.[1]).toMatch(/^dbops' role postgres is a superuser and may run it/);
  });

  it('a role without EXECUTE gets the exact GRANT, and that GRANT is enough', async () => {
    const denied = await harness.run(checkIndexes, 'plain');
    expect(denied.headline).toBe(
      `dbops' role ${plainRole} may not run amcheck's checks: no index was checked`,
    );
    const grant = `GRANT EXECUTE ON FUNCTION "public".bt_index_check(regclass, boolean) TO "${plainRole}";`;
    expect(denied.notes).toContain(grant);
    const parentDenied = await harness.run(checkIndexes, 'plain', '--parent');
    expect(parentDenied.notes).toContain(
      `GRANT EXECUTE ON FUNCTION "public".bt_index_parent_check(regclass, boolean) TO "${plainRole}";`,
    );
    await sql(grant);
    const allowed = await harness.run(checkIndexes, 'plain', 't');
    expect(outcomes(allowed).get('public.t_asc')?.status).toBe('corrupt');
    expect(outcomes(allowed).get('public.t_healthy')?.status).toBe('ok');
  });

  it('a corrupt unique index gets the warning about duplicates it may have let in', async () => {
    const result = await harness.run(checkIndexes, 't', 'uniq.u');
    expect([...outcomes(result).values()].map((o) => [o.index, o.status])).toEqual([
      ['uniq.u_asc', 'corrupt'],
      ['uniq.u_desc', 'corrupt'],
    ]);
    expect(result.notes?.join(' ')).toContain('a corrupt UNIQUE index may have let duplicates in');
  });

  it('a partitioned table is checked through the indexes of its partitions', async () => {
    const result = await harness.run(checkIndexes, 't', 'parted');
    expect([...outcomes(result).entries()].map(([name, o]) => [name, o.status])).toEqual([
      ['public.parted_high_id_idx', 'ok'],
      ['public.parted_low_id_idx', 'ok'],
    ]);
  });

  it('names a table that does not exist with a did-you-mean', async () => {
    await expect(harness.run(checkIndexes, 't', 'brokne')).rejects.toThrow(
      'no table matching brokne — did you mean `broken`?',
    );
  });
});
