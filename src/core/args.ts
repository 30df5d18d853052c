// Argument schemas for runbook operations, and the canonical (normalized, printable) form of bound arguments.
import { z } from 'zod';
import { canonicalDuration, parseDuration } from './duration.js';
import type { AnyOperation } from './operation.js';

export const ARG_KINDS = ['duration', 'int', 'pid', 'identifier', 'flag', 'enum', 'text'] as const;
export type ArgKind = (typeof ARG_KINDS)[number];

/** What the grammar and the formatter need to know about an argument beyond its zod type. */
export interface ArgInfo {
  kind: ArgKind;
  /** A value to show in "needs a value, e.g. `--older-than 5m`". */
  example: string;
}

const argInfoRegistry = z.registry<ArgInfo>();

/** Longest piece of user input quoted back in an error message. */
const ECHO_MAX = 40;

/** User input as it may appear in a message: quoted, on one line, and cut short. */
export function quoteInput(text: string, max = ECHO_MAX): string {
  const oneLine = text.replace(/[\r\n\t]+/g, ' ');
  const clipped = oneLine.length > max ? `${oneLine.slice(0, max - 1)}…` : oneLine;
  return `"${clipped}"`;
}

function describeInput(value: unknown): string {
  return typeof value === 'string' ? quoteInput(value) : quoteInput(String(value));
}

const DURATION_HINT = 'expected a duration like 5m, 90s or 1h30m';
const SECONDS = /^\d+(?:\.\d+)?$/;
/** Beyond ~31 years a duration is a typo, and canonical printing stops being useful. */
const MAX_DURATION_SECONDS = 1e9;

function durationSeconds(value: string | number): number | undefined {
  let seconds: number | undefined;
  if (typeof value === 'number') seconds = value;
  else {
    const text = value.trim();
    seconds = SECONDS.test(text) ? Number(text) : parseDuration(text);
  }
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0 || seconds > MAX_DURATION_SECONDS) {
    return undefined;
  }
  return seconds;
}

function durationBase() {
  return z.union([z.string(), z.number()]).transform((value, ctx) => {
    const seconds = durationSeconds(value);
    if (seconds === undefined) {
      ctx.addIssue({ code: 'custom', message: `${DURATION_HINT}, got ${describeInput(value)}` });
      return z.NEVER;
    }
    return seconds;
  });
}
type DurationSchema = ReturnType<typeof durationBase>;

/** A duration typed as "90s", "5m", "1h30m" or plain seconds ("90"); the value is seconds. */
export function durationArg(): DurationSchema;
export function durationArg(defaultText: string): z.ZodDefault<DurationSchema>;
export function durationArg(defaultText?: string): DurationSchema | z.ZodDefault<DurationSchema> {
  const base = durationBase().register(argInfoRegistry, { kind: 'duration', example: defaultText ?? '5m' });
  if (defaultText === undefined) return base;
  const seconds = durationSeconds(defaultText);
  if (seconds === undefined) throw new Error(`durationArg: invalid default duration "${defaultText}"`);
  return base.default(seconds);
}

export interface IntArgOptions {
  min?: number;
  max?: number;
  default?: number;
}

function intBase(min: number, max: number) {
  return z.union([z.string(), z.number()]).transform((value, ctx) => {
    // Strict digits only: "10; drop", "1e3" or " 10" are not numbers here, whatever Number() thinks.
    const n = typeof value === 'number' ? value : /^\d{1,15}$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n)) {
      ctx.addIssue({ code: 'custom', message: `expected a whole number, got ${describeInput(value)}` });
      return z.NEVER;
    }
    if (n < min) {
      ctx.addIssue({ code: 'custom', message: `must be at least ${min}, got ${n}` });
      return z.NEVER;
    }
    if (n > max) {
      ctx.addIssue({ code: 'custom', message: `must be at most ${max}, got ${n}` });
      return z.NEVER;
    }
    return n;
  });
}
type IntSchema = ReturnType<typeof intBase>;

