// Whole processes, side by side in one run: `dbops exec … /db sizes` against `psql -c` with the same SQL,
// and `dbops --help` against `node -e 0` (wall time and peak memory), as scripts and cron pay them.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { round, type Stats, stats } from './stats.js';

const TIME = '/usr/bin/time';

export interface ProcessSide {
  wall: Stats;
  /** Median peak resident memory (KiB → MiB), when /usr/bin/time is installed. */
  peakRssMb?: number;
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
}

interface Command {
  file: string;
  args: string[];
  env: Record<string, string>;
}

async function timed(command: Command, rssFile: string): Promise<{ ms: number; rssKb?: number }> {
  const measured = existsSync(TIME);
  const [file, args] = measured
    ? [TIME, ['-f', '%M', '-o', rssFile, command.file, ...command.args]]
    : [command.file, command.args];
  const t0 = performance.now();
  const run = await execa(file, args, { env: command.env, extendEnv: false, reject: false });
  const ms = performance.now() - t0;
  if (run.exitCode !== 0)
    throw new Error(`${command.file} ${command.args.join(' ')}: exit ${run.exitCode}: ${run.stderr}`);
  if (!measured) return { ms };
  const kb = Number(readFileSync(rssFile, 'utf8').trim().split('\n').at(-1));
  return Number.isFinite(kb) ? { ms, rssKb: kb } : { ms };
}

function side(samples: { ms: number; rssKb?: number }[]): ProcessSide {
  const rss = samples.flatMap((s) => (s.rssKb !== undefined ? [s.rssKb / 1024] : []));
  const wall = stats(samples.map((s) => s.ms));
  return rss.length > 0 ? { wall, peakRssMb: round(stats(rss).medianMs, 1) } : { wall };
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
  const dir = mkdtempSync(join(tmpdir(), 'dbops-bench-process-'));
  try {
    const config = join(dir, 'dbops.yaml');
    writeFileSync(config, options.configYaml);
    const path = process.env.PATH ?? '/usr/bin:/bin';
    const nodeEnv = { PATH: path, HOME: dir, DBOPS_CACHE_DIR: join(dir, 'cache') };
    const commands: Record<'exec' | 'psql' | 'help' | 'nodeBare', Command> = {
      exec: {
        file: process.execPath,
        args: [options.cli, 'exec', '--config', config, '--as', 'bench', '--', '/db sizes app'],
        env: { ...nodeEnv, ...options.env },
      },
      psql: { file: options.psql, args: options.psqlArgs, env: options.psqlEnv },
      help: { file: process.execPath, args: [options.cli, '--help'], env: nodeEnv },
      nodeBare: { file: process.execPath, args: ['-e', '0'], env: nodeEnv },
    };
    const names = Object.keys(commands) as (keyof typeof commands)[];
    const samples = Object.fromEntries(names.map((n) => [n, [] as { ms: number; rssKb?: number }[]]));
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
      ...result,
      execRatio: round(result.exec.wall.medianMs / result.psql.wall.medianMs, 2),
      helpRatio: round(result.help.wall.medianMs / result.nodeBare.wall.medianMs, 2),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
