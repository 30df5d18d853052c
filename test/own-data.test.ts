// export stays within the target database's own data, and settings that carry secrets are masked:
// a development target on the same server as production cannot read production through catalog views.
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import blocking from '../commands/blocking.js';
import exportOp from '../commands/export.js';
import { redactConninfo, redactSettingValue } from '../commands/lib/secret-settings.js';
import settings from '../commands/settings.js';
import { UserError } from '../src/core/errors.js';
import { adminQuery, createDatabase, openClient } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';

const MARKER = `prod_secret_${process.pid}`;
let prod: { name: string; url: string };
let dev: { name: string; url: string };
let h: OpHarness;
let prodSession: pg.Client;
let statementsAvailable = false;

async function refusal(promise: Promise<unknown>): Promise<UserError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof UserError) return err;
    throw err;
  }
  throw new Error('expected the export to be refused, but it ran');
}

beforeAll(async () => {
  prod = await createDatabase('prod', 'CREATE TABLE payments (id int primary key, card text)');
  dev = await createDatabase(
    'dev',
    `CREATE TABLE notes (id int primary key, body text);
     INSERT INTO notes VALUES (1, 'hello'), (2, 'world');
     CREATE VIEW note_titles AS SELECT id, upper(body) AS title FROM notes;
     CREATE VIEW sessions AS SELECT pid, datname, query FROM pg_stat_activity;
     CREATE VIEW sessions_again AS SELECT * FROM sessions;
     CREATE VIEW passwords AS SELECT rolname, rolpassword FROM pg_authid;
     CREATE VIEW databases AS SELECT d.datname FROM notes n CROSS JOIN pg_catalog.pg_database d;
     CREATE VIEW raw_activity AS SELECT s.pid, s.query FROM pg_stat_get_activity(NULL) s;
     CREATE VIEW conninfo AS SELECT current_setting('primary_conninfo') AS value;
     CREATE FUNCTION peek() RETURNS TABLE (q text) LANGUAGE plpgsql AS
       $$ BEGIN RETURN QUERY SELECT query FROM pg_stat_activity; END $$;
     CREATE VIEW peeked AS SELECT q FROM peek();
     CREATE MATERIALIZED VIEW frozen AS SELECT query FROM pg_stat_activity WITH NO DATA;
     CREATE SCHEMA sneaky;
     CREATE TABLE sneaky.pg_stat_activity (id int, query text);
     INSERT INTO sneaky.pg_stat_activity VALUES (1, 'just a table');`,
  );
  const ext = await adminQuery<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_available_extensions WHERE name = 'pg_stat_statements'",
  );
  statementsAvailable = (ext[0]?.n ?? 0) > 0;
  if (statementsAvailable) await adminQuery('CREATE EXTENSION pg_stat_statements', [], dev.name);
  // Production's live query, which a dev reader must never see.
  prodSession = await openClient(prod.url, 'prod-app');
  await prodSession.query(`SELECT '${MARKER}' AS secret, count(*) FROM payments`);
  h = new OpHarness([testTarget('dev', dev.url, { environment: 'development' })]);
});

afterAll(async () => {
  await h?.close();
  await prodSession?.end().catch(() => {});
});