/** A whole number typed as plain digits, within [min, max]. */
export function intArg(options: IntArgOptions & { default: number }): z.ZodDefault<IntSchema>;
export function intArg(options?: IntArgOptions): IntSchema;
export function intArg(options: IntArgOptions = {}): IntSchema | z.ZodDefault<IntSchema> {
  const min = options.min ?? 0;
  const max = options.max ?? Number.MAX_SAFE_INTEGER;
  const fallback = options.default;
  const base = intBase(min, max).register(argInfoRegistry, {
    kind: 'int',
    example: String(fallback ?? Math.max(min, Math.min(max, 10))),
  });
  if (fallback === undefined) return base;
  if (!Number.isSafeInteger(fallback) || fallback < min || fallback > max) {
    throw new Error(`intArg: default ${fallback} is outside [${min}, ${max}]`);
  }
  return base.default(fallback);
}

/** A backend process id. */
export function pidArg(): IntSchema {
  return intBase(1, 2_147_483_647).register(argInfoRegistry, { kind: 'pid', example: '12345' });
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$/;

/** A table or index name, optionally schema-qualified; the operation still checks it against the catalog. */
export function identifierArg() {
  return z
    .string()
    .superRefine((value, ctx) => {
      if (!IDENTIFIER.test(value)) {
        ctx.addIssue({
          code: 'custom',
          message: `expected a name like users or public.users (letters, digits, _ and $, at most 63 each), got ${describeInput(value)}`,
        });
      }
    })
    .register(argInfoRegistry, { kind: 'identifier', example: 'public.users' });
}

function hasControlCharacter(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/**
 * A value typed as text: never longer than `maxLength`, no control characters, and — when `pattern` is
 * given — of that shape (`hint` says which, e.g. "an email address"). It is always bound as a parameter.
 */
export function textArg(
  options: {
    pattern?: RegExp;
    hint?: string;
    example?: string;
    maxLength?: number;
    check?: (value: string) => boolean;
    /** Lets line breaks and tabs through (SQL typed over several lines); other control characters stay refused. */
    multiline?: boolean;
    /** What to say when the value is longer than `maxLength`. */
    tooLong?: (length: number) => string;
  } = {},
) {
  const maxLength = options.maxLength ?? 200;
  return z
    .string()
    .superRefine((value, ctx) => {
      if (value.length === 0) ctx.addIssue({ code: 'custom', message: 'must not be empty' });
      else if (value.length > maxLength) {
        ctx.addIssue({
          code: 'custom',
          message:
            options.tooLong?.(value.length) ?? `must be at most ${maxLength} characters, got ${value.length}`,
        });
      } else if (hasControlCharacter(options.multiline ? value.replace(/[\n\r\t]/g, ' ') : value)) {
        ctx.addIssue({ code: 'custom', message: 'must not contain control characters' });
      } else if (
        (options.pattern && !options.pattern.test(value)) ||
        (options.check && !options.check(value))
      ) {
        ctx.addIssue({
          code: 'custom',
          message: `expected ${options.hint ?? 'a different value'}, got ${describeInput(value)}`,
        });
      }
    })
    .register(argInfoRegistry, { kind: 'text', example: options.example ?? 'value' });
}

/** A switch: `--full` (or `--full=false`); off unless given. */
export function flagArg() {
  return z.boolean().default(false).register(argInfoRegistry, { kind: 'flag', example: 'true' });
}

/** One of a fixed set of words. */
export function enumArg<const V extends readonly [string, ...string[]]>(values: V) {
  const list = values.join(', ');
  return z
    .enum(values, { error: (issue) => `expected one of ${list}, got ${describeInput(issue.input)}` })
    .register(argInfoRegistry, { kind: 'enum', example: values[0] });
}

// Wrappers that keep the meaning of the schema they wrap.
const WRAPPERS = new Set(['optional', 'default', 'prefault', 'nullable', 'readonly', 'catch', 'nonoptional']);

function isZodType(value: unknown): value is z.core.$ZodType {
  return typeof value === 'object' && value !== null && '_zod' in value;
}

function innerOf(schema: z.core.$ZodType): z.core.$ZodType | undefined {
  const def = schema._zod.def;
  if (!WRAPPERS.has(def.type) || !('innerType' in def)) return undefined;
  return isZodType(def.innerType) ? def.innerType : undefined;
}

/** The schema under optional/default/nullable wrappers. */
export function unwrapArg(schema: z.core.$ZodType): z.core.$ZodType {
  let current = schema;
  for (let inner = innerOf(current); inner; inner = innerOf(current)) current = inner;
  return current;
}

/** The registered kind and example of an argument schema, looking through its wrappers. */
export function argInfo(schema: z.core.$ZodType): ArgInfo | undefined {
  for (let current: z.core.$ZodType | undefined = schema; current; current = innerOf(current)) {
    const info = argInfoRegistry.get(current);
    if (info) return info;
  }
  return undefined;
}

/** True when the argument is a boolean switch that takes no value. */
export function isFlagArg(schema: z.core.$ZodType): boolean {
  return unwrapArg(schema)._zod.def.type === 'boolean';
}

/** The value a `.default(...)` wrapper supplies, if any. */
function defaultValueOf(schema: z.core.$ZodType): unknown {
  for (let current: z.core.$ZodType | undefined = schema; current; current = innerOf(current)) {
    const def = current._zod.def;
    if (def.type === 'default' && 'defaultValue' in def) return def.defaultValue;
  }
  return undefined;
}

function jsonSafe(value: unknown): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map((item) => jsonSafe(item) ?? null);
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [key, entry] of entries) {
      const item = jsonSafe(entry);
      if (item !== undefined) out[key] = item;
    }
    return out;
  }
  return undefined;
}

