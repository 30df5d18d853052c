// The one pino logger: JSON lines, secrets redacted, a child per invocation.
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger };

const REDACT = [
  'url',
  '*.url',
  'password',
  '*.password',
  'token',
  '*.token',
  'connectionString',
  '*.connectionString',
  'headers.authorization',
];

/** Replaces credentials inside any text (connection strings, tokens) before it is logged or shown. */
export function redactSecrets(text: string): string {
  return (
    text
      .replace(/(postgres(?:ql)?:\/\/[^:/@\s]+:)[^@\s]+@/gi, '$1***@')
      .replace(/\bxox[abprs]-[0-9A-Za-z-]+/g, 'xox*-***')
      .replace(/\bxapp-[0-9A-Za-z-]+/g, 'xapp-***')
      // Discord bot tokens: base64 id, timestamp and HMAC separated by dots.
      .replace(/\b[MNO][A-Za-z\d_-]{23,27}\.[A-Za-z\d_-]{6}\.[A-Za-z\d_-]{27,40}\b/g, '***discord-token***')
      // libpq keywords, quoted ('p@ss word') or not; PGPASSWORD=… in commands.
      .replace(/\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)/gi, '$1***')
  );
}

export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { app: 'dbops' },
      redact: { paths: REDACT, censor: '***' },
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? pino.destination(2),
  );
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