describe('export stays within the target database', () => {
  it('exports its own tables and views over them', async () => {
    const result = await h.run(exportOp, 'dev', 'note_titles');
    expect(result.headline).toBe('exported 2 rows of public.note_titles');
    const sneaky = await h.run(exportOp, 'dev', 'sneaky.pg_stat_activity');
    expect(sneaky.headline).toBe('exported 1 row of sneaky.pg_stat_activity');
  });

  const refused: [string, RegExp][] = [
    ['pg_stat_activity', /pg_catalog\.pg_stat_activity is a system catalog or view/],
    ['pg_catalog.pg_settings', /pg_catalog\.pg_settings is a system catalog or view/],
    ['pg_database', /pg_catalog\.pg_database is a catalog shared by every database/],
    ['pg_authid', /pg_catalog\.pg_authid is a catalog shared/],
    ['pg_file_settings', /pg_catalog\.pg_file_settings is a system catalog/],
    ['information_schema.tables', /information_schema\.tables is a system catalog/],
    ['sessions', /pg_catalog\.pg_stat_activity is a system catalog or view.*\(public\.sessions reads it\)/],
    ['sessions_again', /pg_stat_activity is a system catalog or view.*public\.sessions_again reads it/],
    ['passwords', /public\.passwords reads the system relation pg_authid/],
    ['databases', /pg_catalog\.pg_database is a catalog shared|reads the system relation pg_database/],
    ['raw_activity', /public\.raw_activity calls pg_stat_get_activity\(\), which shows server-wide data/],
    ['conninfo', /public\.conninfo calls current_setting\(\)/],
    ['peeked', /public\.peeked calls public\.peek\(\), a function whose body dbops cannot check/],
    ['frozen', /pg_stat_activity is a system catalog or view.*public\.frozen reads it/],
  ];
  for (const [table, why] of refused) {
    it(`refuses ${table}`, async () => {
      const err = await refusal(h.run(exportOp, 'dev', table));
      expect(err.code).toBe('permission');
      expect(err.message).toMatch(why);
      expect(err.message).not.toContain(MARKER);
    });
  }

  it("refuses pg_stat_statements (an extension's view in public)", async (test) => {
    if (!statementsAvailable) test.skip();
    const err = await refusal(h.run(exportOp, 'dev', 'pg_stat_statements'));
    expect(err.message).toMatch(/view of the extension pg_stat_statements/);
  });

  it("never shows production's live query, whichever way it is asked", async () => {
    const seen: string[] = [];
    for (const table of ['pg_stat_activity', 'sessions', 'raw_activity', 'peeked']) {
      try {
        const result = await h.run(exportOp, 'dev', table);
        seen.push(JSON.stringify(result));
      } catch (err) {
        seen.push(String(err));
      }
    }
    // The marker is really live on the server: the superuser sees it.
    const live = await adminQuery<{ n: number }>(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE $1',
      [`%'${MARKER}'%`],
    );
    expect(live[0]?.n).toBe(1);
    expect(seen.join('\n')).not.toContain(MARKER);
  });
});

describe('blocking stays within the target database', () => {
  it("names a blocker in another database without showing that database's query", async () => {
    // pg_shdescription is shared by every database and read by nobody at connect time.
    const holder = await openClient(prod.url, 'prod-holder');
    const waiter = await openClient(dev.url, 'dev-waiter');
    try {
      await holder.query('BEGIN');
      await holder.query(`LOCK TABLE pg_catalog.pg_shdescription IN ACCESS EXCLUSIVE MODE /* ${MARKER} */`);
      const holderPid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      const waiting = waiter
        .query('BEGIN; LOCK TABLE pg_catalog.pg_shdescription IN ACCESS SHARE MODE')
        .catch((err: unknown) => err);
      let result = await h.run(blocking, 'dev');
      for (let i = 0; i < 100 && result.rows.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        result = await h.run(blocking, 'dev');
      }
      expect(result.rows).toEqual([
        expect.objectContaining({ blocking_pid: holderPid, blocking_query: null }),
      ]);
      expect(result.notes?.join('\n')).toContain(`is connected to database ${prod.name}, not to this one`);
      expect(JSON.stringify(result)).not.toContain(MARKER);
      await holder.query('ROLLBACK');
      await waiting;
    } finally {
      await holder.end().catch(() => {});
      await waiter.end().catch(() => {});
    }
  });
});

describe('settings that carry secrets', () => {
  it('masks passwords in connection strings and hides commands', () => {
    expect(redactConninfo("host=db user=rep password='p@ss word' sslmode=require")).toBe(
      'host=db user=rep password=*** sslmode=require',
    );
    expect(redactConninfo('host=db password=hunter2')).toBe('host=db password=***');
    expect(redactSettingValue('archive_command', 'PGPASSWORD=x pg_dump')).not.toContain('x pg_dump');
    expect(redactSettingValue('work_mem', '4MB')).toBe('4MB');
  });

  it('shows primary_conninfo with its password masked', async () => {
    const system = (sql: string) => adminQuery(sql, [], 'postgres');
    await system(
      "ALTER SYSTEM SET primary_conninfo = 'host=10.0.0.9 user=replicator password=hunter2secret'",
    );
    try {
      await system('SELECT pg_reload_conf()');
      let row: Record<string, unknown> | undefined;
      for (let i = 0; i < 100; i++) {
        const result = await h.run(settings, 'dev');
        row = result.rows.find((r) => r.name === 'primary_conninfo');
        if (String(row?.value ?? '').includes('10.0.0.9')) {
          expect(JSON.stringify(result)).not.toContain('hunter2secret');
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(row?.value).toBe('host=10.0.0.9 user=replicator password=***');
      expect(row?.setting).toBe('host=10.0.0.9 user=replicator password=***');
    } finally {
      await system('ALTER SYSTEM RESET primary_conninfo');
      await system('SELECT pg_reload_conf()');
    }
  });
});
