// Acknowledge / Mute clicks on alert posts through the real surfaces: a signed Slack interaction and a
// Discord button interaction become `/db alerts …` as the person who clicked, checked and audited by the core.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import type { RunningSurface } from '../src/surfaces/types.js';
import { FakeDiscord, fakeUser } from './fakes/discord.js';
import { blockAction, FakeSlack, interactionBody, postSigned } from './fakes/slack.js';
import { built } from './helpers/built.js';
import { adminQuery, createDatabase } from './helpers/db.js';
import { freePort } from './setup/postgres.js';

const SECRET = 'alert-buttons-signing-secret';
const ALICE = fakeUser('100000000000000001', 'alice');
const MALLORY = fakeUser('100000000000000009', 'mallory');

let app: App;
let state: { name: string; url: string };
let slack: FakeSlack;
let discord: FakeDiscord;
let surfaces: RunningSurface[] = [];
let url: string;

beforeAll(async () => {
  const { createApp } = await built<typeof import('../src/app.js')>('app.js');
  const { loadConfigText } = await built<typeof import('../src/config/load.js')>('config/load.js');
  const { silentLogger } = await built<typeof import('../src/core/log.js')>('core/log.js');
  const { startSlack } =
    await built<typeof import('../src/surfaces/slack/index.js')>('surfaces/slack/index.js');
  const { startDiscordSurface } =
    await built<typeof import('../src/surfaces/discord/index.js')>('surfaces/discord/index.js');
  const { readDiscordSettings } = await built<typeof import('../src/surfaces/discord/settings.js')>(
    'surfaces/discord/settings.js',
  );
  state = await createDatabase('abstate');
  const staging = await createDatabase('abstaging');
  const config = loadConfigText(
    `
state:
  url: \${STATE_URL}
targets:
  staging:
    url: \${STAGING_URL}
    environment: staging
  scratch:
    url: \${STAGING_URL}
    environment: staging
  vault:
    url: \${STAGING_URL}
    environment: restricted
people:
  alice: { slack: T1/UALICE, discord: "${ALICE.id}", roles: [dba] }
  mallory: { slack: T1/UMALLORY, discord: "${MALLORY.id}", roles: [guest] }
policy:
  staging: { read: [dba, guest], write: [dba], request: [dba], approve: [dba] }
  restricted: { read: [dba], write: [dba], request: [dba], approve: [dba] }
`,
    'alert-buttons.yaml',
    { STATE_URL: state.url, STAGING_URL: staging.url },
  );
  app = await createApp({ config, log: silentLogger() });
  slack = await FakeSlack.start();
  discord = await FakeDiscord.start();
  const port = await freePort();
  url = `http://127.0.0.1:${port}/slack/events`;
  const env = {
    SLACK_BOT_TOKEN: 'xoxb-ab',
    SLACK_SIGNING_SECRET: SECRET,
    SLACK_PORT: String(port),
    SLACK_API_URL: slack.apiUrl,
    SLACK_API_RETRIES: '0',
    ...discord.env(),
  };
  const settings = readDiscordSettings(env);
  if (!settings) throw new Error('no Discord settings');
  const started = await startSlack({ app, config, log: silentLogger(), env });
  if (started) surfaces.push(started);
  surfaces.push(await startDiscordSurface({ app, config, env, log: silentLogger() }, settings));
});

afterAll(async () => {
  await Promise.allSettled(surfaces.map((s) => s.stop()));
  surfaces = [];
  await app?.close();
  await slack?.close();
  await discord?.stop();
});

