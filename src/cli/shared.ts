// What the dbops commands share: the environment (cli/env.ts), the config file and a quiet logger.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pino } from 'pino';
import { loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../core/errors.js';
import { createLogger, type Logger } from '../core/log.js';
import { cacheDir, env } from './env.js';

export { env } from './env.js';

export function configPath(flag: string | undefined): string {
  return resolve(flag ?? env.DBOPS_CONFIG ?? 'dbops.yaml');
}

export function loadConfigOrExit(path: string): Config {
  if (!existsSync(path)) {
    process.stderr.write(`dbops: config file ${path} not found (use --config FILE or set DBOPS_CONFIG)\n`);
    process.exit(2);
  }
  try {
    return loadConfigFile(path, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`dbops: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/** Where validated packs are kept between runs (the cache directory: cli/env.ts). */
export function packCacheDir(): string | undefined {
  return cacheDir();
}

/** exec and console keep the terminal clean: logs go to $DBOPS_LOG_FILE, or only warnings to stderr. */
export function quietLogger(): Logger {
  const file = env.DBOPS_LOG_FILE;
  if (file)
    return createLogger({
      level: env.DBOPS_LOG_LEVEL ?? 'info',
      destination: pino.destination({ dest: file, sync: true }),
    });
  return createLogger({ level: env.DBOPS_LOG_LEVEL ?? 'warn' });
}
