// src/demo/shutdown.ts in a child process: an uncaught error stops the demo and exits 1; a process that
// exits without stopping it still ends the server (by its postmaster.pid) and keeps the produced files.
import { spawn } from 'node:child_process';
import { access, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';

const SHUTDOWN = new URL('../dist/src/demo/shutdown.js', import.meta.url).href;
const made: string[] = [];

afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

async function exists(path: string): Promise<boolean> {
  return await access(path).then(
    () => true,
    () => false,
  );
}

/** A demo directory with a log, an export and (optionally) a postmaster.pid naming `pid`. */
async function demoDir(pid?: number): Promise<string> {
  const parent = await mkdtemp(join(tmpdir(), 'dbops-shutdown-'));
  made.push(parent);
  const dir = join(parent, 'demo');
  await mkdir(join(dir, 'data'), { recursive: true });
  await mkdir(join(dir, 'exports'));
  await writeFile(join(dir, 'exports', 'users.csv'), 'id\n1\n');
  await writeFile(join(dir, 'dbops.log'), '{"msg":"hello"}\n');
  if (pid !== undefined) await writeFile(join(dir, 'data', 'postmaster.pid'), `${pid}\n/data\n`);
  return dir;
}

async function runNode(script: string): Promise<{ exitCode: number | undefined; all: string }> {
  const out = await execa(process.execPath, ['--input-type=module', '-e', script], {
    reject: false,
    all: true,
  });
  return { exitCode: out.exitCode, all: out.all ?? '' };
}

describe('demo shutdown', () => {
  it('an uncaught error stops the demo, says why, hands over the kept folder and exits 1', async () => {
    const dir = await demoDir();
    const marker = join(dir, '..', 'stopped');
    const script = `
      import { writeFileSync } from 'node:fs';
      import { keepProducedFiles, stopOnExit } from ${JSON.stringify(SHUTDOWN)};
      const dir = ${JSON.stringify(dir)};
      const environment = { stop: async () => keepProducedFiles(dir) };
      stopOnExit({ environment, dir, onStopped: (kept) => writeFileSync(${JSON.stringify(marker)}, String(kept)) });
      setTimeout(() => { throw new Error('boom in a timer'); }, 10);
      setTimeout(() => {}, 60_000);
    `;
    const run = await runNode(script);
    expect(run.exitCode).toBe(1);
    expect(run.all).toContain('dbops demo: unexpected error, stopping: Error: boom in a timer');
    expect(await readFile(marker, 'utf8')).toBe(`${dir}-files`);
    expect((await readdir(`${dir}-files`)).sort()).toEqual(['dbops.log', 'exports']);
  });

  it('a process that exits without stopping: the server is ended by its pid, files kept, directory gone', async () => {
    // Stands in for the postmaster: a process that only SIGQUIT (or worse) ends.
    const server = spawn('sleep', ['120'], { stdio: 'ignore' });
    const ended = new Promise<NodeJS.Signals | null>((done) =>
      server.once('exit', (_code, signal) => done(signal)),
    );
    const dir = await demoDir(server.pid);
    const script = `
      import { stopOnExit } from ${JSON.stringify(SHUTDOWN)};
      stopOnExit({ environment: { stop: async () => undefined }, dir: ${JSON.stringify(dir)} });
      process.exit(0);
    `;
    const run = await runNode(script);
    expect(run.exitCode).toBe(0);
    expect(await ended).toBe('SIGQUIT');
    expect(await exists(dir)).toBe(false);
    expect(run.all).toContain(`the files it produced are kept in ${dir}-files`);
    expect(await readFile(join(`${dir}-files`, 'exports', 'users.csv'), 'utf8')).toBe('id\n1\n');
  });
});
