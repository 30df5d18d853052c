// `dbops console`: the interactive terminal chat as a person, with progress lines as they come.
import { createApp } from '../app.js';
import { visible } from '../core/visible.js';
import { defaultExportDir } from '../surfaces/attachments.js';
import { runConsole } from '../surfaces/console.js';
import type { CONSOLE_OPTIONS, parseCommand } from './args.js';
import { configPath, env, loadConfigOrExit, packCacheDir, quietLogger } from './shared.js';

export type ConsoleArgs = ReturnType<typeof parseCommand<typeof CONSOLE_OPTIONS>>;

export async function consoleCommand({ values }: ConsoleArgs): Promise<number> {
  const config = loadConfigOrExit(configPath(values.config));
  const cacheDir = packCacheDir();
  const app = await createApp({
    config,
    log: quietLogger(),
    ...(cacheDir !== undefined ? { packCacheDir: cacheDir } : {}),
    onProgress: (_requestId, _inv, line) =>
      process.stdout.write(`… ${visible(line, Number.POSITIVE_INFINITY)}\n`),
  });
  app.startSweeper();
  try {
    await runConsole({
      core: app.core,
      config,
      as: values.as ?? '',
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
