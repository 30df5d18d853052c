// The built `dbops start` as a process of its own, for tests that drive the whole bot over HTTP: started
// with only the environment given (no inherited secrets), and awaited until it says it has started.
import { resolve } from 'node:path';
import { execa } from 'execa';

const CLI = resolve('dist/src/cli.js');

export type BotProcess = ReturnType<typeof launchBot>;

/** `dbops start --config <path>` with `env` (plus PATH, info logs and no Slack retries). */
export function launchBot(configPath: string, env: Record<string, string>) {
  return execa('node', [CLI, 'start', '--config', configPath], {
    env: { PATH: process.env.PATH ?? '', DBOPS_LOG_LEVEL: 'info', SLACK_API_RETRIES: '0', ...env },
    extendEnv: false,
    reject: false,
    buffer: false,
  });
}

/**
 * Launches the bot and resolves once its log says "dbops started" (fails with the log after 20 s). The
 * process comes wrapped: returned bare from an async function, execa's promise would be awaited to its exit.
 */
export async function startBotProcess(
  configPath: string,
  env: Record<string, string>,
): Promise<{ process: BotProcess }> {
  const child = launchBot(configPath, env);
  let log = '';
  await new Promise<void>((ready, failed) => {
    const timer = setTimeout(() => failed(new Error(`the bot did not start:\n${log}`)), 20_000);
    child.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('dbops started')) {
        clearTimeout(timer);
        ready();
      }
    });
  });
  return { process: child };
}
