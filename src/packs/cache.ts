// Remembers validated packs between processes: a pack whose files have not changed is not parsed and
// validated again on every `dbops exec` (YAML parsing and zod cost more than the command itself).
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineCounter, parseDocument } from 'yaml';
import { Locator, type Path } from '../config/yaml-locator.js';
import { ownedPrivately, trustedDir } from '../core/private-dir.js';
import { type LoadedPack, type LoadedPackOperation, loadPacks } from './load.js';

/** The loader's own modules: a cache written by another version of them is never used. */
const LOADER_MODULES = ['load.js', 'schema.js', 'named-params.js', 'examples.js', 'args.js', 'cache.js'];

/**
 * In the bundled CLI (scripts/bundle-cli.mjs) the loader's modules are not files beside this one: the
 * bundler puts the hash of their sources here instead. Undefined in tsc's modules.
 */
declare const __DBOPS_PACK_LOADER_HASH__: string | undefined;

function hashLoader(hash: ReturnType<typeof createHash>): void {
  if (typeof __DBOPS_PACK_LOADER_HASH__ === 'string') {
    hash.update(`loader bundle ${__DBOPS_PACK_LOADER_HASH__}\0`);
    return;
  }
  const here = fileURLToPath(new URL('.', import.meta.url));
  for (const name of LOADER_MODULES) {
    const file = join(here, name);
    hash.update(`loader ${name}\0`);
    if (existsSync(file)) hash.update(readFileSync(file));
  }
}

/** What is kept of a pack: everything but the `file:line` functions, rebuilt lazily from the files. */
type StoredOperation = Omit<LoadedPackOperation, 'at'>;
type StoredPack = Omit<LoadedPack, 'at' | 'operations'> & { operations: StoredOperation[] };

interface CacheFile {
  fingerprint: string;
  packs: StoredPack[];
}

/**
 * One hash over the loader's code and every file of every pack directory (names and contents), so an
 * edited, added or removed file, or a new dbops, means a fresh validation. Undefined when a directory
 * cannot be read: the loader then reports it.
 */
export function packsFingerprint(dirs: readonly string[]): string | undefined {
  const hash = createHash('sha256');
  try {
    hashLoader(hash);
    for (const root of dirs) {
      hash.update(`root ${root}\0`);
      for (const entry of readdirSync(root).sort()) {
        const dir = join(root, entry);
        if (!statSync(dir).isDirectory()) continue;
        for (const file of readdirSync(dir).sort()) {
          const path = join(dir, file);
          if (!statSync(path).isFile()) continue;
          hash.update(`file ${entry}/${file}\0`);
          hash.update(readFileSync(path));
          hash.update('\0');
        }
      }
    }
  } catch {
    return undefined;
  }
  return hash.digest('hex');
}

/** `file:line` of a key, found by parsing the file only when a message needs it. */
function lazyAt(file: string, shown: string): (path: Path) => string {
  let locator: Locator | undefined;
  return (path) => {
    try {
      if (!locator) {
        const lines = new LineCounter();
        locator = new Locator(parseDocument(readFileSync(file, 'utf8'), { lineCounter: lines }), lines);
      }
      return `${shown}:${locator.line(path)}`;
    } catch {
      return `${shown}:1`;
    }
  };
}

function shownPath(file: string): string {
  return relative(process.cwd(), file) || file;
}

function revive(stored: StoredPack): LoadedPack {
  return {
    ...stored,
    operations: stored.operations.map((op) => ({ ...op, at: lazyAt(op.file, shownPath(op.file)) })),
    at: lazyAt(join(stored.dir, 'pack.yaml'), shownPath(join(stored.dir, 'pack.yaml'))),
  };
}

function store(pack: LoadedPack): StoredPack {
  const { at: _at, operations, ...rest } = pack;
  return { ...rest, operations: operations.map(({ at: _opAt, ...op }) => op) };
}

function cacheFile(dir: string): string {
  return join(dir, 'packs.json');
}

/** The packs validated earlier with exactly this fingerprint, or undefined. */
export function readCachedPacks(cacheDir: string, fingerprint: string): LoadedPack[] | undefined {
  const dir = trustedDir(cacheDir);
  if (!dir) return undefined;
  try {
    const file = cacheFile(dir);
    if (!ownedPrivately(statSync(file))) return undefined;
    const cached = JSON.parse(readFileSync(file, 'utf8')) as CacheFile;
    if (cached.fingerprint !== fingerprint || !Array.isArray(cached.packs)) return undefined;
    return cached.packs.map(revive);
  } catch {
    return undefined;
  }
}

/** Keeps packs that loaded without a problem; a cache that cannot be written is only slower. */
export function writeCachedPacks(cacheDir: string, fingerprint: string, packs: readonly LoadedPack[]): void {
  const dir = trustedDir(cacheDir);
  if (!dir) return;
  const file = cacheFile(dir);
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    const body: CacheFile = { fingerprint, packs: packs.map(store) };
    writeFileSync(temporary, JSON.stringify(body), { mode: 0o600 });
    renameSync(temporary, file);
  } catch {
    rmSync(temporary, { force: true });
  }
}

/**
 * loadPacks, through the cache when `cacheDir` is given: unchanged packs come back as they were
 * validated; anything else is loaded (and validated) again, and kept only when it had no problem.
 */
export function loadPacksCached(dirs: readonly string[], cacheDir: string | undefined): LoadedPack[] {
  if (cacheDir === undefined) return loadPacks(dirs);
  const fingerprint = packsFingerprint(dirs);
  if (fingerprint === undefined) return loadPacks(dirs);
  const cached = readCachedPacks(cacheDir, fingerprint);
  if (cached) return cached;
  const packs = loadPacks(dirs);
  writeCachedPacks(cacheDir, fingerprint, packs);
  return packs;
}
