// The weekly digest schedule through the Slack and Discord fakes: the text posted in the channel and its
// two charts uploaded with it (PNG bytes), by the same posters `dbops start` gives the schedules.
import { WebClient } from '@slack/web-api';
import type { Client } from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { DiscordChannelPoster } from '../src/notify/discord-poster.js';
import { SurfacePosters } from '../src/notify/poster.js';
import { SlackChannelPoster } from '../src/notify/slack-poster.js';
import { DiscordApi } from '../src/surfaces/discord/api.js';
import { connectGateway, createGatewayClient } from '../src/surfaces/discord/gateway.js';
import { readDiscordSettings } from '../src/surfaces/discord/settings.js';
import { FakeDiscord } from './fakes/discord.js';
import { FakeSlack } from './fakes/slack.js';
import { as, FIXTURE_YAML, type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery } from './helpers/db.js';

const NOW = new Date('2026-12-07T09:00:00Z');
const HOUR = 3_600_000;
const MB = 1024 ** 2;
let fx: Fixture;
let app: App;
let slack: FakeSlack;
let discord: FakeDiscord;
let gateway: Client | undefined;

beforeAll(async () => {
  fx = await makeFixture();
  const yaml = `${FIXTURE_YAML.replace('people:\n', 'people:\n  robot: { service: true, roles: [oncall] }\n')}
schedules:
  digest-slack:
    cron: "0 9 * * 1"
    kind: digest
    target: staging
    as: robot
    post: "slack:CREVIEW"
  digest-discord:
    cron: "0 9 * * 1"
    kind: digest
    target: staging
    as: robot
    post: "discord:222"
`;
  app = await startApp(loadConfigText(yaml, 'digest-posts.yaml', fx.env), () => NOW);
  const at: string[] = [];
  const values: number[] = [];
  for (let h = 0; h <= 7 * 24; h += 12) {
    at.push(new Date(NOW.getTime() - (7 * 24 - h) * HOUR).toISOString());
    values.push(50 * MB + h * MB);
  }
  for (const [metric, subject, scale] of [
    ['database_bytes', '', 1],
    ['table_bytes', 'public.exams', 0.5],
  ] as const) {
    await adminQuery(
      `INSERT INTO dbops_samples (target, metric, subject, at, value)
       SELECT 'staging', $1, $2, a, v * $5 FROM unnest($3::timestamptz[], $4::float8[]) AS u(a, v)`,
      [metric, subject, at, values, scale],
      fx.state.name,
    );
  }
  slack = await FakeSlack.start();
  discord = await FakeDiscord.start();
  const settings = readDiscordSettings(discord.env());
  if (!settings) throw new Error('no Discord settings');
  gateway = createGatewayClient(settings);
  await connectGateway(gateway, settings.token, 10_000);
  app.schedules.poster = new SurfacePosters({
    slack: new SlackChannelPoster(
      new WebClient('xoxb-test', { slackApiUrl: slack.apiUrl, retryConfig: { retries: 0 } }),
    ),
    discord: new DiscordChannelPoster(new DiscordApi(gateway.rest)),
  });
});

afterAll(async () => {
  await app?.close();
  await gateway?.destroy();
  await slack?.close();
  await discord?.stop();
});

describe('the digest schedule through the chat fakes', () => {
  it('posts the digest in the Slack channel and uploads its two charts there', async () => {
    const from = slack.calls.length;
    const reply = await as(app, 'alice')('/db run-schedule digest-slack');
    expect(reply.status, reply.text).toBe('ok');
    const post = await slack.call('chat.postMessage', from);
    expect(post.body.channel).toBe('CREVIEW');
    expect(JSON.stringify(post.body)).toContain('digest of staging');
    const complete = await slack.call('files.completeUploadExternal', from);
    expect(complete.body.channel_id).toBe('CREVIEW');
    const names = slack.calls
      .slice(from)
      .filter((c) => c.method === 'files.getUploadURLExternal')
      .map((c) => c.body.filename);
    expect(names).toEqual(['digest-staging-size.png', 'digest-staging-growers.png']);
  });

  it('posts the digest in the Discord channel with both charts attached', async () => {
    const from = discord.calls.length;
    const reply = await as(app, 'alice')('/db run-schedule digest-discord');
    expect(reply.status, reply.text).toBe('ok');
    const posts = discord.calls
      .slice(from)
      .filter((c) => c.method === 'POST' && c.path === '/channels/222/messages');
    const files = posts.flatMap((p) => p.files.map((f) => f.filename));
    expect(files).toEqual(['digest-staging-size.png', 'digest-staging-growers.png']);
    expect(posts.map((p) => JSON.stringify(p.body)).join(' ')).toContain('digest of staging');
    // Mentions stay off in what the bot posts.
    for (const p of posts) expect(p.body).toMatchObject({ allowed_mentions: { parse: [] } });
  });
});
