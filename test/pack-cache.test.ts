// The cache of validated packs: unchanged packs come back exactly as loaded; any change, a tampered
// or foreign cache, or a pack with a problem means a full validation again.
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/core/errors.js';
import { loadPacksCached, packsFingerprint } from '../src/packs/cache.js';
import { builtinPacksDir, type LoadedPack, loadPacks } from '../src/packs/load.js';

const scratch = mkdtempSync(join(tmpdir(), 'dbops-pack-cache-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let n = 0;
/** A copy of the shipped packs and an empty cache directory of its own. */
function fresh(): { root: string; cache: string } {
  n += 1;
  const root = join(scratch, `packs-${n}`);
  cpSync(builtinPacksDir(), root, { recursive: true });
  return { root, cache: join(scratch, `cache-${n}`) };
}

/** The packs without their `file:line` functions, to compare what was loaded. */
function plain(packs: readonly LoadedPack[]): unknown {
  return packs.map(({ at: _at, operations, ...pack }) => ({
    ...pack,
    operations: operations.map(({ at: _opAt, ...op }) => op),
  }));
}

function cacheFile(cache: string): string {
  return join(cache, 'packs.json');
}

describe('the validated-pack cache', () => {
  it('returns unchanged packs exactly as validated, with the same file:line in messages', () => {
    const { root, cache } = fresh();
    const loaded = loadPacks([root]);
    const first = loadPacksCached([root], cache);
    expect(statSync(cacheFile(cache)).mode & 0o777).toBe(0o600);
    expect(statSync(cache).mode & 0o777).toBe(0o700);
    const second = loadPacksCached([root], cache);
    expect(plain(second)).toStrictEqual(plain(loaded));
    expect(plain(first)).toStrictEqual(plain(loaded));
    // Served from the cache: a marker written into it comes back (the YAML was not read again).
    const body = JSON.parse(readFileSync(cacheFile(cache), 'utf8')) as { packs: LoadedPack[] };
    const kasm = body.packs.find((p) => p.name === 'kasm');
    if (!kasm) throw new Error('kasm is not in the cache');
    kasm.manifest.description = 'served from the cache';
    writeFileSync(cacheFile(cache), JSON.stringify(body), { mode: 0o600 });
    const third = loadPacksCached([root], cache);
    expect(third.find((p) => p.name === 'kasm')?.manifest.description).toBe('served from the cache');
    // Lines in messages are the YAML's, found when a message asks for them.
    for (const [i, pack] of loaded.entries()) {
      const cached = third[i];
      expect(cached?.at?.(['settings'])).toBe(pack.at?.(['settings']));
      for (const [j, op] of pack.operations.entries()) {
        expect(cached?.operations[j]?.at?.(['name'])).toBe(op.at?.(['name']));
        expect(cached?.operations[j]?.at?.(['args', 0, 'name'])).toBe(op.at?.(['args', 0, 'name']));
      }
    }
  });

  it('validates again when a file changes, appears or goes, and never caches a broken pack', () => {
    const { root, cache } = fresh();
    const before = packsFingerprint([root]);
    loadPacksCached([root], cache);
    const file = join(root, 'kasm', 'users.yaml');
    const original = readFileSync(file, 'utf8');
    // A read operation made to write: the loader must see it, not the cache.
    writeFileSync(file, `${original.trimEnd()}\nsql: DELETE FROM users\n`);
    expect(packsFingerprint([root])).not.toBe(before);
    expect(() => loadPacksCached([root], cache)).toThrow(ConfigError);
    expect(() => loadPacksCached([root], cache)).toThrow(/users\.yaml:\d+: /);
    writeFileSync(file, original);
    expect(packsFingerprint([root])).toBe(before);
    expect(loadPacksCached([root], cache).map((p) => p.name)).toContain('kasm');
    // A new operation file is a new pack content.
    writeFileSync(
      join(root, 'kasm', 'extra.yaml'),
      'name: extra-op\nsummary: x\nrisk: read\nsql: SELECT 1\n',
    );
    const ops = loadPacksCached([root], cache).find((p) => p.name === 'kasm')?.operations;
    expect(ops?.map((o) => o.def.name)).toContain('extra-op');
    rmSync(join(root, 'kasm', 'extra.yaml'));
    const gone = loadPacksCached([root], cache).find((p) => p.name === 'kasm')?.operations;
    expect(gone?.map((o) => o.def.name)).not.toContain('extra-op');
  });

  it('ignores a cache others can write, and one that is not JSON', () => {
    const { root, cache } = fresh();
    loadPacksCached([root], cache);
    const plant = (mode: number) => {
      const body = JSON.parse(readFileSync(cacheFile(cache), 'utf8')) as { packs: LoadedPack[] };
      for (const pack of body.packs) pack.manifest.description = 'planted';
      writeFileSync(cacheFile(cache), JSON.stringify(body));
      chmodSync(cacheFile(cache), mode);
    };
    const planted = (packs: LoadedPack[]) => packs.some((p) => p.manifest.description === 'planted');
    // Anyone could have written a world-writable file: validated again, and replaced by a private one.
    plant(0o666);
    expect(planted(loadPacksCached([root], cache))).toBe(false);
    expect(statSync(cacheFile(cache)).mode & 0o777).toBe(0o600);
    expect(planted(loadPacksCached([root], cache))).toBe(false);
    // The same content in a private file is trusted (what the cache is for)…
    plant(0o600);
    expect(planted(loadPacksCached([root], cache))).toBe(true);
    // …but not in a directory others can write (and dbops does not write there either).
    chmodSync(cache, 0o777);
    expect(planted(loadPacksCached([root], cache))).toBe(false);
    chmodSync(cache, 0o700);
    expect(planted(loadPacksCached([root], cache))).toBe(true);
    writeFileSync(cacheFile(cache), '{ not json');
    expect(loadPacksCached([root], cache).length).toBe(loadPacks([root]).length);
    // A cache directory that cannot be made (a file in the way) only means no cache.
    const blocked = join(scratch, 'blocked');
    writeFileSync(blocked, '');
    expect(loadPacksCached([root], join(blocked, 'cache')).length).toBe(loadPacks([root]).length);
  });
});
