// The registry of runbook operations: an explicit list, checked loudly at start-up.
import type { AnyOperation } from './operation.js';

export const BUILTINS = [
  'help',
  'targets',
  'pending',
  'status',
  'approve',
  'deny',
  'cancel',
  'audit',
] as const;
export type Builtin = (typeof BUILTINS)[number];

export function isBuiltin(name: string): name is Builtin {
  return (BUILTINS as readonly string[]).includes(name);
}

const OPERATION_NAME = /^[a-z][a-z0-9-]{0,40}$/;

export class Catalog {
  readonly #byName = new Map<string, AnyOperation>();

  /** Throws when a spec is malformed: a bad or duplicate name, or steps that do not match its risk. */
  constructor(specs: readonly AnyOperation[]) {
    const problems: string[] = [];
    for (const spec of specs) {
      const where = `operation ${JSON.stringify(spec.name)}`;
      if (!OPERATION_NAME.test(spec.name)) problems.push(`${where}: name must be kebab-case`);
      if (isBuiltin(spec.name)) problems.push(`${where}: name collides with a built-in command`);
      if (this.#byName.has(spec.name)) problems.push(`${where}: defined twice`);
      const mayBeDestructive = spec.risk === 'destructive' || spec.riskFor !== undefined;
      if (mayBeDestructive && (!spec.preview || !spec.execute)) {
        problems.push(`${where}: a destructive operation needs preview() and execute()`);
      }
      if (spec.risk !== 'destructive' && !spec.run)
        problems.push(`${where}: a ${spec.risk} operation needs run()`);
      for (const name of spec.positionals ?? []) {
        if (!(name in spec.args.shape)) problems.push(`${where}: positional ${name} is not one of its args`);
      }
      if (!spec.summary || !spec.usage) problems.push(`${where}: summary and usage are required`);
      this.#byName.set(spec.name, spec);
    }
    if (problems.length > 0) throw new Error(`invalid operation catalog:\n  ${problems.join('\n  ')}`);
  }

  get(name: string): AnyOperation | undefined {
    return this.#byName.get(name);
  }

  all(): AnyOperation[] {
    return [...this.#byName.values()];
  }

  names(): string[] {
    return [...this.#byName.keys()];
  }
}
