// What check-config and `pack test` catch in packs before exec would: names that collide, and optional
// settings without a default that SQL would silently receive as NULL.
import type { Config } from '../config/schema.js';
import { isBuiltin } from '../core/catalog.js';
import type { LoadedPack, LoadedPackOperation, LoadedVariant } from './load.js';

function where(op: LoadedPackOperation, key: 'name' | 'lookup'): string {
  return op.at ? op.at([key]) : `${op.file}:1`;
}

/**
 * Operation names dbops would refuse to load: a built-in command's or a catalog operation's (both exist
 * on every target and would make the pack's operation unreachable). Each problem names file:line.
 */
export function nameCollisions(packs: readonly LoadedPack[], catalogNames: readonly string[]): string[] {
  const catalog = new Set(catalogNames);
  const problems: string[] = [];
  for (const pack of packs) {
    for (const op of pack.operations) {
      const name = op.def.name;
      if (isBuiltin(name)) {
        problems.push(
          `${where(op, 'name')}: name: ${name} is a built-in dbops command (/db ${name}); rename the operation`,
        );
      } else if (catalog.has(name)) {
        problems.push(
          `${where(op, 'name')}: name: ${name} is a dbops operation on every target; rename the operation (e.g. ${pack.name}-${name})`,
        );
      }
    }
  }
  return problems;
}

/**
 * Operations (and lookups) two packs listed on the same target both define: which one runs would depend
 * on the order of `packs`, so the config is refused. Each problem names both files.
 */
export function sharedNames(target: string, packs: readonly LoadedPack[]): string[] {
  const problems: string[] = [];
  const ops = new Map<string, { pack: string; op: LoadedPackOperation }>();
  const lookups = new Map<string, { pack: string; op: LoadedPackOperation }>();
  for (const pack of packs) {
    for (const op of pack.operations) {
      const other = ops.get(op.def.name);
      if (other) {
        problems.push(
          `targets.${target}.packs: packs ${other.pack} and ${pack.name} both define ${op.def.name} (${where(other.op, 'name')}, ${where(op, 'name')}); use one of them on this target or rename one`,
        );
      } else ops.set(op.def.name, { pack: pack.name, op });
      const lookup = op.def.lookup;
      if (!lookup) continue;
      const same = lookups.get(lookup);
      if (same) {
        problems.push(
          `targets.${target}.packs: packs ${same.pack} and ${pack.name} both define lookup ${lookup} (${where(same.op, 'lookup')}, ${where(op, 'lookup')}); use one of them on this target or rename one`,
        );
      } else lookups.set(lookup, { pack: pack.name, op });
    }
  }
  return problems;
}

function parameterNames(variant: LoadedVariant): string[] {
  return [
    ...(variant.sql?.names ?? []),
    ...(variant.preview?.names ?? []),
    ...(variant.steps ?? []).flatMap((s) => s.sql.names),
    ...(variant.batch?.sql.names ?? []),
  ];
}

/** The operations whose SQL reads the setting as `:name`, as file:line. */
function usesOf(pack: LoadedPack, setting: string): string[] {
  const uses: string[] = [];
  for (const op of pack.operations) {
    // An argument of the same name shadows the setting in that operation.
    if (op.def.args.some((a) => a.name === setting)) continue;
    const names = [...op.variants.flatMap(parameterNames), ...(op.state?.names ?? [])];
    if (names.includes(setting)) uses.push(op.at ? op.at(['name']) : `${op.file}:1`);
  }
  return uses;
}

/**
 * Optional settings without a default that the pack's SQL reads: on a target that does not set them
 * the SQL receives NULL, which usually matches nothing without an error. `given` is the target's
 * settings for the pack (undefined: judge the pack alone, as `pack test` does).
 */
export function nullSettingWarnings(pack: LoadedPack, given?: Readonly<Record<string, unknown>>): string[] {
  const warnings: string[] = [];
  for (const [key, setting] of Object.entries(pack.manifest.settings)) {
    if (setting.required || setting.default !== undefined || given?.[key] !== undefined) continue;
    const uses = usesOf(pack, key);
    if (uses.length === 0) continue;
    const declared = pack.at ? pack.at(['settings', key]) : `${pack.dir}/pack.yaml`;
    warnings.push(
      `${declared}: settings.${key} has no default and is not required, so :${key} is NULL in ${uses.join(', ')} unless a target sets it; give it a default or required: true`,
    );
  }
  return warnings;
}

/** nullSettingWarnings for every target's packs, as check-config reports them. */
export function configSettingWarnings(config: Config, packs: readonly LoadedPack[]): string[] {
  const byName = new Map(packs.map((p) => [p.name, p]));
  const warnings: string[] = [];
  for (const target of Object.values(config.targets)) {
    for (const name of target.packs) {
      const pack = byName.get(name);
      if (!pack) continue;
      for (const warning of nullSettingWarnings(pack, target.settings?.[name] ?? {}))
        warnings.push(`targets.${target.name}: ${warning}`);
    }
  }
  return warnings;
}
