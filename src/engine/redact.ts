// The one redactor for external tools' output: every stdout/stderr byte passes it before it is shown, stored or logged.
import { redactSecrets } from '../core/log.js';
import type { ToolEnv } from './tool-env.js';

const MASK = '***';
/** Values shorter than this are not treated as secrets (they would mask ordinary words). */
const MIN_SECRET = 4;
/** Names of variables whose values are secrets wherever they appear. */
const SECRET_NAME = /(PASSWORD|PASSWD|PASSFILE|TOKEN|SECRET|CREDENTIAL|API_?KEY|PRIVATE_KEY|SIGNING)/i;
/** `NAME=value` / `NAME: value` with a secret-looking name, as `env`, `set -x` or a config dump print it. */
const NAMED_VALUE =
  /\b([A-Za-z_]*(?:PASSWORD|PASSWD|TOKEN|SECRET|API_?KEY)[A-Za-z_]*)(\s*[=:]\s*)("[^"]*"|'[^']*'|\S+)/gi;
/** Any URL with credentials (`scheme://user:password@host`), not only postgres:// ones. */
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s/]+@/gi;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Passwords inside URLs found in `text` (`postgres://u:PASS@h`), decoded and as written. */
function urlPasswords(text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(/[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:([^@\s/]+)@/gi)) {
    const raw = match[1];
    if (!raw) continue;
    found.push(raw);
    try {
      found.push(decodeURIComponent(raw));
    } catch {
      // Not percent-encoded text: the raw form is enough.
    }
  }
  return found;
}

/** The secret values an environment holds: secret-named variables and passwords inside URL values. */
export function secretsOfEnvironment(env: Readonly<Record<string, string | undefined>>): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined || value === '') continue;
    if (SECRET_NAME.test(key)) out.push(value);
    out.push(...urlPasswords(value));
  }
  return out;
}

let hostSecrets: string[] | undefined;

/** The bot's own secrets (tokens, state URL password) from its environment, read once. */
function processSecrets(): string[] {
  hostSecrets ??= secretsOfEnvironment(process.env);
  return hostSecrets;
}

/** Secrets known to the process beyond its environment (target passwords from the config file). */
const registered = new Set<string>();

/** Makes `value` a secret for every redactor created afterwards (config passwords, tokens). */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= MIN_SECRET) registered.add(value);
}

/** Registers the password of a connection URL (decoded and as written). */
export function registerUrlSecrets(url: string): void {
  for (const secret of urlPasswords(url)) registerSecret(secret);
}

/** Masks secrets in text: known literal values (and their URL-encoded forms) plus the generic patterns. */
export class Redactor {
  readonly #literal: RegExp | undefined;
  readonly #secrets: readonly string[];

  constructor(secrets: Iterable<string>) {
    const all = new Set<string>();
    for (const secret of secrets) {
      if (secret.length < MIN_SECRET) continue;
      all.add(secret);
      const encoded = encodeURIComponent(secret);
      if (encoded !== secret) all.add(encoded);
    }
    // Longest first, so a secret that contains another is masked whole.
    this.#secrets = [...all].sort((a, b) => b.length - a.length);
    this.#literal =
      this.#secrets.length > 0 ? new RegExp(this.#secrets.map(escapeRegExp).join('|'), 'g') : undefined;
  }

  redact(text: string): string {
    let out = this.#literal ? text.replace(this.#literal, MASK) : text;
    out = out.replace(URL_CREDENTIALS, `$1${MASK}@`).replace(NAMED_VALUE, `$1$2${MASK}`);
    return redactSecrets(out);
  }

  /**
   * For text cut at a byte limit: also masks a trailing fragment that is the start of a secret, so a
   * truncated copy never shows the first half of a password.
   */
  redactTruncated(text: string): string {
    let out = this.redact(text);
    for (const secret of this.#secrets) {
      for (let n = Math.min(secret.length - 1, out.length); n >= MIN_SECRET; n--) {
        if (out.endsWith(secret.slice(0, n))) {
          out = `${out.slice(0, out.length - n)}${MASK}`;
          break;
        }
      }
    }
    return out;
  }
}

/** The redactor for one tool run: the secrets of its environment, the process's and the registered ones. */
export function toolRedactor(env: ToolEnv): Redactor {
  return new Redactor([...secretsOfEnvironment(env), ...processSecrets(), ...registered]);
}
