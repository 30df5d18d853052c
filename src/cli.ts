#!/usr/bin/env node
// The dbops command: exec, console, demo, check-config, start.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createApp } from './app.js';
import { checkTargets, expectationProblems, formatCheckReport } from './config/check.js';
import { loadConfigFile } from './config/load.js';
import type { Config } from './config/schema.js';
import { ConfigError } from './core/errors.js';
import { createLogger, type Logger, redactSecrets } from './core/log.js';
import type { Reply } from './core/reply.js';
import { DEMO_TRY_FIRST, onExitCleanup, startDemoEnvironment } from './demo/environment.js';
import type { LoadedPack } from './packs/load.js';
import { loadConfiguredPacks } from './packs/registry.js';
import { defaultExportDir, describeSaved, saveAttachments } from './surfaces/attachments.js';
import { runConsole } from './surfaces/console.js';

const USAGE = `dbops — chat-ops for PostgreSQL

Usage:
  dbops exec [--config FILE] --as PERSON [--channel ID] [--json] [--out DIR] -- "/db sizes kasm"
  dbops console [--config FILE] --as PERSON [--channel ID]
  dbops demo
  dbops check-config [--config FILE]
  dbops start [--config FILE]

The config file defaults to $DBOPS_CONFIG, then ./dbops.yaml. Secrets come from the environment
(\${VAR} references in the file). Logs: $DBOPS_LOG_FILE (JSON lines), level $DBOPS_LOG_LEVEL.
Attachments (CSV exports) are saved to --out DIR, else $DBOPS_EXPORT_DIR, else <tmp>/dbops-exports.

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
    const reply = await app.core.dispatch({
      surface: 'cli',
      identity: values.as,
      text: positionals.join(' '),
      ...(values.channel !== undefined ? { channel: values.channel } : {}),
    });
    const saved = await saveAttachments(reply.result?.attachments ?? [], values.out ?? defaultExportDir(env));
    if (values.json) {
      const body = {
        status: reply.status,
        request: reply.requestId,
        operation: reply.operation ?? null,
        target: reply.target ?? null,
        risk: reply.risk ?? null,
        columns: reply.result?.columns.map((c) => c.key) ?? [],
        rows: reply.result?.rows ?? [],
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
  const checks = await checkTargets(config, { packs });
  process.stdout.write(`${formatCheckReport(checks)}\n`);
  return checks.every((c) => c.reachable) && expectationProblems(checks).length === 0 ? 0 : 1;
}

async function start(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } } });
  const config = loadConfigOrExit(configPath(values.config));
  const log = createLogger({ level: env.DBOPS_LOG_LEVEL ?? 'info' });
  const app = await createApp({ config, log });
  app.startSweeper();
  log.info(
    { targets: Object.keys(config.targets).length },
    'dbops started: state migrated, expiry sweeper running (chat surfaces are enabled by their own settings)',
  );
  await new Promise<void>((resolveStop) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping');
      resolveStop();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await app.close();
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
