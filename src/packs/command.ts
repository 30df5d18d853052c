// Runs a pack's external command (alembic and the like) through the engine's tool runner.
import { hostEnvironment, libpqEnvironment, runTool, toolEnvironment } from '../engine/tools.js';
import type { CommandRunner } from './operation.js';

/**
 * No shell, an allowlisted environment, a timeout and bounded output. The command sees the target's
 * connection as libpq variables (PGHOST, PGPASSWORD, …) and, when the pack names one, as a URL in an
 * environment variable (e.g. DATABASE_URL for an app's alembic env.py) — never in its argv.
 */
export const runPackCommand: CommandRunner = async (input) => {
  const [file, ...args] = input.argv;
  if (!file) throw new Error('empty command');
  const env = toolEnvironment(hostEnvironment(), {
    // Every statement the command sends honours the target's lock_timeout, and none outlives the command.
    ...libpqEnvironment(input.target.url, {
      lockTimeoutMs: input.target.limits.lock_timeout * 1000,
      statementTimeoutMs: input.timeoutSeconds * 1000,
    }),
    ...(input.urlEnv ? { [input.urlEnv]: input.target.url } : {}),
  });
  const out = await runTool(
    { name: file.split('/').pop() ?? file, file, args, env },
    {
      timeoutMs: input.timeoutSeconds * 1000,
      ...(input.cwd ? { cwd: input.cwd } : {}),
      ...(input.onLine ? { onStderrLine: input.onLine } : {}),
      ...(input.signal ? { signal: input.signal } : {}),
    },
  );
  return { stdout: out.stdout, stderr: out.stderrTail };
};
