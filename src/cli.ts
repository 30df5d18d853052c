#!/usr/bin/env node
// The dbops command: exec, console, demo, check-config, start.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { type App, createApp } from './app.js';
import { CliFailure, failureJson, replyJson } from './cli-json.js';
import { checkTargets, expectationProblems, formatCheckReport } from './config/check.js';
import { loadConfigFile } from './config/load.js';
import type { Config } from './config/schema.js';
import { ConfigError, isUserError } from './core/errors.js';
import { withInvocationFiles } from './core/invocation-files.js';
import { createLogger, type Logger, redactSecrets } from './core/log.js';
import type { Reply } from './core/reply.js';
import type { Invocation, InvocationFile } from './core/types.js';
import { showInvisible, terminalSafeJson } from './core/visible.js';
import { DEMO_TRY_FIRST, startDemoEnvironment } from './demo/environment.js';
import { Metrics } from './observability/metrics.js';
import { serviceSettings, startHealthServer, stateProbe } from './observability/server.js';
import type { LoadedPack } from './packs/load.js';
import { loadConfiguredPacks } from './packs/registry.js';
import { defaultExportDir, describeSaved, saveAttachments } from './surfaces/attachments.js';
import { runConsole } from './surfaces/console.js';
import { registerDiscordCommands } from './surfaces/discord/register.js';
import { fileByteCap, localInvocationFiles } from './surfaces/files.js';
import { startSurfaces } from './surfaces/start.js';

const USAGE = `dbops — chat-ops for PostgreSQL

Usage:
  dbops exec [--config FILE] --as PERSON [--channel ID] [--json] [--out DIR] [--file CSV] -- "/db sizes kasm"
  dbops console [--config FILE] --as PERSON [--channel ID]
  dbops demo
  dbops check-config [--config FILE]
  dbops start [--config FILE]
  dbops discord register [--config FILE] [--guild ID]

The config file defaults to $DBOPS_CONFIG, then ./dbops.yaml. Secrets come from the environment
(\${VAR} references in the file). Logs: $DBOPS_LOG_FILE (JSON lines), level $DBOPS_LOG_LEVEL.
Attachments (CSV exports) are saved to --out DIR, else $DBOPS_EXPORT_DIR, else <tmp>/dbops-exports.
--file CSV (or --file in the command text, also in the console) sends a file with the command, for
"/db import <target> <table>".

exec exits 0 when the command was accepted (done, or pending approval), 2 when it was refused or
invalid, 1 when it failed.`;

/** The only place that reads process.env; everything below receives it. */
const env: Record<string, string | undefined> = { ...process.env };

function configPath(flag: string | undefined): string {
  return resolve(flag ?? env.DBOPS_CONFIG ?? 'dbops.yaml');
}

function loadConfigChecked(path: string): Config {
  if (!existsSync(path))
    throw new CliFailure(
      'config_not_found',
      `config file ${path} not found (use --config FILE or set DBOPS_CONFIG)`,
      2,
    );
  try {
    return loadConfigFile(path, env);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliFailure('config_invalid', err.message, 2);
    throw err;
  }
}

