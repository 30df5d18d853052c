// The one way dbops runs external programs (pg_dump, pg_restore, psql, later alembic): no shell, bounded.
import { constants } from 'node:fs';
import { access, readdir } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { UserError } from '../core/errors.js';
import { redactSecrets } from '../core/log.js';

/** The environment a tool is started with; nothing else of the bot's environment is passed on. */
export type ToolEnv = Readonly<Record<string, string>>;

/** A program, its argument array and its complete environment. */
export interface ToolInvocation {
  /** What the tool is called in messages, e.g. `pg_dump`. */
  name: string;
  /** Absolute path (or bare name resolved through the allowlisted PATH). */
  file: string;
  args: readonly string[];
  env: ToolEnv;
}

export interface RunToolOptions {
  timeoutMs: number;
  /** Aborting it stops the tool (SIGTERM, then SIGKILL after a grace period). */
  cancelSignal?: AbortSignal;
  /** Called for every complete stderr line (e.g. pg_dump --verbose progress). */
  onStderrLine?: (line: string) => void;
  onStdoutLine?: (line: string) => void;
  /** How much of the end of stderr is kept for the error message (default 64 KiB). */
  stderrTailBytes?: number;
  /** How much of the start of stdout is kept (default 1 MiB); the rest is only passed to onStdoutLine. */
  stdoutMaxBytes?: number;
  cwd?: string;
}

export interface ToolOutput {
  stdout: string;
  stdoutTruncated: boolean;
  /** The last `stderrTailBytes` of stderr, secrets redacted. */
  stderrTail: string;
  durationMs: number;
}

const DEFAULT_STDERR_TAIL = 64 * 1024;
const DEFAULT_STDOUT_MAX = 1024 * 1024;
/** Lines of stderr quoted in a tool_failed message. */
const MESSAGE_LINES = 6;
const MESSAGE_LINE_MAX = 300;
/** After SIGTERM (timeout or cancel), how long a tool gets before SIGKILL. */
const KILL_GRACE_MS = 5000;
const VERSION_TIMEOUT_MS = 15_000;

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
  env.PGAPPNAME = 'dbops';
  return env;
}

/** A `dbname=` conninfo naming only the database: never read as a URL or as further settings. */
export function conninfoDatabase(database: string): string {
  return `dbname='${database.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function clip(line: string): string {
  return redactSecrets(line.length > MESSAGE_LINE_MAX ? `${line.slice(0, MESSAGE_LINE_MAX)}…` : line);
}

/** The last `max` lines of `text`, each cut short, secrets redacted. */
export function lastLines(text: string, max = MESSAGE_LINES): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .slice(-max)
    .map(clip);
}

/** Lines of a PostgreSQL tool's stderr that explain a failure (not its --verbose progress). */
const TELLING =
  /\b(error|fatal|panic|warning|detail|hint|context|command was|could not|failed|invalid|denied)\b/i;

/** The lines that say why a tool failed: its error lines when it printed any, else its last lines. */
export function failureLines(stderr: string, max = MESSAGE_LINES): string[] {
  const telling = stderr
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => TELLING.test(line));
  return telling.length > 0 ? telling.slice(-max).map(clip) : lastLines(stderr, max);
}

/** Splits a byte stream into lines for a callback, and keeps a bounded copy of what it saw. */
class StreamCollector {
  #partial = '';
  #kept = '';
  #truncated = false;

  constructor(
    private readonly keep: 'head' | 'tail',
    private readonly limit: number,
    private readonly onLine?: (line: string) => void,
  ) {}

  push(chunk: string): void {
    if (this.keep === 'tail') {
      this.#kept += chunk;
      if (this.#kept.length > this.limit) {
        this.#kept = this.#kept.slice(this.#kept.length - this.limit);
        this.#truncated = true;
      }
    } else if (this.#kept.length < this.limit) {
      this.#kept += chunk.slice(0, this.limit - this.#kept.length);
      if (this.#kept.length >= this.limit) this.#truncated = true;
    } else {
      this.#truncated = true;
    }
    if (!this.onLine) return;
    const text = this.#partial + chunk;
    const lines = text.split('\n');
    this.#partial = lines.pop() ?? '';
    // A tool that never ends a line must not grow the buffer without bound.
    if (this.#partial.length > this.limit) this.#partial = this.#partial.slice(-this.limit);
    for (const line of lines) this.#emit(line);
  }

  end(): void {
    if (this.#partial !== '') this.#emit(this.#partial);
    this.#partial = '';
  }

  #emit(line: string): void {
    const clean = line.replace(/\r$/, '');
    try {
      this.onLine?.(clean);
    } catch {
      // A progress callback that throws must not break the tool's run.
    }
  }

  get text(): string {
    return this.#kept;
  }

  get truncated(): boolean {
    return this.#truncated;
  }
}

function formatLimit(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 1000)}s`;
}

