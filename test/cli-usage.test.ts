// The dbops command line as a user meets it (the built dist): help on every command, --version, usage
// errors with a "did you mean" and exit code 2, and help that loads no chat SDK or database driver.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';

const CLI = resolve('dist/src/cli.js');
const RECORDER = resolve('test/helpers/record-imports.mjs');
const scratch = mkdtempSync(join(tmpdir(), 'dbops-cli-usage-'));

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function dbops(args: string[], nodeArgs: string[] = [], extraEnv: Record<string, string> = {}) {
  return execa('node', [...nodeArgs, CLI, ...args], {
    // No config, no tokens: nothing here may need them.
    env: { PATH: process.env.PATH ?? '', ...extraEnv },
    extendEnv: false,
    reject: false,
    timeout: 30_000,
    cwd: scratch,
  });
}

/** The node_modules packages a run of dbops resolved, e.g. "discord.js", "@slack/bolt", "pg". */
async function packagesLoaded(args: string[]): Promise<{ exitCode: number | undefined; packages: string[] }> {
  const log = join(scratch, `imports-${Math.random().toString(36).slice(2)}.log`);
  const run = await dbops(args, ['--import', RECORDER], { DBOPS_IMPORT_LOG: log });
  const urls = readFileSync(log, 'utf8').split('\n').filter(Boolean);
  // The recorder really records: dbops' own modules are in the log.
  expect(urls.some((u) => u.endsWith('/dist/src/cli.js'))).toBe(true);
  const packages = new Set<string>();
  for (const url of urls) {
    const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (match?.[1]) packages.add(match[1]);
  }
  return { exitCode: run.exitCode, packages: [...packages].sort() };
}

const COMMANDS = [
  ['exec'],
  ['console'],
  ['demo'],
  ['check-config'],
  ['start'],
  ['discord', 'register'],
] as const;

function widest(text: string): number {
  return Math.max(...text.split('\n').map((line) => [...line].length));
}

describe('dbops --help', () => {
  it('lists every command and the exit codes within 80 columns, exit 0', async () => {
    for (const flag of ['--help', '-h', 'help']) {
      const run = await dbops([flag]);
      expect(run.exitCode).toBe(0);
      expect(run.stderr).toBe('');
      for (const command of COMMANDS) expect(run.stdout).toContain(`  ${command.join(' ')} `);
      expect(run.stdout).toMatch(/Exit codes:\n\s+0 .*\n\s+1 .*failed.*\n\s+2 .*refused or invalid/);
      expect(widest(run.stdout)).toBeLessThanOrEqual(80);
    }
  });

  it('shows each command its own help (usage, options, exit codes) and runs nothing', async () => {
    for (const command of COMMANDS) {
      for (const flag of ['--help', '-h']) {
        const run = await dbops([...command, flag]);
        expect(run.exitCode, `${command.join(' ')} ${flag}`).toBe(0);
        expect(run.stdout).toMatch(new RegExp(`^Usage: dbops ${command.join(' ')}\\b`));
        expect(run.stdout).toContain('-h, --help');
        expect(widest(run.stdout)).toBeLessThanOrEqual(80);
        expect(run.stderr).toBe('');
      }
    }
    // demo --help used to start the demo: help comes back at once, with no PostgreSQL started.
    const demo = await dbops(['demo', '--help']);
    expect(demo.stdout).not.toContain('Starting an embedded PostgreSQL');
    // `dbops help exec` reads like `dbops exec --help`.
    expect((await dbops(['help', 'exec'])).stdout).toBe((await dbops(['exec', '--help'])).stdout);
    // exec documents the exit codes it returns.
    const exec = (await dbops(['exec', '--help'])).stdout.replace(/\s+/g, ' ');
    expect(exec).toContain('exits 0 when the command was done or is pending approval, 2 when it was refused');
    expect(exec).toContain('1 when it failed');
  });

  it('does not load a chat SDK or the database driver for help', async () => {
    for (const args of [['--help'], ['exec', '--help'], ['start', '--help'], ['--version'], ['exce']]) {
      const { exitCode, packages } = await packagesLoaded(args);
      expect(exitCode, args.join(' ')).not.toBe(1);
      expect(packages, args.join(' ')).toEqual([]);
    }
    // The same recorder does see them when a command needs them (here start, stopped by a missing config).
    const start = await packagesLoaded(['start', '--config', join(scratch, 'missing.yaml')]);
    expect(start.exitCode).toBe(2);
    expect(start.packages).toEqual(expect.arrayContaining(['discord.js', '@slack/bolt', 'pg']));
  });
});

