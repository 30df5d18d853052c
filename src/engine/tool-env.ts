// The environment an external tool runs with: an allowlist of the bot's own, plus libpq settings of a target.
import { UserError } from '../core/errors.js';

/** The environment a tool is started with; nothing else of the bot's environment is passed on. */
export type ToolEnv = Readonly<Record<string, string>>;

/** Variables of the bot's environment a tool may see; everything else (tokens, URLs) stays behind. */
const PASSED_VARIABLES = ['PATH', 'HOME', 'LANG', 'TZ', 'TMPDIR'] as const;

/**
 * The allowlisted part of `base` plus `extra`. LC_* pass except LC_ALL and LC_MESSAGES: messages are
 * forced to C so progress lines can be recognised and errors read the same in every log.
 */
export function toolEnvironment(
  base: Readonly<Record<string, string | undefined>>,
  extra: ToolEnv = {},
): ToolEnv {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(base)) {
    if (value === undefined) continue;
    const passed =
      (PASSED_VARIABLES as readonly string[]).includes(key) ||
      (key.startsWith('LC_') && key !== 'LC_ALL' && key !== 'LC_MESSAGES');
    if (passed) env[key] = value;
  }
  env.LC_MESSAGES = 'C';
  return { ...env, ...extra };
}

/** URL query parameters that have a libpq environment variable of their own. */
const LIBPQ_PARAMETERS: Readonly<Record<string, string>> = {
  host: 'PGHOST',
  hostaddr: 'PGHOSTADDR',
  port: 'PGPORT',
  user: 'PGUSER',
  password: 'PGPASSWORD',
  dbname: 'PGDATABASE',
  sslmode: 'PGSSLMODE',
  sslrootcert: 'PGSSLROOTCERT',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  sslcrl: 'PGSSLCRL',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  options: 'PGOPTIONS',
  target_session_attrs: 'PGTARGETSESSIONATTRS',
  gssencmode: 'PGGSSENCMODE',
  channel_binding: 'PGCHANNELBINDING',
};

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export interface LibpqOptions {
  /** Connect to this database instead of the URL's (e.g. a temporary verify database). */
  database?: string;
  connectTimeoutSeconds?: number;
  /**
   * `lock_timeout` for every statement the tool sends (PGOPTIONS `-c lock_timeout=…`), so a restore's
   * TRUNCATE or a migration's ALTER never waits on a lock forever.
   */
  lockTimeoutMs?: number;
  /** `statement_timeout` for the tool's statements (pg_dump and pg_restore set their own 0 on purpose). */
  statementTimeoutMs?: number;
}

/** Whole, positive milliseconds for a `-c name=value` setting (never text from a person). */
function settingMs(ms: number): number {
  if (!Number.isFinite(ms) || ms < 0) throw new Error(`not a timeout in milliseconds: ${ms}`);
  return Math.max(1, Math.round(ms));
}

/**
 * The libpq variables for a target URL: host, port, user, database, password (PGPASSWORD, never argv),
 * TLS settings, and PGAPPNAME=dbops so other operations never list or kill the bot's own tools.
 */
export function libpqEnvironment(url: string, options: LibpqOptions = {}): ToolEnv {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UserError(
      'tool_failed',
      'the target URL cannot be turned into libpq settings for pg_dump / pg_restore ' +
        '(several hosts, or not a postgres:// URL); use a single-host postgres:// URL for this target',
    );
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new UserError('tool_failed', 'the target URL must start with postgres:// to run PostgreSQL tools');
  }
  const env: Record<string, string> = {};
  const host = decode(parsed.hostname).replace(/^\[(.*)\]$/, '$1');
  if (host !== '') env.PGHOST = host;
  if (parsed.port !== '') env.PGPORT = parsed.port;
  if (parsed.username !== '') env.PGUSER = decode(parsed.username);
  if (parsed.password !== '') env.PGPASSWORD = decode(parsed.password);
  const database = decode(parsed.pathname.replace(/^\//, ''));
  if (database !== '') env.PGDATABASE = database;
  for (const [key, value] of parsed.searchParams) {
    const variable = LIBPQ_PARAMETERS[key];
    if (variable) env[variable] = value;
    // node-postgres' `ssl=true` means "use TLS"; the closest libpq spelling that never falls back to plain.
    else if (key === 'ssl' && (value === 'true' || value === '1') && !parsed.searchParams.has('sslmode')) {
      env.PGSSLMODE = 'require';
    }
  }
  if (options.database !== undefined) env.PGDATABASE = options.database;
  if (options.connectTimeoutSeconds !== undefined && env.PGCONNECT_TIMEOUT === undefined) {
    env.PGCONNECT_TIMEOUT = String(Math.max(2, Math.ceil(options.connectTimeoutSeconds)));
  }
  const settings: string[] = [];
  if (options.lockTimeoutMs !== undefined)
    settings.push(`-c lock_timeout=${settingMs(options.lockTimeoutMs)}`);
  if (options.statementTimeoutMs !== undefined)
    settings.push(`-c statement_timeout=${settingMs(options.statementTimeoutMs)}`);
  // After the URL's own `options`, so dbops' limits win over a URL that tries to lift them.
  if (settings.length > 0) env.PGOPTIONS = [env.PGOPTIONS, ...settings].filter(Boolean).join(' ');
  env.PGAPPNAME = 'dbops';
  return env;
}

/** A `dbname=` conninfo naming only the database: never read as a URL or as further settings. */
export function conninfoDatabase(database: string): string {
  return `dbname='${database.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** The bot's own environment, read here only to pick what tools may inherit (PATH, HOME, locale). */
export function hostEnvironment(): Readonly<Record<string, string | undefined>> {
  return process.env;
}
