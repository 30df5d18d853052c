// External tools: output redacted at the runner, lock timeouts through PGOPTIONS, cancellation, death with
// dbops (SIGKILL of a built `dbops exec` leaves no orphan) and removal of an interrupted run's partial files.
import { existsSync, mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../src/config/load.js';
import { isCancelled } from '../src/engine/cancel.js';
import { removeAbandonedPartials } from '../src/engine/partial-files.js';
import { Redactor } from '../src/engine/redact.js';
import { supervised } from '../src/engine/supervise.js';
import { libpqEnvironment, runTool, toolEnvironment } from '../src/engine/tools.js';
import { runPackCommand } from '../src/packs/command.js';
import { createDatabase, openClient } from './helpers/db.js';

const CLI = resolve('dist/src/cli.js');
const PASSWORD = 'pa:ss@w0rd/Secret';
const ENCODED = encodeURIComponent(PASSWORD);
const held: pg.Client[] = [];

afterAll(async () => {
  await Promise.all(held.map((c) => c.end().catch(() => {})));
});

function noSecret(text: string): void {
  expect(text).not.toContain(PASSWORD);
  expect(text).not.toContain(ENCODED);
  expect(text).not.toContain('w0rd');
}

describe('tool output is redacted at the runner', () => {
  const url = `postgres://app:${ENCODED}@db.internal:5432/shop`;
  const target = loadConfigText(
    [
      'state: { url: postgres://s@127.0.0.1/s }',
      'targets:',
      `  shop: { url: "\${SHOP_URL}", environment: staging }`,
      'people:',
      '  alice: { cli: alice, roles: [dba] }',
      'policy:',
      '  staging: { read: [everyone], write: [dba], request: [dba], approve: [dba] }',
      '',
    ].join('\n'),
    'redact.yaml',
    { SHOP_URL: url },
  ).targets.shop;

  it('a pack command that prints its URL and PGPASSWORD shows neither in lines, output or error', async () => {
    if (!target) throw new Error('no target');
    const lines: string[] = [];
    const script =
      'echo "url=$DATABASE_URL"; echo "raw $PGPASSWORD here"; env | sort; ' +
      'echo "connecting to $DATABASE_URL" >&2; echo "FATAL: password=$PGPASSWORD rejected" >&2; exit 3';
    const err = await runPackCommand({
      argv: ['/bin/sh', '-c', script],
      timeoutSeconds: 20,
      target,
      urlEnv: 'DATABASE_URL',
      onLine: (line) => lines.push(line),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    const message = (err as Error).message;
    expect(message).toContain('exit code 3');
    noSecret(message);
    noSecret(JSON.stringify((err as { detail?: unknown }).detail));
    expect(lines.some((l) => l.includes('connecting to postgres://app:***@db.internal'))).toBe(true);
    for (const line of lines) noSecret(line);
  });

  it('stdout handed back and streamed line by line is redacted, even when cut at the byte limit', async () => {
    const env = toolEnvironment(process.env, { PGPASSWORD: PASSWORD, HELPER_TOKEN: 'tok-123456789' });
    const seen: string[] = [];
    const out = await runTool(
      {
        name: 'sh',
        file: '/bin/sh',
        args: ['-c', 'echo "p=$PGPASSWORD t=$HELPER_TOKEN"; printf "%s" "xxxx$PGPASSWORD"'],
        env,
      },
      { timeoutMs: 20_000, onStdoutLine: (line) => seen.push(line), stdoutMaxBytes: 200 },
    );
    noSecret(out.stdout);
    expect(out.stdout).not.toContain('tok-123456789');
    expect(seen.join('\n')).toContain('p=*** t=***');
    const cut = await runTool(
      { name: 'sh', file: '/bin/sh', args: ['-c', 'printf "%s" "0123456789$PGPASSWORD"'], env },
      { timeoutMs: 20_000, stdoutMaxBytes: 16 },
    );
    expect(cut.stdoutTruncated).toBe(true);
    expect(cut.stdout).toBe('0123456789***');
  });

  it('the redactor masks literal secrets, their URL encoding and credentials in any URL', () => {
    const r = new Redactor([PASSWORD]);
    expect(r.redact(`a ${PASSWORD} b ${ENCODED} c`)).toBe('a *** b *** c');
    expect(r.redact('redis://u:hunter22@cache:6379/0')).toBe('redis://u:***@cache:6379/0');
    expect(r.redact('API_TOKEN=abc123def SECRET: "x y"')).toBe('API_TOKEN=*** SECRET: ***');
  });
});

describe('tool lifetime', () => {
  it('a cancelled tool rejects with a recognisable cancellation error', async () => {
    const controller = new AbortController();
    const run = runTool(
      { name: 'sleep', file: 'sleep', args: ['60'], env: toolEnvironment(process.env) },
      { timeoutMs: 60_000, signal: controller.signal },
    );
    setTimeout(() => controller.abort(), 200);
    const err = await run.catch((e: unknown) => e);
    expect(isCancelled(err)).toBe(true);
  });

  it('a missing tool is named, not reported as a setpriv failure', async () => {
    const err = await runTool(
      { name: 'nosuch', file: 'nosuch-tool-xyz', args: [], env: toolEnvironment(process.env) },
      { timeoutMs: 5000 },
    ).catch((e: unknown) => e);
    expect((err as Error).message).toBe('nosuch was not found (nosuch-tool-xyz)');
  });

  it('tools are started under setpriv --pdeathsig (util-linux) and a setsid supervisor', () => {
    const { file, args } = supervised('/usr/bin/pg_dump', ['-v']);
    expect(file).toBe('/usr/bin/setpriv');
    expect(args.slice(0, 5)).toEqual(['--pdeathsig', 'HUP', '--', '/bin/sh', '-c']);
    expect(args.slice(-3)).toEqual(['/usr/bin/setsid', '/usr/bin/pg_dump', '-v']);
  });

  it('a timed-out tool is stopped with everything it started', async () => {
    const env = toolEnvironment(process.env);
    const err = await runTool(
      { name: 'sh', file: 'sh', args: ['-c', "trap '' TERM; sleep 322 & sleep 322; wait"], env },
      { timeoutMs: 300 },
    ).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^sh ran past its time limit/);
    let left = 1;
    for (let i = 0; i < 100 && left > 0; i++) {
      const ps = await execa('ps', ['-eo', 'args=']);
      left = ps.stdout.split('\n').filter((l) => /(^|\/)sleep 322$/.test(l.trim())).length;
      if (left > 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(left).toBe(0);
  }, 30_000);
});

describe('tools honour lock_timeout through PGOPTIONS', () => {
  it('psql waiting on a held lock ends with a lock timeout, not a wait forever', async () => {
    const db = await createDatabase('toollock', 'CREATE TABLE t (id int)');
    const holder = await openClient(db.url);
    held.push(holder);
    await holder.query('BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
    const env = toolEnvironment(process.env, libpqEnvironment(db.url, { lockTimeoutMs: 500 }));
    expect(env.PGOPTIONS).toBe('-c lock_timeout=500');
    const started = Date.now();
    const err = await runTool(
      {
        name: 'psql',
        file: 'psql',
        args: ['--no-psqlrc', '--no-password', '-v', 'ON_ERROR_STOP=1', '-c', 'TRUNCATE t'],
        env,
      },
      { timeoutMs: 60_000 },
    ).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/lock timeout/);
    expect(Date.now() - started).toBeLessThan(30_000);
    await holder.query('ROLLBACK');
  });

  it("a URL's own options cannot lift dbops' limits: ours come last", () => {
    const env = libpqEnvironment('postgres://u:p@h/d?options=-c%20lock_timeout%3D0', {
      lockTimeoutMs: 2000,
      statementTimeoutMs: 30_000,
    });
    expect(env.PGOPTIONS).toBe('-c lock_timeout=0 -c lock_timeout=2000 -c statement_timeout=30000');
  });
});

describe('a SIGKILLed dbops leaves nothing behind', () => {
  let dir: string;
  let configPath: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dbops-orphans-'));
    const [target, state] = await Promise.all([createDatabase('orph'), createDatabase('orphstate')]);
    mkdirSync(join(dir, 'packs', 'napping'), { recursive: true });
    writeFileSync(
      join(dir, 'packs', 'napping', 'pack.yaml'),
      'name: napping\ndescription: sleeps, for the orphan test\n',
    );
    writeFileSync(
      join(dir, 'packs', 'napping', 'nap.yaml'),
      'name: nap\nsummary: sleeps a long time\nrisk: read\ncommand:\n' +
        '  argv: [sh, -c, "sleep 313 & sleep 313; wait"]\n  timeout: 10m\n',
    );
    writeFileSync(
      join(dir, 'packs', 'napping', 'talk.yaml'),
      'name: talk\nsummary: talks on stderr\nrisk: read\ncommand:\n' +
        '  argv: [sh, -c, "echo connecting as $PGUSER with $PGPASSWORD >&2; echo done"]\n  timeout: 1m\n',
    );
    configPath = join(dir, 'dbops.yaml');
    writeFileSync(
      configPath,
      [
        `state: { url: "\${STATE_URL}" }`,
        `backups: { dir: ${JSON.stringify(join(dir, 'backups'))} }`,
        `packs: { dirs: [${JSON.stringify(join(dir, 'packs'))}] }`,
        'targets:',
        `  app: { url: "\${APP_URL}", environment: development, packs: [napping] }`,
        'people:',
        '  alice: { cli: alice, roles: [dba] }',
        'policy:',
        '  development: { read: [everyone], write: [everyone], request: [everyone], approve: [dba] }',
        '',
      ].join('\n'),
    );
    env = { STATE_URL: state.url, APP_URL: target.url, PATH: process.env.PATH ?? '' };
  });

  function dbops(args: string[]) {
    return execa('node', [CLI, ...args], { env, extendEnv: false, reject: false, timeout: 60_000 });
  }

  async function sleepers(): Promise<{ pid: number; ppid: number }[]> {
    const ps = await execa('ps', ['-eo', 'pid=,ppid=,args=']);
    return ps.stdout
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter((cols) => /(^|\/)sleep$/.test(cols[2] ?? '') && cols[3] === '313')
      .map((cols) => ({ pid: Number(cols[0]), ppid: Number(cols[1]) }));
  }

  it('the pack command and what it started are killed with dbops (no orphan in ps)', async () => {
    const run = dbops(['exec', '--config', configPath, '--as', 'alice', '--', '/db nap app']);
    run.catch(() => {});
    let mine: { pid: number; ppid: number }[] = [];
    for (let i = 0; i < 300 && mine.length < 2; i++) {
      mine = await sleepers();
      if (mine.length < 2) await new Promise((r) => setTimeout(r, 100));
    }
    // The command's shell started both sleeps: a child and a grandchild of the tool dbops ran.
    expect(mine).toHaveLength(2);
    run.kill('SIGKILL');
    await run;
    let left = mine;
    for (let i = 0; i < 100 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const alive = new Set((await sleepers()).map((s) => s.pid));
      left = left.filter((s) => alive.has(s.pid));
    }
    expect(left).toEqual([]);
  }, 60_000);

  it("exec shows a tool's progress on stderr, redacted", async () => {
    const run = await dbops(['exec', '--config', configPath, '--as', 'alice', '--', '/db talk app']);
    expect(run.exitCode).toBe(0);
    const password = new URL(env.APP_URL ?? '').password;
    expect(run.stderr).toContain('… connecting as postgres with ***');
    expect(run.stderr + run.stdout).not.toContain(password);
  }, 60_000);

  it('a restart removes partial files nobody holds open, never a finished backup', async () => {
    const backups = join(dir, 'backups', 'app');
    mkdirSync(backups, { recursive: true });
    const partial = join(backups, '.0123456789abcdef.partial');
    const script = join(backups, '.fedcba9876543210.restore.sql');
    const finished = join(backups, 'app-20260101T000000Z.dump');
    const lookalike = join(backups, '.notes.partial');
    for (const path of [partial, script, finished, `${finished}.manifest.json`, lookalike]) {
      writeFileSync(path, 'x');
      utimesSync(path, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    }
    // A partial file still held open by a live process (another dbops writing it) stays.
    const busy = join(backups, '.aaaaaaaaaaaaaaaa.partial');
    writeFileSync(busy, 'x');
    utimesSync(busy, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const holder = execa('tail', ['-f', busy], { reject: false });
    await new Promise((r) => setTimeout(r, 300));
    try {
      const restart = await dbops(['exec', '--config', configPath, '--as', 'alice', '--', '/db targets']);
      expect(restart.exitCode).toBe(0);
      expect(existsSync(partial)).toBe(false);
      expect(existsSync(script)).toBe(false);
      expect(existsSync(finished)).toBe(true);
      expect(existsSync(`${finished}.manifest.json`)).toBe(true);
      expect(existsSync(lookalike)).toBe(true);
      expect(existsSync(busy)).toBe(true);
    } finally {
      holder.kill('SIGKILL');
      await holder;
    }
    // Fresh files are left for a run that may have just created them.
    const fresh = join(backups, '.bbbbbbbbbbbbbbbb.partial');
    writeFileSync(fresh, 'x');
    expect(await removeAbandonedPartials(join(dir, 'backups'))).not.toContain(fresh);
    expect(await removeAbandonedPartials(join(dir, 'backups'), { minAgeMs: 0 })).toContain(fresh);
  }, 60_000);
});
