// However the demo's process ends (Ctrl-D, /quit, SIGINT, SIGTERM, SIGHUP, an uncaught error, exit), its
// PostgreSQL is stopped, the files it produced are kept in a folder it names, and the rest is deleted.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** What the demo produces for people and keeps when it stops; everything else in its directory goes. */
export const PRODUCED_ENTRIES = ['dbops.log', 'backups', 'exports'] as const;

export interface Stoppable {
  /** Stops the server and handles the directory; resolves to the folder the produced files were kept in. */
  stop(): Promise<string | undefined>;
}

export interface ShutdownRegistration {
  environment: Stoppable;
  /** The demo's directory (for the synchronous last resort at process exit). */
  dir: string;
  /** Told once where the produced files went (undefined: nothing was produced). */
  onStopped?: (keptDir: string | undefined) => void;
}

const registered = new Set<ShutdownRegistration>();
let installed = false;

/** Signals that end the demo, with the exit code a shell reports for each (128 + number). */
const SIGNALS = [
  ['SIGHUP', 129],
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const;

/**
 * Stops the registered demos when the process is told to end, and as a last resort at exit (which
 * runs no async work: the server is then killed by the pid in its postmaster.pid, synchronously).
 */
export function stopOnExit(registration: ShutdownRegistration): () => void {
  registered.add(registration);
  if (!installed) {
    installed = true;
    for (const [signal, code] of SIGNALS) process.on(signal, () => void endAll(code));
    process.on('uncaughtException', (error) => failAndEnd(error));
    process.on('unhandledRejection', (error) => failAndEnd(error));
    process.once('exit', () => {
      for (const r of registered) stopSync(r.dir);
    });
  }
  return () => registered.delete(registration);
}

let ending: Promise<void> | undefined;

async function endAll(code: number): Promise<void> {
  // A closed terminal makes every later write fail (EIO); that must not become an uncaught error.
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});
  ending ??= (async () => {
    const all = [...registered].map(async (r) => {
      const kept = await r.environment.stop();
      r.onStopped?.(kept);
    });
    await withDeadline(Promise.allSettled(all), 20_000);
    process.exit(code);
  })();
  await ending;
}

function failAndEnd(error: unknown): void {
  try {
    process.stderr.write(
      `dbops demo: unexpected error, stopping: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
  } catch {
    // stderr may be gone with the terminal.
  }
  void endAll(1);
}

async function withDeadline(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise((done) => (timer = setTimeout(done, ms)))]);
  clearTimeout(timer);
}

/** The folder the produced files are kept in: beside the demo's directory, never an existing one. */
function keptDirFor(dir: string): string {
  const base = join(dirname(dir), `${basename(dir)}-files`);
  let candidate = base;
  for (let n = 2; existsSync(candidate); n += 1) candidate = `${base}-${n}`;
  return candidate;
}

function isProduced(path: string): boolean {
  try {
    const info = statSync(path);
    return info.isDirectory() ? readdirSync(path).length > 0 : info.size > 0;
  } catch {
    return false;
  }
}

/**
 * Moves what the demo produced (the log, backups, exports) out of its directory into a new folder
 * beside it, and returns that folder; undefined when nothing was produced.
 */
export function keepProducedFiles(dir: string): string | undefined {
  const produced = PRODUCED_ENTRIES.filter((entry) => isProduced(join(dir, entry)));
  if (produced.length === 0) return undefined;
  const kept = keptDirFor(dir);
  mkdirSync(kept, { recursive: true, mode: 0o700 });
  for (const entry of produced) renameSync(join(dir, entry), join(kept, entry));
  return kept;
}

/** The postmaster's pid from its data directory, if the server is (still) there. */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The last resort when the process exits without having stopped the demo: an immediate shutdown of the
 * server (SIGQUIT; the postmaster ends its backends), a short wait for it, then the files.
 */
export function stopSync(dir: string): void {
  if (!existsSync(dir)) return;
  const pid = postmasterPid(join(dir, 'data'));
  if (pid !== undefined && alive(pid)) {
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      // Gone meanwhile.
    }
    const sleeper = new Int32Array(new SharedArrayBuffer(4));
    for (let waited = 0; waited < 5_000 && alive(pid); waited += 50) Atomics.wait(sleeper, 0, 0, 50);
  }
  try {
    const kept = keepProducedFiles(dir);
    if (kept) process.stderr.write(`dbops demo: the files it produced are kept in ${kept}\n`);
  } catch {
    // Keeping is best effort here; deleting the server's data is not.
  }
  rmSync(dir, { recursive: true, force: true });
}
