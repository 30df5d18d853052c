// Discord roles that every replica sees: two dbops on one state database (and a restarted one), each with
// its own Discord gateway (real discord.js against the fake), judge a vote on the newest roles any of
// them observed; DMs reach members known to hold an approver role; a state write that fails is a refusal.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { createLogger, silentLogger } from '../src/core/log.js';
import { startDiscordSurface } from '../src/surfaces/discord/index.js';
import { readDiscordSettings } from '../src/surfaces/discord/settings.js';
import type { RunningSurface } from '../src/surfaces/types.js';
import { FakeDiscord, type FakeUser, fakeUser } from './fakes/discord.js';
import { adminQuery, createDatabase } from './helpers/db.js';
import { cuttableProxy } from './helpers/state-proxy.js';

const ALICE = fakeUser('200000000000000001', 'alice');
const DAN = fakeUser('200000000000000004', 'dan');
const ERIN = fakeUser('200000000000000005', 'erin');
const MALLORY = fakeUser('200000000000000009', 'mallory');
const ROLE_DBA = '300000000000000777';

const YAML = `
state:
  url: \${STATE_URL}
limits: { statement_timeout: 5s, lock_timeout: 2s, connect_timeout: 2s }
targets:
  staging:
    url: \${STAGING_URL}
    environment: staging
  prod:
    url: \${STAGING_URL}
    environment: production
people:
  alice: { cli: alice, discord: "${ALICE.id}", roles: [oncall] }
  dan: { cli: dan, discord: "${DAN.id}", roles: [dba] }
role_sources:
  roles:
    dba: { discord_roles: ["${ROLE_DBA}"] }
policy:
  staging: { read: [oncall, dba], request: [oncall, dba], approve: [dba], notify: dm }
  production: { read: [oncall, dba], request: [oncall, dba], approve: [dba], approvals: 2 }
`;

interface Replica {
  app: App;
  surface: RunningSurface;
  gateway: FakeDiscord;
}

let stateDb: { name: string; url: string };
let stagingUrl: string;
const running: Replica[] = [];

/** A dbops replica on the shared state database, with its own config object and Discord connection. */
async function replica(gateway: FakeDiscord, stateUrl = stateDb.url, log = silentLogger()): Promise<Replica> {
  const config = loadConfigText(YAML, 'replicas.yaml', { STATE_URL: stateUrl, STAGING_URL: stagingUrl });
  const app = await createApp({ config, log });
  const settings = readDiscordSettings(gateway.env());
  if (!settings) throw new Error('no Discord settings');
  const surface = await startDiscordSurface({ app, config, env: gateway.env(), log }, settings);
  const started = { app, surface, gateway };
  running.push(started);
  return started;
}

async function stop(r: Replica): Promise<void> {
  running.splice(running.indexOf(r), 1);
  await r.surface.stop();
  await r.app.close();
}

/** The text of the answer to an interaction (its deferred reply edited, or its immediate response). */
async function answerOf(gateway: FakeDiscord, i: { id: string; token: string }): Promise<string> {
  const answered = () =>
    gateway.callsOf(i).some((c) => {
      const body = c.body as { content?: unknown; embeds?: unknown; data?: { content?: unknown } };
      return Boolean(body?.content ?? body?.embeds ?? body?.data?.content);
    });
  await expect.poll(answered, { timeout: 10_000 }).toBe(true);
  return JSON.stringify(gateway.callsOf(i).map((c) => c.body));
}

/** alice asks for a vacuum on `target` through `gateway`; the request's number. */
async function request(r: Replica, target: 'prod' | 'staging'): Promise<number> {
  const from = r.gateway.calls.length;
  r.gateway.command(ALICE, { operation: 'vacuum', target, args: 'exams --full' });
  const card = await r.gateway.waitForCall(
    (c) => r.gateway.calls.indexOf(c) >= from && JSON.stringify(c.body ?? {}).includes('dbops:approve:'),
  );
  return Number(/dbops:approve:(\d+)/.exec(JSON.stringify(card.body))?.[1]);
}

/** `/db approve <id>` typed in the guild by `user`, with the roles its payload carries. */
async function approve(r: Replica, user: FakeUser, id: number): Promise<string> {
  return await answerOf(r.gateway, r.gateway.command(user, { operation: 'approve', target: String(id) }));
}

async function statusOf(r: Replica, id: number): Promise<string | undefined> {
  return (await r.app.state.getRequest(id))?.status;
}

