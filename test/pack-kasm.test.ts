// The kasm pack (runbook kasm.md) against the demo's kasm fixture, through the whole core: every read
// operation and lookup against ground truth computed here, every destructive one previewed, approved by a
// second person and checked for its effect and for what it must leave alone.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { builtinPacksDir, loadPackDir } from '../src/packs/load.js';
import { as, startApp } from './helpers/app.js';
import { adminQuery, createDatabase } from './helpers/db.js';

const FIXTURE = readFileSync(join(import.meta.dirname, '../src/demo/fixtures/kasm.sql'), 'utf8');
const BATCH = 10_000;

let app: App;
let kasmDb: string;
const alice = (text: string) => as(app, 'alice')(text);
const bob = (text: string) => as(app, 'bob')(text);
const truth = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) =>
  adminQuery<T>(sql, params, kasmDb);

/** Timestamps as the engine hands them on: ISO strings of the Date node-postgres parsed. */
function iso<T extends Record<string, unknown>>(rows: T[]): Record<string, unknown>[] {
  return rows.map((row) =>
    Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v])),
  );
}

beforeAll(async () => {
  const [kasm, state] = await Promise.all([createDatabase('kasm', FIXTURE), createDatabase('kasmstate')]);
  kasmDb = kasm.name;
  // A token of the fixture expires every 43 s. Move those expiring within ten minutes of now out of the
  // way, so "expired" means the same set of rows for the whole file and every count below is exact.
  await truth(`UPDATE session_tokens SET expiration = expiration + interval '20 minutes'
                WHERE expiration >= now() - interval '10 minutes' AND expiration < now() + interval '10 minutes'`);
  const yaml = `
state: { url: "\${STATE_URL}" }
targets:
  kasm:
    url: "\${KASM_URL}"
    environment: production
    packs: [kasm]
    settings: { kasm: { token_batch_size: ${BATCH} } }
people:
  alice: { cli: alice, roles: [dba] }
  bob: { cli: bob, roles: [dba] }
policy:
  production: { read: [dba], write: [dba], request: [dba], approve: [dba] }
`;
  app = await startApp(loadConfigText(yaml, 'kasm-pack.yaml', { STATE_URL: state.url, KASM_URL: kasm.url }));
});

afterAll(async () => app?.close());

describe('kasm pack: what it expects of the schema', () => {
  it('names tables and columns the Kasm database has', async () => {
    const problems: string[] = [];
    const pack = loadPackDir(join(builtinPacksDir(), 'kasm'), problems);
    expect(problems).toEqual([]);
    const tables = pack?.manifest.expects.tables ?? {};
    expect(Object.keys(tables)).toContain('session_tokens');
    const columns = await truth<{ table_name: string; column_name: string }>(
      "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'",
    );
    const have = new Set(columns.map((c) => `${c.table_name}.${c.column_name}`));
    const missing = Object.entries(tables).flatMap(([table, cols]) =>
      cols.map((c) => `${table}.${c}`).filter((tc) => !have.has(tc)),
    );
    expect(missing).toEqual([]);
  });
});

