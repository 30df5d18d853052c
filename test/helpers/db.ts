// Per-test-file databases on the suite's real PostgreSQL servers (major 15 by default, 17 on request).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import type { Major } from '../setup/postgres.js';

/** The majors this run has servers for (15 and 17 normally; only 15 against an external server). */
export function majors(): Major[] {
  return Object.keys(inject('pgAdminUrls'))
    .map(Number)
    .filter((m): m is Major => m === 15 || m === 17);
}

export function adminUrl(database = 'postgres', major: Major = 15): string {
  const base = inject('pgAdminUrls')[major];
  if (!base) throw new Error(`no PostgreSQL ${major} server in this test run`);
  const url = new URL(base);
  url.pathname = `/${database}`;
  return url.toString();
}

/** Runs SQL as the superuser on `database` with a short-lived client. */
export async function adminQuery<T extends pg.QueryResultRow = pg.QueryResultRow>(
  sql: string,
  params: unknown[] = [],
  database = 'postgres',
  major: Major = 15,
): Promise<T[]> {
  const client = new pg.Client({ connectionString: adminUrl(database, major) });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** Creates a fresh, uniquely named database and returns its name and superuser URL. */
export async function createDatabase(
  prefix: string,
  setupSql?: string,
  major: Major = 15,
): Promise<{ name: string; url: string; major: Major }> {
  const name = `${prefix.replace(/[^a-z0-9_]/g, '_')}_${randomBytes(4).toString('hex')}`;
  await adminQuery(`CREATE DATABASE "${name}"`, [], 'postgres', major);
  if (setupSql) await adminQuery(setupSql, [], name, major);
  return { name, url: adminUrl(name, major), major };
}

/** Opens a client that the test holds (e.g. an idle session) and closes at the end. */
export async function openClient(url: string, applicationName = 'test-client'): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: applicationName });
  await client.connect();
  client.on('error', () => {});
  return client;
}
