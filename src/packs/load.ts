// Loads runbook packs from directories; every problem names the file and line and how to fix it.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { dotted, Locator, type Path } from '../config/yaml-locator.js';
import { ConfigError } from '../core/errors.js';
import { exampleProblems } from './examples.js';
import { type CompiledSql, compileNamedParams } from './named-params.js';
import {
  type PackManifest,
  type PackOperationDef,
  type PackRequires,
  type PackVariantDef,
  packManifestSchema,
  packOperationSchema,
} from './schema.js';

/** One form of an operation's SQL, compiled, with what it needs of the target's schema. */
export interface LoadedVariant {
  label?: string;
  /** Undefined: the pack does not say, so nothing is checked before the SQL is sent. */
  requires?: PackRequires;
  sql?: CompiledSql;
  preview?: CompiledSql;
  previewHeadline?: string;
  steps?: { label: string; sql: CompiledSql }[];
  batch?: { label: string; sql: CompiledSql; maxBatches: number };
}

export interface LoadedPackOperation {
  def: PackOperationDef;
  /** Where it was defined, for messages. */
  file: string;
  /** `file:line` of a key in the operation's file, as messages name it (`users.yaml:1` when unknown). */
  at?: (path: Path) => string;
  /** The forms of its SQL in the order they are tried (the top-level SQL is the one variant of most). */
  variants: LoadedVariant[];
  /** command.state_sql, and the placeholder names its columns provide. */
  state?: CompiledSql;
}

export interface LoadedPack {
  name: string;
  manifest: PackManifest;
  dir: string;
  operations: LoadedPackOperation[];
  /** `file:line` of a key in pack.yaml. */
  at?: (path: Path) => string;
}

/** The packs that ship with dbops (commands/packs), found from src/packs or dist/src/packs alike. */
export function builtinPacksDir(): string {
  const candidates = [
    fileURLToPath(new URL('../../commands/packs', import.meta.url)),
    fileURLToPath(new URL('../../../commands/packs', import.meta.url)),
  ];
  return candidates.find((dir) => existsSync(dir)) ?? candidates[0] ?? 'commands/packs';
}

const READ_SQL = /^\s*(?:(?:--[^\n]*\n|\/\*[\s\S]*?\*\/)\s*)*(select|with|values|table|show)\b/i;

function parseYaml<S extends z.ZodType>(
  file: string,
  shown: string,
  schema: S,
  problems: string[],
): { value: z.output<S>; locator: Locator } | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    problems.push(`${shown}: cannot be read (${err instanceof Error ? err.message : String(err)})`);
    return undefined;
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) {
    for (const error of doc.errors) {
      const at = error.linePos?.[0];
      problems.push(`${shown}:${at?.line ?? 1}: YAML syntax error: ${error.message.split('\n')[0]}`);
    }
    return undefined;
  }
  const locator = new Locator(doc, lines);
  const parsed = schema.safeParse(doc.toJS());
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol') as Path;
      const unknown = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
      problems.push(`${shown}:${locator.line(path)}: ${dotted(path)}: ${issue.message}${unknown}`);
    }
    return undefined;
  }
  return { value: parsed.data, locator };
}

function compile(
  sql: string,
  shown: string,
  locator: Locator,
  path: Path,
  known: ReadonlySet<string>,
  problems: string[],
): CompiledSql | undefined {
  try {
    const compiled = compileNamedParams(sql);
    for (const name of compiled.names) {
      if (!known.has(name)) {
        problems.push(
          `${shown}:${locator.line(path)}: ${dotted(path)}: parameter :${name} is neither an argument nor a pack setting; declare it under args (or settings in pack.yaml)`,
        );
      }
    }
    return compiled;
  } catch (err) {
    problems.push(
      `${shown}:${locator.line(path)}: ${dotted(path)}: ${err instanceof Error ? err.message : String(err)}`,
    );
    return undefined;
  }
}

type Body = Pick<PackVariantDef, 'sql' | 'steps' | 'batch' | 'preview'>;

/** The rules one body (the top level, or a variant) follows for the operation's risk. */
function checkBody(
  def: PackOperationDef,
  body: Body,
  path: Path,
  at: (path: Path, what: string) => void,
): void {
  if (path.length > 0) {
    const bodies = (['sql', 'steps', 'batch'] as const).filter((k) => body[k] !== undefined);
    if (bodies.length !== 1) {
      at(
        path,
        `give exactly one of sql, steps or batch (found ${bodies.length > 0 ? bodies.join(', ') : 'none'})`,
      );
    }
    if (def.risk === 'destructive' && !body.preview?.sql) {
      at(
        [...path, 'preview'],
        'a destructive operation needs preview.sql showing exactly what it would change',
      );
    }
  }
  if (def.risk === 'read') {
    if (body.steps || body.batch)
      at([...path, 'sql'], 'a read operation runs one SELECT: use sql, not steps or batch');
    if (body.sql && !READ_SQL.test(body.sql)) {
      at(
        [...path, 'sql'],
        'a read operation must be a SELECT (or WITH/VALUES/SHOW); it runs in a read-only transaction',
      );
    }
  }
  if (def.risk !== 'destructive' && body.batch)
    at([...path, 'batch'], 'batches are for destructive operations');
  if (body.preview?.sql !== undefined && !READ_SQL.test(body.preview.sql))
    at([...path, 'preview', 'sql'], 'the preview must be a SELECT');
}

