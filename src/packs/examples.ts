// Checks a pack operation's `examples:` against its declared arguments, as the core would bind them.
import { z } from 'zod';
import { isUserError } from '../core/errors.js';
import { bindArguments, tokenize } from '../core/grammar.js';
import type { AnyOperation } from '../core/operation.js';
import { argSchema, usageOf } from './args.js';
import type { PackOperationDef } from './schema.js';

/** The arguments alone, enough for bindArguments (the real spec is built in operation.ts). */
function argumentSpec(def: PackOperationDef): AnyOperation | undefined {
  const shape: Record<string, z.ZodType> = {};
  try {
    for (const arg of def.args) shape[arg.name] = argSchema(arg);
  } catch {
    return undefined; // a default that does not validate: reported by the loader itself
  }
  return {
    name: def.name,
    summary: def.summary,
    usage: usageOf(def.name, def.args),
    positionals: def.args.filter((a) => a.positional).map((a) => a.name),
    args: z.object(shape),
    risk: def.risk,
  };
}

/**
 * Why each example would be refused (index and reason); empty when all bind. The reason is the message
 * a person would see, first line only.
 */
export function exampleProblems(def: PackOperationDef): { index: number; reason: string }[] {
  const spec = argumentSpec(def);
  if (!spec) return [];
  const problems: { index: number; reason: string }[] = [];
  (def.examples ?? []).forEach((example, index) => {
    try {
      bindArguments(spec, tokenize(example));
    } catch (err) {
      const message = isUserError(err) ? err.message : err instanceof Error ? err.message : String(err);
      problems.push({ index, reason: message.split('\n')[0] ?? message });
    }
  });
  return problems;
}
