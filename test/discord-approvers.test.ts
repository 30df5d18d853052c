// Roles and approvers in Discord, through the Discord surface and the fake Discord: roles from the
// payload's member (missing roles mean none), approver roles mentioned with allowed_mentions limited to
// them, the card sent as a DM and approved from there, where the roles last seen in the guild apply.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { silentLogger } from '../src/core/log.js';
import { startDiscordSurface } from '../src/surfaces/discord/index.js';
import { readDiscordSettings } from '../src/surfaces/discord/settings.js';
import type { RunningSurface } from '../src/surfaces/types.js';
import { type Call, FakeDiscord, fakeUser } from './fakes/discord.js';
import { createDatabase } from './helpers/db.js';

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
  crit:
    url: \${STAGING_URL}
    environment: critical
people:
  alice: { discord: "${ALICE.id}", roles: [oncall] }
  dan: { discord: "${DAN.id}", roles: [dba] }
role_sources:
  roles:
    dba: { discord_roles: ["${ROLE_DBA}"] }
policy:
  staging: { read: [oncall, dba], request: [oncall, dba], approve: [dba], notify: mention }
  production: { read: [oncall, dba], request: [oncall, dba], approve: [dba], notify: dm }
  critical: { read: [oncall, dba], request: [oncall, dba], approve: [dba], approvals: 2, notify: mention }
