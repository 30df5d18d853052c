// The kasm pack on a database built from exactly the tables and columns kasm.md's own SQL names (a
// sessions table, images without name, users without last_session): every read operation and lookup
// against ground truth computed here, the destructive ones previewed and clean-expired-tokens run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { as, startApp } from './helpers/app.js';
import { adminQuery, createDatabase } from './helpers/db.js';
import { KASM_RUNBOOK_SCHEMA } from './helpers/runbook-shapes.js';

let app: App;
let db: string;
const alice = (text: string) => as(app, 'alice')(text);
const bob = (text: string) => as(app, 'bob')(text);
const truth = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) =>
  adminQuery<T>(sql, params, db);

function iso<T extends Record<string, unknown>>(rows: T[]): Record<string, unknown>[] {
  return rows.map((row) =>
    Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v])),
  );
}

beforeAll(async () => {
  const [kasm, state] = await Promise.all([
    createDatabase('kasmrb', KASM_RUNBOOK_SCHEMA),
    createDatabase('kasmrbstate'),
  ]);
  db = kasm.name;
  const yaml = `
state: { url: "\${STATE_URL}" }
targets:
  kasm:
    url: "\${KASM_URL}"
    environment: production
    packs: [kasm]
people:
  alice: { cli: alice, roles: [dba] }
  bob: { cli: bob, roles: [dba] }
policy:
  production: { read: [dba], write: [dba], request: [dba], approve: [dba] }
`;
  app = await startApp(loadConfigText(yaml, 'kasm-rb.yaml', { STATE_URL: state.url, KASM_URL: kasm.url }));
});

afterAll(async () => app?.close());

