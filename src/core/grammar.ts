// The command grammar shared by every surface: `/db <operation> [<target>] [args...] [--option value] [--flag]`.
import type { z } from 'zod';
import { argInfo, isFlagArg, quoteInput } from './args.js';
import { UserError } from './errors.js';
import type { AnyOperation } from './operation.js';
import { closest, orList } from './suggest.js';
import { hiddenCharacters, showInvisible } from './visible.js';

export type Token = { kind: 'word'; text: string } | { kind: 'option'; name: string; value?: string };

export interface ParsedCommand {
  /** Lower-cased first word. */
  operation: string;
  /** Everything after the operation. */
  tokens: Token[];
}

/** How many characters of the command an error may quote around the place where it went wrong. */
const NEAR = 20;

function near(text: string, index: number): string {
  return quoteInput(text.slice(index, index + NEAR + 1), NEAR);
}

// Phones turn " into “ and ”, and ' into ‘ and ’; a quote opened by a typographic one may be closed by any
// quote of its kind, so a command typed on a phone reads like the same command typed with straight quotes.
const SMART_OPEN = new Set(['“', '„']);
const DOUBLE_CLOSE = new Set(['"', '”', '“']);
const SMART_SINGLE_OPEN = new Set(['‘', '‚']);
const SINGLE_CLOSE = new Set(["'", '’', '‘']);

interface RawToken {
  text: string;
  /** Where the token starts in the command (for messages). */
  start: number;
  /** Length of the text read before the first quote (Infinity when nothing was quoted). */
  quotedFrom: number;
}

/** Where a quote opened by ‘ or ‚ closes: the next ’, ‘ or ' (-1 when none). */
function closingSingle(text: string, from: number): number {
  for (let j = from; j < text.length; j++) if (SINGLE_CLOSE.has(text.charAt(j))) return j;
  return -1;
}

function splitWords(text: string, offset: number): RawToken[] {
  const tokens: RawToken[] = [];
  const n = text.length;
  let i = 0;
  const column = (index: number) => offset + index + 1;
  while (i < n) {
    while (i < n && /\s/.test(text.charAt(i))) i++;
    if (i >= n) break;
    const start = i;
    let buf = '';
    let quotedFrom = Number.POSITIVE_INFINITY;
    while (i < n && !/\s/.test(text.charAt(i))) {
      const ch = text.charAt(i);
      if (ch === "'" || SMART_SINGLE_OPEN.has(ch)) {
        const close = ch === "'" ? text.indexOf("'", i + 1) : closingSingle(text, i + 1);
        if (close < 0) {
          throw new UserError(
            'invalid_command',
            `unbalanced ${ch} quote at character ${column(i)} (near ${near(text, i)}): close it with another ${ch === "'" ? "'" : '’'} or remove it`,
          );
        }
        quotedFrom = Math.min(quotedFrom, buf.length);
        buf += text.slice(i + 1, close);
        i = close + 1;
      } else if (ch === '"' || SMART_OPEN.has(ch)) {
        const closers = ch === '"' ? new Set(['"']) : DOUBLE_CLOSE;
        quotedFrom = Math.min(quotedFrom, buf.length);
        let j = i + 1;
        let closed = false;
        while (j < n) {
          const c = text.charAt(j);
          const next = text.charAt(j + 1);
          if (c === '\\' && (next === '"' || next === '\\')) {
            buf += next;
            j += 2;
          } else if (closers.has(c)) {
            closed = true;
            break;
          } else {
            buf += c;
            j++;
          }
        }
        if (!closed) {
          throw new UserError(
            'invalid_command',
            `unbalanced ${ch} quote at character ${column(i)} (near ${near(text, i)}): close it with " or write \\" for a literal quote`,
          );
        }
        i = j + 1;
      } else {
        buf += ch;
        i++;
      }
    }
    tokens.push({ text: buf, start, quotedFrom });
  }
  return tokens;
}

function classify(raw: RawToken[], text: string, offset: number): Token[] {
  const tokens: Token[] = [];
  let optionsEnded = false;
  for (const token of raw) {
    // Only an unquoted leading `--` makes an option: `"--x"` is a word.
    const isOption = !optionsEnded && token.text.startsWith('--') && token.quotedFrom >= 2;
    if (!isOption) {
      tokens.push({ kind: 'word', text: token.text });
      continue;
    }
    if (token.text === '--' && token.quotedFrom === Number.POSITIVE_INFINITY) {
      optionsEnded = true;
      continue;
    }
    const body = token.text.slice(2);
    const eq = body.indexOf('=');
    const name = eq < 0 ? body : body.slice(0, eq);
    if (name === '') {
      throw new UserError(
        'invalid_command',
        `option with no name at character ${offset + token.start + 1} (near ${near(text, token.start)}): write --name value or --name=value`,
      );
    }
    tokens.push(eq < 0 ? { kind: 'option', name } : { kind: 'option', name, value: body.slice(eq + 1) });
  }
  return tokens;
}

