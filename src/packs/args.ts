// Pack arguments as the core validates them: a zod schema per declared type, and the usage line.
import type { z } from 'zod';
import { durationArg, enumArg, flagArg, identifierArg, intArg, textArg } from '../core/args.js';
import type { PackArg } from './schema.js';

/** A real calendar day: 2025-02-30 fails here with a clear message, not later in PostgreSQL. */
function isCalendarDate(value: string): boolean {
  const date = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().slice(0, 10) === value;
}

const SHAPES: Partial<
  Record<
    PackArg['type'],
    { pattern: RegExp; hint: string; example: string; max: number; check?: (v: string) => boolean }
  >
> = {
  email: {
    pattern: /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/,
    hint: 'an email address',
    example: 'alice@example.com',
    max: 254,
  },
  uuid: {
    pattern: /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
    hint: 'a UUID',
    example: '064143f4-2301-4291-8cd9-8facf797bf96',
    max: 36,
  },
  date: {
    pattern: /^\d{4}-\d{2}-\d{2}$/,
    hint: 'a date like 2025-12-24',
    example: '2025-12-24',
    max: 10,
    check: isCalendarDate,
  },
  timestamp: {
    pattern: /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?$/,
    hint: 'a timestamp like 2025-12-24T10:00:00Z',
    example: '2025-12-24T10:00:00Z',
    max: 40,
  },
  hostname: {
    pattern:
      /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/,
    hint: 'a host name like kasm-01.example.com',
    example: 'kasm-01',
    max: 253,
  },
  revision: {
    pattern: /^(head|heads|base|[+-]\d{1,4}|[0-9a-fA-F]{4,40}|[A-Za-z0-9_]{1,64})$/,
    hint: 'an Alembic revision (head, base, -1, +2 or a revision id)',
    example: 'head',
    max: 64,
  },
};

export function argSchema(arg: PackArg): z.ZodType {
  let schema: z.ZodType;
  switch (arg.type) {
    case 'int':
      schema = intArg({
        ...(arg.min !== undefined ? { min: arg.min } : {}),
        ...(arg.max !== undefined ? { max: arg.max } : {}),
      });
      break;
    case 'duration':
      schema = durationArg();
      break;
    case 'bool':
      return flagArg();
    case 'identifier':
      schema = identifierArg();
      break;
    case 'enum': {
      const [first, ...rest] = arg.values ?? [];
      schema = enumArg([first ?? '', ...rest]);
      break;
    }
    case 'text':
      schema = textArg({ maxLength: arg.max_length ?? 200 });
      break;
    default: {
      const shape = SHAPES[arg.type];
      schema = shape
        ? textArg({
            pattern: shape.pattern,
            hint: shape.hint,
            example: shape.example,
            maxLength: shape.max,
            ...(shape.check ? { check: shape.check } : {}),
          })
        : textArg();
    }
  }
  if (arg.default !== undefined) {
    const parsed = schema.safeParse(arg.default);
    if (!parsed.success)
      throw new Error(`default of ${arg.name} does not validate: ${parsed.error.issues[0]?.message}`);
    return schema.default(parsed.data as never);
  }
  return arg.required ? schema : schema.optional();
}

export function usageOf(name: string, args: readonly PackArg[]): string {
  const parts = [name, '<target>'];
  for (const arg of args.filter((a) => a.positional)) {
    parts.push(arg.required ? `<${arg.name}>` : `[<${arg.name}>]`);
  }
  for (const arg of args.filter((a) => !a.positional)) {
    const flag = `--${arg.name.replace(/_/g, '-')}`;
    if (arg.type === 'bool') parts.push(`[${flag}]`);
    else if (arg.required) parts.push(`${flag} <${arg.type}>`);
    else parts.push(`[${flag} ${arg.default ?? `<${arg.type}>`}]`);
  }
  return parts.join(' ');
}