describe("kasm pack on the runbook's schema", () => {
  it('workspaces: every image, without the image name the schema lacks', async () => {
    const reply = await bob('/db workspaces kasm');
    expect(reply.status).toBe('ok');
    const expected = await truth(
      `SELECT image_id::text AS image_id, friendly_name, enabled, cores::float8 AS cores, memory::float8 AS memory
         FROM images ORDER BY friendly_name, image_id`,
    );
    expect(expected).toHaveLength(15);
    expect(reply.result?.rows).toEqual(expected);
    expect(reply.result?.columns.map((c) => c.key)).not.toContain('image');
    const disabled = await bob('/db workspaces kasm --disabled');
    expect(disabled.result?.rows).toEqual(expected.filter((r) => r.enabled === false));
  });

  it('managers, agents and storage-providers: the runbook columns', async () => {
    const managers = await bob('/db managers kasm');
    expect(managers.status).toBe('ok');
    expect(managers.result?.rows).toEqual(
      await truth(
        `SELECT manager_id::text AS manager_id, manager_hostname, zone_id::text AS zone_id FROM managers
          ORDER BY zone_id::text, manager_hostname`,
      ),
    );
    const agents = await bob('/db agents kasm');
    expect(agents.status).toBe('ok');
    expect(agents.result?.rows).toEqual(
      await truth(
        `SELECT server_id::text AS server_id, hostname, zone_id::text AS zone_id, enabled FROM servers
          ORDER BY zone_id::text, hostname`,
      ),
    );
    expect(agents.result?.columns.map((c) => c.key)).toEqual(['server_id', 'hostname', 'zone_id', 'enabled']);
    const providers = await bob('/db storage-providers kasm');
    expect(providers.status).toBe('ok');
    expect(providers.result?.rows).toEqual(
      await truth(
        `SELECT storage_provider_id::text AS storage_provider_id, storage_provider_type, enabled
           FROM storage_providers ORDER BY storage_provider_type`,
      ),
    );
  });

  it('users: filters work without last_session', async () => {
    const reply = await bob('/db users kasm --search EXAMPLE.com --realm ldap');
    expect(reply.status).toBe('ok');
    const expected = await truth(
      `SELECT user_id::text AS user_id, username, realm, locked, disabled FROM users
        WHERE username ILIKE '%example.com%' AND realm = 'ldap' ORDER BY username`,
    );
    expect(expected.length).toBeGreaterThan(5);
    expect(reply.result?.rows).toEqual(expected);
    const locked = await bob('/db users kasm --locked');
    expect(locked.result?.rows.map((r) => r.username)).toEqual(
      (await truth<{ username: string }>('SELECT username FROM users WHERE locked ORDER BY username')).map(
        (r) => r.username,
      ),
    );
  });

  it('kasm-sessions reads the sessions table: running by default, --status, --user', async () => {
    const expected = async (where: string, params: unknown[] = []) =>
      iso(
        await truth(
          `SELECT s.session_id::text AS kasm_id, u.username, s.status AS operational_status, s.start_date
             FROM sessions s LEFT JOIN users u USING (user_id)
            WHERE ${where} ORDER BY s.start_date DESC, s.session_id::text`,
          params,
        ),
      );
    const running = await bob('/db kasm-sessions kasm');
    expect(running.status).toBe('ok');
    const want = await expected("s.status = 'running'");
    expect(want.length).toBeGreaterThan(0);
    expect(running.result?.rows).toEqual(want.slice(0, running.result?.rows.length));
    expect(running.result?.rows.length).toBe(Math.min(want.length, running.result?.rows.length ?? 0));
    const paused = await bob('/db kasm-sessions kasm --status paused');
    expect(paused.result?.rows).toEqual(await expected("s.status = 'paused'"));
    const mine = await bob('/db kasm-sessions kasm --status all --user admin@kasm.local');
    expect(mine.result?.rows).toEqual(await expected("lower(u.username) = 'admin@kasm.local'"));
    expect(mine.result?.rows.length).toBeGreaterThan(0);
  });

  it('lookups user, session and server answer from the runbook tables', async () => {
    const user = await bob('/db lookup kasm user ADMIN@kasm.local');
    expect(user.status).toBe('ok');
    const [u] = await truth<{ running: number; by: string }>(
      `SELECT count(*) FILTER (WHERE status = 'running')::int AS running,
              (SELECT string_agg(status || ' ' || n, ', ' ORDER BY status)
                 FROM (SELECT status, count(*) AS n FROM sessions
                        WHERE user_id = md5('u1')::uuid GROUP BY status) b) AS by
         FROM sessions WHERE user_id = md5('u1')::uuid`,
    );
    expect(user.result?.rows[0]).toMatchObject({
      username: 'Admin@Kasm.Local',
      running_sessions: u?.running,
      sessions_by_status: u?.by,
    });
    const [s] = await truth<{ id: string; status: string }>(
      "SELECT session_id::text AS id, status FROM sessions WHERE session_id = md5('k5')::uuid",
    );
    const session = await bob(`/db lookup kasm session ${s?.id.toUpperCase()}`);
    expect(session.status).toBe('ok');
    expect(session.result?.rows).toEqual([
      expect.objectContaining({
        kasm_id: s?.id,
        operational_status: s?.status,
        username: 'user6@example.com',
      }),
    ]);
    const server = await bob('/db lookup kasm server IP-10-20-4-17');
    expect(server.status).toBe('ok');
    expect(server.result?.rows).toEqual([
      expect.objectContaining({ role: 'manager', hostname: 'ip-10-20-4-17' }),
    ]);
    const agent = await bob('/db lookup kasm server agent-3');
    expect(agent.result?.rows).toEqual([expect.objectContaining({ role: 'agent', enabled: false })]);
  });

  it('fix-manager-hostname and logout-all preview on the runbook columns', async () => {
    const fix = await alice('/db fix-manager-hostname kasm kasm-web-02 --from ip-10-20-4-17');
    expect(fix.status).toBe('pending');
    expect(fix.result?.rows).toEqual([
      {
        manager_id: (await truth<{ id: string }>("SELECT md5('m2')::uuid::text AS id"))[0]?.id,
        zone_id: (await truth<{ id: string }>("SELECT md5('z2')::uuid::text AS id"))[0]?.id,
        current_hostname: 'ip-10-20-4-17',
        new_hostname: 'kasm-web-02',
      },
    ]);
    const done = await bob(`/db approve ${fix.requestId}`);
    expect(done.status).toBe('ok');
    expect(await truth('SELECT manager_hostname FROM managers ORDER BY 1')).toEqual([
      { manager_hostname: 'kasm-web-01' },
      { manager_hostname: 'kasm-web-02' },
    ]);
    const logout = await alice('/db logout-all kasm');
    expect(logout.status).toBe('pending');
    const [t] = await truth<{ tokens: number; live: number }>(
      'SELECT count(*)::int AS tokens, count(*) FILTER (WHERE expiration >= now())::int AS live FROM session_tokens',
    );
    expect(logout.result?.rows).toEqual([{ tokens: t?.tokens, live_tokens: t?.live }]);
    await alice(`/db cancel ${logout.requestId}`);
  });

  it('clean-expired-tokens deletes only the expired tokens, keyed by ctid', async () => {
    const [before] = await truth<{ expired: number; live: number }>(
      `SELECT count(*) FILTER (WHERE expiration < now())::int AS expired,
              count(*) FILTER (WHERE expiration >= now())::int AS live FROM session_tokens`,
    );
    const request = await alice('/db clean-expired-tokens kasm');
    expect(request.status).toBe('pending');
    expect(request.result?.rows[0]).toMatchObject({
      expired_tokens: before?.expired,
      live_tokens_kept: before?.live,
    });
    expect(request.result?.columns.map((c) => c.key)).not.toContain('users');
    const done = await bob(`/db approve ${request.requestId}`);
    expect(done.status).toBe('ok');
    expect(done.result?.rows[0]).toMatchObject({ rows: before?.expired });
    const [after] = await truth<{ expired: number; live: number }>(
      `SELECT count(*) FILTER (WHERE expiration < now() - interval '1 minute')::int AS expired,
              count(*) FILTER (WHERE expiration >= now())::int AS live FROM session_tokens`,
    );
    expect(after).toEqual({ expired: 0, live: before?.live });
  });
});
