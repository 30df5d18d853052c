// The one way dbops runs external programs (pg_dump, pg_restore, psql, pack commands): no shell, bounded,
// supervised (they die with dbops) and redacted (no byte of their output reaches anyone unredacted).
import { UserError } from '../core/errors.js';
import { redactSecrets } from '../core/log.js';
import { OperationCancelledError } from './cancel.js';
import { type Redactor, toolRedactor } from './redact.js';
import { resolveExecutable, supervised } from './supervise.js';
import type { ToolEnv } from './tool-env.js';

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
  /**
   * Aborting it stops the tool (SIGTERM, then SIGKILL after a grace period); runTool then rejects with
   * an OperationCancelledError (code `cancelled`).
   */
  cancelSignal?: AbortSignal;
  /** The same as `cancelSignal`, under the name TargetDb uses (either may be given; the first set wins). */
  signal?: AbortSignal;
  /** Called for every complete stderr line (e.g. pg_dump --verbose progress), secrets already redacted. */
  onStderrLine?: (line: string) => void;
  /** Called for every complete stdout line, secrets already redacted. */
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

/** Redacts before clipping, so a cut never leaves half a secret behind. */
function clip(line: string, redactor?: Redactor): string {
  const clean = redactor ? redactor.redact(line) : redactSecrets(line);
  return clean.length > MESSAGE_LINE_MAX ? `${clean.slice(0, MESSAGE_LINE_MAX)}…` : clean;
}

/** The last `max` lines of `text`, each cut short, secrets redacted. */
export function lastLines(text: string, max = MESSAGE_LINES, redactor?: Redactor): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .slice(-max)
    .map((line) => clip(line, redactor));
}

/** Lines of a PostgreSQL tool's stderr that explain a failure (not its --verbose progress). */
const TELLING =
  /\b(error|fatal|panic|warning|detail|hint|context|command was|could not|failed|invalid|denied)\b/i;

/** The lines that say why a tool failed: its error lines when it printed any, else its last lines. */
export function failureLines(stderr: string, max = MESSAGE_LINES, redactor?: Redactor): string[] {
  const telling = stderr
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => TELLING.test(line));
  return telling.length > 0
    ? telling.slice(-max).map((line) => clip(line, redactor))
    : lastLines(stderr, max, redactor);
}

/** Splits a byte stream into lines for a callback, and keeps a bounded copy of what it saw. */
class StreamCollector {
  #partial = '';
  #kept = '';
  #truncated = false;

  constructor(
    private readonly keep: 'head' | 'tail',
    private readonly limit: number,
    private readonly redactor: Redactor,
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
    const clean = this.redactor.redact(line.replace(/\r$/, ''));
    try {
      this.onLine?.(clean);
    } catch {
      // A progress callback that throws must not break the tool's run.
    }
  }

  /** What was kept, secrets redacted (a cut end that starts a secret is masked too). */
  get text(): string {
    return this.#truncated ? this.redactor.redactTruncated(this.#kept) : this.redactor.redact(this.#kept);
  }

  /** The kept text as it came, for failure analysis only (never shown). */
  get raw(): string {
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
 * signal, bounded output, killed by the kernel if dbops dies (supervise.ts). Every line handed to a
 * callback, the returned output and every error message pass the tool's redactor (its environment's
 * secrets, the process's, the config's). Resolves when it exits 0; otherwise a UserError('tool_failed')
 * with the exit code and the last stderr lines, or an OperationCancelledError when `cancelSignal` fired.
 */
export async function runTool(invocation: ToolInvocation, options: RunToolOptions): Promise<ToolOutput> {
  // execa (a hundred modules) is loaded by the first command that runs a tool, not by every process.
  const { execa } = await import('execa');
  const redactor = toolRedactor(invocation.env);
  const cancelSignal = options.cancelSignal ?? options.signal;
  if (cancelSignal?.aborted) throw new OperationCancelledError(invocation.name);
  const path = resolveExecutable(invocation.file, invocation.env.PATH);
  if (!path) {
    throw new UserError('tool_failed', `${invocation.name} was not found (${invocation.file})`, {
      tool: invocation.name,
      exitCode: null,
      signal: null,
      timedOut: false,
      canceled: false,
      stderrTail: [],
    });
  }
  const stderr = new StreamCollector(
    'tail',
    options.stderrTailBytes ?? DEFAULT_STDERR_TAIL,
    redactor,
    options.onStderrLine,
  );
  const stdout = new StreamCollector(
    'head',
    options.stdoutMaxBytes ?? DEFAULT_STDOUT_MAX,
    redactor,
    options.onStdoutLine,
  );
  const started = performance.now();
  const command = supervised(path, invocation.args);
  const subprocess = execa(command.file, command.args, {
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
    ...(cancelSignal ? { cancelSignal } : {}),
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
  const stderrTail = stderr.text;
  if (!result.failed && result.exitCode === 0) {
    return { stdout: stdout.text, stdoutTruncated: stdout.truncated, stderrTail, durationMs };
  }
  if (result.isCanceled) throw new OperationCancelledError(invocation.name);

  const said = failureLines(stderr.raw, MESSAGE_LINES, redactor);
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
  } else if (result.exitCode !== undefined) what = `${invocation.name} failed (exit code ${result.exitCode})`;
  else if (result.signal) what = `${invocation.name} was killed by ${result.signal}`;
  else
    what = `${invocation.name} could not be run: ${redactor.redact(result.shortMessage ?? 'unknown error')}`;
  throw new UserError('tool_failed', said.length > 0 ? `${what}: ${said.join(' | ')}` : what, detail);
}
