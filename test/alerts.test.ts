// Alerts through the Slack and Discord fakes on real PostgreSQL: each change of a check posts once (the
// first post opens the alert's thread, follow-ups go into it), reminders only after the interval, none
// while muted or acknowledged, "resolved" when it clears; hostile values escaped; a refused channel named.
import { WebClient } from '@slack/web-api';
import type { Client } from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { DiscordChannelPoster } from '../src/notify/discord-poster.js';
import { ChannelPostError, type ChannelRef, SurfacePosters } from '../src/notify/poster.js';
import { SlackChannelPoster } from '../src/notify/slack-poster.js';
import type { AfterScheduledRun, ScheduledRunReport } from '../src/schedules/hooks.js';
import { DiscordApi } from '../src/surfaces/discord/api.js';
import { connectGateway, createGatewayClient } from '../src/surfaces/discord/gateway.js';
import { readDiscordSettings } from '../src/surfaces/discord/settings.js';
import { FakeDiscord } from './fakes/discord.js';
import { FakeSlack } from './fakes/slack.js';
import { as, type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery } from './helpers/db.js';

const T0 = new Date('2026-12-06T02:00:00Z');
const minutes = (m: number) => new Date(T0.getTime() + m * 60_000);
const HOSTILE = 'root <!channel> @everyone <@U0BOSS> \u202egnp.exe';

let now = T0;
let fx: Fixture;
let app: App;
let slack: FakeSlack;
let discord: FakeDiscord;
let observe: AfterScheduledRun;
let gateway: Client | undefined;

beforeAll(async () => {
  fx = await makeFixture();
  app = await startApp(fx.config, () => now);
  slack = await FakeSlack.start();
  discord = await FakeDiscord.start();
  const client = new WebClient('xoxb-test', { slackApiUrl: slack.apiUrl, retryConfig: { retries: 0 } });
  // The bot's own discord.js client, connected to the fake gateway: posts go through its REST client.
  const settings = readDiscordSettings(discord.env());
  if (!settings) throw new Error('no Discord settings');
  gateway = createGatewayClient(settings);
  await connectGateway(gateway, settings.token, 10_000);
  const poster = new SurfacePosters({
    slack: new SlackChannelPoster(client),
    discord: new DiscordChannelPoster(new DiscordApi(gateway.rest)),
  });
  observe = app.alertObserver(poster);
});

afterAll(async () => {
  await app?.close();
  await gateway?.destroy();
  await slack?.close();
  await discord?.stop();
});

function report(
  at: Date,
  status: 'ok' | 'warn' | 'fail',
  post: ChannelRef,
  target = 'staging',
  detail = status === 'ok' ? 'no blocked sessions' : `2 blocked, longest 3m, ${HOSTILE}`,
): ScheduledRunReport {
  return {
    schedule: 'health-every-5m',
    target,
    operation: 'health',
    person: 'alice',
    outcome: 'succeeded',
    startedAt: at,
    finishedAt: at,
    data: {
      status,
      checks: {
        connects: { status: 'ok', detail: 'PostgreSQL 15, connected in 2 ms' },
        blocking: { status, detail, ...(status === 'ok' ? {} : { next: ['blocking'] }), blocked: 2 },
      },
    },
    post,
  };
}

/** Runs one report at its time, as a schedule would. */
async function run(r: ScheduledRunReport): Promise<void> {
  now = r.finishedAt;
  await observe(r);
}