/** Splits a command into words and options, honouring '…' and "…" quotes. */
export function tokenize(text: string): Token[] {
  return tokenizeAt(text, 0);
}

function tokenizeAt(text: string, offset: number): Token[] {
  return classify(splitWords(text, offset), text, offset);
}

const DB_PREFIX = /^\s*\/db(?=\s|$)/i;

/** Reads the operation name and the tokens after it; a leading `/db` is optional. */
export function parseCommand(text: string): ParsedCommand {
  const prefix = DB_PREFIX.exec(text)?.[0] ?? '';
  const [first, ...tokens] = tokenizeAt(text.slice(prefix.length), prefix.length);
  if (first === undefined || (first.kind === 'word' && first.text.trim() === '')) {
    throw new UserError('invalid_command', 'empty command — try `/db help`');
  }
  if (first.kind === 'option') {
    throw new UserError(
      'invalid_command',
      `a command starts with an operation, not --${first.name.slice(0, 30)} — try \`/db help\``,
    );
  }
  return { operation: first.text.trim().toLowerCase(), tokens };
}

const TRUE_WORDS = new Set(['true', 'yes', 'on', '1']);
const FALSE_WORDS = new Set(['false', 'no', 'off', '0']);

function optionLabel(key: string): string {
  return `--${key.replace(/_/g, '-')}`;
}

function usageLine(spec: AnyOperation): string {
  return `usage: /db ${spec.usage}`;
}

/** Usage lines that call a backup file `<name>`: the question asks for what it is ("which backup?"). */
const NOUNS: Readonly<Record<string, string>> = { 'verify-backup:name': 'backup', 'restore:name': 'backup' };

/** What a positional names, as its usage line spells it ("<table|index>" → "table or index"). */
function positionalNoun(spec: AnyOperation, key: string): string {
  const noun = NOUNS[`${spec.name}:${key}`];
  if (noun !== undefined) return noun;
  const placeholders = [...spec.usage.matchAll(/<([^<>]+)>/g)]
    .map((m) => m[1] ?? '')
    .filter((p) => p !== 'target');
  const at = (spec.positionals ?? []).indexOf(key);
  const placeholder = at >= 0 ? placeholders[at] : undefined;
  return (placeholder ?? key).replace(/_/g, ' ').split('|').join(' or ');
}

