// Runs the bundled short-lived commands (dist/src/short-commands.cjs) through V8's code cache, kept in
// dbops' cache directory: a later `dbops exec` skips parsing and compiling ~1.5 MB of JavaScript. Node 20
// has no compile cache for modules (NODE_COMPILE_CACHE is 22.1+), so the bundle is a script run by vm.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import { ownedPrivately, trustedDir } from '../core/private-dir.js';
import type { ShortCommands } from './short-types.js';

export interface LoadedCommands {
  commands: ShortCommands;
  /** Keeps the compiled code for the next process when there was none (call after the command ran). */
  keep(): void;
}

const BUNDLE = 'short-commands.cjs';

/** The sha256 of short-commands.cjs, written in by scripts/bundle-cli.mjs; undefined in tsc's module. */
declare const __DBOPS_SHORT_COMMANDS_SHA256__: string | undefined;
const PREFIX = 'code-';

/**
 * The bundled commands, compiled with the cached code when a valid one is kept; undefined when there is no
 * bundle beside this file (tsc's modules: the caller imports those instead).
 */
export function loadShortCommands(cacheDir: string | undefined): LoadedCommands | undefined {
  const file = join(dirname(fileURLToPath(import.meta.url)), BUNDLE);
  if (!existsSync(file)) return undefined;
  const source = readFileSync(file, 'utf8');
  // V8 checks its own version and flags, and only the length of the source: the key names the content,
  // by the hash the bundler wrote in (and the file's size and time), else by hashing it here (~4 ms).
  const { size, mtimeMs } = statSync(file);
  const content =
    typeof __DBOPS_SHORT_COMMANDS_SHA256__ === 'string'
      ? `${__DBOPS_SHORT_COMMANDS_SHA256__} ${size} ${mtimeMs}`
      : createHash('sha256').update(source).digest('hex');
  const key = createHash('sha256')
    .update(`${process.version}\0${process.arch}\0${process.execArgv.join(' ')}\0${content}`)
    .digest('hex')
    .slice(0, 32);
  const dir = cacheDir !== undefined ? trustedDir(cacheDir) : undefined;
  const cacheFile = dir !== undefined ? join(dir, `${PREFIX}${key}.bin`) : undefined;
  const cached = cacheFile !== undefined ? readTrusted(cacheFile) : undefined;
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: file,
    ...(cached ? { cachedData: cached } : {}),
  });
  const module = { exports: {} as ShortCommands };
  (script.runInThisContext() as (...args: unknown[]) => void)(
    module.exports,
    createRequire(file),
    module,
    file,
    dirname(file),
  );
  const fresh = cached === undefined || script.cachedDataRejected === true;
  return {
    commands: module.exports,
    keep: () => {
      if (!fresh || dir === undefined || cacheFile === undefined) return;
      writeCache(dir, cacheFile, script.createCachedData());
    },
  };
}

/** The kept code, when this user alone could have written it (it runs as this user's code). */
function readTrusted(file: string): Buffer | undefined {
  try {
    if (!ownedPrivately(statSync(file))) return undefined;
    return readFileSync(file);
  } catch {
    return undefined;
  }
}

/** Atomically, replacing the code of earlier builds; a cache that cannot be written is only slower. */
function writeCache(dir: string, file: string, data: Buffer): void {
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(temporary, data, { mode: 0o600 });
    renameSync(temporary, file);
    for (const name of readdirSync(dir)) {
      if (name.startsWith(PREFIX) && name.endsWith('.bin') && join(dir, name) !== file)
        rmSync(join(dir, name), { force: true });
    }
  } catch {
    rmSync(temporary, { force: true });
  }
}
