// role_sources.discord_member_listing: the guild's members read over REST (paginated, bot token) through
// the fake Discord, so a role holder who never acted is DMed and approves from the DM; a later listing
// revokes; a refused listing is named in /readyz detail and check-config, and past keep_last_known denies.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { silentLogger } from '../src/core/log.js';
import { startDiscordSurface } from '../src/surfaces/discord/index.js';
import { readDiscordSettings } from '../src/surfaces/discord/settings.js';
import type { RunningSurface } from '../src/surfaces/types.js';
import { FakeDiscord, type FakeMessage, type FakeUser, fakeUser } from './fakes/discord.js';
import { createDatabase } from './helpers/db.js';

const CLI = resolve('dist/src/cli.js');
const ALICE = fakeUser('200000000000000001', 'alice');
const DAN = fakeUser('200000000000000004', 'dan');
const FRANK = fakeUser('200000000000000006', 'frank');
const ROLE_DBA = '300000000000000777';

const yaml = (listing: boolean) => `
state:
  url: \${STATE_URL}
limits: { statement_timeout: 5s, lock_timeout: 2s, connect_timeout: 2s }
targets:
  staging:
    url: \${STAGING_URL}
    environment: staging
people:
  alice: { discord: "${ALICE.id}", roles: [oncall] }
  dan: { discord: "${DAN.id}", roles: [dba] }
role_sources:
  keep_last_known: 1h
  discord_member_listing: ${listing}
  roles:
    dba: { discord_roles: ["${ROLE_DBA}"] }
policy:
  staging: { read: [oncall, dba], request: [oncall, dba], approve: [dba], notify: dm, expiry: 1d }
`;

let gateway: FakeDiscord;
let app: App;
let surface: RunningSurface;
let env: Record<string, string>;
let shiftMs = 0;
const clock = () => new Date(Date.now() + shiftMs);

beforeAll(async () => {
  const [state, staging] = await Promise.all([
    createDatabase('dlist_state'),
    createDatabase('dlist_staging', 'CREATE TABLE exams (id int); INSERT INTO exams VALUES (1);'),
  ]);
  env = { PATH: process.env.PATH ?? '', STATE_URL: state.url, STAGING_URL: staging.url };
  gateway = await FakeDiscord.start({ guildRoles: [ROLE_DBA] });
  // More members than one page holds: frank and alice are on the second page.
  for (let i = 0; i < 1200; i += 1) gateway.guildMembers.set(String(100000000000000000n + BigInt(i)), []);
  gateway.guildMembers.set(ALICE.id, [ROLE_DBA]);
  gateway.guildMembers.set(FRANK.id, [ROLE_DBA]);
  const config = loadConfigText(yaml(true), 'listing.yaml', env);
  app = await createApp({ config, log: silentLogger(), clock });
  const settings = readDiscordSettings(gateway.env());
  if (!settings) throw new Error('no Discord settings');
  surface = await startDiscordSurface({ app, config, env: gateway.env(), log: silentLogger() }, settings);
});

afterAll(async () => {
  await surface?.stop();
  await app?.close();
  await gateway?.stop();
});

async function answerOf(i: { id: string; token: string }): Promise<string> {
  const answered = () =>
    gateway.callsOf(i).some((c) => {
      const body = c.body as { content?: unknown; embeds?: unknown; data?: { content?: unknown } };
      return Boolean(body?.content ?? body?.embeds ?? body?.data?.content);
    });
  await expect.poll(answered, { timeout: 10_000 }).toBe(true);
  return JSON.stringify(gateway.callsOf(i).map((c) => c.body));
}

async function request(): Promise<number> {
  const from = gateway.calls.length;
  gateway.command(ALICE, { operation: 'vacuum', target: 'staging', args: 'exams --full' });
  const card = await gateway.waitForCall(
    (c) => gateway.calls.indexOf(c) >= from && JSON.stringify(c.body ?? {}).includes('dbops:approve:'),
  );
  return Number(/dbops:approve:(\d+)/.exec(JSON.stringify(card.body))?.[1]);
}

/** The card of request `id` that dbops sent to `user` by DM. */
async function dmCard(user: FakeUser, id: number): Promise<FakeMessage> {
  let card: FakeMessage | undefined;
  await expect
    .poll(
      () => {
        const dm = [...gateway.channels.values()].find(
          (c) => c.type === 1 && c.recipients?.[0]?.id === user.id,
        );
        card = [...gateway.messages.values()].find(
          (m) => m.channel_id === dm?.id && JSON.stringify(m).includes(`dbops:approve:${id}`),
        );
        return card !== undefined;
      },
      { timeout: 10_000 },
    )
    .toBe(true);
  if (!card) throw new Error('no DM card');
  return card;
}

