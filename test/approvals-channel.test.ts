// Requests made outside chat (the CLI path of the core) announced in their environment's approvals channel
// by the running bot: once across two replicas, with the group mention on the card, approved from that card
// with a signed click, escalated into its thread (injected clock); a state database that drops while the
// card is posted loses nothing and posts nothing twice; Discord's card pings only the approver role.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import type { Config } from '../src/config/schema.js';
import { silentLogger } from '../src/core/log.js';
import { ApprovalAnnouncer } from '../src/notify/approvals.js';
import type { RunningSurface } from '../src/surfaces/types.js';
import { FakeDiscord, fakeUser } from './fakes/discord.js';
import { type ApiCall, blockAction, FakeSlack, interactionBody, postSigned } from './fakes/slack.js';
import { adminQuery, createDatabase } from './helpers/db.js';
import { type CuttableProxy, cuttableProxy } from './helpers/state-proxy.js';
import { freePort } from './setup/postgres.js';

const SECRET = 'approvals-channel-signing-secret';
const DAN = fakeUser('400000000000000004', 'dan');
const ROLE_DBA = '400000000000000777';

/** The built modules, as `dbops start` runs them (the Slack receiver uses dist/). */
async function built<M>(path: string): Promise<M> {
  return (await import(pathToFileURL(resolve('dist/src', path)).href)) as M;
}

const yaml = (discordChannel: string) => `
state:
  url: \${STATE_URL}
limits: { statement_timeout: 5s, lock_timeout: 1s, connect_timeout: 2s }
targets:
  prod:
    url: \${TARGET_URL}
    environment: production
  stage:
    url: \${TARGET_URL}
    environment: staging
  lab:
    url: \${TARGET_URL}
    environment: lab
  dmt:
    url: \${TARGET_URL}
    environment: dmenv
people:
  bob: { cli: bob, roles: [oncall] }
  dan: { cli: dan, slack: T1/UDAN, discord: "${DAN.id}", roles: [dba] }
role_sources:
  roles:
    dba: { slack_groups: [S0DBA], discord_roles: ["${ROLE_DBA}"] }
    lead: { slack_groups: [S0LEAD] }
policy:
  production:
    read: [oncall, dba]
    request: [oncall, dba]
    approve: [dba]
    notify: mention
    escalate_after: 10m
    escalate_to: [lead]
    approvals_channel: { slack: C0APPROVALS, name: "#ops-approvals" }
  staging:
    read: [oncall, dba]
    request: [oncall, dba]
    approve: [dba]
    notify: mention
    approvals_channel: { discord: "${discordChannel}" }
  lab: { read: [oncall, dba], request: [oncall, dba], approve: [dba], notify: mention }
  dmenv:
    read: [oncall, dba]
    request: [oncall, dba]
    approve: [dba]
    notify: dm
    approvals_channel: { slack: C0DMAPPROVALS }
`;

let slack: FakeSlack;
let discord: FakeDiscord;
let proxy: CuttableProxy;
let stateDb: { name: string; url: string };
let targetUrl: string;
let configPath: string;
let cli: App;
let directConfig: Config;
const replicas: { app: App; surfaces: RunningSurface[]; url: string }[] = [];
let now = new Date();

function textOf(call: ApiCall): string {
  return JSON.stringify(call.body);
}

/** Cards in the approvals channel (top-level messages with the buttons of request `id`). */
function cardsOf(id: number): ApiCall[] {
  return slack
    .callsOf('chat.postMessage')
    .filter(
      (c) =>
        c.body.channel === 'C0APPROVALS' &&
        c.body.thread_ts === undefined &&
        textOf(c).includes(`"value":"${id}"`) &&
        textOf(c).includes('dbops_approve'),
    );
}

async function announced(id: number): Promise<{ at: Date | null; refs: Record<string, unknown> }> {
  const [row] = await adminQuery<{ announced_at: Date | null; refs: Record<string, unknown> }>(
    'SELECT announced_at, refs FROM dbops_requests WHERE id = $1',
    [id],
    stateDb.name,
  );
  return { at: row?.announced_at ?? null, refs: row?.refs ?? {} };
}

async function request(text: string): Promise<{ id: number; text: string }> {
  const reply = await cli.core.dispatch({ surface: 'cli', identity: 'bob', text });
  expect(reply.status).toBe('pending');
  return { id: reply.requestId ?? -1, text: reply.text };
}

/** Longer than a few sweeps of every replica (each sweeps every 2 s). */
const severalSweeps = () => new Promise((r) => setTimeout(r, 5_000));

