// `/db help <operation> <target>`: the target whose pack explains the operation when packs share a name.
import type { ResolvedPerson, ResolvedTarget } from '../config/schema.js';
import { quoteInput } from '../core/args.js';
import { UserError } from '../core/errors.js';
import { closest } from '../core/suggest.js';

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