/**
 * The arguments an approval binds: exactly the spec's keys, sorted, JSON values only (durations stay
 * seconds), so that the same request always serializes to the same text.
 */
export function normalizeArgs(spec: AnyOperation, args: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(spec.args.shape).sort()) {
    const value = jsonSafe(args[key]);
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** The exact compact spelling of a duration argument (parses back to the same seconds). */
export function durationText(seconds: number): string {
  return canonicalDuration(seconds);
}

/** A word as the tokenizer will read it back: quoted when it holds spaces, quotes or looks like an option. */
export function quoteWord(text: string): string {
  if (text !== '' && !/[\s"'\\“”„]/.test(text) && !text.startsWith('-')) return text;
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function valueText(schema: z.core.$ZodType | undefined, value: unknown): string {
  if (typeof value === 'number' && schema && argInfo(schema)?.kind === 'duration') return durationText(value);
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null) return JSON.stringify(jsonSafe(value));
  return String(value);
}

/** The canonical command for bound arguments: `kill-idle staging --older-than 10m`. */
export function formatCommand(
  operation: string,
  target: string | undefined,
  spec: AnyOperation,
  args: Record<string, unknown>,
): string {
  const shape: Readonly<Record<string, z.core.$ZodType>> = spec.args.shape;
  const positionals = spec.positionals ?? [];
  const parts = [operation];
  if (target !== undefined) parts.push(quoteWord(target));
  for (const name of positionals) {
    const value = args[name];
    if (value !== undefined && value !== null) parts.push(quoteWord(valueText(shape[name], value)));
  }
  for (const [key, schema] of Object.entries(shape)) {
    if (positionals.includes(key)) continue;
    const value = args[key];
    if (value === undefined || value === null) continue;
    const option = `--${key.replace(/_/g, '-')}`;
    if (typeof value === 'boolean' && isFlagArg(schema)) {
      if (value) parts.push(option);
      else if (defaultValueOf(schema) === true) parts.push(`${option}=false`);
      continue;
    }
    parts.push(option, quoteWord(valueText(schema, value)));
  }
  return parts.join(' ');
}
