// `dbops demo`: a throwaway PostgreSQL with the sample databases, and the console as alice.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createApp } from '../app.js';
import { loadConfigFile } from '../config/load.js';
import { createLogger } from '../core/log.js';
import { visible } from '../core/visible.js';
import { DEMO_TRY_FIRST, startDemoEnvironment } from '../demo/environment.js';
import { seedDemoHistory } from '../demo/history-seed.js';
import { runConsole } from '../surfaces/console.js';
import { env } from './shared.js';

export async function demo(): Promise<number> {
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
    onProgress: (_requestId, _inv, line) =>
      process.stdout.write(`… ${visible(line, Number.POSITIVE_INFINITY)}\n`),
  });
  app.startSweeper(5);
  // A week of history (one real sample per target, the hours before drawn back from it): trends to show.
  await seedDemoHistory(Object.keys(config.targets), app.sampler, app.history, new Date()).catch(
    (err: unknown) => log.warn({ err }, 'demo: could not seed the history samples'),
  );
  try {
    await runConsole({
      core: app.core,
      config,
      as: 'alice',
      input: process.stdin,
      output: process.stdout,
      exportDir: join(dir, 'exports'),
      banner:
        `${DEMO_TRY_FIRST}\nconfig: ${environment.configPath}\nlog:    ${logFile}\n` +
        environment.notes.map((note) => `\nNote: ${note}\n`).join(''),
    });
  } finally {
    await app.close();
    const kept = await environment.stop();
    process.stdout.write(`Demo stopped and cleaned up.\n${keptMessage(kept)}`);
  }
  return 0;
}