/**
 * Runs one tool: argument array, no shell, only `invocation.env`, stdin closed, a timeout and a cancel
 * signal, bounded output. Resolves when it exits 0; otherwise a UserError('tool_failed') with the exit
 * code and the last stderr lines (redacted).
 */
export async function runTool(invocation: ToolInvocation, options: RunToolOptions): Promise<ToolOutput> {
  const stderr = new StreamCollector(
    'tail',
    options.stderrTailBytes ?? DEFAULT_STDERR_TAIL,
    options.onStderrLine,
  );
  const stdout = new StreamCollector(
    'head',
    options.stdoutMaxBytes ?? DEFAULT_STDOUT_MAX,
    options.onStdoutLine,
  );
  const started = performance.now();
  const subprocess = execa(invocation.file, [...invocation.args], {
    env: { ...invocation.env },
    extendEnv: false,
    shell: false,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: false,
    reject: false,
    timeout: options.timeoutMs,
    forceKillAfterDelay: KILL_GRACE_MS,
    windowsHide: true,
    ...(options.cancelSignal ? { cancelSignal: options.cancelSignal } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  subprocess.stdout?.setEncoding('utf8');
  subprocess.stderr?.setEncoding('utf8');
  subprocess.stdout?.on('data', (chunk: string) => stdout.push(chunk));
  subprocess.stderr?.on('data', (chunk: string) => stderr.push(chunk));
  const result = await subprocess;
  stdout.end();
  stderr.end();
  const durationMs = performance.now() - started;
  const stderrTail = redactSecrets(stderr.text);
  if (!result.failed && result.exitCode === 0) {
    return { stdout: stdout.text, stdoutTruncated: stdout.truncated, stderrTail, durationMs };
  }

  const said = failureLines(stderr.text);
  const detail = {
    tool: invocation.name,
    exitCode: result.exitCode ?? null,
    signal: result.signal ?? null,
    timedOut: result.timedOut,
    canceled: result.isCanceled,
    stderrTail: said,
  };
  let what: string;
  if (result.code === 'ENOENT') what = `${invocation.name} was not found (${invocation.file})`;
  else if (result.timedOut) {
    what = `${invocation.name} ran past its time limit of ${formatLimit(options.timeoutMs)} and was stopped`;
  } else if (result.isCanceled) what = `${invocation.name} was cancelled`;
  else if (result.exitCode !== undefined) what = `${invocation.name} failed (exit code ${result.exitCode})`;
  else if (result.signal) what = `${invocation.name} was killed by ${result.signal}`;
  else what = `${invocation.name} could not be run: ${redactSecrets(result.shortMessage ?? 'unknown error')}`;
  throw new UserError('tool_failed', said.length > 0 ? `${what}: ${said.join(' | ')}` : what, detail);
}

// ---------------------------------------------------------------------------------------------------
// PostgreSQL client tools: which binary, and whether it can handle the server.

export const PG_TOOLS = ['pg_dump', 'pg_restore', 'psql'] as const;
export type PgToolName = (typeof PG_TOOLS)[number];

/** Where Debian and PGDG install one directory of client programs per major. */
export const DEBIAN_PG_ROOT = '/usr/lib/postgresql';

export interface PgTool {
  name: PgToolName;
  path: string;
  /** e.g. `15.18 (Debian 15.18-0+deb12u1)` */
  version: string;
  /** 15 for 15.x; 9.6 for 9.6.x */
  major: number;
}

/** The major of a `server_version_num` (170002 → 17, 90624 → 9.6). */
export function majorOfVersionNum(versionNum: number): number {
  if (versionNum >= 100_000) return Math.floor(versionNum / 10_000);
  return Math.floor(versionNum / 10_000) + (Math.floor(versionNum / 100) % 100) / 10;
}

/** Parses `pg_dump (PostgreSQL) 15.18 (Debian …)` into its version text and major. */
export function parseToolVersion(output: string): { version: string; major: number } | undefined {
  const match = /\(PostgreSQL\)\s+((\d+)(?:\.(\d+))?\S*(?:\s+\(.*\))?)/.exec(output);
  if (!match?.[1] || !match[2]) return undefined;
  const first = Number(match[2]);
  const major = first >= 10 ? first : first + Number(match[3] ?? 0) / 10;
  return { version: match[1].trim(), major };
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface FindToolOptions {
  /** The target server's server_version_num. */
  serverVersionNum: number;
  /**
   * The oldest major that will do, and what it is needed for (for the message); by default the server's
   * major for pg_dump (it refuses newer servers) and no minimum for the others.
   */
  requires?: { major: number; purpose: string };
  /** The environment the tool will run with (its PATH is searched last). */
  env: ToolEnv;
  /** Directories holding `<major>/bin/` (default /usr/lib/postgresql). */
  roots?: readonly string[];
}

/** Candidate paths, best first: the server's major, then the newest installed major, then PATH. */
export async function pgToolCandidates(
  tool: PgToolName,
  serverMajor: number,
  env: ToolEnv,
  roots: readonly string[] = [DEBIAN_PG_ROOT],
): Promise<string[]> {
  const found: string[] = [];
  for (const root of roots) {
    const exact = join(root, String(serverMajor), 'bin', tool);
    if (await isExecutable(exact)) found.push(exact);
    let majors: number[] = [];
    try {
      majors = (await readdir(root))
        .filter((d) => /^\d+(\.\d+)?$/.test(d))
        .map(Number)
        .sort((a, b) => b - a);
    } catch {
      // No such root: nothing installed the Debian way.
    }
    for (const major of majors) {
      const path = join(root, String(major), 'bin', tool);
      if (path !== exact && (await isExecutable(path))) {
        found.push(path);
        break;
      }
    }
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const path = join(dir, tool);
    if (await isExecutable(path)) {
      found.push(path);
      break;
    }
  }
  return found;
}

const versionCache = new Map<string, Promise<{ version: string; major: number }>>();

async function toolVersion(
  tool: PgToolName,
  path: string,
  env: ToolEnv,
): Promise<{ version: string; major: number }> {
  let cached = versionCache.get(path);
  if (!cached) {
    cached = runTool(
      { name: tool, file: path, args: ['--version'], env },
      { timeoutMs: VERSION_TIMEOUT_MS },
    ).then((out) => {
      const parsed = parseToolVersion(out.stdout);
      if (!parsed) {
        throw new UserError(
          'tool_failed',
          `${path} --version did not print a PostgreSQL version (${lastLines(out.stdout, 1).join('')})`,
        );
      }
      return parsed;
    });
    versionCache.set(path, cached);
    cached.catch(() => versionCache.delete(path));
  }
  return await cached;
}

/**
 * The client program to use against a server of `serverVersionNum`, checked BEFORE anything runs:
 * a missing tool and a tool too old for the job (pg_dump refuses servers newer than itself) are clear
 * UserErrors naming the package to install.
 */
export async function findPgTool(tool: PgToolName, options: FindToolOptions): Promise<PgTool> {
  const serverMajor = majorOfVersionNum(options.serverVersionNum);
  const requires =
    options.requires ??
    (tool === 'pg_dump'
      ? { major: serverMajor, purpose: `dump a PostgreSQL ${serverMajor} server` }
      : undefined);
  const candidates = await pgToolCandidates(tool, serverMajor, options.env, options.roots);
  if (candidates.length === 0) {
    throw new UserError(
      'tool_failed',
      `${tool} not found; install postgresql-client${requires ? `-${requires.major}` : ''} (Debian/PGDG) on the dbops host`,
      { tool },
    );
  }
  let newest: PgTool | undefined;
  for (const path of candidates) {
    const { version, major } = await toolVersion(tool, path, options.env);
    const found: PgTool = { name: tool, path, version, major };
    if (!requires || major >= requires.major) return found;
    if (!newest || major > newest.major) newest = found;
  }
  // Only reachable with a requirement that no candidate met.
  if (!newest || !requires) throw new Error(`findPgTool: no usable ${tool} among ${candidates.join(', ')}`);
  throw new UserError(
    'tool_failed',
    `${tool} ${newest.major} cannot ${requires.purpose}; install postgresql-client-${requires.major} (Debian/PGDG) on the dbops host`,
    { tool, path: newest.path, toolMajor: newest.major, requiredMajor: requires.major },
  );
}

/** The bot's own environment, read here only to pick what tools may inherit (PATH, HOME, locale). */
export function hostEnvironment(): Readonly<Record<string, string | undefined>> {
  return process.env;
}