function loadConfigOrExit(path: string): Config {
  try {
    return loadConfigChecked(path);
  } catch (err) {
    if (err instanceof CliFailure) {
      process.stderr.write(`dbops: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    throw err;
  }
}

/** exec and console keep the terminal clean: logs go to $DBOPS_LOG_FILE, or only warnings to stderr. */
function quietLogger(): Logger {
  const file = env.DBOPS_LOG_FILE;
  if (file)
    return createLogger({
      level: env.DBOPS_LOG_LEVEL ?? 'info',
      destination: pino.destination({ dest: file, sync: true }),
    });
  return createLogger({ level: env.DBOPS_LOG_LEVEL ?? 'warn' });
}

const EXIT: Record<Reply['status'], number> = { ok: 0, pending: 0, refused: 2, invalid: 2, failed: 1 };

/**
 * `exec`: with --json, stdout always gets exactly one JSON object, whatever fails on the way (arguments,
 * config, state database, target, saving attachments, closing): scripts parse it instead of guessing.
 */
async function exec(argv: string[]): Promise<number> {
  const json = argv.slice(0, argv.includes('--') ? argv.indexOf('--') : argv.length).includes('--json');
  try {
    return await execOnce(argv, json);
  } catch (err) {
    const failure =
      err instanceof CliFailure
        ? err
        : new CliFailure(
            'internal',
            `dbops exec failed: ${err instanceof Error ? err.message : String(err)}`,
            1,
          );
    if (json)
      process.stdout.write(
        `${terminalSafeJson(JSON.stringify(failureJson(failure.code, failure.message)))}\n`,
      );
    else process.stderr.write(`dbops: ${showInvisible(redactSecrets(failure.message))}\n`);
    return failure.exitCode;
  }
}

async function execOnce(argv: string[], json: boolean): Promise<number> {
  let parsed: ReturnType<typeof parseExecArgs>;
  try {
    parsed = parseExecArgs(argv);
  } catch (err) {
    throw new CliFailure('usage', `${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`, 2);
  }
  const { values, positionals } = parsed;
  if (!values.as || positionals.length === 0) {
    if (json) throw new CliFailure('usage', `exec needs --as PERSON and a command\n\n${USAGE}`, 2);
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const config = loadConfigChecked(configPath(values.config));
  const log = quietLogger();
  let app: App;
  try {
    // Long operations say what they are doing (lock waits, tool progress) on stderr; stdout stays the answer.
    app = await createApp({ config, log, onProgress: (_id, _inv, line) => progressTo(process.stderr, line) });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new CliFailure('state_unavailable', `cannot open the state database: ${why}`, 1);
  }
  let printed = false;
  try {
    let intake: { text: string; attachments: InvocationFile[] };
    try {
      intake = await localInvocationFiles(positionals.join(' '), fileByteCap(config), values.file);
    } catch (err) {
      if (!isUserError(err)) throw err;
      if (json) {
        const body = { ...failureJson(err.code, err.message), status: 'invalid' };
        process.stdout.write(`${terminalSafeJson(JSON.stringify(body))}\n`);
      } else process.stderr.write(`dbops: ${showInvisible(err.message)}\n`);
      printed = true;
      return 2;
    }
    const inv: Invocation = {
      surface: 'cli',
      identity: values.as,
      text: intake.text,
      ...(intake.attachments.length > 0 ? { attachments: intake.attachments } : {}),
      ...(values.channel !== undefined ? { channel: values.channel } : {}),
    };
    const reply = await withInvocationFiles(inv, () => app.core.dispatch(inv));
    let saved: Awaited<ReturnType<typeof saveAttachments>>;
    try {
      saved = await saveAttachments(reply.result?.attachments ?? [], values.out ?? defaultExportDir(env));
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new CliFailure('attachment_failed', `${reply.text}\ncannot save the attachments: ${why}`, 1);
    }
    // Values cannot drive the terminal: escapes shown, invisible characters marked (JSON: \u-escaped).
    if (json) process.stdout.write(`${terminalSafeJson(JSON.stringify(replyJson(reply, saved)))}\n`);
    else {
      (reply.status === 'ok' || reply.status === 'pending' ? process.stdout : process.stderr).write(
        `${showInvisible(reply.text)}\n`,
      );
      if (saved.length > 0) process.stdout.write(`${showInvisible(describeSaved(saved))}\n`);
    }
    printed = true;
    return EXIT[reply.status];
  } finally {
    // The answer is out: a failure to close must not print a second object or change the exit code.
    await app.close().catch((err: unknown) => {
      if (!printed) throw err;
      log.warn({ err }, 'closing after exec failed');
    });
  }
}

function parseExecArgs(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      as: { type: 'string' },
      channel: { type: 'string' },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
      file: { type: 'string' },
    },
    allowPositionals: true,
  });
}

/** A progress line of a long operation in a terminal: one line, control characters shown as `?`. */
function progressTo(stream: NodeJS.WriteStream, line: string): void {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: neutralising control characters is the point
  stream.write(`… ${line.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?')}\n`);
}

async function consoleCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, as: { type: 'string' }, channel: { type: 'string' } },
  });
  if (!values.as) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const config = loadConfigOrExit(configPath(values.config));
  const app = await createApp({
    config,
    log: quietLogger(),
    onProgress: (_id, _inv, line) => progressTo(process.stdout, line),
  });
  app.startSweeper();
  try {
    await runConsole({
      core: app.core,
      config,
      as: values.as,
      input: process.stdin,
      output: process.stdout,
      exportDir: defaultExportDir(env),
      ...(values.channel !== undefined ? { channel: values.channel } : {}),
    });
  } finally {
    await app.close();
  }
  return 0;
}

async function demo(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'dbops-demo-'));
  process.stdout.write(
    'Starting an embedded PostgreSQL with sample databases (kasm, staging, coder, capsul, activity)…\n',
  );
  const keptMessage = (kept: string | undefined): string =>
    kept ? `The files the demo produced (log, backups, exports) are kept in ${kept}\n` : '';
  const environment = await startDemoEnvironment({
    dir,
    log: (line) => process.stdout.write(`  ${line}\n`),
    // SIGHUP (terminal closed), SIGINT, SIGTERM and uncaught errors stop the demo too.
    onProcessEnd: (kept) => process.stdout.write(`\nDemo stopped and cleaned up.\n${keptMessage(kept)}`),
  });
  const merged = { ...env, ...environment.env };
  const config = loadConfigFile(environment.configPath, merged);
  const logFile = join(dir, 'dbops.log');
  const log = createLogger({ level: 'info', destination: pino.destination({ dest: logFile, sync: true }) });
  const app = await createApp({
    config,
    log,
    onProgress: (_id, _inv, line) => progressTo(process.stdout, line),
  });
  app.startSweeper(5);
  try {
    await runConsole({
      core: app.core,
      config,
      as: 'alice',
      input: process.stdin,
      output: process.stdout,
      exportDir: join(dir, 'exports'),
      banner:
        `${DEMO_TRY_FIRST}\n(config: ${environment.configPath}; log: ${logFile})\n` +
        environment.notes.map((note) => `\nNote: ${note}\n`).join(''),
    });
  } finally {
    await app.close();
    const kept = await environment.stop();
    process.stdout.write(`Demo stopped and cleaned up.\n${keptMessage(kept)}`);
  }
  return 0;
}

