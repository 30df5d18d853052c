// Paging of list operations against real PostgreSQL: every page walked through its next-page command
// (exactly as the answer prints it) adds up to the unpaged list, built-in and pack reads alike.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import type { Reply } from '../src/core/reply.js';
import type { Row } from '../src/core/types.js';
import { as, type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery } from './helpers/db.js';

let fx: Fixture;
/** Row cap 50: the lists below are longer. */
let app: App;
/** Row cap 2,000: the same lists whole, to compare with. */
let whole: App;

const TABLES = 64;

beforeAll(async () => {
  fx = await makeFixture();
  const ddl = Array.from(
    { length: TABLES },
    (_, i) =>
      `CREATE TABLE t${String(i).padStart(2, '0')} (id serial PRIMARY KEY, v text);` +
      `INSERT INTO t${String(i).padStart(2, '0')} (v) SELECT 'x' FROM generate_series(1, ${i + 1});`,
  ).join('');
  await adminQuery(
    `${ddl} CREATE TABLE items (id int PRIMARY KEY, title text);
     INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 137) i;`,
    [],
    fx.staging.name,
  );
  const dir = mkdtempSync(join(tmpdir(), 'dbops-paging-'));
  mkdirSync(join(dir, 'shop'));
  writeFileSync(join(dir, 'shop', 'pack.yaml'), 'name: shop\ndescription: the shop runbook\n');
  writeFileSync(
    join(dir, 'shop', 'items.yaml'),
    `name: items
summary: The shop's items
risk: read
columns:
  - { key: id, label: id, kind: id }
  - { key: title, label: title }
sql: SELECT id, title FROM items ORDER BY id
`,
  );
  writeFileSync(
    join(dir, 'shop', 'sold-out.yaml'),
    `name: sold-out
summary: The shop's items that are sold out (none)
risk: read
columns:
  - { key: id, label: id, kind: id }
  - { key: title, label: title }
sql: SELECT id, title FROM items WHERE false
`,
  );
  const yaml = fx.yaml
    .replace('targets:\n', `packs:\n  dirs: [${dir}]\ntargets:\n`)
    .replace('    environment: staging\n', '    environment: staging\n    packs: [shop]\n');
  app = await startApp(loadConfigText(yaml, 'paging.yaml', fx.env));
  whole = await startApp(loadConfigText(yaml.replace('row_cap: 50', 'row_cap: 2000'), 'whole.yaml', fx.env));
});

afterAll(async () => {
  await app?.close();
  await whole?.close();
});

/** Follows the next-page commands of the answers from `first`, as a person would paste them. */
async function walk(first: string): Promise<{ rows: Row[]; pages: Reply[] }> {
  const pages: Reply[] = [];
  let command: string | undefined = first;
  while (command !== undefined) {
    const answer = await as(app, 'alice')(command);
    expect(answer.status, `${command}: ${answer.message}`).toBe('ok');
    pages.push(answer);
    const next = answer.result?.page?.next;
    if (next !== undefined) {
      // The answer prints the command whole, on a line of its own.
      expect(answer.text.split('\n')).toContain(next);
    }
    command = next;
    expect(pages.length).toBeLessThan(40);
  }
  return { rows: pages.flatMap((p) => p.result?.rows ?? []), pages };
}

async function unpaged(command: string): Promise<Row[]> {
  const answer = await as(whole, 'alice')(command);
  expect(answer.status, answer.message).toBe('ok');
  expect(answer.result?.truncated).toBe(false);
  return answer.result?.rows ?? [];
}

