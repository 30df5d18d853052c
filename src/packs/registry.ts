// Loads the shipped and the user's packs, checks the config's use of them, and makes their operations.
import { existsSync } from 'node:fs';
import { catalog as operations } from '../../commands/index.js';
import type { Config } from '../config/schema.js';
import { Catalog, type PackOperations } from '../core/catalog.js';
import { ConfigError } from '../core/errors.js';
import { closest } from '../core/suggest.js';
import { loadPacksCached } from './cache.js';
import { builtinPacksDir, type LoadedPack } from './load.js';
import { nameCollisions, sharedNames } from './names.js';
import { type PackOperationOptions, packOperationSpec } from './operation.js';
import type { PackSetting } from './schema.js';

function settingProblem(value: unknown, setting: PackSetting): string | undefined {
  switch (setting.type) {
    case 'int':
      return Number.isInteger(value) ? undefined : 'expected a whole number';
    case 'bool':
      return typeof value === 'boolean' ? undefined : 'expected true or false';
    case 'argv':
      return Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string' && v !== '')
        ? undefined
        : 'expected a list of words, e.g. [alembic] or [docker, compose, exec, -T, backend, alembic]';
    default:
      return typeof value === 'string' && value !== '' ? undefined : 'expected text';
  }
}

/** Problems with how the config uses packs: unknown packs, missing or wrong settings, name clashes. */
export function checkConfigPacks(config: Config, packs: readonly LoadedPack[]): string[] {
  const problems: string[] = [];
  const byName = new Map(packs.map((p) => [p.name, p]));
  for (const target of Object.values(config.targets)) {
    const where = `targets.${target.name}`;
    for (const name of target.packs) {
      const pack = byName.get(name);
      if (!pack) {
        const guesses = closest(name, [...byName.keys()]);
        problems.push(
          `${where}.packs: there is no pack named ${name}${guesses.length > 0 ? ` (did you mean ${guesses.join(' or ')}?)` : ''}; packs available: ${[...byName.keys()].join(', ') || 'none'}`,
        );
        continue;
      }
      const given = target.settings?.[name] ?? {};
      for (const [key, setting] of Object.entries(pack.manifest.settings)) {
        const value = given[key];
        if (value === undefined) {
          if (setting.required && setting.default === undefined) {
            problems.push(
              `${where}.settings.${name}.${key}: the ${name} pack needs this setting${setting.description ? ` (${setting.description})` : ''}`,
            );
          }
          continue;
        }
        const problem = settingProblem(value, setting);
        if (problem) problems.push(`${where}.settings.${name}.${key}: ${problem}`);
      }
      for (const key of Object.keys(given)) {
        if (!(key in pack.manifest.settings)) {
          const known = Object.keys(pack.manifest.settings);
          problems.push(
            `${where}.settings.${name}.${key}: the ${name} pack has no such setting${known.length > 0 ? ` (it has ${known.join(', ')})` : ''}`,
          );
        }
      }
    }
    const listed = target.packs.flatMap((name) => byName.get(name) ?? []);
    problems.push(...sharedNames(target.name, listed));
    for (const name of Object.keys(target.settings ?? {})) {
      if (!target.packs.includes(name)) {
        problems.push(`${where}.settings.${name}: settings for a pack the target does not list in packs`);
      }
    }
  }
  return problems;
}

/**
 * The shipped packs plus the config's pack directories, validated together; with `cacheDir`, packs
 * validated by an earlier process from the same files are reused.
 */
export function loadConfiguredPacks(config: Config, options: { cacheDir?: string } = {}): LoadedPack[] {
  const builtin = builtinPacksDir();
  const dirs = [...(existsSync(builtin) ? [builtin] : []), ...config.packDirs];
  const packs = loadPacksCached(dirs, options.cacheDir);
  // Names the catalog would refuse are the pack's fault (file:line), not the config's.
  const collisions = nameCollisions(
    packs,
    operations.map((op) => op.name),
  );
  if (collisions.length > 0) throw new ConfigError(collisions);
  const problems = checkConfigPacks(config, packs);
  if (problems.length > 0) throw new ConfigError(problems.map((p) => `${p} (${config.source})`));
  return packs;
}

export function packCatalogEntries(
  packs: readonly LoadedPack[],
  options: PackOperationOptions = {},
): PackOperations[] {
  return packs.map((pack) => ({
    pack: pack.name,
    operations: pack.operations.map((op) => ({
      spec: packOperationSpec(pack, op, options),
      lookup: op.def.lookup,
    })),
  }));
}

/**
 * The whole operation catalog as a process would build it (catalog operations and the configured packs),
 * or a ConfigError naming every problem — so `dbops start` stops at once instead of waiting for a state
 * database it would never use.
 */
export function checkCatalog(config: Config): LoadedPack[] {
  const packs = loadConfiguredPacks(config);
  try {
    new Catalog(operations, packCatalogEntries(packs));
  } catch (err) {
    throw new ConfigError([err instanceof Error ? err.message : String(err)]);
  }
  return packs;
}