describe('alerts posted to Slack', () => {
  const to: ChannelRef = { surface: 'slack', channel: 'CALERTS' };
  const posts = () => slack.callsOf('chat.postMessage').filter((c) => c.body.channel === 'CALERTS');

  it('posts each change once, reminds after the interval, stays quiet while muted, and resolves', async () => {
    await run(report(minutes(0), 'ok', to));
    expect(posts()).toHaveLength(0);

    // ok → fail: one post in the channel (the thread), then the diagnostics in its thread.
    await run(report(minutes(5), 'fail', to));
    expect(posts()).toHaveLength(2);
    const [opening, diagnostics] = posts();
    expect(opening?.body.thread_ts).toBeUndefined();
    const thread = String(opening?.response?.ts);
    expect(JSON.stringify(opening?.body.blocks)).toContain('FAIL staging · blocking');
    const actions = (
      (opening?.body.blocks ?? []) as { type: string; elements?: { action_id: string }[] }[]
    ).find((b) => b.type === 'actions');
    expect(actions?.elements?.map((e) => e.action_id)).toEqual([
      'dbops_alert_ack',
      'dbops_alert_mute_1h',
      'dbops_alert_mute_4h',
      'dbops_alert_mute_24h',
    ]);
    expect(diagnostics?.body.thread_ts).toBe(thread);
    // The diagnostics are `blocking` run through the core as the schedule's person.
    expect(JSON.stringify(diagnostics?.body.blocks)).toContain('/db blocking staging (run as alice');
    expect(JSON.stringify(diagnostics?.body.blocks)).toMatch(/blocked|blocking/i);

    // A hostile value can neither ping nor reorder the text.
    const sent = JSON.stringify(opening?.body);
    expect(sent).not.toContain('<!channel>');
    expect(sent).not.toContain('<@U0BOSS>');
    expect(sent).not.toContain('\u202e');
    expect(sent).toContain('&lt;!channel&gt;');

    // Still failing within the interval: nothing; after an hour since the last post: one reminder.
    await run(report(minutes(20), 'fail', to));
    expect(posts()).toHaveLength(2);
    await run(report(minutes(66), 'fail', to));
    expect(posts()).toHaveLength(3);
    expect(posts()[2]?.body.thread_ts).toBe(thread);
    expect(JSON.stringify(posts()[2]?.body.blocks)).toContain('still FAIL: staging · blocking');

    // Muted for 4 hours (as the button would): audited, listed, and no reminder until it ends.
    const [open] = await app.alerts.open(['staging']);
    now = minutes(70);
    const muted = await as(app, 'alice')(`/db alerts mute ${open?.id} --for 4h`);
    expect(muted.status).toBe('ok');
    expect(muted.text).toContain(`alice muted alert #${open?.id}`);
    const listed = await as(app, 'alice')('/db alerts');
    expect(listed.text).toMatch(
      new RegExp(`${open?.id}\\s+fail\\s+staging\\s+blocking\\s+2026-12-06 02:05 UTC\\s+muted to 07:10 UTC`),
    );
    for (const line of listed.text.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    const audit = await adminQuery<{ person: string; outcome: string }>(
      "SELECT person, outcome FROM dbops_audit WHERE outcome LIKE 'alert #%'",
      [],
      fx.state.name,
    );
    expect(audit).toEqual([
      { person: 'alice', outcome: `alert #${open?.id} muted until 2026-12-06T07:10:00.000Z` },
    ]);
    await run(report(minutes(180), 'fail', to));
    expect(posts()).toHaveLength(3);
    await run(report(minutes(311), 'fail', to));
    expect(posts()).toHaveLength(4);

    // fail → ok: "resolved" in the thread, once.
    await run(report(minutes(330), 'ok', to));
    await run(report(minutes(335), 'ok', to));
    expect(posts()).toHaveLength(5);
    expect(posts()[4]?.body.thread_ts).toBe(thread);
    expect(JSON.stringify(posts()[4]?.body.blocks)).toContain(
      'resolved: staging · blocking is ok again after 5h 25m',
    );
    expect((await as(app, 'alice')('/db alerts')).text).toBe('0 open alerts.');
  });

  it('an acknowledged alert gets no reminders; warn → fail is posted in its thread', async () => {
    const before = posts().length;
    await run(report(minutes(400), 'warn', to));
    expect(posts()).toHaveLength(before + 2);
    const [open] = await app.alerts.open(['staging']);
    now = minutes(401);
    const acked = await as(app, 'alice')(`/db alerts ack ${open?.id}`);
    expect(acked.status).toBe('ok');
    await run(report(minutes(410), 'fail', to));
    // The change is posted (and its diagnostics), even though reminders are silenced.
    expect(posts()).toHaveLength(before + 4);
    expect(JSON.stringify(posts()[before + 2]?.body.blocks)).toContain('now FAIL (was WARN)');
    await run(report(minutes(600), 'fail', to));
    expect(posts()).toHaveLength(before + 4);
    // Carol may not read production: kasm's alerts do not exist for her, staging's she may silence.
    const hidden = await as(app, 'carol')(`/db alerts ack ${open?.id}`);
    expect(hidden.status).toBe('ok');
  });

  it('names the channel and the reason when it cannot post there, and posts once it can', async () => {
    slack.fail = (method, body) =>
      method === 'chat.postMessage' && body.channel === 'CNOPE' ? 'not_in_channel' : undefined;
    const nope: ChannelRef = { surface: 'slack', channel: 'CNOPE' };
    const failed = await observe(report(minutes(700), 'fail', nope, 'kasm')).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failed).toBeInstanceOf(ChannelPostError);
    expect((failed as Error).message).toBe(
      'cannot post to slack channel CNOPE: not_in_channel: the bot is not a member (invite it with /invite @dbops)',
    );
    const listed = await as(app, 'alice')('/db alerts kasm');
    expect(listed.text).toContain('not posted: cannot post to slack channel CNOPE: not_in_channel');
    slack.fail = () => undefined;
    await run(report(minutes(705), 'fail', nope, 'kasm'));
    const landed = slack
      .callsOf('chat.postMessage')
      .filter((c) => c.body.channel === 'CNOPE' && c.response?.ok);
    expect(landed).toHaveLength(1);
    expect(landed[0]?.body.thread_ts).toBeUndefined();
  });

  it('two replicas observing the same change post it once', async () => {
    const twice: ChannelRef = { surface: 'slack', channel: 'CTWICE' };
    await run(report(minutes(800), 'ok', twice, 'down'));
    const r = report(minutes(805), 'fail', twice, 'down', 'cannot connect');
    await Promise.all([observe(r), observe(r)]);
    const opening = slack
      .callsOf('chat.postMessage')
      .filter((c) => c.body.channel === 'CTWICE' && c.body.thread_ts === undefined);
    expect(opening).toHaveLength(1);
  });
});