beforeAll(async () => {
  const { createApp } = await built<typeof import('../src/app.js')>('app.js');
  const { loadConfigText } = await built<typeof import('../src/config/load.js')>('config/load.js');
  const { silentLogger } = await built<typeof import('../src/core/log.js')>('core/log.js');
  const { startSurfaces } = await built<typeof import('../src/surfaces/start.js')>('surfaces/start.js');
  let target: { url: string };
  [stateDb, target] = await Promise.all([
    createDatabase('annc_state'),
    createDatabase('annc_target', 'CREATE TABLE exams (id int); INSERT INTO exams VALUES (1);'),
  ]);
  slack = await FakeSlack.start();
  slack.userGroups.set('S0DBA', ['UDAN']);
  slack.userGroups.set('S0LEAD', ['ULEA']);
  discord = await FakeDiscord.start({ guildRoles: [ROLE_DBA] });
  proxy = await cuttableProxy(stateDb.url);
  const text = yaml(discord.channel.id);
  targetUrl = target.url;
  configPath = join(tmpdir(), `dbops-announce-${stateDb.name}.yaml`);
  writeFileSync(configPath, text);
  // The requesting process (as `dbops exec` is) reaches the state database directly; the replicas
  // through a proxy a test cuts.
  const direct: Config = loadConfigText(text, 'announce.yaml', {
    STATE_URL: stateDb.url,
    TARGET_URL: target.url,
  });
  directConfig = direct;
  cli = await createApp({ config: direct, log: silentLogger() });
  const config = loadConfigText(text, 'announce.yaml', { STATE_URL: proxy.url, TARGET_URL: target.url });
  for (const withDiscord of [true, false]) {
    const app = await createApp({ config, log: silentLogger(), clock: () => now });
    const port = await freePort();
    const env = {
      SLACK_BOT_TOKEN: 'xoxb-annc',
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_PORT: String(port),
      SLACK_API_URL: slack.apiUrl,
      SLACK_API_RETRIES: '0',
      ...(withDiscord ? discord.env() : {}),
    };
    const surfaces = await startSurfaces({ app, config, env, log: silentLogger() });
    replicas.push({ app, surfaces, url: `http://127.0.0.1:${port}/slack/events` });
  }
});

afterAll(async () => {
  for (const replica of replicas) {
    await Promise.allSettled(replica.surfaces.map((s) => s.stop()));
    await replica.app.close();
  }
  await cli?.close();
  await proxy?.close();
  await slack?.close();
  await discord?.stop();
});