/** Opens an alert on a target by a failing verdict, posted through the surface's own poster. */
async function openAlert(target: string, surface: 'slack' | 'discord', channel: string) {
  const poster = surfaces.find((s) => s.name === surface)?.poster;
  const observe = app.alertObserver(poster);
  await observe({
    schedule: 'checks',
    target,
    operation: 'health',
    person: 'alice',
    outcome: 'succeeded',
    startedAt: new Date(),
    finishedAt: new Date(),
    data: { checks: { wraparound: { status: 'fail', detail: 'at 93% of freeze max age' } } },
    post: { surface, channel },
  });
  const [alert] = await app.alerts.open([target]);
  if (!alert?.thread) throw new Error('the alert was not posted');
  return alert;
}

async function audited(id: number) {
  return await adminQuery<{ person: string; outcome: string }>(
    'SELECT person, outcome FROM dbops_audit WHERE outcome LIKE $1 ORDER BY id',
    [`alert #${id} %`],
    state.name,
  );
}

async function clickSlack(user: string, alert: { id: number; thread?: { id: string } }, actionId: string) {
  const payload = blockAction(slack, {
    user,
    channel: 'CALERTS',
    messageTs: alert.thread?.id ?? '',
    actionId,
    value: String(alert.id),
  });
  const posted = await postSigned(url, {
    secret: SECRET,
    body: interactionBody(payload),
    contentType: 'application/x-www-form-urlencoded',
  });
  expect(posted.status).toBe(200);
}

describe('alert buttons', () => {
  it('Slack: Mute 4h mutes the alert as the person who clicked, audited; a forged signature does nothing', async () => {
    const alert = await openAlert('staging', 'slack', 'CALERTS');
    const forged = await postSigned(url, {
      secret: 'not-the-secret',
      body: interactionBody(
        blockAction(slack, {
          user: 'UALICE',
          channel: 'CALERTS',
          messageTs: alert.thread?.id ?? '',
          actionId: 'dbops_alert_ack',
          value: String(alert.id),
        }),
      ),
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(forged.status).toBe(401);

    const before = Date.now();
    await clickSlack('UALICE', alert, 'dbops_alert_mute_4h');
    await expect
      .poll(async () => (await app.alerts.get(alert.id))?.muted?.by, { timeout: 10_000 })
      .toBe('alice');
    const muted = await app.alerts.get(alert.id);
    const until = muted?.muted?.until.getTime() ?? 0;
    expect(until - before).toBeGreaterThanOrEqual(4 * 3600_000 - 1000);
    expect(until - before).toBeLessThanOrEqual(4 * 3600_000 + 60_000);
    expect((await audited(alert.id)).map((r) => r.person)).toEqual(['alice']);
    expect((await app.alerts.get(alert.id))?.acked).toBeUndefined();
    // The answer goes into the alert's thread.
    const answer = await slack.until(
      () => slack.callsOf('chat.postMessage').find((c) => JSON.stringify(c.body).includes('muted alert #')),
      'the mute answer',
    );
    expect(answer.body.thread_ts).toBe(alert.thread?.id);
  });

  it('Slack: someone who may not read the target cannot silence its alert', async () => {
    const alert = await openAlert('vault', 'slack', 'CALERTS');
    const from = slack.calls.length;
    await clickSlack('UMALLORY', alert, 'dbops_alert_ack');
    await slack.until(
      () => slack.calls.slice(from).find((c) => JSON.stringify(c.body).includes(`no alert #${alert.id}`)),
      'the refusal',
    );
    expect((await app.alerts.get(alert.id))?.acked).toBeUndefined();
    expect(await audited(alert.id)).toEqual([]);
  });

  it('Discord: Acknowledge acknowledges as the person who clicked, audited', async () => {
    const alert = await openAlert('scratch', 'discord', discord.channel.id);
    const message = alert.thread?.id ?? '';
    discord.click(ALICE, message, `dbops_alert_ack:${alert.id}`);
    await expect
      .poll(async () => (await app.alerts.get(alert.id))?.acked?.by, { timeout: 10_000 })
      .toBe('alice');
    expect((await audited(alert.id)).at(-1)).toEqual({
      person: 'alice',
      outcome: `alert #${alert.id} acknowledged`,
    });
  });
});
