// Per-test-file databases on the suite's real PostgreSQL server.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

export function adminUrl(database = 'postgres'): string {
  const url = new URL(inject('pgAdminUrl'));
  url.pathname = `/${database}`;
  return url.toString();
}

/** Runs SQL as the superuser on `database` with a short-lived client. */
export async function adminQuery<T extends pg.QueryResultRow = pg.QueryResultRow>(
  sql: string,
  params: unknown[] = [],
  database = 'postgres',
): Promise<T[]> {
  const client = new pg.Client({ connectionString: adminUrl(database) });
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
): Promise<{ name: string; url: string }> {
  const name = `${prefix.replace(/[^a-z0-9_]/g, '_')}_${randomBytes(4).toString('hex')}`;
  await adminQuery(`CREATE DATABASE "${name}"`);
  if (setupSql) await adminQuery(setupSql, [], name);
  return { name, url: adminUrl(name) };
}

/** Opens a client that the test holds (e.g. an idle session) and closes at the end. */
export async function openClient(url: string, applicationName = 'test-client'): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: applicationName });
  await client.connect();
  client.on('error', () => {});
  return client;
}
