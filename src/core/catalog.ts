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
  'lookup',
  'bind',
  'unbind',
  'alerts',
  'history',
  'page',
  'csv',
  'trend',
  'digest',
  'schedules',
  'run-schedule',
] as const;
export type Builtin = (typeof BUILTINS)[number];

export function isBuiltin(name: string): name is Builtin {
  return (BUILTINS as readonly string[]).includes(name);
}

const OPERATION_NAME = /^[a-z][a-z0-9-]{0,40}$/;

/** The operations of one runbook pack; they exist only on targets that list the pack. */
export interface PackOperations {
  pack: string;
  operations: readonly { spec: AnyOperation; lookup?: string | undefined }[];
}

export class Catalog {
  readonly #byName = new Map<string, AnyOperation>();
  /** pack name → operation name → spec */
  readonly #packs = new Map<string, Map<string, AnyOperation>>();
  /** pack name → lookup name → spec */
  readonly #lookups = new Map<string, Map<string, AnyOperation>>();

  /** Throws when a spec is malformed: a bad or duplicate name, or steps that do not match its risk. */
  constructor(specs: readonly AnyOperation[], packs: readonly PackOperations[] = []) {
    const problems: string[] = [];
    for (const pack of packs) {
      const ops = new Map<string, AnyOperation>();
      const lookups = new Map<string, AnyOperation>();
      for (const { spec, lookup } of pack.operations) {
        const where = `pack ${pack.pack} operation ${spec.name}`;
        if (isBuiltin(spec.name)) problems.push(`${where}: name collides with a built-in command`);
        if (specs.some((s) => s.name === spec.name))
          problems.push(`${where}: name collides with a catalog operation`);
        if (ops.has(spec.name)) problems.push(`${where}: defined twice`);
        ops.set(spec.name, spec);
        if (lookup) lookups.set(lookup, spec);
      }
      this.#packs.set(pack.pack, ops);
      this.#lookups.set(pack.pack, lookups);
    }
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

  /** A catalog operation (available on every target). */
  get(name: string): AnyOperation | undefined {
    return this.#byName.get(name);
  }

  /** A catalog operation, or the operation of that name in one of the target's packs. */
  resolve(name: string, target: { packs: readonly string[] } | undefined): AnyOperation | undefined {
    const global = this.#byName.get(name);
    if (global || !target) return global;
    for (const pack of target.packs) {
      const spec = this.#packs.get(pack)?.get(name);
      if (spec) return spec;
    }
    return undefined;
  }

  /** The packs that define an operation of this name. */
  packsDefining(name: string): string[] {
    return [...this.#packs.entries()].filter(([, ops]) => ops.has(name)).map(([pack]) => pack);
  }

  /** Any pack's spec of this name (to parse its arguments before the target is known). */
  anyPackSpec(name: string): AnyOperation | undefined {
    for (const ops of this.#packs.values()) {
      const spec = ops.get(name);
      if (spec) return spec;
    }
    return undefined;
  }

  /** The pack operations available on a target, in pack order. */
  forTarget(target: { packs: readonly string[] }): AnyOperation[] {
    return target.packs.flatMap((pack) => [...(this.#packs.get(pack)?.values() ?? [])]);
  }

  /** The keyed lookup `what` on a target (`lookup kasm user alice`). */
  lookup(target: { packs: readonly string[] }, what: string): AnyOperation | undefined {
    for (const pack of target.packs) {
      const spec = this.#lookups.get(pack)?.get(what);
      if (spec) return spec;
    }
    return undefined;
  }

  lookupsFor(target: { packs: readonly string[] }): string[] {
    return target.packs.flatMap((pack) => [...(this.#lookups.get(pack)?.keys() ?? [])]);
  }

  hasPack(name: string): boolean {
    return this.#packs.has(name);
  }

  /** Every operation name a person could type (for did-you-mean). */
  allNames(): string[] {
    return [
      ...new Set([...this.#byName.keys(), ...[...this.#packs.values()].flatMap((ops) => [...ops.keys()])]),
    ];
  }

  all(): AnyOperation[] {
    return [...this.#byName.values()];
  }

  names(): string[] {
    return [...this.#byName.keys()];
  }
}
