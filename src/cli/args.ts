// The options each dbops command takes, parsed strictly: an unknown option or a missing value is a usage
// error (exit 2) with a "did you mean", before any heavy module is loaded.
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { closest } from '../core/suggest.js';
import { visible } from '../core/visible.js';

/** What was typed, echoed whole but with control and bidi characters shown as `?`. */
function shown(typed: string): string {
  return visible(typed, Number.POSITIVE_INFINITY);
}

/** A wrong command line: printed on stderr with a pointer to the help, exit code 2. */
const USAGE_ERROR = Symbol.for('dbops.UsageError');

export class UsageError extends Error {
  /** The command whose --help to point at ('' for dbops itself). */
  readonly command: string;
  readonly [USAGE_ERROR] = true;

  constructor(command: string, message: string) {
    super(message);
    this.name = 'UsageError';
    this.command = command;
  }

  /**
   * A UsageError of either copy of this class: cli.ts's own, or the one bundled into the short commands'
   * script (dist/src/short-commands.cjs) that throws it.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && USAGE_ERROR in value;
  }
}

const HELP = { help: { type: 'boolean', short: 'h' } } as const;
const CONFIG = { config: { type: 'string' } } as const;

export const EXEC_OPTIONS = {
  ...HELP,
  ...CONFIG,
  as: { type: 'string' },
  channel: { type: 'string' },
  json: { type: 'boolean', default: false },
  out: { type: 'string' },
  file: { type: 'string' },
} as const;
export const CONSOLE_OPTIONS = {
  ...HELP,
  ...CONFIG,
  as: { type: 'string' },
  channel: { type: 'string' },
} as const;
export const DEMO_OPTIONS = { ...HELP } as const;
export const CHECK_CONFIG_OPTIONS = { ...HELP, ...CONFIG } as const;
export const START_OPTIONS = { ...HELP, ...CONFIG } as const;
export const DISCORD_REGISTER_OPTIONS = { ...HELP, ...CONFIG, guild: { type: 'string' } } as const;
export const AUDIT_EXPORT_OPTIONS = {
  ...HELP,
  ...CONFIG,
  since: { type: 'string' },
  until: { type: 'string' },
  format: { type: 'string' },
  person: { type: 'string' },
  operation: { type: 'string' },
  outcome: { type: 'string' },
} as const;

type Options = NonNullable<ParseArgsConfig['options']>;

function optionNames(options: Options): string[] {
  return Object.entries(options).flatMap(([name, o]) => [`--${name}`, ...(o.short ? [`-${o.short}`] : [])]);
}

function hint(typed: string, candidates: readonly string[]): string {
  const guesses = closest(typed, candidates);
  return guesses.length > 0 ? ` (did you mean ${guesses.join(' or ')}?)` : '';
}

/**
 * Parses `argv` of `command` strictly. Arguments after `--` are positionals (exec's command text), so
 * `-- "/db help"` is never taken for --help.
 */
export function parseCommand<const O extends Options>(
  command: string,
  argv: string[],
  options: O,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw usageErrorOf(command, err, options, allowPositionals);
  }
}

function usageErrorOf(command: string, err: unknown, options: Options, takesText: boolean): unknown {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const typed = /option '([^']*)'/i.exec(message)?.[1] ?? '';
    const name = typed.split('=')[0] ?? typed;
    const guess = hint(name, optionNames(options));
    // `dbops exec --as bob /db sizes kasm --limit 5`: the option belongs to the /db command.
    const text = takesText && guess === '' ? ' (the /db command and its options go after --)' : '';
    return new UsageError(command, `unknown option ${shown(name)}${guess}${text}`);
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const option = /option '(-[^ ']*)/i.exec(message)?.[1];
    const expectsValue = option && /argument missing/i.test(message);
    return new UsageError(
      command,
      expectsValue ? `${option} needs a value` : shown(message.replace(/^Option/, 'option')),
    );
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    const typed = /argument '([^']*)'/i.exec(message)?.[1] ?? message;
    return new UsageError(command, `unexpected argument "${shown(typed)}"`);
  }
  return err;
}

/** An unknown command (or subcommand) with the closest known ones. */
export function unknownCommand(parent: string, typed: string, known: readonly string[]): UsageError {
  const what = parent === '' ? 'command' : `${parent} subcommand`;
  return new UsageError(parent, `unknown ${what} "${shown(typed)}"${hint(typed, known)}`);
}