/** Checks the combinations zod cannot express: which body a risk needs, previews, lookups, defaults. */
function checkShape(def: PackOperationDef, shown: string, locator: Locator, problems: string[]): void {
  const at = (path: Path, what: string) =>
    problems.push(`${shown}:${locator.line(path)}: ${dotted(path)}: ${what}`);
  if (def.variants) {
    const top = (['sql', 'steps', 'batch', 'command', 'requires'] as const).filter(
      (k) => def[k] !== undefined,
    );
    if (top.length > 0)
      at([], `with variants, give ${top.join(', ')} in each variant instead of at the top level`);
    if (def.preview?.sql !== undefined)
      at(['preview', 'sql'], 'with variants, give preview.sql in each variant');
    def.variants.forEach((variant, i) => {
      checkBody(def, variant, ['variants', i], at);
    });
  } else {
    const bodies = (['sql', 'steps', 'batch', 'command'] as const).filter((k) => def[k] !== undefined);
    if (bodies.length !== 1) {
      at(
        [],
        `give exactly one of sql, steps, batch or command (found ${bodies.length > 0 ? bodies.join(', ') : 'none'})`,
      );
    }
    checkBody(def, def, [], at);
    if (def.risk === 'destructive' && !def.command && !def.preview?.sql) {
      at(['preview'], 'a destructive operation needs preview.sql showing exactly what it would change');
    }
  }
  if (def.lookup) {
    if (def.risk !== 'read') at(['lookup'], 'only read operations can be lookups');
    if (!def.args.some((a) => a.positional))
      at(['lookup'], 'a lookup needs a positional argument for its key');
  }
  const names = new Set<string>();
  let optionalSeen = false;
  def.args.forEach((arg, i) => {
    if (names.has(arg.name)) at(['args', i, 'name'], `argument ${arg.name} is declared twice`);
    names.add(arg.name);
    if (arg.type === 'enum' && (!arg.values || arg.values.length === 0)) {
      at(['args', i, 'values'], 'an enum argument needs its values');
    }
    if (arg.required && arg.default !== undefined)
      at(['args', i, 'default'], 'a required argument has no default');
    if (arg.positional) {
      if (!arg.required && arg.default === undefined) optionalSeen = true;
      else if (optionalSeen) at(['args', i], 'required positional arguments must come before optional ones');
    }
  });
}