describe('Discord guild members listed', () => {
  it('reads every page of the guild with the bot token', async () => {
    await expect
      .poll(() => app.directory.discord.holdersOf(ROLE_DBA), { timeout: 10_000 })
      .toEqual([ALICE.id, FRANK.id]);
    const pages = gateway.calls.filter((c) => /^\/guilds\/\d+\/members$/.test(c.path));
    expect(pages.length).toBeGreaterThanOrEqual(2);
    expect(pages.every((c) => c.auth === `Bot ${gateway.token}` && c.query.get('limit') === '1000')).toBe(
      true,
    );
    expect(pages[1]?.query.get('after')).toBe(String(100000000000000000n + 999n));
    expect(surface.detail?.()).toEqual([]);
  });

  it('DMs a listed role holder who never acted, not the requester; he approves from the DM', async () => {
    const from = gateway.calls.length;
    const id = await request();
    const card = await dmCard(FRANK, id);
    await dmCard(DAN, id);
    const told = gateway.calls.slice(from).filter((c) => c.path === '/users/@me/channels');
    expect(told.map((c) => c.body.recipient_id).sort()).toEqual([DAN.id, FRANK.id]);
    gateway.click(FRANK, card.id, `dbops:approve:${id}`);
    await expect
      .poll(async () => (await app.state.getRequest(id))?.status, { timeout: 10_000 })
      .toBe('succeeded');
  });

  it('a later listing without the role revokes it', async () => {
    gateway.guildMembers.set(FRANK.id, []);
    await app.directory.discord.refresh();
    expect(app.directory.discord.holdersOf(ROLE_DBA)).toEqual([ALICE.id]);
    const id = await request();
    const dm = [...gateway.channels.values()].find((c) => c.type === 1 && c.recipients?.[0]?.id === FRANK.id);
    if (!dm) throw new Error('no DM with frank');
    const refused = await answerOf(gateway.command(FRANK, { operation: 'approve', target: String(id) }, dm));
    expect(refused).toContain('not in dbops');
    expect((await app.state.getRequest(id))?.status).toBe('pending');
    gateway.guildMembers.set(FRANK.id, [ROLE_DBA]);
    await app.directory.discord.refresh();
  });

  it('a refused listing is named in /readyz detail; past keep_last_known it grants nothing, with the reason', async () => {
    gateway.membersIntent = false;
    await app.directory.discord.refresh();
    const detail = surface.detail?.().join('\n') ?? '';
    expect(detail).toContain('Missing Access (50001)');
    expect(detail).toContain('Server Members intent');
    expect(detail).toContain('using the members read at');
    // The last listing is kept for now: frank still holds the role.
    expect(app.directory.discord.holdersOf(ROLE_DBA)).toContain(FRANK.id);

    shiftMs = 2 * 60 * 60 * 1000;
    try {
      expect(surface.detail?.().join('\n')).toContain('longer ago than keep_last_known allows');
      const id = await request();
      const dm = [...gateway.channels.values()].find(
        (c) => c.type === 1 && c.recipients?.[0]?.id === FRANK.id,
      );
      if (!dm) throw new Error('no DM with frank');
      const refused = await answerOf(
        gateway.command(FRANK, { operation: 'approve', target: String(id) }, dm),
      );
      expect(refused).toContain(
        'roles from Discord roles are unavailable: Discord guild members were last read',
      );
      expect((await app.state.getRequest(id))?.status).toBe('pending');
    } finally {
      shiftMs = 0;
      gateway.membersIntent = true;
    }
  });
});

describe('check-config and Discord roles', () => {
  const run = async (listing: boolean, extra: Record<string, string>) => {
    const path = join(tmpdir(), `dbops-dlist-${listing}-${process.pid}.yaml`);
    writeFileSync(path, yaml(listing));
    return await execa('node', [CLI, 'check-config', '--config', path], {
      env: { ...env, ...extra },
      extendEnv: false,
      reject: false,
    });
  };
  const discordEnv = () => ({
    DISCORD_TOKEN: gateway.token,
    DISCORD_API_URL: gateway.apiUrl,
    DISCORD_REST_RETRIES: '0',
  });

  it('with listing on and the token, prints who holds each Discord role', async () => {
    const out = await run(true, discordEnv());
    expect(out.stderr).toBe('');
    expect(out.stdout).toContain(`    discord role ${ROLE_DBA}:\n      ${ALICE.id}, ${FRANK.id}\n`);
    expect(out.exitCode).toBe(0);
    const section = out.stdout.slice(out.stdout.indexOf('Who holds each role:')).split('\n');
    for (const line of section) expect(line.length).toBeLessThanOrEqual(80);
  });

  it('names a listing the bot may not read and fails', async () => {
    gateway.membersIntent = false;
    try {
      const out = await run(true, discordEnv());
      expect(out.stdout).toContain('problem: Discord guild members cannot be read: Missing Access (50001)');
      expect(out.stdout).toContain('Server Members intent');
      expect(out.exitCode).toBe(1);
    } finally {
      gateway.membersIntent = true;
    }
  });

  it('without the token, or with listing off, says how Discord roles are known', async () => {
    const untold = await run(true, {});
    expect(untold.stdout).toContain('Discord members were not read: set DISCORD_TOKEN');
    expect(untold.exitCode).toBe(0);
    const off = await run(false, discordEnv());
    expect(off.stdout).toContain(`discord role ${ROLE_DBA}: learned from each interaction's payload`);
    expect(off.exitCode).toBe(0);
  });
});