function invalid(spec: AnyOperation, lines: string[], detail: Record<string, unknown>): UserError {
  return new UserError('invalid_argument', `${lines.join('\n')}\n${usageLine(spec)}`, {
    operation: spec.name,
    ...detail,
  });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** An example value for an option: from the usage line when it shows one, else from the argument kind. */
function exampleValue(spec: AnyOperation, key: string, schema: z.core.$ZodType): string {
  const fromUsage = new RegExp(`${escapeRegExp(optionLabel(key))}[ =]([^\\s\\]|]+)`).exec(spec.usage)?.[1];
  if (fromUsage && !fromUsage.startsWith('<')) return fromUsage;
  return argInfo(schema)?.example ?? fromUsage ?? 'value';
}

function parseFlag(spec: AnyOperation, key: string, value: string | undefined): boolean {
  if (value === undefined) return true;
  const lower = value.toLowerCase();
  if (TRUE_WORDS.has(lower)) return true;
  if (FALSE_WORDS.has(lower)) return false;
  const label = optionLabel(key);
  throw invalid(spec, [`${label} is a switch: write ${label} or ${label}=false, not ${quoteInput(value)}`], {
    argument: label,
  });
}

/**
 * Binds the tokens after the operation (and target) to the spec's arguments: words fill the positionals
 * in order, `--kebab-case` options fill the snake_case keys, then the zod schema validates everything.
 */
/**
 * What an approver reads must be what runs: an argument of a request that can change something may hold
 * no control, bidirectional or zero-width character (each could make the card read differently from the
 * value). Which one, where, is said; reads take them and show them escaped.
 */
const LAYOUT = new Set(['U+0009', 'U+000A', 'U+000D']);

function refuseHidden(spec: AnyOperation, tokens: readonly Token[]): void {
  if (spec.risk === 'read' && spec.riskFor === undefined) return;
  for (const token of tokens) {
    const values = token.kind === 'word' ? [token.text] : [token.name, token.value ?? ''];
    for (const value of values) {
      // Tabs and line breaks are layout, shown as such on every card; an argument that may not hold them
      // (anything but a multi-line text such as a SQL statement) is refused by its own validator.
      const [first, ...more] = hiddenCharacters(value).filter((c) => !LAYOUT.has(c.code));
      if (!first) continue;
      const also = more.length > 0 ? ` (and ${more.length} more)` : '';
      throw invalid(
        spec,
        [
          `argument ${showInvisible(value, { newlines: false }).slice(0, 80)} holds ${first.code} ${first.name} ` +
            `at position ${first.position}${also}: invisible and direction-changing characters are refused in ` +
            'requests that change something, because the approver would not read what runs; type the value without it',
        ],
        { argument: first.code },
      );
    }
  }
}

export function bindArguments(spec: AnyOperation, tokens: readonly Token[]): Record<string, unknown> {
  refuseHidden(spec, tokens);
  const shape: Readonly<Record<string, z.core.$ZodType>> = spec.args.shape;
  const positionals = spec.positionals ?? [];
  const optionKeys = Object.keys(shape).filter((key) => !positionals.includes(key));
  const input: Record<string, unknown> = {};
  const words: string[] = [];

  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (token === undefined) continue;
    if (token.kind === 'word') {
      words.push(token.text);
      continue;
    }
    const key = token.name.toLowerCase().replace(/-/g, '_');
    const schema = optionKeys.includes(key) ? shape[key] : undefined;
    if (schema === undefined) {
      const typed = `--${token.name.length > 30 ? `${token.name.slice(0, 29)}…` : token.name}`;
      const labels = optionKeys.map(optionLabel);
      const suggestion = closest(typed, labels);
      const lines = [
        optionKeys.length === 0
          ? `unknown option ${typed}: ${spec.name} takes no options`
          : `unknown option ${typed} for ${spec.name}${suggestion.length > 0 ? ` — did you mean ${orList(suggestion)}?` : ''}` +
            `\noptions: ${labels.join(', ')}`,
      ];
      throw invalid(spec, lines, { argument: typed });
    }
    const label = optionLabel(key);
    if (key in input) throw invalid(spec, [`${label} is given twice; give it once`], { argument: label });
    if (isFlagArg(schema)) {
      input[key] = parseFlag(spec, key, token.value);
      continue;
    }
    if (token.value !== undefined) {
      input[key] = token.value;
      continue;
    }
    const next = tokens[i + 1];
    if (next?.kind !== 'word') {
      const example = exampleValue(spec, key, schema);
      throw invalid(spec, [`${label} needs a value, e.g. \`${label} ${example}\``], { argument: label });
    }
    input[key] = next.text;
    i++;
  }

  if (words.length > positionals.length) {
    const extra = words[positionals.length] ?? '';
    const expected =
      positionals.length === 0
        ? `${spec.name} takes no positional arguments`
        : `${spec.name} takes ${positionals.map((p) => `<${p}>`).join(' ')}`;
    throw invalid(spec, [`too many arguments: ${quoteInput(extra)} is not expected (${expected})`], {
      argument: extra.slice(0, 40),
    });
  }
  words.forEach((word, index) => {
    const key = positionals[index];
    if (key !== undefined) input[key] = word;
  });

  const parsed = spec.args.safeParse(input);
  if (parsed.success) return parsed.data;

  // A required positional left out (and nothing else wrong) is a question, not a type error: "which pid?".
  const missing = parsed.error.issues.find(
    (issue) =>
      typeof issue.path[0] === 'string' && positionals.includes(issue.path[0]) && !(issue.path[0] in input),
  )?.path[0];
  if (typeof missing === 'string' && parsed.error.issues.every((issue) => issue.path[0] === missing)) {
    throw new UserError('invalid_argument', `which ${positionalNoun(spec, missing)}? ${usageLine(spec)}`, {
      operation: spec.name,
      arguments: [`<${missing}>`],
    });
  }

  const lines: string[] = [];
  const named = new Set<string>();
  for (const issue of parsed.error.issues) {
    const key = issue.path[0];
    const label =
      typeof key !== 'string' ? 'arguments' : positionals.includes(key) ? `<${key}>` : optionLabel(key);
    if (named.has(label)) continue;
    named.add(label);
    const given = typeof key === 'string' && key in input;
    const reason = !given && issue.code === 'invalid_type' ? 'is required' : issue.message;
    lines.push(`${label}: ${reason}`);
  }
  throw invalid(spec, lines, { arguments: [...named] });
}