function loadOperation(
  file: string,
  shown: string,
  settings: ReadonlySet<string>,
  problems: string[],
): LoadedPackOperation | undefined {
  const before = problems.length;
  const parsed = parseYaml(file, shown, packOperationSchema, problems);
  if (!parsed) return undefined;
  const { value: def, locator } = parsed;
  checkShape(def, shown, locator, problems);
  for (const { index, reason } of exampleProblems(def)) {
    problems.push(`${shown}:${locator.line(['examples', index])}: examples.${index}: ${reason}`);
  }
  const known = new Set([...def.args.map((a) => a.name), ...settings]);
  const compileBody = (body: Body, path: Path, requires: PackRequires | undefined, label?: string) => {
    const variant: LoadedVariant = {
      ...(label !== undefined ? { label } : {}),
      ...(requires !== undefined ? { requires } : {}),
    };
    if (body.sql) {
      const sql = compile(body.sql, shown, locator, [...path, 'sql'], known, problems);
      if (sql) variant.sql = sql;
    }
    if (body.preview?.sql) {
      const sql = compile(body.preview.sql, shown, locator, [...path, 'preview', 'sql'], known, problems);
      if (sql) variant.preview = sql;
    }
    const headline = body.preview?.headline ?? def.preview?.headline;
    if (headline !== undefined) variant.previewHeadline = headline;
    if (body.steps) {
      const steps: NonNullable<LoadedVariant['steps']> = [];
      body.steps.forEach((step, i) => {
        const sql = compile(step.sql, shown, locator, [...path, 'steps', i, 'sql'], known, problems);
        if (sql) steps.push({ label: step.label, sql });
      });
      variant.steps = steps;
    }
    if (body.batch) {
      const sql = compile(body.batch.sql, shown, locator, [...path, 'batch', 'sql'], known, problems);
      if (sql) variant.batch = { label: body.batch.label, sql, maxBatches: body.batch.max_batches };
    }
    return variant;
  };
  const op: LoadedPackOperation = {
    def,
    file,
    at: (path) => `${shown}:${locator.line(path)}`,
    variants: def.variants
      ? def.variants.map((v, i) => compileBody(v, ['variants', i], v.requires, v.label))
      : [compileBody(def, [], def.requires)],
  };
  if (def.command) {
    const stateColumns = new Set<string>();
    if (def.command.state_sql) {
      if (!READ_SQL.test(def.command.state_sql)) {
        problems.push(
          `${shown}:${locator.line(['command', 'state_sql'])}: command.state_sql: must be a SELECT`,
        );
      }
      const state = compile(def.command.state_sql, shown, locator, ['command', 'state_sql'], known, problems);
      if (state) op.state = state;
      // Column names are the aliases of the select list: `AS current`.
      for (const m of def.command.state_sql.matchAll(/\bAS\s+([a-z_][a-z0-9_]*)/gi))
        stateColumns.add((m[1] ?? '').toLowerCase());
    }
    const placeholders = [...def.command.argv, ...(def.command.preview_argv ?? [])].flatMap((a) =>
      [...a.matchAll(/\{([a-z0-9_]+)\}/g)].map((m) => m[1] ?? ''),
    );
    for (const name of placeholders) {
      if (!known.has(name) && !stateColumns.has(name)) {
        problems.push(
          `${shown}:${locator.line(['command', 'argv'])}: command.argv: {${name}} is neither an argument, a pack setting nor a column (AS ${name}) of command.state_sql`,
        );
      }
    }
    if (def.command.cwd_setting && !settings.has(def.command.cwd_setting)) {
      problems.push(
        `${shown}:${locator.line(['command', 'cwd_setting'])}: command.cwd_setting: ${def.command.cwd_setting} is not a setting in pack.yaml`,
      );
    }
  }
  return problems.length === before ? op : undefined;
}

/** Loads one pack directory; problems are appended (nothing is thrown). */
export function loadPackDir(dir: string, problems: string[], base = dir): LoadedPack | undefined {
  const shownDir = relative(process.cwd(), base) || base;
  const show = (file: string) => join(shownDir, relative(base, file));
  const manifestFile = join(dir, 'pack.yaml');
  if (!existsSync(manifestFile)) {
    problems.push(`${show(dir)}: not a pack (no pack.yaml in it)`);
    return undefined;
  }
  const before = problems.length;
  const manifest = parseYaml(manifestFile, show(manifestFile), packManifestSchema, problems);
  if (!manifest) return undefined;
  if (manifest.value.name !== basename(dir)) {
    problems.push(
      `${show(manifestFile)}:${manifest.locator.line(['name'])}: name: the pack is named ${manifest.value.name} but its directory is ${basename(dir)}; make them the same`,
    );
  }
  const settings = new Set(Object.keys(manifest.value.settings));
  const operations: LoadedPackOperation[] = [];
  const files = readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f) && f !== 'pack.yaml')
    .sort();
  const seen = new Map<string, string>();
  for (const file of files) {
    const op = loadOperation(join(dir, file), show(join(dir, file)), settings, problems);
    if (!op) continue;
    const twice = seen.get(op.def.name);
    if (twice)
      problems.push(`${show(join(dir, file))}:1: operation ${op.def.name} is also defined in ${twice}`);
    seen.set(op.def.name, show(join(dir, file)));
    operations.push(op);
  }
  if (files.length === 0) problems.push(`${show(dir)}: the pack has no operation files`);
  if (problems.length > before) return undefined;
  const shownManifest = show(manifestFile);
  const { locator } = manifest;
  return {
    name: manifest.value.name,
    manifest: manifest.value,
    dir,
    operations,
    at: (path) => `${shownManifest}:${locator.line(path)}`,
  };
}

/**
 * Loads every pack under the given directories (each directory holds pack sub-directories) and throws one
 * ConfigError listing every problem, so a bad pack never loads half-way or is skipped silently.
 */
export function loadPacks(dirs: readonly string[]): LoadedPack[] {
  const problems: string[] = [];
  const packs: LoadedPack[] = [];
  const where = new Map<string, string>();
  for (const root of dirs) {
    if (!existsSync(root) || !statSync(root).isDirectory()) {
      problems.push(`${root}: pack directory not found`);
      continue;
    }
    for (const entry of readdirSync(root).sort()) {
      const dir = join(root, entry);
      if (!statSync(dir).isDirectory()) continue;
      const pack = loadPackDir(dir, problems, dir);
      if (!pack) continue;
      const other = where.get(pack.name);
      if (other) problems.push(`${dir}: a pack named ${pack.name} is already loaded from ${other}`);
      else {
        where.set(pack.name, dir);
        packs.push(pack);
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return packs;
}