async function checkConfig(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } } });
  const path = configPath(values.config);
  const config = loadConfigOrExit(path);
  // The packs are part of the configuration: a broken pack or a wrong setting is a config error.
  let packs: LoadedPack[];
  try {
    packs = loadConfiguredPacks(config);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`dbops: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  process.stdout.write(
    `${path}: valid (${Object.keys(config.targets).length} targets, ${Object.keys(config.people).length} people, ${packs.length} packs)\n\n`,
  );
  const checks = await checkTargets(config, { packs });
  process.stdout.write(`${formatCheckReport(checks)}\n`);
  return checks.every((c) => c.reachable) && expectationProblems(checks).length === 0 ? 0 : 1;
}

async function start(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } } });
  const config = loadConfigOrExit(configPath(values.config));
  const log = createLogger({ level: env.DBOPS_LOG_LEVEL ?? 'info' });
  const settings = serviceSettings(env);
  // How often this replica looks for overdue approval requests (each request expires once whichever looks).
  const sweepText = env.DBOPS_SWEEP_INTERVAL?.trim();
  const sweepSeconds = sweepText ? Number(sweepText.replace(/s$/, '')) : 30;
  if (!(sweepSeconds > 0) || (sweepText && !/^\d+(\.\d+)?s?$/.test(sweepText))) {
    throw new ConfigError([`DBOPS_SWEEP_INTERVAL: expected seconds like 30 or 30s, got "${sweepText}"`]);
  }
  const metrics = new Metrics();
  metrics.collectProcessMetrics();
  const probe = stateProbe(config.state.url, { log });
  let surfaces: Awaited<ReturnType<typeof startSurfaces>> = [];
  let phase: 'starting' | 'running' | 'stopping' = 'starting';
  let startProblem = 'connecting to the state database';
  metrics.observeSurfaces(() => surfaces);

  const stopSignal = new Promise<NodeJS.Signals>((resolveStop) => {
    process.once('SIGTERM', () => resolveStop('SIGTERM'));
    process.once('SIGINT', () => resolveStop('SIGINT'));
  });
  // Unref'd: the health server keeps the process alive while it waits, and a stop must not wait for it.
  const pause = (ms: number) =>
    new Promise<undefined>((done) => setTimeout(() => done(undefined), ms).unref());
  /** True when `work` settled before `ms` passed. */
  const within = async (work: Promise<unknown>, ms: number): Promise<boolean> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((done) => {
      timer = setTimeout(() => done(false), Math.max(0, ms));
    });
    const settled = await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      late,
    ]);
    clearTimeout(timer);
    return settled;
  };

  // The health endpoints come first: while dbops connects, an orchestrator sees it alive but not ready.
  let server: Awaited<ReturnType<typeof startHealthServer>>;
  try {
    server = await startHealthServer({
      host: settings.host,
      port: settings.port,
      metrics,
      log,
      checkState: () => probe.check(),
      surfaces: () => surfaces,
      notTakingCommands: () =>
        phase === 'starting'
          ? `starting: ${startProblem}`
          : phase === 'stopping'
            ? 'shutting down'
            : undefined,
    });
  } catch (err) {
    await probe.close();
    throw err;
  }
  log.info({ endpoint: server.url }, 'health endpoints listening: /healthz /readyz /metrics');
  const closeEndpoints = async () => {
    await server.close();
    await probe.close();
  };

  // A state database that is down when the process starts is waited for (not ready meanwhile), not a crash
  // loop whose back-off would keep dbops away for minutes after the database is back.
  let app: App | undefined;
  for (let delay = 500; !app; delay = Math.min(delay * 2, 10_000)) {
    try {
      app = await createApp({ config, log, metrics, runLeaseMs: settings.runLeaseMs });
    } catch (err) {
      if (err instanceof ConfigError) {
        await closeEndpoints();
        throw err;
      }
      const error = redactSecrets(err instanceof Error ? err.message : String(err));
      startProblem = `the state database is not reachable yet (${error})`;
      log.warn({ error, retryInMs: delay }, 'could not open the state database; retrying');
      const signal = await Promise.race([stopSignal, pause(delay)]);
      if (signal) {
        log.info({ signal }, 'stopped before the state database was reachable');
        await closeEndpoints();
        return 0;
      }
    }
  }
  app.startSweeper(sweepSeconds);
  try {
    surfaces = await startSurfaces({ app, config, env, log, metrics });
  } catch (err) {
    phase = 'stopping';
    await app.close();
    await closeEndpoints();
    throw err;
  }
  phase = 'running';
  log.info(
    { targets: Object.keys(config.targets).length, surfaces: surfaces.map((s) => s.name) },
    surfaces.length > 0
      ? 'dbops started'
      : 'dbops started with no chat surface: set SLACK_BOT_TOKEN (+ SLACK_APP_TOKEN or SLACK_SIGNING_SECRET) or DISCORD_TOKEN',
  );

  const signal = await stopSignal;
  // Graceful shutdown: /readyz turns 503, the core refuses new commands and the surfaces disconnect (the
  // chat platforms deliver to the other replicas), what runs may finish until the deadline, pending
  // approvals stay in the state database, then the pools close.
  phase = 'stopping';
  const timeoutMs = settings.shutdownTimeoutMs;
  const deadline = Date.now() + timeoutMs;
  log.info(
    { signal, timeoutMs, running: app.core.inFlight },
    'stopping: no new commands; finishing those running',
  );
  const drained = app.core.drain(timeoutMs);
  if (!(await within(Promise.allSettled(surfaces.map((s) => s.stop())), deadline - Date.now()))) {
    log.warn('a chat surface did not stop before the shutdown deadline');
  }
  const clean = await drained;
  if (clean) log.info('every running command finished');
  else
    log.error(
      { abandoned: app.core.inFlight, timeoutMs },
      'shutdown deadline passed with commands still running',
    );
  if (!(await within(app.close(), 5_000))) log.warn('target or state connections did not close within 5 s');
  await closeEndpoints();
  const code = clean ? 0 : 1;
  log.info({ exitCode: code }, 'dbops stopped');
  // Whatever might still hold the event loop (a hung socket) must not keep a stopped process alive.
  setTimeout(() => process.exit(code), 5_000).unref();
  return code;
}

async function discord(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'register') {
    process.stderr.write('usage: dbops discord register [--config FILE] [--guild ID]\n');
    return 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: { config: { type: 'string' }, guild: { type: 'string' } },
  });
  const config = loadConfigOrExit(configPath(values.config));
  const result = await registerDiscordCommands({
    env,
    config,
    ...(values.guild !== undefined ? { guildId: values.guild } : {}),
  });
  for (const warning of result.warnings) process.stderr.write(`warning: ${warning}\n`);
  const where =
    result.scope === 'guild' ? `in guild ${result.guildId}` : 'globally (may take up to an hour to appear)';
  process.stdout.write(
    `registered ${result.commands.map((c) => `/${c.name}`).join(', ')} for application ${result.applicationId} ${where}\n`,
  );
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'exec':
      return await exec(rest);
    case 'console':
      return await consoleCommand(rest);
    case 'demo':
      return await demo();
    case 'check-config':
      return await checkConfig(rest);
    case 'start':
      return await start(rest);
    case 'discord':
      return await discord(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`dbops: unknown command "${command}"\n\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`dbops: ${redactSecrets(message)}\n`);
    process.exitCode = 1;
  },
);