describe('requests made outside chat, announced in the approvals channel', () => {
  it('is announced once by two replicas, approved from that card, escalated into its thread', async () => {
    const made = await request('/db vacuum prod exams --full');
    // The requester is told where approvers hear of it, in 80 columns.
    expect(made.text).toContain('Approvers are told in #ops-approvals by the running bot');
    for (const line of made.text.split('\n')) expect(line.length).toBeLessThanOrEqual(80);

    const card = await slack.until(() => cardsOf(made.id)[0], 'the card in the approvals channel');
    expect(String(card.body.text)).toContain('<!subteam^S0DBA> needs 1 of: dba — not bob');
    await severalSweeps();
    expect(cardsOf(made.id)).toHaveLength(1);
    const mark = await announced(made.id);
    expect(mark.at).toBeInstanceOf(Date);
    expect(mark.refs.slack).toEqual({
      channel: 'C0APPROVALS',
      ts: card.response?.ts,
      thread: card.response?.ts,
    });

    // Past escalate_after, whichever replica escalates posts in the card's thread.
    now = new Date(Date.now() + 11 * 60_000);
    const from = slack.calls.length;
    const swept = await Promise.all(replicas.map((r) => r.app.escalations.sweep()));
    expect(swept.flat().map((r) => r.id)).toEqual([made.id]);
    const escalation = await slack.until(
      () => slack.callsOf('chat.postMessage', from).find((c) => textOf(c).includes('Escalated')),
      'the escalation',
    );
    expect(escalation.body).toMatchObject({ channel: 'C0APPROVALS', thread_ts: card.response?.ts });
    expect(String(escalation.body.text)).toContain('<!subteam^S0LEAD>');

    // A signed click on that card (at the other replica) approves it under the usual checks.
    const click = interactionBody(
      blockAction(slack, {
        user: 'UDAN',
        channel: 'C0APPROVALS',
        messageTs: String(card.response?.ts),
        actionId: 'dbops_approve',
        value: String(made.id),
      }),
    );
    const answer = await postSigned(replicas[1]?.url ?? '', {
      secret: SECRET,
      body: click,
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(answer.status).toBe(200);
    await expect
      .poll(async () => (await cli.state.getRequest(made.id))?.status, { timeout: 15_000 })
      .toBe('succeeded');
    await slack.until(
      () =>
        slack
          .callsOf('chat.update', from)
          .find((c) => c.body.ts === card.response?.ts && textOf(c).includes('approved by')),
      'the card showing the decision',
    );
    now = new Date();
  });

  it('posts once when two replicas sweep at the same moment (the claim), however slow the post', async () => {
    const config = directConfig;
    const posted: number[] = [];
    const slow = {
      async postCard(request: { id: number }) {
        posted.push(request.id);
        await new Promise((r) => setTimeout(r, 300));
        return { slack: { channel: 'C0ELSEWHERE', ts: `1.${request.id}`, thread: `1.${request.id}` } };
      },
    };
    const pair = ['replica-a', 'replica-b'].map(
      (owner) =>
        new ApprovalAnnouncer({
          config,
          state: cli.state,
          stateUrl: stateDb.url,
          posters: { slack: slow },
          log: silentLogger(),
          owner,
        }),
    );
    try {
      // The running replicas are kept out of it: their sweeps would announce it first.
      proxy.drop();
      const made = await request('/db vacuum prod exams --full');
      const [a, b] = await Promise.all(pair.map((announcer) => announcer.sweep()));
      expect([...(a ?? []), ...(b ?? [])]).toEqual([made.id]);
      expect(posted).toEqual([made.id]);
      expect((await announced(made.id)).refs.slack).toMatchObject({ channel: 'C0ELSEWHERE' });
      await Promise.all(pair.map((announcer) => announcer.sweep()));
      expect(posted).toEqual([made.id]);
    } finally {
      proxy.restore();
      await Promise.all(pair.map((announcer) => announcer.stop()));
    }
  });

  it('is woken at once by the process that made the request (LISTEN/NOTIFY), not only by its sweeps', async () => {
    const posted: number[] = [];
    const announcer = new ApprovalAnnouncer({
      config: directConfig,
      state: cli.state,
      stateUrl: stateDb.url,
      posters: {
        slack: {
          async postCard(request: { id: number }) {
            posted.push(request.id);
            return { slack: { channel: 'C0WOKEN', ts: `2.${request.id}`, thread: `2.${request.id}` } };
          },
        },
      },
      log: silentLogger(),
      owner: 'replica-woken',
    });
    try {
      proxy.drop();
      // Its timer would next look in ten minutes: only the wake-up can announce the request sooner.
      announcer.start(600_000);
      await new Promise((r) => setTimeout(r, 1_000));
      const made = await request('/db vacuum prod exams --full');
      await expect.poll(() => posted, { timeout: 10_000 }).toEqual([made.id]);
    } finally {
      proxy.restore();
      await announcer.stop();
    }
  });

  it('announces a request made by the built dbops exec in a process of its own', async () => {
    const from = slack.calls.length;
    const run = await execa(
      'node',
      [
        resolve('dist/src/cli.js'),
        'exec',
        '--config',
        configPath,
        '--as',
        'bob',
        '--',
        '/db vacuum prod exams --full',
      ],
      {
        env: { PATH: process.env.PATH ?? '', STATE_URL: stateDb.url, TARGET_URL: targetUrl },
        extendEnv: false,
        reject: false,
      },
    );
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain('Approvers are told in #ops-approvals by the running bot (dbops start).');
    const id = Number(/#(\d+)/.exec(run.stdout)?.[1]);
    const card = await slack.until(() => cardsOf(id)[0], 'the card of the exec request');
    expect(slack.calls.indexOf(card)).toBeGreaterThanOrEqual(from);
    await severalSweeps();
    expect(cardsOf(id)).toHaveLength(1);
    await adminQuery("UPDATE dbops_requests SET status = 'cancelled' WHERE id = $1", [id], stateDb.name);
  });

  it('with notify: dm, posts the card without a mention and sends it to each approver', async () => {
    const from = slack.calls.length;
    const made = await request('/db vacuum dmt exams --full');
    const card = await slack.until(
      () =>
        slack
          .callsOf('chat.postMessage', from)
          .find((c) => c.body.channel === 'C0DMAPPROVALS' && textOf(c).includes('dbops_approve')),
      'the card in the dm environment’s channel',
    );
    expect(String(card.body.text)).toContain('needs 1 of: dba — not bob');
    expect(textOf(card)).not.toContain('subteam');
    const opened = await slack.until(
      () => slack.callsOf('conversations.open', from).find((c) => c.body.users === 'UDAN'),
      'the DM to dan',
    );
    expect(opened).toBeTruthy();
    await slack.until(
      () =>
        slack
          .callsOf('chat.postMessage', from)
          .find((c) => c.body.channel === 'DUDAN' && textOf(c).includes(`"value":"${made.id}"`)),
      'the card in the DM',
    );
    await adminQuery("UPDATE dbops_requests SET status = 'cancelled' WHERE id = $1", [made.id], stateDb.name);
  });

  it('says how to get it approved where no approvals channel is set, and posts nothing', async () => {
    const from = slack.calls.length;
    const made = await request('/db vacuum lab exams --full');
    expect(made.text).toContain(`/db approve ${made.id} in chat`);
    expect(made.text).toContain('nobody is told');
    for (const line of made.text.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    await severalSweeps();
    expect(
      slack.callsOf('chat.postMessage', from).filter((c) => textOf(c).includes('dbops_approve')),
    ).toEqual([]);
    expect((await announced(made.id)).at).toBeNull();
  });

  it('loses nothing when the state database drops while the card is posted, and posts it once', async () => {
    // The state database goes away right as the card reaches Slack: the mark cannot be written.
    let dropped = false;
    slack.fail = (method, body) => {
      if (!dropped && method === 'chat.postMessage' && body.channel === 'C0APPROVALS') {
        dropped = true;
        proxy.drop();
      }
      return undefined;
    };
    const made = await request('/db vacuum prod exams --full --reason "<!channel> \u202Egnp.exe"');
    await slack.until(() => cardsOf(made.id)[0], 'the card');
    expect(dropped).toBe(true);
    await severalSweeps();
    expect((await announced(made.id)).at).toBeNull();
    proxy.restore();
    await expect.poll(async () => (await announced(made.id)).at, { timeout: 20_000 }).toBeInstanceOf(Date);
    await severalSweeps();
    const cards = cardsOf(made.id);
    expect(cards).toHaveLength(1);
    expect((await announced(made.id)).refs.slack).toMatchObject({ ts: cards[0]?.response?.ts });
    // The typed reason is shown as text: no mention, the bidi override made visible.
    expect(textOf(cards[0] as ApiCall)).not.toContain('<!channel>');
    expect(textOf(cards[0] as ApiCall)).not.toContain('\u202E');
    slack.fail = () => undefined;
  });

  it('is announced when the state database was away during the sweep, once it is back', async () => {
    proxy.drop();
    const made = await request('/db vacuum prod exams --full');
    await severalSweeps();
    expect(cardsOf(made.id)).toEqual([]);
    proxy.restore();
    await slack.until(() => cardsOf(made.id)[0], 'the card after the outage', 20_000);
    await severalSweeps();
    expect(cardsOf(made.id)).toHaveLength(1);
  });

  it('names a channel it cannot post to in /readyz detail, and does not try it every sweep', async () => {
    const from = slack.calls.length;
    slack.fail = (method, body) =>
      method === 'chat.postMessage' && body.channel === 'C0APPROVALS' ? 'not_in_channel' : undefined;
    try {
      const made = await request('/db vacuum prod exams --full');
      await slack.until(
        () => slack.callsOf('chat.postMessage', from).find((c) => c.body.channel === 'C0APPROVALS'),
        'the attempt',
      );
      await severalSweeps();
      // One attempt by one replica; the others wait out the retry time instead of trying every 2 s.
      expect(
        slack.callsOf('chat.postMessage', from).filter((c) => c.body.channel === 'C0APPROVALS'),
      ).toHaveLength(1);
      expect((await announced(made.id)).at).toBeNull();
      const detail = replicas.flatMap(
        (r) => r.surfaces.find((s) => s.name === 'approvals')?.detail?.() ?? [],
      );
      expect(detail.join('\n')).toContain('cannot be posted in slack:C0APPROVALS');
      expect(detail.join('\n')).toContain('not_in_channel');
      await adminQuery(
        "UPDATE dbops_requests SET status = 'cancelled' WHERE id = $1",
        [made.id],
        stateDb.name,
      );
    } finally {
      slack.fail = () => undefined;
    }
  });

  it('posts the Discord card in its channel pinging only the approver role, and approves from it', async () => {
    const from = discord.calls.length;
    const made = await request('/db vacuum stage exams --full');
    const card = await discord.waitForCall(
      (c) =>
        discord.calls.indexOf(c) >= from &&
        c.method === 'POST' &&
        c.path === `/channels/${discord.channel.id}/messages` &&
        JSON.stringify(c.body).includes(`dbops:approve:${made.id}`),
      20_000,
    );
    expect(String(card.body.content)).toContain(`<@&${ROLE_DBA}> needs 1 of: dba — not bob`);
    expect(card.body.allowed_mentions).toEqual({ parse: [], roles: [ROLE_DBA] });
    await expect.poll(async () => (await announced(made.id)).at, { timeout: 10_000 }).toBeInstanceOf(Date);
    const refs = (await announced(made.id)).refs.discord as { channel: string; message: string };
    expect(refs.channel).toBe(discord.channel.id);
    discord.memberRoles.set(DAN.id, [ROLE_DBA]);
    discord.click(DAN, refs.message, `dbops:approve:${made.id}`);
    await expect
      .poll(async () => (await cli.state.getRequest(made.id))?.status, { timeout: 15_000 })
      .toBe('succeeded');
    // Only the Discord card was posted: Slack has no channel for this environment.
    expect(cardsOf(made.id)).toEqual([]);
  });
});
