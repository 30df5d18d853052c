// `dbops pack test` as pack authors run it (the built CLI): a throwaway PostgreSQL, fixtures, examples.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';

const CLI = resolve('dist/src/cli.js');
const work = mkdtempSync(join(tmpdir(), 'dbops-pack-test-suite-'));

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function dbops(args: string[], env: Record<string, string> = {}) {
  return execa('node', [CLI, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    extendEnv: false,
    reject: false,
    timeout: 120_000,
  });
}

/** A pack directory `<work>/<where>/<name>` from file name → YAML text. */
function writePack(where: string, name: string, files: Record<string, string>): string {
  const dir = join(work, where, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return dir;
}

const MANIFEST = (name: string, settings = '') =>
  `name: ${name}\ndescription: a pack under test\n${settings}`;

describe('dbops pack test', () => {
  it('runs every example of the shipped kasm pack on its demo fixtures; destructive ones only preview', async () => {
    const run = await dbops([
      'pack',
      'test',
      'commands/packs/kasm',
      '--fixtures',
      'src/demo/fixtures/kasm.sql',
    ]);
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain('kasm: valid, 12 operations (12 with examples)');
    expect(run.stdout).toContain('── /db users kasm --search admin');
    expect(run.stdout).toContain('admin@kasm.local');
    // logout-all is destructive: its preview is shown and it waits for approval, nothing runs.
    expect(run.stdout).toMatch(/logout-all kasm · pending/);
    expect(run.stdout).toContain('(previewed only; --execute approves and runs it)');
    expect(run.stdout).not.toMatch(/logout-all kasm · succeeded/);
    expect(run.stdout.trimEnd().split('\n').at(-1)).toBe('12 operations, 16 examples: 16 ok, 0 failed');
    for (const line of run.stdout.split('\n').filter((l) => l.startsWith('──')))
      expect(line.length).toBeLessThanOrEqual(120);
  }, 180_000);

  it('refuses a broken pack with file:line before starting anything, exit code 2', async () => {
    const dir = writePack('broken', 'shop', {
      'pack.yaml': MANIFEST('shop'),
      'customers.yaml': [
        'name: customers',
        'summary: customers',
        'risk: read',
        'args:',
        '  - { name: limit, type: int, min: 1, max: 10 }',
        'sql: SELECT * FROM customers WHERE id = :missing',
        'examples: ["--limit 5", "--limit 50", "--colour red"]',
        '',
      ].join('\n'),
    });
    const run = await dbops(['pack', 'test', dir]);
    expect(run.exitCode).toBe(2);
    expect(run.stdout).toMatch(/customers\.yaml:6: sql: parameter :missing is neither/);
    expect(run.stdout).toMatch(/customers\.yaml:7: examples\.1: .*--limit/);
    expect(run.stdout).toMatch(/customers\.yaml:7: examples\.2: unknown option --colour/);
    expect(run.stdout).toMatch(/the pack is invalid \(\d+ problems\)/);
    expect(run.stdout).not.toContain('starting a throwaway PostgreSQL');
  });

  it('names missing or unknown settings as --set before starting a server', async () => {
    const run = await dbops(['pack', 'test', 'commands/packs/capsul', '--set', 'colour=red']);
    expect(run.exitCode).toBe(2);
    expect(run.stdout).toContain('--set expected_schema_version: the capsul pack needs this setting');
    expect(run.stdout).toContain('--set colour: the capsul pack has no such setting');
    expect(run.stdout).not.toContain('starting a throwaway PostgreSQL');
  });

  it('refuses operation names of built-ins and catalog operations with file:line', async () => {
    const dir = writePack('clash', 'shop', {
      'pack.yaml': MANIFEST('shop'),
      'help.yaml': 'name: help\nsummary: clashes\nrisk: read\nsql: SELECT 1 AS one\n',
      'sizes.yaml': 'name: sizes\nsummary: clashes\nrisk: read\nsql: SELECT 1 AS one\n',
      'fine.yaml': 'name: fine\nsummary: fine\nrisk: read\nsql: SELECT 1 AS one\n',
    });
    const run = await dbops(['pack', 'test', dir]);
    expect(run.exitCode).toBe(2);
    expect(run.stdout).toMatch(/help\.yaml:1: name: help is a built-in dbops command/);
    expect(run.stdout).toMatch(/sizes\.yaml:1: name: sizes is a dbops operation on every target/);
    expect(run.stdout).not.toContain('fine.yaml');
    expect(run.stdout).toContain('the pack is invalid (2 problems)');
  });

  it('runs destructive examples with --execute, reports a failing example and exits 1', async () => {
    const dir = writePack('runs', 'shop', {
      'pack.yaml': MANIFEST(
        'shop',
        'settings:\n  region: { type: text, description: unset here }\n  greeting: { type: text, default: hi }\n',
      ),
      'a-close.yaml': [
        'name: a-close',
        'summary: close one customer',
        'risk: destructive',
        'args: [{ name: id, type: int, positional: true, required: true }]',
        'requires: { customers: [id, closed] }',
        'preview: { sql: "SELECT id FROM customers WHERE id = :id AND NOT closed" }',
        'steps: [{ label: customers, sql: "UPDATE customers SET closed = true WHERE id = :id" }]',
        'examples: ["2"]',
        '',
      ].join('\n'),
      'b-open.yaml': [
        'name: b-open',
        'summary: open customers',
        'risk: read',
        "sql: SELECT string_agg(id::text, ',' ORDER BY id) AS open_ids FROM customers WHERE NOT closed",
        'display: card',
        'examples: [""]',
        '',
      ].join('\n'),
      'c-region.yaml': [
        'name: c-region',
        'summary: customers of the region',
        'risk: read',
        'sql: SELECT id FROM customers WHERE region = :region',
        'examples: [""]',
        '',
      ].join('\n'),
      'd-orders.yaml': [
        'name: d-orders',
        'summary: orders (there is no such table)',
        'risk: read',
        'requires: { orders: [id] }',
        'sql: SELECT id FROM orders',
        'examples: [""]',
        '',
      ].join('\n'),
      'e-wrong.yaml':
        'name: e-wrong\nsummary: wrong column\nrisk: read\nsql: SELECT nope FROM customers\nexamples: [""]\n',
      'f-none.yaml': 'name: f-none\nsummary: no examples\nrisk: read\nsql: SELECT 1 AS one\n',
    });
    const fixtures = join(work, 'shop.sql');
    writeFileSync(
      fixtures,
      `CREATE TABLE customers (id int PRIMARY KEY, region text, closed boolean NOT NULL DEFAULT false);
INSERT INTO customers (id, region) VALUES (1, 'eu'), (2, 'us'), (3, 'eu');\n`,
    );
    const run = await dbops(['pack', 'test', dir, '--fixtures', fixtures, '--execute']);
    expect(run.exitCode).toBe(1);
    expect(run.stdout).toMatch(
      /warning: .*pack\.yaml:4: settings\.region has no default and is not required, so :region is NULL in .*c-region\.yaml:1/,
    );
    expect(run.stdout).toMatch(/a-close shop 2 · succeeded/);
    expect(run.stdout).toMatch(/open_ids: 1,3/); // the approved example really ran before b-open read
    expect(run.stdout).toContain('d-orders is not available on shop: missing table orders');
    expect(run.stdout).toMatch(/column "nope" does not exist|nope/);
    expect(run.stdout).toContain('f-none: no examples');
    expect(run.stdout.trimEnd().split('\n').at(-1)).toBe(
      '6 operations, 5 examples: 3 ok, 1 failed, 1 unavailable on the fixtures; 1 operations without examples',
    );
  }, 180_000);

  it('fixtures that fail name the file and line; exit code 2', async () => {
    const dir = writePack('fixtures', 'tiny', {
      'pack.yaml': MANIFEST('tiny'),
      'one.yaml': 'name: one\nsummary: one\nrisk: read\nsql: SELECT 1 AS one\nexamples: [""]\n',
    });
    const fixtures = join(work, 'bad.sql');
    writeFileSync(fixtures, 'CREATE TABLE a (id int);\n\nINSERT INTO a VALUES (1);\nSELEC 2;\n');
    const run = await dbops(['pack', 'test', dir, '--fixtures', fixtures]);
    expect(run.exitCode).toBe(2);
    expect(run.stdout).toMatch(/bad\.sql:4: the fixtures failed: syntax error at or near "SELEC"/);
  }, 120_000);

  it('Ctrl-C stops the throwaway server and removes its directory', async () => {
    const dir = writePack('slow', 'tiny', {
      'pack.yaml': MANIFEST('tiny'),
      'one.yaml': 'name: one\nsummary: one\nrisk: read\nsql: SELECT 1 AS one\nexamples: [""]\n',
    });
    const fixtures = join(work, 'slow.sql');
    writeFileSync(fixtures, 'SELECT pg_sleep(60);\n');
    const temp = join(work, 'tmp');
    // As root the server runs as "postgres", which must reach its files through this directory.
    chmodSync(work, 0o755);
    mkdirSync(temp, { mode: 0o1777 });
    chmodSync(temp, 0o1777);
    const child = execa('node', [CLI, 'pack', 'test', dir, '--fixtures', fixtures], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', TMPDIR: temp },
      extendEnv: false,
      reject: false,
      timeout: 120_000,
    });
    // The server is starting or loading the slow fixtures once its data directory exists.
    const ended = child.then(() => 'ended' as const);
    const started = (async () => {
      while (!readdirSync(temp).some((d) => d.startsWith('dbops-pack-test-pg-')))
        await new Promise((done) => setTimeout(done, 100));
      await new Promise((done) => setTimeout(done, 3000));
      return 'started' as const;
    })();
    const first = await Promise.race([ended, started]);
    if (first === 'ended')
      throw new Error(`pack test ended early: ${(await child).stdout}${(await child).stderr}`);
    child.kill('SIGINT');
    const run = await child;
    expect(run.exitCode).toBe(130);
    expect(run.stdout).toContain('SIGINT: stopping the throwaway PostgreSQL');
    expect(readdirSync(temp)).toEqual([]);
  }, 120_000);
});
