// The command grammar: tokens, binding to operation specs, validation messages and the canonical form.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  durationArg,
  durationText,
  enumArg,
  flagArg,
  formatCommand,
  identifierArg,
  intArg,
  normalizeArgs,
  pidArg,
} from '../src/core/args.js';
import { UserError } from '../src/core/errors.js';
import { bindArguments, parseCommand, type Token, tokenize } from '../src/core/grammar.js';
import { defineOperation } from '../src/core/operation.js';
import { closest, editDistance } from '../src/core/suggest.js';

const killIdle = defineOperation({
  name: 'kill-idle',
  summary: 'Terminate idle-in-transaction sessions',
  usage: 'kill-idle <target> [--older-than 5m] [--limit 10] [--dry-run]',
  args: z.object({
    older_than: durationArg('5m'),
    limit: intArg({ min: 1, max: 100, default: 10 }),
    dry_run: flagArg(),
  }),
  risk: 'destructive',
});

const vacuum = defineOperation({
  name: 'vacuum',
  summary: 'VACUUM one table',
  usage: 'vacuum <target> <table> [--full] [--mode <mode>]',
  positionals: ['table'],
  args: z.object({
    table: identifierArg(),
    full: flagArg(),
    mode: enumArg(['analyze', 'freeze']).optional(),
    reason: z.string().optional(),
  }),
  risk: 'write',
});

const terminate = defineOperation({
  name: 'terminate',
  summary: 'Terminate one backend',
  usage: 'terminate <target> <pid> [--grace <duration>]',
  positionals: ['pid'],
  args: z.object({ pid: pidArg(), grace: durationArg().optional() }),
  risk: 'destructive',
});

/** The UserError a call throws (fails the test when it does not throw one). */
function userError(fn: () => unknown): UserError {
  try {
    fn();
  } catch (err) {
    if (err instanceof UserError) return err;
    throw err;
  }
  throw new Error('expected a UserError, but nothing was thrown');
}

function words(...texts: string[]): Token[] {
  return texts.map((text) => ({ kind: 'word', text }));
}

describe('suggest', () => {
  it('counts transpositions as one edit', () => {
    expect(editDistance('tragets', 'targets')).toBe(1);
    expect(editDistance('sizes', 'sizes')).toBe(0);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });

  it('orders exact, prefix and typo matches best first and ignores far names', () => {
    const names = ['sizes', 'size-history', 'blocking', 'kill-idle', 'connections'];
    expect(closest('sizse', names)).toEqual(['sizes']);
    expect(closest('kill', names)).toEqual(['kill-idle']);
    expect(closest('size', names)).toEqual(['sizes', 'size-history']);
    expect(closest('SIZES', names)).toEqual(['sizes']);
    expect(closest('vacuum', names)).toEqual([]);
    expect(closest('blokcing', names)).toEqual(['blocking']);
    expect(closest('s', names)).toEqual([]);
    expect(closest('sizes', ['a', 'b', 'sizes', 'sizes'], 1)).toEqual(['sizes']);
  });
});

