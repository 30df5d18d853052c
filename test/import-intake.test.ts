// How a CSV reaches `import`: --file on `dbops exec` (the built CLI) and in the console, then approval.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { runConsole } from '../src/surfaces/console.js';
import { fileByteCap, readLocalFile, takeFileOption } from '../src/surfaces/files.js';
import { type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery } from './helpers/db.js';

const CLI = resolve('dist/src/cli.js');
let fx: Fixture;
let dir: string;
let configPath: string;

beforeAll(async () => {
  fx = await makeFixture();
  dir = await mkdtemp(join(tmpdir(), 'dbops-intake-'));
  configPath = join(dir, 'dbops.yaml');
  await writeFile(configPath, `${fx.yaml}\nbackups:\n  dir: ${join(dir, 'backups')}\n`);
  await adminQuery(
    'CREATE TABLE scores (id serial PRIMARY KEY, who text NOT NULL, points int)',
    [],
    fx.staging.name,
  );
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function scores(): Promise<{ who: string; points: number | null }[]> {
  return await adminQuery('SELECT who, points FROM scores ORDER BY id', [], fx.staging.name);
}

function dbops(args: string[]) {
  return execa('node', [CLI, ...args], {
    env: { ...fx.env, PATH: process.env.PATH ?? '' },
    extendEnv: false,
    reject: false,
    timeout: 30_000,
  });
}

describe('--file on the command line', () => {
  it('takes the option out of the command text, quoted or not', () => {
    expect(takeFileOption('import staging scores --file ./a.csv')).toEqual({
      text: 'import staging scores',
      path: './a.csv',
    });
    expect(takeFileOption('import staging --file="my scores.csv" scores')).toEqual({
      text: 'import staging scores',
      path: 'my scores.csv',
    });
    expect(takeFileOption('sizes staging')).toEqual({ text: 'sizes staging' });
    expect(() => takeFileOption('import s t --file a --file b')).toThrow(/give --file once/);
  });

  it('refuses a missing file, a directory and a file over the cap', async () => {
    await expect(readLocalFile(join(dir, 'nope.csv'), 100)).rejects.toThrow(/nope\.csv: no such file/);
    await expect(readLocalFile(dir, 100)).rejects.toThrow(/not a regular file/);
    const big = join(dir, 'big.csv');
    await writeFile(big, 'x'.repeat(101));
    await expect(readLocalFile(big, 100)).rejects.toThrow(/big\.csv is 101 bytes; files over 100 bytes/);
    expect(fileByteCap(fx.config)).toBe(10 * 1024 * 1024);
    const capped = loadConfigText(
      fx.yaml.replace('  row_cap: 50\n', '  row_cap: 50\n  import_max_bytes: 50000000\n'),
      'x.yaml',
      fx.env,
    );
    expect(fileByteCap(capped)).toBe(50_000_000);
  });

  it('dbops exec --file sends the CSV; the approved request loads it', async () => {
    const csv = join(dir, 'scores.csv');
    await writeFile(csv, 'who,points\nann,3\n"b, en",\n');
    const run = await dbops([
      'exec',
      '--config',
      configPath,
      '--as',
      'alice',
      '--json',
      '--file',
      csv,
      '--',
      '/db import staging scores',
    ]);
    expect(run.exitCode).toBe(0);
    const body = JSON.parse(run.stdout) as { status: string; request: number; text: string };
    expect(body.status).toBe('pending');
    expect(body.text).toMatch(/import 2 rows from scores\.csv/);
    expect(await scores()).toEqual([]);
    const approve = await dbops([
      'exec',
      '--config',
      configPath,
      '--as',
      'dave',
      '--',
      `/db approve ${body.request}`,
    ]);
    expect(approve.stdout).toMatch(/imported 2 rows into public\.scores on staging/);
    expect(await scores()).toEqual([
      { who: 'ann', points: 3 },
      { who: 'b, en', points: null },
    ]);
    const missing = await dbops([
      'exec',
      '--config',
      configPath,
      '--as',
      'alice',
      '--',
      `/db import staging scores --file ${join(dir, 'gone.csv')}`,
    ]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/gone\.csv: no such file/);
  });
});

describe('--file in the console', () => {
  let app: App;
  beforeAll(async () => {
    const config = loadConfigText(
      `${fx.yaml}\nbackups:\n  dir: ${join(dir, 'backups')}\n`,
      'fixture.yaml',
      fx.env,
    );
    app = await startApp(config);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('reads the file named in the line, and the request it makes is approved like any other', async () => {
    await adminQuery('TRUNCATE scores', [], fx.staging.name);
    const csv = join(dir, 'console.csv');
    await writeFile(csv, 'who\ncid\ndee\n');
    const input = new PassThrough();
    const output = new PassThrough();
    let printed = '';
    output.on('data', (chunk: Buffer) => {
      printed += chunk.toString();
    });
    const done = runConsole({
      core: app.core,
      config: app.core.config,
      as: 'alice',
      input,
      output,
      exportDir: dir,
    });
    input.write(`/db import staging scores --file ${join(dir, 'absent.csv')}\n`);
    input.write(`/db import staging scores --file "${csv}"\n`);
    input.write('/db help import\n');
    input.end();
    await done;
    const preview = printed.slice(printed.indexOf('import 2 rows'), printed.indexOf('Needs 1 more approval'));
    expect(preview).toContain('dry run (rolled back): all 2 rows pass');
    for (const line of preview.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);
    expect(printed).toContain('/db import <target> <table> [--advance-sequences]  (attach the CSV)');
    expect(printed).toMatch(/absent\.csv: no such file/);
    expect(printed).toMatch(/import 2 rows from console\.csv/);
    const id = /#(\d+) import staging scores · pending/.exec(printed)?.[1];
    expect(id).toBeDefined();
    const reply = await app.core.dispatch({ surface: 'cli', identity: 'dave', text: `/db approve ${id}` });
    expect(reply.text).toMatch(/imported 2 rows/);
    expect((await scores()).map((s) => s.who)).toEqual(['cid', 'dee']);
  });
});
