// Whole processes, side by side in one run: `dbops exec … /db sizes` against `psql -c` with the same SQL,
// and `dbops --help` against `node -e 0` (wall time, CPU time and peak memory), as scripts and cron pay
// them, through the file package.json's `bin` names (what `dbops` runs once installed).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { execa } from 'execa';
import { round, type Stats, stats } from './stats.js';

const TIME = '/usr/bin/time';

export interface ProcessSide {
  wall: Stats;
  /** Median peak resident memory (KiB → MiB), when /usr/bin/time is installed. */
  peakRssMb?: number;
  /** Median CPU time, user + system (ms, 10 ms resolution), when /usr/bin/time is installed. */
  cpuMs?: number;
}

export interface ProcessResults {
  runs: number;
  exec: ProcessSide;
  psql: ProcessSide;
  help: ProcessSide;
  nodeBare: ProcessSide;
  /** exec / psql, and help / node -e 0, on medians. */
  execRatio: number;
  helpRatio: number;
  /** The entry point measured: package.json's bin for dbops. */
  entry: string;
}

interface Command {
  file: string;
  args: string[];
  env: Record<string, string>;
}

interface Sample {
  ms: number;
  rssKb?: number;
  cpuMs?: number;
}

async function timed(command: Command, rssFile: string): Promise<Sample> {
  const measured = existsSync(TIME);
  const [file, args] = measured
    ? [TIME, ['-f', '%M %U %S', '-o', rssFile, command.file, ...command.args]]
    : [command.file, command.args];
  const t0 = performance.now();
  const run = await execa(file, args, { env: command.env, extendEnv: false, reject: false });
  const ms = performance.now() - t0;
  if (run.exitCode !== 0)
    throw new Error(`${command.file} ${command.args.join(' ')}: exit ${run.exitCode}: ${run.stderr}`);
  if (!measured) return { ms };
  const [kb, user, system] = (readFileSync(rssFile, 'utf8').trim().split('\n').at(-1) ?? '')
    .split(' ')
    .map(Number);
  return {
    ms,
    ...(Number.isFinite(kb) ? { rssKb: kb } : {}),
    ...(Number.isFinite(user) && Number.isFinite(system)
      ? { cpuMs: ((user ?? 0) + (system ?? 0)) * 1000 }
      : {}),
  };
}

function side(samples: Sample[]): ProcessSide {
  const rss = samples.flatMap((s) => (s.rssKb !== undefined ? [s.rssKb / 1024] : []));
  const cpu = samples.flatMap((s) => (s.cpuMs !== undefined ? [s.cpuMs] : []));
  return {
    wall: stats(samples.map((s) => s.ms)),
    ...(rss.length > 0 ? { peakRssMb: round(stats(rss).medianMs, 1) } : {}),
    ...(cpu.length > 0 ? { cpuMs: round(stats(cpu).medianMs, 1) } : {}),
  };
}

/** The file `dbops` runs once installed (package.json's bin), which `cli` must be. */
function installedEntry(cli: string): string {
  let dir = dirname(resolve(cli));
  while (!existsSync(join(dir, 'package.json'))) {
    if (dirname(dir) === dir) throw new Error(`${cli}: no package.json above it`);
    dir = dirname(dir);
  }
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { bin?: Record<string, string> };
  const bin = pkg.bin?.dbops;
  if (!bin || resolve(dir, bin) !== resolve(cli))
    throw new Error(`${cli} is not package.json's bin for dbops (${bin ?? 'none'}): measure what users run`);
  return resolve(dir, bin);
}

/**
 * Runs each of the four `runs` times, interleaved (the order rotates so none always runs on a warmer
 * moment), after one warm-up each (the pack cache is filled then, as on any machine after the first run).
 */
export async function wholeProcesses(options: {
  cli: string;
  configYaml: string;
  env: Record<string, string>;
  psqlArgs: string[];
  psqlEnv: Record<string, string>;
  psql: string;
  runs: number;
}): Promise<ProcessResults> {
  const entry = installedEntry(options.cli);
  const dir = mkdtempSync(join(tmpdir(), 'dbops-bench-process-'));
  try {
    const config = join(dir, 'dbops.yaml');
    writeFileSync(config, options.configYaml);
    const path = process.env.PATH ?? '/usr/bin:/bin';
    const nodeEnv = { PATH: path, HOME: dir, DBOPS_CACHE_DIR: join(dir, 'cache') };
    const commands: Record<'exec' | 'psql' | 'help' | 'nodeBare', Command> = {
      exec: {
        file: process.execPath,
        args: [entry, 'exec', '--config', config, '--as', 'bench', '--', '/db sizes app'],
        env: { ...nodeEnv, ...options.env },
      },
      psql: { file: options.psql, args: options.psqlArgs, env: options.psqlEnv },
      help: { file: process.execPath, args: [entry, '--help'], env: nodeEnv },
      nodeBare: { file: process.execPath, args: ['-e', '0'], env: nodeEnv },
    };
    const names = Object.keys(commands) as (keyof typeof commands)[];
    const samples = Object.fromEntries(names.map((n) => [n, [] as Sample[]]));
    const rssFile = join(dir, 'rss');
    for (const name of names) await timed(commands[name], rssFile);
    for (let i = 0; i < options.runs; i++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(i + k) % names.length] as keyof typeof commands;
        samples[name]?.push(await timed(commands[name], rssFile));
      }
    }
    const result = {
      exec: side(samples.exec ?? []),
      psql: side(samples.psql ?? []),
      help: side(samples.help ?? []),
      nodeBare: side(samples.nodeBare ?? []),
    };
    return {
      runs: options.runs,
      entry,
      ...result,
      execRatio: round(result.exec.wall.medianMs / result.psql.wall.medianMs, 2),
      helpRatio: round(result.help.wall.medianMs / result.nodeBare.wall.medianMs, 2),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