describe('kasm pack: read operations', () => {
  it('workspaces lists every image by friendly name, and --disabled the ones users can not launch', async () => {
    const reply = await bob('/db workspaces kasm');
    expect(reply.status).toBe('ok');
    const expected = await truth(
      `SELECT image_id::text AS image_id, friendly_name, name AS image, enabled, cores::float8 AS cores,
              memory::float8 AS memory
         FROM images ORDER BY friendly_name, image_id`,
    );
    expect(expected).toHaveLength(22);
    expect(reply.result?.rows).toEqual(expected);
    expect(reply.result?.columns.find((c) => c.key === 'memory')?.kind).toBe('bytes');
    const disabled = await bob('/db workspaces kasm --disabled');
    expect(disabled.result?.rows).toEqual(expected.filter((r) => r.enabled === false));
    expect(disabled.result?.rows.map((r) => r.friendly_name)).toEqual(['Opera', 'Sublime Text', 'Zoom']);
  });

  it('managers shows each manager with its zone and version', async () => {
    const reply = await bob('/db managers kasm');
    const expected = await truth(
      `SELECT m.manager_id::text AS manager_id, m.manager_hostname, z.zone_name AS zone, m.manager_version,
              m.last_reported
         FROM managers m JOIN zones z USING (zone_id) ORDER BY z.zone_name, m.manager_hostname`,
    );
    expect(reply.result?.rows).toEqual(iso(expected));
    expect(reply.result?.rows.map((r) => r.manager_hostname)).toContain('ip-10-20-4-17');
  });

  it('agents shows each server with its running sessions', async () => {
    const reply = await bob('/db agents kasm');
    const expected = await truth(
      `SELECT s.server_id::text AS server_id, s.hostname, z.zone_name AS zone, s.enabled, s.operational_status,
              s.cores, s.memory::float8 AS memory, s.agent_version,
              (SELECT count(*)::int FROM kasms k WHERE k.server_id = s.server_id
                  AND k.operational_status = 'running') AS running_sessions,
              s.last_reported
         FROM servers s JOIN zones z USING (zone_id) ORDER BY z.zone_name, s.hostname`,
    );
    expect(expected).toHaveLength(12);
    expect(reply.result?.rows).toEqual(iso(expected));
    const [running] = await truth<{ n: number }>(
      "SELECT count(*)::int AS n FROM kasms WHERE operational_status = 'running'",
    );
    expect(reply.result?.rows.reduce((sum, r) => sum + Number(r.running_sessions), 0)).toBe(running?.n);
  });

  it('storage-providers lists the providers without their OAuth details', async () => {
    const reply = await bob('/db storage-providers kasm');
    const expected = await truth(
      `SELECT storage_provider_id::text AS storage_provider_id, name, storage_provider_type, enabled, default_target
         FROM storage_providers ORDER BY name`,
    );
    expect(reply.result?.rows).toEqual(expected);
    expect(reply.text).not.toContain('oauth2');
  });

  it('users filters by part of the name (% and _ literal), realm, locked and disabled, and is capped', async () => {
    const all = await bob('/db users kasm');
    const everyone = await truth(
      'SELECT user_id::text AS user_id, username, realm, locked, disabled, last_session FROM users ORDER BY username',
    );
    expect(everyone.length).toBe(2502);
    expect(all.result?.truncated).toBe(true);
    expect(all.result?.rows).toEqual(iso(everyone.slice(0, 200)));
    expect(all.text).not.toContain('pw_hash');

    const search = await bob('/db users kasm --search LIVIA.R');
    const olivias = iso(everyone.filter((u) => String(u.username).includes('livia.r')));
    expect(olivias.length).toBeGreaterThan(0);
    expect(search.result?.rows).toEqual(olivias);

    const locked = await bob('/db users kasm --realm ldap --locked');
    const lockedLdap = iso(everyone.filter((u) => u.realm === 'ldap' && u.locked === true));
    expect(lockedLdap.length).toBeGreaterThan(0);
    expect(locked.result?.rows).toEqual(lockedLdap);

    const disabled = await bob('/db users kasm --disabled');
    expect(disabled.result?.rows).toEqual(iso(everyone.filter((u) => u.disabled === true)));

    // Typed wildcards are text: no user name holds % or _, so these match nobody.
    for (const wild of ['%', '_', '\\']) {
      const reply = await bob(`/db users kasm --search "${wild === '\\' ? '\\\\' : wild}"`);
      expect(reply.status).toBe('ok');
      expect(reply.result?.rows).toEqual(iso(everyone.filter((u) => String(u.username).includes(wild))));
      expect(reply.result?.rows).toEqual([]);
    }
    const badRealm = await bob('/db users kasm --realm kerberos');
    expect(badRealm).toMatchObject({ status: 'invalid', code: 'invalid_argument' });
    expect(badRealm.message).toContain('expected one of local, ldap, saml, oidc');
  });

  it('kasm-sessions lists running sessions (newest first), another status, or one user’s', async () => {
    const sessionsSql = `
      SELECT k.kasm_id::text AS kasm_id, u.username, i.friendly_name AS workspace, s.hostname AS agent,
             k.operational_status, k.start_date
        FROM kasms k JOIN users u USING (user_id) JOIN images i USING (image_id) JOIN servers s USING (server_id)
       WHERE k.operational_status = $1 AND ($2::text IS NULL OR u.username = $2)
       ORDER BY k.start_date DESC`;
    const running = await bob('/db kasm-sessions kasm');
    const expected = await truth(sessionsSql, ['running', null]);
    expect(expected).toHaveLength(140);
    expect(running.result?.rows).toEqual(iso(expected));
    expect(running.result?.truncated).toBe(false);

    const paused = await bob('/db kasm-sessions kasm --status paused');
    expect(paused.result?.rows).toEqual(iso(await truth(sessionsSql, ['paused', null])));
    expect(paused.result?.rows).toHaveLength(20);

    const all = await bob('/db kasm-sessions kasm --status all');
    expect(all.result?.truncated).toBe(true);
    expect(all.result?.rows).toHaveLength(200);
    expect(all.result?.rows[0]).toEqual(iso(expected)[0]);
    const bad = await bob('/db kasm-sessions kasm --status sleeping');
    expect(bad.message).toContain('expected one of running, starting');

    const [busy] = await truth<{ username: string }>(
      `SELECT u.username FROM kasms k JOIN users u USING (user_id) WHERE k.operational_status = 'stopped'
        GROUP BY u.username ORDER BY count(*) DESC, u.username LIMIT 1`,
    );
    const mine = await bob(`/db kasm-sessions kasm --status stopped --user ${busy?.username.toUpperCase()}`);
    const theirs = await truth(sessionsSql, ['stopped', busy?.username]);
    expect(theirs.length).toBeGreaterThan(1);
    expect(mine.result?.rows).toEqual(iso(theirs));
  });
});