async function storedRoles(user: FakeUser): Promise<{ role_ids: string[]; seen_at: Date } | undefined> {
  const rows = await adminQuery<{ role_ids: string[]; seen_at: Date }>(
    `SELECT role_ids, seen_at FROM dbops_member_roles WHERE platform = 'discord' AND user_id = $1`,
    [user.id],
    stateDb.name,
  );
  return rows[0];
}

let gwA: FakeDiscord;
let gwB: FakeDiscord;
let a: Replica;
let b: Replica;

beforeAll(async () => {
  const [state, staging] = await Promise.all([
    createDatabase('droles_state'),
    createDatabase('droles_staging', 'CREATE TABLE exams (id int); INSERT INTO exams VALUES (1);'),
  ]);
  stateDb = state;
  stagingUrl = staging.url;
  [gwA, gwB] = await Promise.all([
    FakeDiscord.start({ guildRoles: [ROLE_DBA] }),
    FakeDiscord.start({ guildRoles: [ROLE_DBA] }),
  ]);
  a = await replica(gwA);
  b = await replica(gwB);
});

afterAll(async () => {
  for (const r of [...running]) await stop(r).catch(() => {});
  await gwA?.stop();
  await gwB?.stop();
});

describe('Discord roles on every replica', () => {
  it('a vote cast on replica A counts when replica B decides', async () => {
    gwA.memberRoles.set(ERIN.id, [ROLE_DBA]);
    const id = await request(a, 'prod');
    expect(await approve(a, ERIN, id)).toContain(`Approval 1 of 2 recorded for #${id}`);
    // B never saw erin: her roles come from the state database, so her vote counts with dan's.
    await approve(b, DAN, id);
    await expect.poll(() => statusOf(b, id), { timeout: 10_000 }).toBe('succeeded');
    expect((await storedRoles(ERIN))?.role_ids).toContain(ROLE_DBA);
  });

  it('the vote still counts after the replica that saw it restarts', async () => {
    gwA.memberRoles.set(ERIN.id, [ROLE_DBA]);
    const id = await request(a, 'prod');
    expect(await approve(a, ERIN, id)).toContain(`Approval 1 of 2 recorded for #${id}`);
    await stop(a);
    a = await replica(gwA);
    // dan approves from a DM-less place where his own roles are listed; erin's come from the database.
    await approve(a, DAN, id);
    await expect.poll(() => statusOf(a, id), { timeout: 10_000 }).toBe('succeeded');
  });

  it('a later payload without the role, on another replica, revokes the earlier vote', async () => {
    gwA.memberRoles.set(ERIN.id, [ROLE_DBA]);
    const id = await request(a, 'prod');
    expect(await approve(a, ERIN, id)).toContain(`Approval 1 of 2 recorded for #${id}`);
    // On B, erin's guild payload no longer carries the role.
    gwB.memberRoles.set(ERIN.id, []);
    await answerOf(gwB, gwB.command(ERIN, { operation: 'pending' }));
    expect((await storedRoles(ERIN))?.role_ids).not.toContain(ROLE_DBA);
    // A decides: erin's vote no longer counts, so dan's is the only one.
    const answer = await approve(a, DAN, id);
    expect(answer).toContain(`Approval 1 of 2 recorded for #${id}`);
    expect(answer).toContain(`discord:${ERIN.id} belongs to nobody`);
    expect(await statusOf(a, id)).toBe('pending');
  });

  it('a DM command on a replica that never saw the member is judged on the roles another one stored', async () => {
    gwA.memberRoles.set(ERIN.id, [ROLE_DBA]);
    const id = await request(a, 'prod');
    await answerOf(gwA, gwA.command(ERIN, { operation: 'pending' }));
    await stop(b);
    b = await replica(gwB);
    const dm = await openDm(gwB, ERIN);
    const answer = await answerOf(gwB, gwB.command(ERIN, { operation: 'approve', target: String(id) }, dm));
    expect(answer).toContain(`Approval 1 of 2 recorded for #${id}`);
  });

  it('roles last seen longer ago than keep_last_known grant nothing, and the refusal says so', async () => {
    let shift = 0;
    const config = loadConfigText(YAML, 'replicas.yaml', { STATE_URL: stateDb.url, STAGING_URL: stagingUrl });
    const d = await createApp({ config, log: silentLogger(), clock: () => new Date(Date.now() + shift) });
    try {
      const erin = (memberRoles?: string[]) =>
        d.core.dispatch({
          surface: 'discord',
          identity: ERIN.id,
          text: '/db sizes staging',
          ...(memberRoles ? { memberRoles } : {}),
        });
      expect((await erin([ROLE_DBA])).status).toBe('ok');
      expect((await erin()).status).toBe('ok');
      shift = 2 * 60 * 60 * 1000;
      const stale = await erin();
      expect(stale.status).toBe('refused');
      expect(stale.message).toContain('your Discord roles were last seen at');
      expect(stale.message).toContain('use /db in the server once');
    } finally {
      await d.close();
    }
  });

  it('an older observation (a replica whose clock is behind) never overwrites a newer one', async () => {
    const user = '200000000000000077';
    const at = (ms: number) => new Date(Date.now() + ms);
    const newer = at(0);
    await a.app.state.saveMemberRoles('discord', { userId: user, roleIds: [ROLE_DBA], seenAt: newer });
    await b.app.state.saveMemberRoles('discord', { userId: user, roleIds: [], seenAt: at(-1000) });
    expect(await a.app.state.loadMemberRoles('discord', [user])).toEqual([
      { userId: user, roleIds: [ROLE_DBA], seenAt: newer },
    ]);
    await b.app.state.saveMemberRoles('discord', { userId: user, roleIds: [], seenAt: at(1000) });
    expect((await a.app.state.loadMemberRoles('discord', [user]))[0]?.roleIds).toEqual([]);
  });

  it('a payload whose member carries no roles is stored as no roles; a DM stores nothing', async () => {
    gwB.memberRoles.set(ERIN.id, [ROLE_DBA]);
    await answerOf(gwB, gwB.command(ERIN, { operation: 'pending' }));
    expect((await storedRoles(ERIN))?.role_ids).toContain(ROLE_DBA);
    gwB.memberRoles.set(ERIN.id, null);
    const refused = await answerOf(gwB, gwB.command(ERIN, { operation: 'sizes', target: 'staging' }));
    expect(refused).toContain('not in dbops');
    const none = await storedRoles(ERIN);
    expect(none?.role_ids).toEqual([]);
    // A command in a DM carries no member: nothing is observed, the stored roles stand.
    const dm = await openDm(gwB, ERIN);
    await answerOf(gwB, gwB.command(ERIN, { operation: 'pending' }, dm));
    expect((await storedRoles(ERIN))?.seen_at).toEqual(none?.seen_at);
  });
});