describe('dbops --version', () => {
  it('prints the version of package.json', async () => {
    const pkg = JSON.parse(readFileSync(resolve('package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const run = await dbops([flag]);
      expect(run.exitCode).toBe(0);
      expect(run.stdout).toBe(`dbops ${pkg.version}`);
    }
  });
});

describe('usage errors', () => {
  it('exit 2 with the reason and a "did you mean" on stderr, nothing on stdout', async () => {
    const cases: [string[], RegExp][] = [
      [['exce'], /^dbops: unknown command "exce" \(did you mean exec\?\)\nRun "dbops --help"/],
      [['chek-config'], /unknown command "chek-config" \(did you mean check-config\?\)/],
      [['frobnicate'], /^dbops: unknown command "frobnicate"\nRun "dbops --help" for more\.$/],
      [['--verbose'], /^dbops: unknown option --verbose/],
      [
        ['exec', '--confg', 'x.yaml', '--as', 'bob', '--', '/db help'],
        /^dbops: unknown option --confg \(did you mean --config\?\)\nUsage: dbops exec --as PERSON/,
      ],
      [['exec', '--as'], /^dbops: --as needs a value\n/],
      [
        ['exec', '--as', 'bob', '/db', 'sizes', 'staging', '--limit', '5'],
        /^dbops: unknown option --limit \(the \/db command and its options go after --\)\n/,
      ],
      [['exec', '--', '/db help'], /^dbops: --as PERSON is required\n.*\nRun "dbops exec --help"/],
      [['exec', '--as', 'bob'], /^dbops: the command to run is missing/],
      [['console'], /^dbops: --as PERSON is required/],
      [['check-config', 'extra'], /^dbops: unexpected argument "extra"\nUsage: dbops check-config/],
      [['start', '--port', '8080'], /^dbops: unknown option --port\n/],
      [['discord'], /^dbops: which discord subcommand\? \(register\)\nUsage: dbops discord register/],
      [['discord', 'regster'], /unknown discord subcommand "regster" \(did you mean register\?\)/],
      [['discord', 'register', '--gild', '1'], /unknown option --gild \(did you mean --guild\?\)/],
      [['demo', 'now'], /^dbops: unexpected argument "now"/],
      // What was typed is echoed whole, but a terminal escape or a bidi override cannot act on the terminal.
      [['\u001b[2Jexec\u202e'], /^dbops: unknown command "\\x1b\[2Jexec<U\+202E>"\n/],
      [['exec', '--as\u001b[31m', 'x'], /^dbops: unknown option --as\\x1b\[31m/],
    ];
    for (const [args, stderr] of cases) {
      const run = await dbops(args);
      expect({ args, exitCode: run.exitCode }).toEqual({ args, exitCode: 2 });
      expect(run.stderr).toMatch(stderr);
      expect(run.stdout).toBe('');
      expect(widest(run.stderr)).toBeLessThanOrEqual(80);
      const hidden = [...run.stderr].filter((ch) => {
        const code = ch.codePointAt(0) ?? 0;
        return (code < 0x20 && ch !== '\n') || code === 0x202e;
      });
      expect(hidden).toEqual([]);
    }
  });

  it('dbops with no command prints the help on stderr, exit 2', async () => {
    const run = await dbops([]);
    expect(run.exitCode).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('Usage:');
  });

  it('exec --json answers a usage error with one JSON object on stdout', async () => {
    const run = await dbops(['exec', '--json', '--as', 'bob', '--bogus', '--', '/db help']);
    expect(run.exitCode).toBe(2);
    expect(JSON.parse(run.stdout)).toMatchObject({
      status: 'failed',
      request: null,
      code: 'usage',
      message: expect.stringMatching(/^unknown option --bogus/),
    });
    // Text after -- is the command, never an option of dbops: "/db --help" is not dbops' help.
    const passthrough = await dbops(['exec', '--as', 'bob', '--config', 'none.yaml', '--', '--help']);
    expect(passthrough.stdout).not.toContain('Usage:');
    expect(passthrough.stderr).toMatch(/config file .*none\.yaml not found/);
    expect(passthrough.exitCode).toBe(2);
  });
});