describe('kasm pack: lookups', () => {
  it('lookup user: a card with the sessions by status and the live and expired tokens', async () => {
    const [someone] = await truth<{ user_id: string; username: string }>(
      `SELECT u.user_id::text, u.username FROM users u JOIN kasms k USING (user_id)
        WHERE k.operational_status = 'running' GROUP BY u.user_id, u.username
        ORDER BY count(*) DESC, u.username LIMIT 1`,
    );
    const reply = await bob(`/db lookup kasm user ${someone?.username.toUpperCase()}`);
    expect(reply.status).toBe('ok');
    expect(reply.result?.display).toBe('card');
    const [user] = await truth(
      `SELECT user_id::text AS user_id, username, first_name || ' ' || last_name AS name, realm, locked, disabled,
              created, last_session FROM users WHERE user_id = $1`,
      [someone?.user_id],
    );
    const statuses = await truth<{ operational_status: string; n: number }>(
      `SELECT operational_status, count(*)::int AS n FROM kasms WHERE user_id = $1
        GROUP BY 1 ORDER BY 1`,
      [someone?.user_id],
    );
    const [tokens] = await truth<{ live: number; expired: number; last_login: Date }>(
      `SELECT count(*) FILTER (WHERE expiration >= now())::int AS live,
              count(*) FILTER (WHERE expiration < now())::int AS expired, max(session_token_date) AS last_login
         FROM session_tokens WHERE user_id = $1`,
      [someone?.user_id],
    );
    expect(reply.result?.rows).toEqual([
      {
        ...iso([user ?? {}])[0],
        running_sessions: statuses.find((s) => s.operational_status === 'running')?.n,
        sessions_by_status: statuses.map((s) => `${s.operational_status} ${s.n}`).join(', '),
        live_tokens: tokens?.live,
        expired_tokens: tokens?.expired,
        last_login: tokens?.last_login.toISOString(),
      },
    ]);
    expect(reply.text).toMatch(/running sessions:\s+\d/);
    expect(reply.text).toMatch(/expired tokens:\s+\d/);

    const nobody = await bob('/db lookup kasm user nobody@example.com');
    expect(nobody.status).toBe('ok');
    expect(nobody.result?.rows).toEqual([]);
    expect(nobody.text.split('\n')[0]).toBe('no kasm user matching nobody@example.com');
    const noSession = await bob('/db lookup kasm session 00000000-0000-0000-0000-000000000000');
    expect(noSession.text.split('\n')[0]).toBe(
      'no kasm session matching 00000000-0000-0000-0000-000000000000',
    );
  });

  it('lookup session: where a session runs, by its id; the key must be a UUID', async () => {
    const [session] = await truth(
      `SELECT k.kasm_id::text AS kasm_id, k.operational_status, u.username, i.friendly_name AS workspace,
              i.name AS image, s.hostname AS agent, z.zone_name AS zone, k.container_id,
              host(k.container_ip) AS container_ip, k.start_date, k.keepalive_date, k.expiration_date
         FROM kasms k JOIN users u USING (user_id) JOIN images i USING (image_id)
         JOIN servers s USING (server_id) JOIN zones z ON z.zone_id = s.zone_id
        WHERE k.kasm_id = md5('kasm-session-7')::uuid`,
    );
    const reply = await bob(`/db lookup kasm session ${String(session?.kasm_id).toUpperCase()}`);
    expect(reply.result?.rows).toEqual(iso([session ?? {}]));
    expect(reply.text).toMatch(/container ip:\s+172\.18\./);
    const bad = await bob("/db lookup kasm session 1' OR '1'='1");
    expect(bad).toMatchObject({ status: 'invalid', code: 'invalid_argument' });
    expect(bad.message).toContain('expected a UUID');
  });

  it('lookup server: the agent or the manager registered under a host name', async () => {
    const agent = await bob('/db lookup kasm server KASM-AGENT-EU-02');
    const [expected] = await truth(
      `SELECT 'agent' AS role, s.server_id::text AS id, s.hostname, z.zone_name AS zone, s.enabled,
              s.operational_status, s.agent_version AS version, s.cores, s.memory::float8 AS memory,
              (SELECT count(*)::int FROM kasms k WHERE k.server_id = s.server_id
                  AND k.operational_status = 'running') AS running_sessions,
              (SELECT count(*)::int FROM kasms k WHERE k.server_id = s.server_id
                  AND k.operational_status IN ('paused', 'starting', 'deleting')) AS other_sessions,
              s.last_reported
         FROM servers s JOIN zones z USING (zone_id) WHERE s.hostname = 'kasm-agent-eu-02'`,
    );
    expect(agent.result?.rows).toEqual(iso([expected ?? {}]));
    const manager = await bob('/db lookup kasm server ip-10-20-4-17');
    expect(manager.result?.rows).toMatchObject([
      { role: 'manager', id: '7a3e91c4-52d0-4f6b-8e21-9b0c4d5e6f03', zone: 'us-east', version: '1.15.0' },
    ]);
    const bad = await bob('/db lookup kasm server "kasm web"');
    expect(bad.message).toContain('expected a host name');
  });
});