/** The DM channel the fake has with `user` (opened as the bot would). */
async function openDm(gateway: FakeDiscord, user: FakeUser) {
  const res = await fetch(`${gateway.apiUrl}/v10/users/@me/channels`, {
    method: 'POST',
    headers: { authorization: `Bot ${gateway.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ recipient_id: user.id }),
  });
  const { id } = (await res.json()) as { id: string };
  const channel = gateway.channels.get(id);
  if (!channel) throw new Error('no DM channel');
  return channel;
}

describe('DMs to members known to hold an approver role', () => {
  it('tells a member another replica saw holding the role, never the requester; approving from the DM works', async () => {
    // B last saw erin without the role; A sees her with it later. alice (the requester) holds it too.
    gwB.memberRoles.set(ERIN.id, []);
    await answerOf(gwB, gwB.command(ERIN, { operation: 'pending' }));
    gwA.memberRoles.set(ERIN.id, [ROLE_DBA]);
    await answerOf(gwA, gwA.command(ERIN, { operation: 'pending' }));
    gwB.memberRoles.set(ALICE.id, [ROLE_DBA]);
    const from = gwB.calls.length;
    const id = await request(b, 'staging');
    const dmOf = async (user: FakeUser) => {
      await gwB.waitForCall(
        (c) =>
          gwB.calls.indexOf(c) >= from && c.path === '/users/@me/channels' && c.body.recipient_id === user.id,
      );
      const channel = [...gwB.channels.values()].find(
        (c) => c.type === 1 && c.recipients?.[0]?.id === user.id,
      );
      let card: ReturnType<typeof gwB.messages.get>;
      await expect
        .poll(
          () => {
            card = [...gwB.messages.values()].find(
              (m) => m.channel_id === channel?.id && JSON.stringify(m).includes(`dbops:approve:${id}`),
            );
            return card !== undefined;
          },
          { timeout: 10_000 },
        )
        .toBe(true);
      if (!card) throw new Error('no DM card');
      return card;
    };
    const erinsCard = await dmOf(ERIN);
    await dmOf(DAN);
    const told = gwB.calls.slice(from).filter((c) => c.path === '/users/@me/channels');
    expect(told.map((c) => c.body.recipient_id).sort()).toEqual([DAN.id, ERIN.id]);

    // Forged: someone unknown, the requester, and a button naming another request, all on erin's DM card.
    for (const user of [MALLORY, ALICE]) {
      const click = gwB.click(user, erinsCard.id, `dbops:approve:${id}`);
      expect(await answerOf(gwB, click)).toMatch(/not in dbops|you requested|different person/);
    }
    const other = gwB.click(ERIN, erinsCard.id, `dbops:approve:${id + 1000}`);
    expect(await answerOf(gwB, other)).toContain(`there is no approval request #${id + 1000}`);
    expect(await statusOf(b, id)).toBe('pending');

    gwB.click(ERIN, erinsCard.id, `dbops:approve:${id}`);
    await expect.poll(() => statusOf(b, id), { timeout: 10_000 }).toBe('succeeded');
    const approved = (await b.app.state.getRequest(id))?.votes.map((v) => v.identity);
    expect(approved).toEqual([`discord:${ERIN.id}`]);
  });
});

