// `/db help <operation> <target>`: the target whose pack explains the operation when packs share a name.
import type { ResolvedPerson, ResolvedTarget } from '../../config/schema.js';
import { quoteInput } from '../args.js';
import { UserError } from '../errors.js';
import type { AnyOperation } from '../operation.js';
import { closest } from '../suggest.js';

interface HelpCore {
  visibleTargets(person: ResolvedPerson | undefined): ResolvedTarget[];
}

/**
 * The target named after the operation in `help <operation> <target>` (case-insensitive, among those the
 * person may see); an unknown or hidden name is refused the same way, so help reveals no target.
 */
export function helpTarget(core: HelpCore, person: ResolvedPerson | undefined, word: string): ResolvedTarget {
  const visible = core.visibleTargets(person);
  const target = visible.find((t) => t.name.toLowerCase() === word.toLowerCase());
  if (target) return target;
  const guesses = closest(
    word,
    visible.map((t) => t.name),
  );
  throw new UserError(
    'unknown_target',
    `unknown target ${quoteInput(word)}${guesses.length > 0 ? ` — did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?` : ''}; targets you may use: ${visible.map((t) => t.name).join(', ') || 'none'}`,
  );
}

interface HelpCatalog {
  resolve(name: string, target: { packs: readonly string[] } | undefined): AnyOperation | undefined;
  packsDefining(name: string): string[];
}

/**
 * The operation `name` as `target` has it; when only other packs define it, says which (help must not
 * explain another pack's operation under this target's name). Undefined when nothing defines it.
 */
export function helpSpec(
  catalog: HelpCatalog,
  name: string,
  target: ResolvedTarget,
): AnyOperation | undefined {
  const spec = catalog.resolve(name, target);
  if (spec) return spec;
  const packs = catalog.packsDefining(name);
  if (packs.length === 0) return undefined;
  throw new UserError(
    'unknown_operation',
    `${target.name} has no operation ${name}: it belongs to the ${packs.join(' and ')} pack${packs.length > 1 ? 's' : ''}, which ${target.name} does not use`,
  );
}