describe('paging across pages equals the unpaged result', () => {
  it.each([
    ['sequences staging', 7, ' --limit 100'],
    ['table-sizes staging', 9, ' --limit 1000'],
    ['items staging', 25, ''],
    ['index-sizes staging', 12, ' --limit 1000'],
  ])('%s --limit %i', async (command, limit, all) => {
    const truth = await unpaged(`/db ${command}${all}`);
    expect(truth.length).toBeGreaterThan(limit * 2);
    const { rows, pages } = await walk(`/db ${command} --limit ${limit}`);
    // Rows compared by their first column (the relation, sequence, index or id): estimates such as a
    // table's row count may move while autovacuum runs between pages, the list may not.
    const key = pages[0]?.result?.columns[0]?.key ?? '';
    expect(rows.map((r) => r[key])).toEqual(truth.map((r) => r[key]));
    if (command.startsWith('items')) expect(rows).toEqual(truth);
    expect(pages.length).toBe(Math.ceil(truth.length / limit));
    expect(pages[1]?.result?.page).toMatchObject({ number: 2, size: limit, first: limit + 1, more: true });
    expect(pages.at(-1)?.result?.page?.more).toBe(false);
    expect(pages.at(-1)?.text).toContain('the last');
  });

  it('an operation with its own --limit (index-sizes) pages in that size, 20 unless told', async () => {
    const first = await as(app, 'alice')('/db index-sizes staging --limit 12');
    expect(first.result?.page?.next).toBe('/db index-sizes staging --limit 12 --page 2');
    const byDefault = await as(app, 'alice')('/db index-sizes staging');
    expect(byDefault.result?.rows.length).toBe(20);
    expect(byDefault.result?.page?.next).toBe('/db index-sizes staging --limit 20 --page 2');
  });

  it('the row cap note offers the next page, and the pages reach past the row cap', async () => {
    const truth = await unpaged('/db items staging');
    const first = await as(app, 'alice')('/db items staging');
    expect(first.result?.rows.length).toBe(50);
    expect(first.result?.page?.next).toBe('/db items staging --page 2');
    expect(first.text).toContain('50 rows shown (rows 1–50, page 1) — more rows exist; next page:');
    for (const line of first.text.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    const { rows } = await walk('/db items staging');
    expect(rows).toEqual(truth);
    expect(rows.length).toBe(137);
  });

  it('each page is audited with its page and size', async () => {
    const answer = await as(app, 'alice')('/db items staging --limit 10 --page 3');
    expect(answer.result?.rows.map((r) => r.id)).toEqual([21, 22, 23, 24, 25, 26, 27, 28, 29, 30]);
    const rows = await adminQuery<{ event: string; args: Record<string, unknown> }>(
      'SELECT event, args FROM dbops_audit WHERE ref = $1 ORDER BY id',
      [answer.ref],
      fx.state.name,
    );
    expect(rows.map((r) => [r.event, r.args.page, r.args.limit])).toEqual([
      ['requested', 3, 10],
      ['executed', 3, 10],
    ]);
  });
});

describe('paging arguments', () => {
  it('refuses a page larger than the row cap, a page 0, a page past the reach, and paging a write', async () => {
    const tooBig = await as(app, 'alice')('/db items staging --limit 51');
    expect(tooBig).toMatchObject({ status: 'invalid' });
    expect(tooBig.message).toContain('at most 50 rows per page');
    const zero = await as(app, 'alice')('/db items staging --page 0');
    expect(zero.message).toContain('argument --page: expected a whole number from 1');
    const twice = await as(app, 'alice')('/db items staging --page 2 --page=3');
    expect(twice.message).toContain('--page is given twice');
    const deep = await as(app, 'alice')('/db items staging --page 100000');
    expect(deep.message).toContain('past the 1000 rows pages reach');
    const write = await as(app, 'alice')('/db analyze staging --page 2');
    expect(write.status).toBe('invalid');
    expect(write.message).toContain('unknown option --page');
  });

  it('a page past the end says so', async () => {
    const past = await as(app, 'alice')('/db items staging --limit 50 --page 9');
    expect(past.status).toBe('ok');
    expect(past.result?.rows).toEqual([]);
    expect(past.text).toContain('page 9 is past the end of the list');
  });

  it('an empty list on its first page is an empty list, not a page past the end', async () => {
    for (const command of [
      '/db sold-out staging',
      '/db sold-out staging --limit 10',
      '/db sold-out staging --page 1',
    ]) {
      const none = await as(app, 'alice')(command);
      expect(none.status).toBe('ok');
      expect(none.result?.rows).toEqual([]);
      expect(none.text, command).toMatch(/^(\(no rows\)|0 rows)\n/);
      expect(none.text, command).not.toContain('past the end');
    }
    const past = await as(app, 'alice')('/db sold-out staging --page 2');
    expect(past.text).toContain('page 2 is past the end of the list');
  });

  it('an operation paged in its own SQL (tables) keeps its own --page', async () => {
    const answer = await as(app, 'alice')('/db tables staging --page 2');
    expect(answer.status).toBe('ok');
    expect(answer.result?.page).toBeUndefined();
  });
});

describe('the page command a "Next page" button sends', () => {
  it('runs the next page as whoever pressed, under their own permissions', async () => {
    const first = await as(app, 'alice')('/db settings kasm --limit 5');
    expect(first.result?.page?.more).toBe(true);
    const ref = first.ref ?? '';
    const bob = await as(app, 'bob')(`/db page ${ref} 2`);
    expect(bob.status).toBe('ok');
    expect(bob.result?.page).toMatchObject({ number: 2, first: 6 });
    const whole = await as(app, 'alice')('/db settings kasm --limit 10');
    expect(bob.result?.rows.map((r) => r.name)).toEqual(whole.result?.rows.slice(5).map((r) => r.name));
    // Audited as bob's read, under bob's own reference.
    const audited = await adminQuery<{ identity: string; operation: string }>(
      "SELECT identity, operation FROM dbops_audit WHERE ref = $1 AND event = 'executed'",
      [bob.ref],
      fx.state.name,
    );
    expect(audited).toEqual([{ identity: 'cli:bob', operation: 'settings' }]);
    // carol may not read production: the button does not lend her alice's rights.
    const carol = await as(app, 'carol')(`/db page ${ref} 2`);
    expect(carol.status).toBe('refused');
    expect(carol.code).toBe('denied');
    expect(carol.result).toBeUndefined();
  });

  it('refuses a forged or stale reference safely, running nothing', async () => {
    const forged = await as(app, 'alice')('/db page rzzzzz 2');
    expect(forged).toMatchObject({ status: 'refused', code: 'not_found' });
    expect(forged.message).toContain('out of date or unknown');
    for (const bad of [
      '/db page 12 2',
      '/db page rabcde',
      '/db page rabcde 0',
      "/db page rabcde '2; DROP'",
    ]) {
      expect((await as(app, 'alice')(bad)).status, bad).toBe('invalid');
    }
    const old = await as(app, 'alice')('/db items staging --limit 5');
    await adminQuery(
      "UPDATE dbops_paged_reads SET created_at = now() - interval '8 days' WHERE ref = $1",
      [old.ref],
      fx.state.name,
    );
    const stale = await as(app, 'alice')(`/db page ${old.ref} 2`);
    expect(stale).toMatchObject({ status: 'refused', code: 'not_found' });
    // The command it names still works when typed.
    expect((await as(app, 'alice')(old.result?.page?.next ?? '')).status).toBe('ok');
  });
});
