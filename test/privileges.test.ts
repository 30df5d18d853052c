// `privileges` against real PostgreSQL 15 and 17: every right held against has_table_privilege /
// has_sequence_privilege read in the test, the runbook's findings, grouping, and roles without rights.
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import privileges, { type Finding, TABLE_PRIVILEGES } from '../commands/privileges.js';
import { renderResult } from '../src/core/render.js';
import type { OperationResult } from '../src/core/types.js';
import { adminQuery, createDatabase, majors } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';

interface RoleData {
  name: string;
  attributes: string[];
  memberOf: string[];
  relations: { relation: string; kind: string; privileges: string[]; owns: boolean }[];
}

function roleData(result: OperationResult, key: 'appRole' | 'botRole'): RoleData {
  const value = result.data?.[key] as RoleData | null | undefined;
  if (!value) throw new Error(`no data.${key}`);
  return value;
}

function findings(result: OperationResult): Finding[] {
  return (result.data?.findings ?? []) as Finding[];
}

function warnings(result: OperationResult, role: string): string[] {
  return findings(result)
    .filter((f) => f.status === 'warn' && f.role === role)
    .map((f) => f.text);
}

describe.each(majors())('PostgreSQL %i', (major) => {
  const suffix = randomBytes(4).toString('hex');
  const app = `privs_app_${suffix}`;
  const plain = `privs_plain_${suffix}`;
  const monitor = `privs_mon_${suffix}`;
  let db: string;
  let url: string;
  let harness: OpHarness;
  const sql = <T extends pg.QueryResultRow>(text: string, params: unknown[] = []) =>
    adminQuery<T>(text, params, db, major);
  const as = (role: string) => {
    const u = new URL(url);
    u.username = role;
    u.password = `pw-${suffix}`;
    return u.toString();
  };

  beforeAll(async () => {
    for (const role of [app, plain]) {
      await adminQuery(`CREATE ROLE ${role} LOGIN PASSWORD 'pw-${suffix}'`, [], 'postgres', major);
    }
    await adminQuery(
      `CREATE ROLE ${monitor} LOGIN PASSWORD 'pw-${suffix}' IN ROLE pg_monitor`,
      [],
      'postgres',
      major,
    );
    const bulk = Array.from({ length: 100 }, (_, i) => `CREATE TABLE bulk.t_${i} (id int);`).join('\n');
    ({ name: db, url } = await createDatabase(
      'privs',
      `CREATE TABLE users (id serial PRIMARY KEY, email text);
       CREATE TABLE activities (id serial PRIMARY KEY, user_id int REFERENCES users (id));
       CREATE TABLE feedback (id serial PRIMARY KEY, body text);
       CREATE TABLE "Odd ""T"" ü" (id int);
       CREATE VIEW active_users AS SELECT * FROM users;
       CREATE SCHEMA bulk;
       ${bulk}
       CREATE SCHEMA untouched;
       CREATE TABLE untouched.secret (x int);
       GRANT USAGE ON SCHEMA public TO ${app};
       GRANT SELECT, INSERT, UPDATE, DELETE ON users, activities TO ${app};
       GRANT TRUNCATE ON activities TO ${app};
       GRANT SELECT ON feedback, active_users TO ${app};
       GRANT USAGE, SELECT ON SEQUENCE users_id_seq TO ${app};
       GRANT USAGE ON SCHEMA bulk TO ${app};
       GRANT SELECT ON ALL TABLES IN SCHEMA bulk TO ${app};`,
      major,
    ));
    harness = new OpHarness([
      testTarget('t', url),
      testTarget('plain', as(plain)),
      testTarget('monitor', as(monitor)),
      { ...testTarget('configured', as(monitor)), settings: { dbops: { app_role: app } } },
    ]);
  }, 60_000);

  afterAll(async () => {
    await harness?.close();
    await adminQuery(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`, [], 'postgres', major);
    for (const role of [app, plain, monitor])
      await adminQuery(`DROP ROLE IF EXISTS ${role}`, [], 'postgres', major);
  });

  it('reports every table, view and sequence right exactly as has_table_privilege has it', async () => {
    const truth = await sql<{ relation: string; privileges: string[] }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS relation,
              ARRAY(SELECT p FROM unnest($2::text[]) WITH ORDINALITY u(p, i)
                    WHERE CASE WHEN c.relkind = 'S' THEN p IN ('USAGE', 'SELECT', 'UPDATE') AND has_sequence_privilege($1, c.oid, p)
                               ELSE p NOT IN ('USAGE') AND has_table_privilege($1, c.oid, p) END
                    ORDER BY i) AS privileges
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
       ORDER BY n.nspname, c.relname`,
      [app, ['USAGE', ...TABLE_PRIVILEGES]],
    );
    // The same answer whether dbops' role is a superuser or has no rights at all.
    for (const target of ['t', 'plain']) {
      const result = await harness.run(privileges, target, app);
      const got = roleData(result, 'appRole').relations;
      expect(got.map((r) => [r.relation, r.privileges])).toEqual(
        truth.map((t) => [t.relation, t.privileges]),
      );
    }
  });

  it('says what the runbook recommends, with the statement to run', async () => {
    const result = await harness.run(privileges, 't', app);
    const warned = warnings(result, app);
    expect(findings(result)).toContainEqual({ status: 'ok', role: app, text: `"${app}" is not a superuser` });
    expect(warned).toContain(
      `2 of 4 tables in "public" lack some of SELECT, INSERT, UPDATE, DELETE (public."Odd ""T"" ü", public.feedback): GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "public" TO "${app}"; (or table by table, if on purpose)`,
    );
    expect(warned).toContain(
      `"${app}" has TRUNCATE, REFERENCES or TRIGGER on 1 tables of "public" (public.activities): more than the runbook grants`,
    );
    expect(warned).toContain(
      `2 sequences in "public" lack USAGE or SELECT (public.activities_id_seq, public.feedback_id_seq): GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "public" TO "${app}";`,
    );
    const future = `tables "postgres" creates in "public" later will not be granted to "${app}": ALTER DEFAULT PRIVILEGES FOR ROLE "postgres" IN SCHEMA "public" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "${app}";`;
    expect(warned).toContain(future);
    // A schema the application has no right in is none of its business.
    expect(warned.some((w) => w.includes('untouched'))).toBe(false);
    expect(warnings(result, 'postgres')[0]).toMatch(/^dbops' role "postgres" is a superuser/);
    expect(result.headline).toBe(
      `privileges: ${findings(result).filter((f) => f.status === 'warn').length} warnings`,
    );
    expect(renderResult(result).split('\n')[1]).toBe(`database ${db}: application role ${app}, dbops role`);
    // After the ALTER DEFAULT PRIVILEGES it printed, that warning is gone and the default shows.
    await sql(future.slice(future.indexOf('ALTER DEFAULT')));
    const after = await harness.run(privileges, 't', app);
    expect(warnings(after, app)).not.toContain(future);
    expect(renderResult(after)).toContain(
      '    tables created by postgres in "public": DELETE, INSERT, SELECT, UPDATE',
    );
  });

  it('groups identical rights, so 100 tables read as one line, and fits 80 columns', async () => {
    const result = await harness.run(privileges, 't', app);
    const text = renderResult(result).split('\n');
    for (const line of text) expect(line.length).toBeLessThanOrEqual(80);
    // One group line per identical set: never a line per bulk table.
    expect(text.filter((l) => /^ {4}\d+ tables?: .*bulk\.t_/.test(l)).length).toBe(2);
    expect(text.map((l) => l.trim()).join(' ')).toContain(
      '100 tables: SELECT — bulk.t_0, bulk.t_1, bulk.t_10, bulk.t_11, bulk.t_12 and 95 more',
    );
    expect(text).toContain(`  schema "bulk" (owner postgres): USAGE`);
    expect(text).toContain('    1 view: SELECT — public.active_users');
    // A superuser is a member of every role: said once, not listed.
    expect(text).toContain('  member of: every role (superuser)');
  });

  it('a superuser application role is the first warning; dbops using it is another', async () => {
    const result = await harness.run(privileges, 't', 'postgres');
    expect(warnings(result, 'postgres')).toEqual([
      '"postgres" is a superuser: the runbook says to give the application a limited user instead (CREATE USER … and GRANT only what it needs)',
      `dbops connects as the application's own role "postgres": give dbops a role of its own, so its rights and audit stay apart`,
      `dbops' role "postgres" is a superuser: it needs only pg_monitor (reads) and pg_signal_backend (kill-idle, terminate); use a role with just those`,
    ]);
    const supers = await sql<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolsuper ORDER BY 1');
    expect(result.data?.superusers).toEqual(supers.map((s) => s.rolname));
  });

  it("dbops' own role: pg_monitor or the GRANT that gives it; the app role from the target's settings", async () => {
    const bare = await harness.run(privileges, 'plain');
    expect(bare.notes?.[0]).toMatch(/^no application role given/);
    expect(bare.data?.appRole).toBeNull();
    expect(warnings(bare, plain)).toEqual([
      `dbops' role "${plain}" sees other roles' queries as <insufficient privilege>: GRANT pg_monitor TO "${plain}";`,
    ]);
    const configured = await harness.run(privileges, 'configured');
    expect(roleData(configured, 'appRole').name).toBe(app);
    expect(roleData(configured, 'botRole').memberOf).toContain('pg_monitor');
    expect(findings(configured)).toContainEqual({
      status: 'ok',
      role: monitor,
      text: `dbops' role "${monitor}" sees every session's queries (pg_monitor, pg_read_all_stats)`,
    });
  });

  it('a role with quotes, spaces and unicode in its name is found as typed and quoted in every statement', async () => {
    const odd = `Odd "Role" ü ${suffix}`;
    const quoted = `"Odd ""Role"" ü ${suffix}"`;
    await adminQuery(`CREATE ROLE ${quoted}`, [], 'postgres', major);
    try {
      await sql(`GRANT USAGE ON SCHEMA public TO ${quoted}; GRANT SELECT ON users TO ${quoted}`);
      const result = await harness.run(privileges, 't', `'${odd}'`);
      expect(roleData(result, 'appRole').name).toBe(odd);
      expect(warnings(result, odd)[0]).toBe(
        `4 of 4 tables in "public" lack some of SELECT, INSERT, UPDATE, DELETE (public."Odd ""T"" ü", public.activities, public.feedback, public.users): GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "public" TO ${quoted}; (or table by table, if on purpose)`,
      );
      expect(findings(result)).toContainEqual({
        status: 'info',
        role: odd,
        text: `${quoted} cannot log in (NOLOGIN): it is a group role; check the role the application logs in as`,
      });
    } finally {
      await sql(`DROP OWNED BY ${quoted}`);
      await adminQuery(`DROP ROLE ${quoted}`, [], 'postgres', major);
    }
  });

  it('an unknown role gets a did-you-mean', async () => {
    await expect(harness.run(privileges, 't', `${app}x`)).rejects.toThrow(
      `no role matching ${app}x — did you mean \`${app}\``,
    );
  });
});
