// dbops' own cache directory and files in it: created 0700, used only when no one else can write them.
import { mkdirSync, type Stats, statSync } from 'node:fs';

/**
 * A cache directory dbops may trust: its own, not writable by others (what it holds runs: the packs'
 * SQL, compiled code). Created (0700) when missing; undefined when it cannot be.
 */
export function trustedDir(dir: string): string | undefined {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const s = statSync(dir);
    return s.isDirectory() && ownedPrivately(s) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** Owned by this user and writable by no one else. */
export function ownedPrivately(s: Stats): boolean {
  const uid = process.getuid?.();
  return (s.mode & 0o022) === 0 && (uid === undefined || s.uid === uid);
}