describe('the state database cannot take the roles', () => {
  it('refuses the command clearly and audits it; others are still answered', async () => {
    await adminQuery(
      `CREATE FUNCTION dbops_test_sick() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$;
       CREATE TRIGGER sick BEFORE INSERT OR UPDATE ON dbops_member_roles
         FOR EACH ROW EXECUTE FUNCTION dbops_test_sick();`,
      [],
      stateDb.name,
    );
    try {
      gwA.memberRoles.set(ERIN.id, [ROLE_DBA]);
      const answer = await answerOf(gwA, gwA.command(ERIN, { operation: 'sizes', target: 'staging' }));
      expect(answer).toContain('your Discord roles could not be kept in the state database');
      expect(answer).not.toContain('exams');
      const audited = await adminQuery<{ outcome: string; error: string }>(
        `SELECT outcome, error FROM dbops_audit WHERE identity = $1 ORDER BY id DESC LIMIT 1`,
        [`discord:${ERIN.id}`],
        stateDb.name,
      );
      expect(audited[0]?.outcome).toBe('state_unavailable');
      // Someone acting elsewhere is answered as ever.
      const cli = await a.app.core.dispatch({ surface: 'cli', identity: 'dan', text: '/db sizes staging' });
      expect(cli.status).toBe('ok');
    } finally {
      await adminQuery('DROP TRIGGER sick ON dbops_member_roles', [], stateDb.name);
    }
    const again = await answerOf(gwA, gwA.command(ERIN, { operation: 'sizes', target: 'staging' }));
    expect(again).toContain('exams');
  });
});

describe('the state database is down when a payload is observed', () => {
  it('answers with a clear failure and logs the audit record it could not write; works again once it is back', async () => {
    const proxy = await cuttableProxy(stateDb.url);
    const gwC = await FakeDiscord.start({ guildRoles: [ROLE_DBA] });
    const lines: string[] = [];
    const log = createLogger({ level: 'info', destination: { write: (line: string) => lines.push(line) } });
    const c = await replica(gwC, proxy.url, log);
    try {
      proxy.drop();
      gwC.memberRoles.set(ERIN.id, [ROLE_DBA]);
      const answer = await answerOf(gwC, gwC.command(ERIN, { operation: 'sizes', target: 'staging' }));
      expect(answer).toContain('your Discord roles could not be kept in the state database');
      expect(answer).not.toContain('internal error');
      // The refusal was audited: its record could not be written, so the log says so.
      expect(lines.some((l) => l.includes('could not store or load the Discord roles of the user'))).toBe(
        true,
      );
      expect(lines.some((l) => l.includes('audit write failed for an error'))).toBe(true);
      // The bot keeps answering: another command right after is answered too.
      const next = await answerOf(gwC, gwC.command(DAN, { operation: 'pending' }));
      expect(next).toContain('could not be kept');

      proxy.restore();
      await expect
        .poll(async () => answerOf(gwC, gwC.command(ERIN, { operation: 'sizes', target: 'staging' })), {
          timeout: 20_000,
          interval: 500,
        })
        .toContain('exams');
      expect((await storedRoles(ERIN))?.role_ids).toContain(ROLE_DBA);
    } finally {
      proxy.restore();
      await stop(c);
      await gwC.stop();
      await proxy.close();
    }
  });
});