describe('kasm pack: clean-expired-tokens', () => {
  it('previews the count and the expiration range, deletes only expired tokens in batches after approval', async () => {
    const [before] = await truth<{
      expired: number;
      users: number;
      oldest: Date;
      newest: Date;
      live: number;
    }>(
      `SELECT count(*) FILTER (WHERE expiration < now())::int AS expired,
              count(DISTINCT user_id) FILTER (WHERE expiration < now())::int AS users,
              min(expiration) FILTER (WHERE expiration < now()) AS oldest,
              max(expiration) FILTER (WHERE expiration < now()) AS newest,
              count(*) FILTER (WHERE expiration >= now())::int AS live
         FROM session_tokens`,
    );
    const liveBefore = await truth(
      'SELECT session_token::text, user_id::text, expiration FROM session_tokens WHERE expiration >= now() ORDER BY 1',
    );
    const expired = before?.expired ?? 0;
    expect(expired).toBeGreaterThan(50_000);
    const request = await alice('/db clean-expired-tokens kasm');
    expect(request.status).toBe('pending');
    expect(request.result?.display).toBe('card');
    expect(request.result?.rows).toEqual([
      {
        expired_tokens: expired,
        users: before?.users,
        oldest_expiration: before?.oldest.toISOString(),
        newest_expiration: before?.newest.toISOString(),
        batches: Math.ceil(expired / BATCH),
        live_tokens_kept: before?.live,
      },
    ]);
    expect(request.text).toMatch(/expired tokens to delete:\s+\d{2},\d{3}/);
    // Nothing happens before a second person approves.
    const [waiting] = await truth<{ n: number }>('SELECT count(*)::int AS n FROM session_tokens');
    expect(waiting?.n).toBe(expired + (before?.live ?? 0));

    const done = await bob(`/db approve ${request.requestId}`);
    expect(done.status).toBe('ok');
    expect(done.result?.rows).toEqual([
      { step: 'expired session_tokens', rows: expired, batches: Math.ceil(expired / BATCH) },
    ]);
    expect(done.result?.notes ?? []).toEqual([]);
    const after = await truth(
      'SELECT session_token::text, user_id::text, expiration FROM session_tokens ORDER BY 1',
    );
    expect(after).toEqual(liveBefore);

    const again = await alice('/db clean-expired-tokens kasm');
    expect(again.status).toBe('ok');
    expect(again.message).toContain('nothing to do');
  });
});