describe('alerts posted to Discord', () => {
  it('posts the alert with its buttons, follow-ups in a thread started from it, mentions disabled', async () => {
    const to: ChannelRef = { surface: 'discord', channel: discord.channel.id };
    const from = discord.calls.length;
    await run(report(minutes(1000), 'ok', to, 'kasm', 'fine'));
    // kasm's alert from the Slack test resolved: in its own Slack thread, not here.
    const resolvedInSlack = slack
      .callsOf('chat.postMessage')
      .filter((c) => c.body.channel === 'CNOPE' && JSON.stringify(c.body.blocks).includes('resolved: kasm'));
    expect(resolvedInSlack).toHaveLength(1);
    expect(resolvedInSlack[0]?.body.thread_ts).toBeDefined();
    expect(discord.calls.slice(from).filter((c) => c.method === 'POST')).toHaveLength(0);
    await run(report(minutes(1005), 'fail', to, 'kasm'));
    const calls = discord.calls.slice(from);
    const creates = calls.filter((c) => c.method === 'POST' && /^\/channels\/\d+\/messages$/.test(c.path));
    const opening = creates.find((c) => c.path === `/channels/${discord.channel.id}/messages`);
    expect(opening?.body.content).toContain('FAIL kasm · blocking');
    expect(opening?.body.allowed_mentions).toEqual({ parse: [] });
    expect(opening?.body.content).not.toContain('\u202e');
    const ids = opening?.body.components?.[0]?.components?.map((b: { custom_id: string }) => b.custom_id);
    const [alert] = await app.alerts.open(['kasm']);
    expect(ids).toEqual([
      `dbops_alert_ack:${alert?.id}`,
      `dbops_alert_mute_1h:${alert?.id}`,
      `dbops_alert_mute_4h:${alert?.id}`,
      `dbops_alert_mute_24h:${alert?.id}`,
    ]);
    const threadId = alert?.thread?.id ?? '';
    const started = calls.filter((c) => c.path.endsWith(`/messages/${threadId}/threads`));
    expect(started).toHaveLength(1);
    // The thread is named after the alert, its invisible characters shown.
    expect(started[0]?.body.name).toMatch(/^FAIL kasm · blocking: 2 blocked/);
    expect(started[0]?.body.name).not.toContain('\u202e');
    const inThread = () =>
      discord.calls.filter((c) => c.method === 'POST' && c.path === `/channels/${threadId}/messages`);
    expect(inThread().some((c) => String(c.body.content).includes('/db blocking kasm (run as alice'))).toBe(
      true,
    );

    const before = inThread().length;
    await run(report(minutes(1066), 'fail', to, 'kasm'));
    expect(inThread()).toHaveLength(before + 1);
    await run(report(minutes(1070), 'ok', to, 'kasm', 'no blocked sessions'));
    expect(inThread()).toHaveLength(before + 2);
    expect(String(inThread().at(-1)?.body.content)).toContain('resolved: kasm · blocking is ok again');
    for (const c of inThread()) expect(c.body.allowed_mentions).toEqual({ parse: [] });
    // One thread for the whole alert.
    expect(discord.calls.filter((c) => c.path.endsWith(`/messages/${threadId}/threads`))).toHaveLength(1);
  });
});

