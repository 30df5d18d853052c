// `--reason "…"` on a request: taken out of the command's tokens, cleaned, and checked against the policy.
import type { EnvironmentPolicy } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import type { Token } from '../core/grammar.js';

/** The longest reason kept; a ticket reference and a sentence fit. */
export const REASON_MAX = 300;

/**
 * Removes `--reason <text>` / `--reason=<text>` from the tokens. The text is kept as typed apart from
 * control characters and runs of white space; every surface escapes it where it is shown.
 */
export function takeReason(tokens: readonly Token[]): { reason?: string; rest: Token[] } {
  const rest: Token[] = [];
  let reason: string | undefined;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (token === undefined) continue;
    if (token.kind !== 'option' || token.name.toLowerCase() !== 'reason') {
      rest.push(token);
      continue;
    }
    if (reason !== undefined)
      throw new UserError('invalid_argument', '--reason is given twice; give it once');
    let text = token.value;
    if (text === undefined) {
      const next = tokens[i + 1];
      if (next?.kind !== 'word') {
        throw new UserError(
          'invalid_argument',
          '--reason needs a value, e.g. `--reason "INC-1234 disk full"`',
        );
      }
      text = next.text;
      i++;
    }
    reason = cleanReason(text);
    if (reason === '')
      throw new UserError('invalid_argument', '--reason is empty; say why, e.g. a ticket number');
  }
  return reason !== undefined ? { reason, rest } : { rest };
}

/** Control characters out, white space collapsed, at most REASON_MAX characters. */
export function cleanReason(text: string): string {
  const plain = text
    .replace(/[\p{Cc}\p{Cf}]/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return [...plain].length > REASON_MAX ? `${[...plain].slice(0, REASON_MAX - 1).join('')}…` : plain;
}

/** Why a request on this environment cannot go ahead with this reason, or undefined when it can. */
export function reasonProblem(
  rules: EnvironmentPolicy | undefined,
  environment: string,
  reason: string | undefined,
): string | undefined {
  if (!rules) return undefined;
  const pattern = rules.reason_pattern;
  const required = rules.require_reason === true || pattern !== undefined;
  if (!required) return undefined;
  const example = pattern ? `one that contains ${pattern}` : 'a reason';
  if (reason === undefined) {
    return `requests on ${environment} need a reason: add --reason "…" (${example}, e.g. a ticket reference)`;
  }
  if (pattern && !new RegExp(pattern, 'u').test(reason)) {
    return `requests on ${environment} need a reason that contains ${pattern} (e.g. a ticket reference); add it to --reason`;
  }
  return undefined;
}
