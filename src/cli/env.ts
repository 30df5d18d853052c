// The environment of a dbops command: the only place that reads process.env; everything below receives it.
import { join, resolve } from 'node:path';

export const env: Record<string, string | undefined> = { ...process.env };

/**
 * dbops' cache directory (validated packs, compiled code): $DBOPS_CACHE_DIR, else $XDG_CACHE_HOME/dbops,
 * else ~/.cache/dbops; undefined (no cache) when none is known or DBOPS_CACHE_DIR is empty.
 */
export function cacheDir(): string | undefined {
  if (env.DBOPS_CACHE_DIR !== undefined)
    return env.DBOPS_CACHE_DIR === '' ? undefined : resolve(env.DBOPS_CACHE_DIR);
  if (env.XDG_CACHE_HOME) return join(resolve(env.XDG_CACHE_HOME), 'dbops');
  return env.HOME ? join(env.HOME, '.cache', 'dbops') : undefined;
}
