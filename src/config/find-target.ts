// Finds a configured target by the name a person typed: case-insensitively, like operations, own keys only.
import type { Config, ResolvedTarget } from './schema.js';

/**
 * Target names are lower-case by the config's rule, so `KASM` and `Kasm` mean `kasm`. Only the config's own
 * entries count: a typed `constructor` or `__proto__` names no target (never something inherited).
 */
export function findTarget(
  targets: Config['targets'],
  typed: string | undefined,
): ResolvedTarget | undefined {
  if (typed === undefined) return undefined;
  const name = typed.toLowerCase();
  return Object.hasOwn(targets, name) ? targets[name] : undefined;
}
