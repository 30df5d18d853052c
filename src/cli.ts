#!/usr/bin/env node
// The dbops command: exec, console, demo, check-config, start.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { type App, createApp } from './app.js';
import { checkTargets, expectationProblems, formatCheckReport } from './config/check.js';
import { loadConfigFile } from './config/load.js';
import type { Config } from './config/schema.js';
import { ConfigError, isUserError } from './core/errors.js';
import { withInvocationFiles } from './core/invocation-files.js';
import { jsonRows } from './core/json-rows.js';
import { createLogger, type Logger, redactSecrets } from './core/log.js';
import type { Reply } from './core/reply.js';
import type { Invocation, InvocationFile } from './core/types.js';
import { DEMO_TRY_FIRST, onExitCleanup, startDemoEnvironment } from './demo/environment.js';
import { Metrics } from './observability/metrics.js';
import { serviceSettings, startHealthServer, stateProbe } from './observability/server.js';
import type { LoadedPack } from './packs/load.js';
import { configSettingWarnings } from './packs/names.js';
import { packCli } from './packs/pack-test.js';
import { checkCatalog, loadConfiguredPacks } from './packs/registry.js';
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
  dbops pack test DIR [--fixtures FILE.sql] [--pg 17] [--execute] [--set K=V]

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

function loadConfigOrExit(path: string): Config {
  if (!existsSync(path)) {
    process.stderr.write(`dbops: config file ${path} not found (use --config FILE or set DBOPS_CONFIG)\n`);
    process.exit(2);
  }
  try {
    return loadConfigFile(path, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`dbops: ${err.message}\n`);
      process.exit(2);
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

async function exec(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
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
  if (!values.as || positionals.length === 0) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const config = loadConfigOrExit(configPath(values.config));
  const log = quietLogger();
  const app = await createApp({ config, log });
  try {
    let intake: { text: string; attachments: InvocationFile[] };
    try {
      intake = await localInvocationFiles(positionals.join(' '), fileByteCap(config), values.file);
    } catch (err) {
      if (!isUserError(err)) throw err;
      if (values.json) {
        const body = {
          status: 'invalid',
          request: null,
          code: err.code,
          message: err.message,
          text: err.message,
        };
        process.stdout.write(`${JSON.stringify(body)}\n`);
      } else process.stderr.write(`dbops: ${err.message}\n`);
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
    const saved = await saveAttachments(reply.result?.attachments ?? [], values.out ?? defaultExportDir(env));
    if (values.json) {
      const body = {
        status: reply.status,
        request: reply.requestId,
        operation: reply.operation ?? null,
        target: reply.target ?? null,
        risk: reply.risk ?? null,
        columns: reply.result?.columns.map((c) => c.key) ?? [],
        rows: jsonRows(reply.result?.rows ?? []),
        truncated: reply.result?.truncated ?? false,
        text: reply.text,
        message: reply.message,
        ...(reply.code ? { code: reply.code } : {}),
        ...(reply.result?.data ? { data: reply.result.data } : {}),
        ...(reply.request ? { approval: { id: reply.request.id, status: reply.request.status } } : {}),
        ...(saved.length > 0 ? { attachments: saved } : {}),
      };
      process.stdout.write(`${JSON.stringify(body)}\n`);
    } else {
      (reply.status === 'ok' || reply.status === 'pending' ? process.stdout : process.stderr).write(
        `${reply.text}\n`,
      );
      if (saved.length > 0) process.stdout.write(`${describeSaved(saved)}\n`);
    }
    return EXIT[reply.status];
  } finally {
    await app.close();
  }
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
  const app = await createApp({ config, log: quietLogger() });
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
  const environment = await startDemoEnvironment({ dir, log: (line) => process.stdout.write(`  ${line}\n`) });
  onExitCleanup(environment);
  const merged = { ...env, ...environment.env };
  const config = loadConfigFile(environment.configPath, merged);
  const logFile = join(dir, 'dbops.log');
  const log = createLogger({ level: 'info', destination: pino.destination({ dest: logFile, sync: true }) });
  const app = await createApp({ config, log });
  app.startSweeper(5);
  try {
    await runConsole({
      core: app.core,
      config,
      as: 'alice',
      input: process.stdin,
      output: process.stdout,
      exportDir: join(dir, 'exports'),
      banner: `${DEMO_TRY_FIRST}\n(config: ${environment.configPath}; log: ${logFile})\n`,
    });
  } finally {
    await app.close();
    await environment.stop();
    process.stdout.write('Demo stopped and cleaned up.\n');
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
  for (const warning of configSettingWarnings(config, packs)) process.stdout.write(`warning: ${warning}\n`);
  const checks = await checkTargets(config, { packs });
  process.stdout.write(`${formatCheckReport(checks)}\n`);
  return checks.every((c) => c.reachable) && expectationProblems(checks).length === 0 ? 0 : 1;
}

async function start(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } } });
  const config = loadConfigOrExit(configPath(values.config));
  try {
    checkCatalog(config); // a broken pack stops start-up now, not after the state database is reached
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`dbops: ${err.message}\n`);
    return 2;
  }
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
    case 'pack':
      return await packCli(rest, (line) => process.stdout.write(`${line}\n`));
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
