// At start-up: removes what an interrupted run left in the backups directory (partial dumps, restore
// scripts, manifest and TOC temporaries) — only dbops' own hidden, clearly marked temporaries.
import { readdir, readlink, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../core/log.js';

/**
 * The names dbops gives its temporaries (commands/backup.ts, restore.ts, verify-backup.ts): a dot, random
 * hex, and a marker suffix. A finished backup never has such a name (it is linked under its final name).
 */
const PARTIAL = /^\.[0-9a-f]{12,32}\.(partial|restore\.sql|manifest\.tmp|toc)$/;

/** Files younger than this are left alone: a run elsewhere may have just created them. */
const DEFAULT_MIN_AGE_MS = 5000;

export function isPartialName(name: string): boolean {
  return PARTIAL.test(name);
}

/** Every path some process on this host holds open (via /proc/<pid>/fd), or undefined without /proc. */
async function openPaths(): Promise<Set<string> | undefined> {
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry));
  } catch {
    return undefined;
  }
  const open = new Set<string>();
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = await readdir(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or another user's process
    }
    for (const fd of fds) {
      try {
        open.add(await readlink(`/proc/${pid}/fd/${fd}`));
      } catch {
        // closed meanwhile
      }
    }
  }
  return open;
}

export interface CleanupOptions {
  log?: Logger;
  /** Only files last written at least this long ago (default 5 s). */
  minAgeMs?: number;
  now?: number;
}

/**
 * Removes abandoned temporaries under `<backupsDir>/<target>/`: marked names only, not held open by any
 * process of this host, and not written to in the last `minAgeMs`. Without /proc (not Linux) a file must
 * be an hour old. Returns the removed paths. Never throws: a backups directory that cannot be read is
 * logged and left alone.
 */
export async function removeAbandonedPartials(
  backupsDir: string,
  options: CleanupOptions = {},
): Promise<string[]> {
  const removed: string[] = [];
  let targets: string[];
  try {
    targets = await readdir(backupsDir);
  } catch {
    return removed; // no backups directory yet
  }
  const candidates: string[] = [];
  for (const target of targets) {
    const dir = join(backupsDir, target);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue; // a file, or unreadable
    }
    for (const name of names) if (isPartialName(name)) candidates.push(join(dir, name));
  }
  if (candidates.length === 0) return removed;
  const open = await openPaths();
  const minAge = open ? (options.minAgeMs ?? DEFAULT_MIN_AGE_MS) : 3_600_000;
  const now = options.now ?? Date.now();
  for (const path of candidates) {
    try {
      const info = await stat(path);
      if (!info.isFile() || now - info.mtimeMs < minAge || open?.has(path)) continue;
      await rm(path, { force: true });
      removed.push(path);
    } catch (err) {
      options.log?.warn({ path, err }, 'could not remove a partial file of an interrupted run');
    }
  }
  if (removed.length > 0) {
    options.log?.info({ removed }, 'removed partial files left by an interrupted run');
  }
  return removed;
}
