// The filters of `/db audit` and `dbops audit export`: person, operation, outcome and time, checked and parsed.
import type { AuditFilter } from '../state/types.js';
import { parseDuration } from './duration.js';
import { UserError } from './errors.js';
import type { Token } from './grammar.js';

export const AUDIT_USAGE =
  'usage: /db audit [target] [--person p] [--operation op] [--outcome o] [--since 24h|2026-12-01] [--limit n]';

const OPTIONS = ['person', 'operation', 'outcome', 'since', 'until', 'limit'] as const;
type AuditOption = (typeof OPTIONS)[number];

/** A name, an identity ("slack:T1/U2"), an operation or an outcome: printable, no spaces, bounded. */
const VALUE = /^[\w.:/@-]{1,120}$/u;

/** "24h" back from `now`, or an ISO date/time ("2026-12-01", "2026-12-01T08:00:00Z"). */
export function parseWhen(text: string, now: Date, label: string): Date {
  const seconds = parseDuration(text);
  if (seconds !== undefined) return new Date(now.getTime() - seconds * 1000);
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) {
    const at = new Date(text.length === 10 ? `${text}T00:00:00Z` : text);
    if (!Number.isNaN(at.getTime())) return at;
  }
  throw new UserError(
    'invalid_argument',
    `${label}: expected a duration back from now (24h, 7d) or a date (2026-12-01, 2026-12-01T08:00:00Z), got "${text.slice(0, 40)}"`,
  );
}

/** The target word and the filters of `/db audit …`; refuses unknown options and odd values. */
export function parseAuditFilter(
  tokens: readonly Token[],
  now: Date,
): { target?: string; filter: AuditFilter; limit: number } {
  const values: Partial<Record<AuditOption, string>> = {};
  const positional: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (token === undefined) continue;
    if (token.kind === 'word') {
      positional.push(token.text);
      continue;
    }
    const name = token.name.toLowerCase() as AuditOption;
    if (!OPTIONS.includes(name)) {
      throw new UserError('invalid_argument', `unknown option --${token.name.slice(0, 30)}. ${AUDIT_USAGE}`);
    }
    let value = token.value;
    if (value === undefined) {
      const next = tokens[i + 1];
      if (next?.kind !== 'word')
        throw new UserError('invalid_argument', `--${name} needs a value. ${AUDIT_USAGE}`);
      value = next.text;
      i++;
    }
    values[name] = value;
  }
  if (positional.length > 1) {
    throw new UserError(
      'invalid_argument',
      `one target at most, got ${positional.length} words. ${AUDIT_USAGE}`,
    );
  }
  const limitText = values.limit ?? '20';
  if (!/^\d{1,3}$/.test(limitText) || Number(limitText) < 1) {
    throw new UserError(
      'invalid_argument',
      `argument --limit: expected a number from 1 to 999. ${AUDIT_USAGE}`,
    );
  }
  const filter: AuditFilter = {};
  for (const key of ['person', 'operation', 'outcome'] as const) {
    const value = values[key];
    if (value === undefined) continue;
    if (!VALUE.test(value)) {
      throw new UserError(
        'invalid_argument',
        `--${key}: expected one word (a name, an identity or a code). ${AUDIT_USAGE}`,
      );
    }
    filter[key] = value;
  }
  if (values.since !== undefined) filter.since = parseWhen(values.since, now, '--since');
  if (values.until !== undefined) filter.until = parseWhen(values.until, now, '--until');
  const [target] = positional;
  return { ...(target !== undefined ? { target } : {}), filter, limit: Number(limitText) };
}
