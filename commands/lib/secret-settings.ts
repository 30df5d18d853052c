// Settings whose values can carry credentials (connection strings, shell commands): redacted wherever dbops shows them.
import { redactSecrets } from '../../src/core/log.js';

/** Shell commands PostgreSQL runs: any credential may be inside, in any form, so the value is hidden. */
const COMMAND_SETTINGS = new Set([
  'archive_command',
  'restore_command',
  'archive_cleanup_command',
  'recovery_end_command',
  'ssl_passphrase_command',
]);

/** Connection strings: the password (and passfile/sslpassword) is masked, the rest stays readable. */
const CONNINFO_SETTINGS = new Set(['primary_conninfo']);

export const HIDDEN_COMMAND = '*** (hidden: a command may carry credentials)';

/** Masks `password=…` style keys of a libpq connection string, quoted or not, and URL passwords. */
export function redactConninfo(value: string): string {
  return redactSecrets(
    value.replace(
      /\b(password|sslpassword|passfile|sslkey)(\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']+)/gi,
      '$1$2***',
    ),
  );
}

/** The value as dbops may show it: unchanged for ordinary settings. */
export function redactSettingValue(name: string, value: string | null): string | null {
  if (value === null || value === '') return value;
  if (COMMAND_SETTINGS.has(name)) return HIDDEN_COMMAND;
  if (CONNINFO_SETTINGS.has(name)) return redactConninfo(value);
  return /password|passphrase|secret/i.test(name) ? '***' : value;
}
