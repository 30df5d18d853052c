// The built `dbops demo` as a person runs it, ended every way a terminal session ends: the terminal
// closes (SIGHUP to its process group), SIGTERM, Ctrl-D, /quit. Each time its PostgreSQL is gone, its
// directory is gone, and the files it produced are kept in the folder it names.
import { type ChildProcess, spawn } from 'node:child_process';
import { access, readdir, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { pathWithout, toolPresent } from './setup/external-tools.js';

const CLI = fileURLToPath(new URL('../dist/src/cli.js', import.meta.url));
const STARTED = 120_000;

interface RunningDemo {
  child: ChildProcess;
  /** Everything it printed so far (stdout and stderr). */
  output: () => string;
  dir: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const started: ChildProcess[] = [];

afterAll(() => {
  // A demo a failed test left running: end its whole process group.
  for (const child of started) {
    if (child.exitCode === null && child.signalCode === null && child.pid) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});

async function waitFor(what: string, check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 100));
  }
}

/** Starts the demo in its own process group (as a terminal session would), with stdin a pipe. */
async function startDemo(env: NodeJS.ProcessEnv = process.env): Promise<RunningDemo> {
  const child = spawn(process.execPath, [CLI, 'demo'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
    env: { ...env, NO_COLOR: '1' },
  });
  started.push(child);
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once('exit', (code, signal) => done({ code, signal })),
  );
  await waitFor('the demo prompt', () => text.includes('alice> ') || child.exitCode !== null, STARTED);
  const dir = /\(data in ([^)]+)\)/.exec(text)?.[1];
  if (!dir || child.exitCode !== null) throw new Error(`the demo did not start:\n${text}`);
  return { child, output: () => text, dir, exited };
}

/** Lines of `ps` naming the demo's data directory: its postgres processes. */
async function postgresOf(dir: string): Promise<string[]> {
  const ps = await execa('ps', ['-eo', 'pid,args'], { reject: false });
  return ps.stdout.split('\n').filter((line) => line.includes(`${dir}/data`));
}

async function exists(path: string): Promise<boolean> {
  return await access(path).then(
    () => true,
    () => false,
  );
}

/** After the demo ended: nothing of its server runs, its directory is gone, the kept folder is named. */
async function expectCleanEnd(demo: RunningDemo): Promise<string> {
  expect(await postgresOf(demo.dir)).toEqual([]);
  expect(await exists(demo.dir)).toBe(false);
  const kept = `${demo.dir}-files`;
  expect(demo.output()).toContain('Demo stopped and cleaned up.');
  expect(demo.output()).toContain(`are kept in ${kept}`);
  expect(await readdir(kept)).toContain('dbops.log');
  return kept;
}

describe('dbops demo, ended every way', () => {
  it(
    'the terminal closes (SIGHUP to its process group): PostgreSQL stops, the log is kept',
    async () => {
      const demo = await startDemo();
      expect((await postgresOf(demo.dir)).length).toBeGreaterThan(0);
      process.kill(-(demo.child.pid ?? 0), 'SIGHUP');
      expect(await demo.exited).toEqual({ code: 129, signal: null });
      await rm(await expectCleanEnd(demo), { recursive: true, force: true });
    },
    STARTED + 60_000,
  );

  it(
    'SIGTERM, on a machine without alembic: it starts, says how to install alembic, and stops cleanly',
    async () => {
      const hidden = pathWithout('alembic');
      try {
        const demo = await startDemo({ ...process.env, PATH: hidden.path });
        expect(demo.output()).toContain('alembic is not installed');
        expect(demo.output()).toContain('apt-get install alembic python3-psycopg2');
        expect((await postgresOf(demo.dir)).length).toBeGreaterThan(0);
        demo.child.kill('SIGTERM');
        expect(await demo.exited).toEqual({ code: 143, signal: null });
        await rm(await expectCleanEnd(demo), { recursive: true, force: true });
      } finally {
        hidden.cleanup();
      }
    },
    STARTED + 60_000,
  );

  it(
    'Ctrl-D after an export (and a backup where pg_dump is installed): they are kept with the log',
    async () => {
      const withBackup = await toolPresent('pg_dump');
      const demo = await startDemo();
      demo.child.stdin?.write('/db export activity users --limit 5\n');
      await waitFor('the export', () => /exported 5 rows/.test(demo.output()), 60_000);
      if (withBackup) {
        demo.child.stdin?.write('/db backup staging --table users\n');
        await waitFor('the backup', () => demo.output().includes('backed up table public.users'), 60_000);
      }
      demo.child.stdin?.end();
      expect(await demo.exited).toEqual({ code: 0, signal: null });
      const kept = await expectCleanEnd(demo);
      expect((await readdir(`${kept}/exports`)).some((f) => f.endsWith('.csv'))).toBe(true);
      if (withBackup) {
        const backups = await readdir(`${kept}/backups/staging`);
        expect(backups.some((f) => /^staging-.*-public\.users\.dump$/.test(f))).toBe(true);
      }
      await rm(kept, { recursive: true, force: true });
    },
    STARTED + 120_000,
  );

  it(
    '/quit after a command: the same clean end, its log kept',
    async () => {
      const demo = await startDemo();
      demo.child.stdin?.write('/db sizes kasm\n');
      await waitFor('the answer', () => /\(sizes kasm/.test(demo.output()), 60_000);
      demo.child.stdin?.write('/quit\n');
      expect(await demo.exited).toEqual({ code: 0, signal: null });
      await rm(await expectCleanEnd(demo), { recursive: true, force: true });
    },
    STARTED + 60_000,
  );
});