describe('tokenize', () => {
  it('splits words on whitespace and reads options with inline or no values', () => {
    expect(tokenize('  sizes   kasm\t--older-than=5m --full --limit 3 ')).toEqual([
      { kind: 'word', text: 'sizes' },
      { kind: 'word', text: 'kasm' },
      { kind: 'option', name: 'older-than', value: '5m' },
      { kind: 'option', name: 'full' },
      { kind: 'option', name: 'limit' },
      { kind: 'word', text: '3' },
    ]);
  });

  it('honours single and double quotes, escapes and empty quoted words', () => {
    expect(tokenize(`deny 12 "not now, \\"prod\\" is \\\\busy" 'it''s' "" a"b c"d`)).toEqual([
      { kind: 'word', text: 'deny' },
      { kind: 'word', text: '12' },
      { kind: 'word', text: 'not now, "prod" is \\busy' },
      { kind: 'word', text: 'its' },
      { kind: 'word', text: '' },
      { kind: 'word', text: 'ab cd' },
    ]);
    // Single quotes are literal; other backslashes stay.
    expect(tokenize(`'a \\" b' "c:\\d"`)).toEqual([
      { kind: 'word', text: 'a \\" b' },
      { kind: 'word', text: 'c:\\d' },
    ]);
  });

  it('keeps quoted option values together and treats quoted dashes as words', () => {
    expect(tokenize(`--reason="two words" "--full" --x=`)).toEqual([
      { kind: 'option', name: 'reason', value: 'two words' },
      { kind: 'word', text: '--full' },
      { kind: 'option', name: 'x', value: '' },
    ]);
  });

  it('reads smart quotes from phones as double quotes', () => {
    expect(tokenize('deny 3 “too risky now”')).toEqual(words('deny', '3', 'too risky now'));
  });

  it('ends options at a bare --', () => {
    expect(tokenize('lookup kasm -- --weird-name -x')).toEqual([
      { kind: 'word', text: 'lookup' },
      { kind: 'word', text: 'kasm' },
      { kind: 'word', text: '--weird-name' },
      { kind: 'word', text: '-x' },
    ]);
  });

  it('rejects an unbalanced quote, saying which and where', () => {
    const err = userError(() => tokenize(`vacuum kasm "users --full`));
    expect(err.code).toBe('invalid_command');
    expect(err.message).toBe(
      'unbalanced " quote at character 13 (near ""users --full"): close it with " or write \\" for a literal quote',
    );
    const single = userError(() => tokenize(`deny 3 it's late`));
    expect(single.message).toMatch(/^unbalanced ' quote at character 10 /);
  });

  it('rejects an option with an empty name', () => {
    const err = userError(() => tokenize('sizes --=5'));
    expect(err.code).toBe('invalid_command');
    expect(err.message).toBe(
      'option with no name at character 7 (near "--=5"): write --name value or --name=value',
    );
  });

  it('never quotes more than a short piece of a long command back', () => {
    const long = `sizes "${'x'.repeat(500)}`;
    const err = userError(() => tokenize(long));
    expect(err.message.length).toBeLessThan(160);
    expect(err.message).not.toContain('x'.repeat(25));
  });
});

describe('parseCommand', () => {
  it('strips /db in any case and lower-cases the operation', () => {
    expect(parseCommand('/DB Sizes kasm')).toEqual({ operation: 'sizes', tokens: words('kasm') });
    expect(parseCommand('sizes')).toEqual({ operation: 'sizes', tokens: [] });
    expect(parseCommand('  /db kill-idle staging --older-than 10m')).toEqual({
      operation: 'kill-idle',
      tokens: [
        { kind: 'word', text: 'staging' },
        { kind: 'option', name: 'older-than' },
        { kind: 'word', text: '10m' },
      ],
    });
    // "/dbx" is not the prefix.
    expect(parseCommand('/dbx sizes').operation).toBe('/dbx');
  });

  it('reports an empty command with a hint', () => {
    for (const text of ['', '   ', '/db', '/db   ', '""']) {
      const err = userError(() => parseCommand(text));
      expect(err.code).toBe('invalid_command');
      expect(err.message).toBe('empty command — try `/db help`');
    }
  });

  it('reports positions relative to the whole text, /db included', () => {
    const err = userError(() => parseCommand('/db deny 3 "x'));
    expect(err.message).toMatch(/^unbalanced " quote at character 12 /);
  });
});

describe('bindArguments', () => {
  it('applies defaults', () => {
    expect(bindArguments(killIdle, [])).toEqual({ older_than: 300, limit: 10, dry_run: false });
  });

  it('binds --opt value, --opt=value and flags, kebab-case to snake_case', () => {
    const { tokens } = parseCommand('kill-idle --older-than 1h30m --limit=25 --dry-run');
    expect(bindArguments(killIdle, tokens)).toEqual({ older_than: 5400, limit: 25, dry_run: true });
    const explicit = parseCommand('kill-idle --dry-run=false --older-than=90').tokens;
    expect(bindArguments(killIdle, explicit)).toEqual({ older_than: 90, limit: 10, dry_run: false });
  });

  it('fills positionals in order, with options anywhere', () => {
    const { tokens } = parseCommand('vacuum --full public.users --mode freeze');
    expect(bindArguments(vacuum, tokens)).toEqual({ table: 'public.users', full: true, mode: 'freeze' });
    expect(bindArguments(terminate, words('4242'))).toEqual({ pid: 4242 });
  });

  it('names a missing value and shows an example from the usage line', () => {
    const err = userError(() =>
      bindArguments(killIdle, parseCommand('kill-idle --older-than --dry-run').tokens),
    );
    expect(err.code).toBe('invalid_argument');
    expect(err.message).toBe(
      '--older-than needs a value, e.g. `--older-than 5m`\nusage: /db kill-idle <target> [--older-than 5m] [--limit 10] [--dry-run]',
    );
    // A placeholder in the usage line falls back to the argument's own example.
    const grace = userError(() => bindArguments(terminate, parseCommand('terminate 12 --grace').tokens));
    expect(grace.message.split('\n')[0]).toBe('--grace needs a value, e.g. `--grace 5m`');
  });

  it('rejects an unknown option with a suggestion and the known options', () => {
    const err = userError(() => bindArguments(killIdle, parseCommand('kill-idle --older-then 5m').tokens));
    expect(err.code).toBe('invalid_argument');
    expect(err.message).toBe(
      'unknown option --older-then for kill-idle — did you mean --older-than?\n' +
        'options: --older-than, --limit, --dry-run\n' +
        'usage: /db kill-idle <target> [--older-than 5m] [--limit 10] [--dry-run]',
    );
    const far = userError(() => bindArguments(killIdle, parseCommand('kill-idle --banana').tokens));
    expect(far.message.split('\n')[0]).toBe('unknown option --banana for kill-idle');
    const none = userError(() => bindArguments(terminate, parseCommand('terminate 1 --pid 2').tokens));
    expect(none.message.split('\n')[0]).toBe('unknown option --pid for terminate');
  });

  it('rejects too many positionals', () => {
    const err = userError(() => bindArguments(vacuum, words('users', 'extra')));
    expect(err.message).toBe(
      'too many arguments: "extra" is not expected (vacuum takes <table>)\nusage: /db vacuum <target> <table> [--full] [--mode <mode>]',
    );
    const none = userError(() => bindArguments(killIdle, words('oops')));
    expect(none.message.split('\n')[0]).toBe(
      'too many arguments: "oops" is not expected (kill-idle takes no positional arguments)',
    );
  });

  it('rejects an option given twice and a bad flag value', () => {
    const twice = userError(() => bindArguments(killIdle, parseCommand('x --limit 1 --limit=2').tokens));
    expect(twice.message.split('\n')[0]).toBe('--limit is given twice; give it once');
    const flag = userError(() => bindArguments(killIdle, parseCommand('x --dry-run=maybe').tokens));
    expect(flag.message.split('\n')[0]).toBe(
      '--dry-run is a switch: write --dry-run or --dry-run=false, not "maybe"',
    );
  });

  it('refuses SQL smuggled into a duration or a number, naming the argument', () => {
    const duration = userError(() =>
      bindArguments(killIdle, parseCommand(`kill-idle --older-than "5m'; DROP TABLE x; --"`).tokens),
    );
    expect(duration.code).toBe('invalid_argument');
    expect(duration.message).toBe(
      `--older-than: expected a duration like 5m, 90s or 1h30m, got "5m'; DROP TABLE x; --"\n` +
        'usage: /db kill-idle <target> [--older-than 5m] [--limit 10] [--dry-run]',
    );
    const limit = userError(() =>
      bindArguments(killIdle, parseCommand('kill-idle --limit "10; drop"').tokens),
    );
    expect(limit.message.split('\n')[0]).toBe('--limit: expected a whole number, got "10; drop"');
    const table = userError(() => bindArguments(vacuum, words('users; DROP TABLE users')));
    expect(table.message.split('\n')[0]).toBe(
      '<table>: expected a name like users or public.users (letters, digits, _ and $, at most 63 each), got "users; DROP TABLE users"',
    );
  });

  it('explains range, enum and missing-argument failures, all at once', () => {
    const err = userError(() => bindArguments(killIdle, parseCommand('x --limit 0 --older-than -5m').tokens));
    expect(err.message).toBe(
      '--older-than: expected a duration like 5m, 90s or 1h30m, got "-5m"\n' +
        '--limit: must be at least 1, got 0\n' +
        'usage: /db kill-idle <target> [--older-than 5m] [--limit 10] [--dry-run]',
    );
    const mode = userError(() => bindArguments(vacuum, parseCommand('vacuum users --mode full').tokens));
    expect(mode.message.split('\n')[0]).toBe('--mode: expected one of analyze, freeze, got "full"');
    const missing = userError(() => bindArguments(vacuum, []));
    expect(missing.message).toBe(`which table? usage: /db ${vacuum.usage}`);
    const pid = userError(() => bindArguments(terminate, words('0')));
    expect(pid.message.split('\n')[0]).toBe('<pid>: must be at least 1, got 0');
  });

  it('clips long user input in messages', () => {
    const long = `5m${'a'.repeat(300)}`;
    const err = userError(() =>
      bindArguments(killIdle, [{ kind: 'option', name: 'older-than', value: long }]),
    );
    const first = err.message.split('\n')[0] ?? '';
    expect(first.length).toBeLessThan(110);
    expect(first).not.toContain('a'.repeat(60));
    const option = userError(() => bindArguments(killIdle, [{ kind: 'option', name: 'z'.repeat(200) }]));
    expect(option.message).not.toContain('z'.repeat(61));
  });
});

describe('normalizeArgs and formatCommand', () => {
  it('normalizes to sorted JSON values and prints the canonical command', () => {
    const args = bindArguments(
      killIdle,
      parseCommand('kill-idle --dry-run --older-than 300s --limit 7').tokens,
    );
    const normalized = normalizeArgs(killIdle, args);
    expect(JSON.stringify(normalized)).toBe('{"dry_run":true,"limit":7,"older_than":300}');
    expect(formatCommand('kill-idle', 'staging', killIdle, args)).toBe(
      'kill-idle staging --older-than 5m --limit 7 --dry-run',
    );
    expect(formatCommand('kill-idle', 'staging', killIdle, { ...args, dry_run: false })).toBe(
      'kill-idle staging --older-than 5m --limit 7',
    );
  });

  it('quotes values with spaces, quotes or leading dashes, and round-trips', () => {
    const cases: [typeof vacuum | typeof killIdle | typeof terminate, string][] = [
      [vacuum, 'vacuum kasm public.users --full --reason "night window, ticket \\"OPS-1\\""'],
      [vacuum, `vacuum kasm users --reason "--not-an-option" --mode analyze`],
      [vacuum, `vacuum kasm users --reason ""`],
      [killIdle, 'kill-idle kasm --older-than 90061 --limit 100'],
      [terminate, 'terminate kasm 777 --grace 1.5'],
    ];
    for (const [spec, text] of cases) {
      const { operation, tokens } = parseCommand(text);
      const [target, ...rest] = tokens;
      if (target?.kind !== 'word') throw new Error('expected a target word');
      const args = bindArguments(spec, rest);
      const printed = formatCommand(operation, target.text, spec, args);
      const again = parseCommand(printed);
      expect(again.tokens[0]).toEqual(target);
      const reparsed = bindArguments(spec, again.tokens.slice(1));
      expect(normalizeArgs(spec, reparsed)).toEqual(normalizeArgs(spec, args));
    }
    const args = bindArguments(vacuum, parseCommand('vacuum users --reason "a b" --mode analyze').tokens);
    expect(formatCommand('vacuum', 'kasm', vacuum, args)).toBe(
      'vacuum kasm users --mode analyze --reason "a b"',
    );
  });

  it('spells durations exactly even when two units are not enough', () => {
    expect(durationText(300)).toBe('5m');
    expect(durationText(5400)).toBe('1h30m');
    expect(durationText(90061)).toBe('1d1h1m1s');
    expect(durationText(1.5)).toBe('1s500ms');
    expect(durationText(0)).toBe('0s');
  });

  it('normalizes to the spec keys only, JSON-safe', () => {
    const normalized = normalizeArgs(vacuum, {
      table: 'users',
      full: false,
      mode: undefined,
      stray: 'dropped',
    });
    expect(normalized).toEqual({ full: false, table: 'users' });
    expect(Object.keys(normalized)).toEqual(['full', 'table']);
  });
});