describe('kasm pack: fix-manager-hostname', () => {
  const managers = () =>
    truth<{ manager_id: string; manager_hostname: string }>(
      `SELECT manager_id::text, manager_hostname, zone_id::text, manager_version, last_reported, xmin::text AS xmin
         FROM managers ORDER BY 1`,
    );

  it('refuses a value that is not a host name', async () => {
    const bad = await alice('/db fix-manager-hostname kasm "kasm-01; rm -rf /"');
    expect(bad).toMatchObject({ status: 'invalid', code: 'invalid_argument' });
    expect(bad.message).toContain('expected a host name');
  });

  it('--from renames only that manager, after approval, with the restart in the warning', async () => {
    const before = await managers();
    const request = await alice('/db fix-manager-hostname kasm kasm-web-us-01 --from ip-10-20-4-17');
    expect(request.status).toBe('pending');
    expect(request.result?.rows).toEqual([
      {
        manager_id: '7a3e91c4-52d0-4f6b-8e21-9b0c4d5e6f03',
        zone: 'us-east',
        current_hostname: 'ip-10-20-4-17',
        new_hostname: 'kasm-web-us-01',
      },
    ]);
    expect(request.text).toContain('WARNING: every manager listed gets this hostname');
    expect(request.text).toContain('/opt/kasm/current/bin/start');
    const done = await bob(`/db approve ${request.requestId}`);
    expect(done.result?.rows).toEqual([{ step: 'managers', rows: 1 }]);
    const after = await managers();
    expect(after.find((m) => m.manager_id.endsWith('03'))?.manager_hostname).toBe('kasm-web-us-01');
    expect(after.filter((m) => !m.manager_id.endsWith('03'))).toEqual(
      before.filter((m) => !m.manager_id.endsWith('03')),
    );
  });

  it('without --from changes every manager whose name differs, and only those', async () => {
    const before = await managers();
    const request = await alice('/db fix-manager-hostname kasm kasm-web-01');
    const differ = before.filter((m) => m.manager_hostname !== 'kasm-web-01');
    expect(differ).toHaveLength(2);
    expect(request.result?.rows?.map((r) => [r.manager_id, r.current_hostname, r.new_hostname])).toEqual(
      differ.map((m) => [m.manager_id, m.manager_hostname, 'kasm-web-01']),
    );
    const done = await bob(`/db approve ${request.requestId}`);
    expect(done.result?.rows).toEqual([{ step: 'managers', rows: 2 }]);
    const after = await managers();
    expect(after.map((m) => m.manager_hostname)).toEqual(['kasm-web-01', 'kasm-web-01', 'kasm-web-01']);
    // The manager that already had the name was not written at all (same row version).
    const untouched = before.find((m) => m.manager_hostname === 'kasm-web-01');
    expect(after.find((m) => m.manager_id === untouched?.manager_id)).toEqual(untouched);
    const again = await alice('/db fix-manager-hostname kasm kasm-web-01');
    expect(again.message).toContain('nothing to do');
  });
});

describe('kasm pack: logout-all', () => {
  it('previews who is logged out with the extra warning, re-counts inside the deleting transaction', async () => {
    const [before] = await truth<{ tokens: number; live: number; users_live: number; users: number }>(
      `SELECT count(*)::int AS tokens, count(*) FILTER (WHERE expiration >= now())::int AS live,
              count(DISTINCT user_id) FILTER (WHERE expiration >= now())::int AS users_live,
              count(DISTINCT user_id)::int AS users
         FROM session_tokens`,
    );
    const others = () =>
      truth(`SELECT (SELECT count(*)::int FROM users) AS users, (SELECT count(*)::int FROM kasms) AS kasms,
                    (SELECT md5(string_agg(user_id::text || locked || disabled, ',' ORDER BY user_id)) FROM users) AS u`);
    const othersBefore = await others();
    expect(before?.tokens).toBeGreaterThan(1000);
    const request = await alice('/db logout-all kasm');
    expect(request.status).toBe('pending');
    expect(request.result?.rows).toEqual([
      {
        tokens: before?.tokens,
        live_tokens: before?.live,
        users_logged_out: before?.users_live,
        users_with_tokens: before?.users,
      },
    ]);
    expect(request.text.replace(/\s+/g, ' ')).toContain('EVERY user is logged out');
    expect(request.text.replace(/\s+/g, ' ')).toContain('WARNING: this logs out EVERY Kasm user at once');
    // Someone logs in between the preview and the approval: the logout takes their token too, and says so.
    await truth(
      `INSERT INTO session_tokens (session_token, user_id, session_token_date, expiration)
       VALUES (gen_random_uuid(), md5('kasm-user-admin')::uuid, now(), now() + interval '24 hours')`,
    );
    const done = await bob(`/db approve ${request.requestId}`);
    expect(done.status).toBe('ok');
    expect(done.result?.rows).toEqual([{ step: 'session_tokens', rows: (before?.tokens ?? 0) + 1 }]);
    expect(done.result?.notes?.[0]).toContain('The data changed since the preview');
    const [left] = await truth<{ n: number }>('SELECT count(*)::int AS n FROM session_tokens');
    expect(left?.n).toBe(0);
    expect(await others()).toEqual(othersBefore);
    const again = await alice('/db logout-all kasm');
    expect(again.message).toContain('nothing to do');
  });
});