describe('health declares its checks', () => {
  it('a real blocked session fails the blocking check, and the thread gets the blocking chains', async () => {
    const { openClient } = await import('./helpers/db.js');
    await adminQuery('CREATE TABLE IF NOT EXISTS locked (id int)', [], fx.staging.name);
    const holder = await openClient(fx.staging.url, 'alert-holder');
    const waiter = await openClient(fx.staging.url, 'alert-waiter');
    try {
      await holder.query('BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE');
      const [{ pid } = { pid: 0 }] = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))
        .rows;
      const waiting = waiter.query('SELECT * FROM locked').catch(() => undefined);
      await new Promise((r) => setTimeout(r, 1500));
      now = minutes(2000);
      const health = await as(app, 'alice')('/db health staging --blocked 1s');
      expect(health.result?.data?.checks).toMatchObject({ blocking: { status: 'fail', next: ['blocking'] } });
      const to: ChannelRef = { surface: 'slack', channel: 'CHEALTH' };
      // staging's earlier alert (acknowledged above) resolves first, so this failure opens a new one.
      await run(report(minutes(1990), 'ok', to));
      const base = report(minutes(2000), 'ok', to);
      await run({ ...base, data: health.result?.data });
      const posted = slack.callsOf('chat.postMessage').filter((c) => c.body.channel === 'CHEALTH');
      const opening = posted.find(
        (c) => c.body.thread_ts === undefined && JSON.stringify(c.body).includes('blocking'),
      );
      expect(JSON.stringify(opening?.body.blocks)).toContain('FAIL staging · blocking: 1 blocked');
      const chains = posted.find((c) =>
        JSON.stringify(c.body).includes('/db blocking staging (run as alice'),
      );
      expect(chains?.body.thread_ts).toBe(opening?.response?.ts);
      expect(JSON.stringify(chains?.body.blocks)).toContain(String(pid));
      await holder.query('ROLLBACK');
      await waiting;
    } finally {
      await holder.end();
      await waiter.end();
    }
  });
});

describe('posters', () => {
  it('Slack uploads files into the thread; Discord names an unknown channel and why', async () => {
    const client = new WebClient('xoxb-test', { slackApiUrl: slack.apiUrl, retryConfig: { retries: 0 } });
    const poster = new SlackChannelPoster(client);
    const first = await poster.post({ surface: 'slack', channel: 'CFILES' }, { text: 'backup failed' });
    const from = slack.calls.length;
    await poster.post(
      { surface: 'slack', channel: 'CFILES' },
      { text: 'the log', thread: first, files: [{ name: 'dump.log', data: Buffer.from('pg_dump: error') }] },
    );
    const complete = await slack.call('files.completeUploadExternal', from);
    expect(complete.body.channel_id).toBe('CFILES');
    expect(complete.body.thread_ts).toBe(first.id);
    expect(slack.uploads.at(-1)?.content).toBe('pg_dump: error');

    if (!gateway) throw new Error('no gateway');
    const discordPoster = new DiscordChannelPoster(new DiscordApi(gateway.rest));
    const failed = await discordPoster
      .post({ surface: 'discord', channel: '999' }, { text: 'x' })
      .catch((err: unknown) => err);
    expect(failed).toBeInstanceOf(ChannelPostError);
    expect((failed as Error).message).toBe(
      'cannot post to discord channel 999: 10003: unknown channel (deleted, or not a channel id)',
    );
  });
});

describe('what a result declares is not trusted', () => {
  it('a check naming a destructive operation as next runs nothing and creates no request', async () => {
    const to: ChannelRef = { surface: 'slack', channel: 'CHOSTILE' };
    const base = report(minutes(3000), 'fail', to, 'down');
    const requestsBefore = await adminQuery('SELECT id FROM dbops_requests', [], fx.state.name);
    await run(report(minutes(2990), 'ok', to, 'down'));
    await run({
      ...base,
      data: {
        checks: {
          sneaky: { status: 'fail', detail: 'x', next: ['kill-idle', 'terminate'] },
          // Not in the contract's shape: ignored rather than guessed at.
          broken: { status: 'on fire' },
        },
      },
    });
    const posted = slack.callsOf('chat.postMessage').filter((c) => c.body.channel === 'CHOSTILE');
    expect(JSON.stringify(posted.map((c) => c.body.blocks))).toContain(
      'not run: kill-idle is not a read operation on down',
    );
    expect(await adminQuery('SELECT id FROM dbops_requests', [], fx.state.name)).toEqual(requestsBefore);
    expect(await app.alerts.open(['down'])).toHaveLength(1);
  });

  it('a late report older than the recorded verdict changes nothing; without a channel nothing is posted', async () => {
    const quiet = app.alertObserver(undefined);
    const before = slack.calls.length + discord.calls.length;
    const { post: _nowhere, ...unposted } = report(
      minutes(4000),
      'fail',
      { surface: 'slack', channel: 'C' },
      'down',
    );
    await quiet(unposted);
    // down's sneaky check is open and failing; an older "ok" arriving late must not resolve it.
    await quiet({ ...unposted, finishedAt: minutes(1), data: { checks: { sneaky: { status: 'ok' } } } });
    expect((await app.alerts.open(['down'])).map((a) => a.check)).toContain('sneaky');
    expect(slack.calls.length + discord.calls.length).toBe(before);
  });
});
