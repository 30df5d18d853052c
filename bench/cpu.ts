// CPU time of other processes on this machine (Linux /proc): the PostgreSQL server of the benchmark
// (postmaster and its backends, found by port) and helper processes, to split a run's CPU between them.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Linux's USER_HZ: /proc reports CPU time in these ticks. */
const TICKS_PER_SECOND = 100;

function statOf(pid: number, path = `/proc/${pid}/stat`): { ppid: number; cpuMs: number } | undefined {
  try {
    const text = readFileSync(path, 'utf8');
    // The command name is in parentheses and may hold spaces: the fields start after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(fields[1]);
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return { ppid, cpuMs: ((utime + stime) * 1000) / TICKS_PER_SECOND };
  } catch {
    return undefined;
  }
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

/** The postmaster listening on `port` (its command line names it), or undefined. */
export function postmasterPid(port: number): number | undefined {
  for (const pid of allPids()) {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const p = args.indexOf('-p');
      if (args.some((a) => /(^|\/)postgres$/.test(a)) && p >= 0 && args[p + 1] === String(port)) return pid;
    } catch {
      // Gone meanwhile.
    }
  }
  return undefined;
}

/** CPU milliseconds used so far by the postmaster and every process it started (its backends). */
export function serverCpuMs(postmaster: number): number {
  let total = statOf(postmaster)?.cpuMs ?? 0;
  for (const pid of allPids()) {
    const s = statOf(pid);
    if (s && s.ppid === postmaster) total += s.cpuMs;
  }
  return total;
}

/** CPU milliseconds used so far by one process (0 when it is gone or unknown). */
export function processCpuMs(pid: number | undefined): number {
  return pid === undefined ? 0 : (statOf(pid)?.cpuMs ?? 0);
}

/** This process's CPU milliseconds so far (user + system). */
export function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * This process's main thread's CPU milliseconds so far (Linux: its task has the process's id); the rest of
 * the process's CPU is its other threads': V8's compiler and GC helpers, libuv's pool, worker threads.
 */
export function mainThreadCpuMs(): number {
  return statOf(process.pid, `/proc/self/task/${process.pid}/stat`)?.cpuMs ?? 0;
}

/** The postmaster and every process it started (its backends and workers). */
export function serverPids(postmaster: number): number[] {
  return [postmaster, ...allPids().filter((pid) => statOf(pid)?.ppid === postmaster)];
}

/**
 * Binds processes (every thread of each) to the CPUs in `cpuList` ("0", "1", "0-1") with taskset;
 * a backend forked later inherits its postmaster's binding. False when taskset is missing or refused.
 */
export function pinTo(pids: readonly number[], cpuList: string): boolean {
  try {
    for (const pid of pids) {
      execFileSync('taskset', ['-a', '-p', '-c', cpuList, String(pid)], { stdio: 'ignore' });
    }
    return true;
  } catch {
    return false;
  }
}