`;

let gateway: FakeDiscord;
let app: App;
let surface: RunningSurface;

beforeAll(async () => {
  const [state, staging] = await Promise.all([
    createDatabase('dappr_state'),
    createDatabase('dappr_staging', 'CREATE TABLE exams (id int); INSERT INTO exams VALUES (1);'),
  ]);
  const config = loadConfigText(YAML, 'discord-approvers.yaml', {
    STATE_URL: state.url,
    STAGING_URL: staging.url,
  });
  app = await createApp({ config, log: silentLogger() });
  gateway = await FakeDiscord.start({ guildRoles: [ROLE_DBA] });
  const settings = readDiscordSettings(gateway.env());
  if (!settings) throw new Error('no Discord settings');
  surface = await startDiscordSurface({ app, config, env: gateway.env(), log: silentLogger() }, settings);
});

afterAll(async () => {
  await surface?.stop();
  await app?.close();
  await gateway?.stop();
});

/** The text of the answer to an interaction (its deferred reply edited, or its immediate response). */
async function answerOf(i: { id: string; token: string }): Promise<string> {
  const answered = () =>
    gateway.callsOf(i).some((c) => {
      const body = c.body as {
        content?: unknown;
        embeds?: unknown;
        data?: { content?: unknown; embeds?: unknown };
      };
      return Boolean(body?.content ?? body?.embeds ?? body?.data?.content ?? body?.data?.embeds);
    });
  await expect.poll(answered, { timeout: 10_000 }).toBe(true);
  return JSON.stringify(gateway.callsOf(i).map((c) => c.body));
}

/** Where the card is, once the surface stored it with the request (right after posting it). */
async function cardRefs(id: number): Promise<{ channel: string; message: string }> {
  await expect
    .poll(async () => (await app.state.getRequest(id))?.refs.discord, { timeout: 10_000 })
    .toBeTruthy();
  return (await app.state.getRequest(id))?.refs.discord as { channel: string; message: string };
}

async function pendingCard(from: number): Promise<{ id: number; message: Call }> {
  const card = await gateway.waitForCall(
    (c) => gateway.calls.indexOf(c) >= from && JSON.stringify(c.body ?? {}).includes('dbops:approve:'),
  );
  const match = /dbops:approve:(\d+)/.exec(JSON.stringify(card.body));
  return { id: Number(match?.[1]), message: card };
}

describe('Discord roles from the member in the payload', () => {
  it('grants a mapped role; a member without roles in the payload has none', async () => {
    gateway.memberRoles.set(ERIN.id, [ROLE_DBA]);
    const ok = gateway.command(ERIN, { operation: 'sizes', target: 'staging' });
    expect(await answerOf(ok)).toContain('exams');

    gateway.memberRoles.set(ERIN.id, null);
    const none = gateway.command(ERIN, { operation: 'sizes', target: 'staging' });
    const refused = await answerOf(none);
    expect(refused).toContain('not in dbops');
    // Typing a role id is no role.
    const typed = gateway.command(ERIN, {
      operation: 'sizes',
      target: 'staging',
      args: `--role ${ROLE_DBA}`,
    });
    expect(await answerOf(typed)).not.toContain('exams');
  });
});

describe('Discord approvers told', () => {
  it('mentions the approver role with allowed_mentions limited to it; a member with the role approves', async () => {
    const from = gateway.calls.length;
    gateway.command(ALICE, { operation: 'vacuum', target: 'staging', args: 'exams --full' });
    const mention = await gateway.waitForCall(
      (c) => gateway.calls.indexOf(c) >= from && String(c.body?.content ?? '').includes(`<@&${ROLE_DBA}>`),
    );
    expect(mention.body.allowed_mentions).toEqual({ parse: [], roles: [ROLE_DBA] });
    expect(String(mention.body.content)).toContain('needs 1 of: dba — not alice');
    // The mention is on the card itself (the message with the buttons), not a message of its own; the
    // card is a new message of the bot's, since the edit of a deferred response would ping nobody.
    expect(JSON.stringify(mention.body)).toContain('dbops:approve:');
    expect(`${mention.method} ${mention.path}`).toMatch(/^POST \/channels\/\d+\/messages$/);
    // Nothing else dbops sent may ping.
    for (const call of gateway.messageCalls().slice(0)) {
      if (call === mention) continue;
      if (call.body?.allowed_mentions) expect(call.body.allowed_mentions).toEqual({ parse: [] });
    }

    const { id } = await pendingCard(from);
    const stored = await cardRefs(id);
    gateway.memberRoles.set(ERIN.id, [ROLE_DBA]);
    gateway.click(ERIN, stored.message, `dbops:approve:${id}`);
    await expect
      .poll(async () => (await app.state.getRequest(id))?.status, { timeout: 10_000 })
      .toBe('succeeded');
  });

  it('edits the card after a vote without pinging again (parse [], no roles); a decided card drops the mention', async () => {
    const from = gateway.calls.length;
    gateway.command(ALICE, { operation: 'vacuum', target: 'crit', args: 'exams --full' });
    const { id, message } = await pendingCard(from);
    expect(String(message.body.content)).toContain(`<@&${ROLE_DBA}> needs 2 of: dba — not alice`);
    expect(message.body.allowed_mentions).toEqual({ parse: [], roles: [ROLE_DBA] });
    const stored = await cardRefs(id);
    const edits = (after: number) =>
      gateway.calls
        .slice(after)
        .filter(
          (c) => c.method === 'PATCH' && c.path === `/channels/${stored.channel}/messages/${stored.message}`,
        );

    let mark = gateway.calls.length;
    gateway.memberRoles.set(ERIN.id, [ROLE_DBA]);
    gateway.click(ERIN, stored.message, `dbops:approve:${id}`);
    const voted = await gateway.waitForCall(
      (c) => edits(mark).includes(c) && String(c.body?.content ?? '').includes('needs 1 of'),
    );
    expect(String(voted.body.content)).toContain('needs 1 of: dba — not alice');
    expect(voted.body.allowed_mentions).toEqual({ parse: [] });

    mark = gateway.calls.length;
    gateway.click(DAN, stored.message, `dbops:approve:${id}`);
    await expect
      .poll(async () => (await app.state.getRequest(id))?.status, { timeout: 10_000 })
      .toBe('succeeded');
    const decided = await gateway.waitForCall(
      (c) => edits(mark).includes(c) && String(c.body?.content ?? '').includes('succeeded'),
    );
    expect(String(decided.body.content)).not.toContain('<@&');
    for (const call of [...edits(from)]) expect(call.body.allowed_mentions).toEqual({ parse: [] });
    // No message after the card's own pinged a role.
    for (const call of gateway
      .messageCalls()
      .filter((c) => gateway.calls.indexOf(c) > gateway.calls.indexOf(message))) {
      expect(call.body?.allowed_mentions?.roles ?? []).toEqual([]);
    }
  });

  it('sends the card as a DM to each eligible approver; approving from the DM works on the roles last seen in the guild', async () => {
    // erin's latest guild payload carries no roles: she holds none now, so she is not told.
    gateway.memberRoles.set(ERIN.id, []);
    await answerOf(gateway.command(ERIN, { operation: 'pending' }));
    const from = gateway.calls.length;
    gateway.command(ALICE, { operation: 'vacuum', target: 'prod', args: 'exams --full' });
    const opened = await gateway.waitForCall(
      (c) => gateway.calls.indexOf(c) >= from && c.path === '/users/@me/channels',
    );
    expect(opened.body.recipient_id).toBe(DAN.id);
    const dm = await gateway.waitForCall(
      (c) =>
        gateway.calls.indexOf(c) > gateway.calls.indexOf(opened) &&
        c.method === 'POST' &&
        /^\/channels\/\d+\/messages$/.test(c.path) &&
        JSON.stringify(c.body).includes('dbops:approve:'),
    );
    expect(dm.body.allowed_mentions).toEqual({ parse: [] });
    expect(String(dm.body.content)).toContain('needs 1 of: dba — not alice');
    const id = Number(/dbops:approve:(\d+)/.exec(JSON.stringify(dm.body))?.[1]);
    // Only dan was told: erin holds no role now, alice requested it.
    expect(gateway.calls.slice(from).filter((c) => c.path === '/users/@me/channels')).toHaveLength(1);
    const dmMessage = [...gateway.messages.values()].find(
      (m) => m.channel_id === dm.path.split('/')[2] && JSON.stringify(m).includes(`dbops:approve:${id}`),
    );
    if (!dmMessage) throw new Error('the DM card was not stored by the fake');

    // Someone not in the config, the requester, and erin from a DM (a DM carries no member: her roles
    // are the ones last seen in the guild, none): refused, nothing approved.
    for (const user of [MALLORY, ALICE, ERIN]) {
      const click = gateway.click(user, dmMessage.id, `dbops:approve:${id}`);
      expect(await answerOf(click)).toMatch(/not in dbops|may not approve|Refused|requested/);
    }
    expect((await app.state.getRequest(id))?.status).toBe('pending');

    // erin acts in the guild holding the role: from her DM she now approves like anyone holding it.
    gateway.memberRoles.set(ERIN.id, [ROLE_DBA]);
    await answerOf(gateway.command(ERIN, { operation: 'pending' }));
    gateway.click(ERIN, dmMessage.id, `dbops:approve:${id}`);
    await expect
      .poll(async () => (await app.state.getRequest(id))?.status, { timeout: 10_000 })
      .toBe('succeeded');
  });
});
