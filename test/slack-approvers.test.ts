// Approvers in Slack, through the built bot in HTTP mode with signed requests and the fake Slack: roles
// from user groups (granted, then revoked after a membership change and the refresh), the card sent as a
// DM to each eligible approver and approved from the DM, forged clicks refused, group mentions on the
// card itself (and not again when it is redrawn), an unreadable group named in /readyz; escalation once, with an injected clock.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { webApi } from '@slack/bolt';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { silentLogger } from '../src/core/log.js';
import { SlackApproverNotices } from '../src/surfaces/slack/approvers.js';
import {
  type ApiCall,
  blockAction,
  FakeSlack,
  formBody,
  interactionBody,
  postSigned,
  slashCommand,
} from './fakes/slack.js';
import { as, startApp } from './helpers/app.js';
import { adminQuery, createDatabase } from './helpers/db.js';
import { freePort } from './setup/postgres.js';

const CLI = resolve('dist/src/cli.js');
const SECRET = 'approvers-signing-secret-1a2b';

const CONFIG = `
state:
  url: \${STATE_URL}
limits: { statement_timeout: 5s, lock_timeout: 1s, connect_timeout: 2s }
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
  alice: { slack: T1/UALICE, roles: [oncall] }
role_sources:
  refresh: 1s
  keep_last_known: 1h
  roles:
    dba: { slack_groups: [S0DBA] }
    oncall: { slack_groups: [S0ONCALL] }
    lead: { slack_groups: [S0LEAD] }
    auditor: { slack_groups: [S0MISSING] }
policy:
  staging: { read: [dba, oncall], request: [dba, oncall], approve: [dba], notify: dm, reason_pattern: 'INC-\\d+' }
  production: { read: [dba, oncall], request: [dba, oncall], approve: [dba], notify: mention, escalate_after: 10m, escalate_to: [lead] }
  critical: { read: [dba, oncall], request: [dba, oncall], approve: [dba], approvals: 2, notify: mention }
`;

let fake: FakeSlack;
let child: ReturnType<typeof launch> | undefined;
let url: string;
let healthUrl: string;
let staging: { name: string; url: string };
let stateDb: { name: string; url: string };
const logs: string[] = [];

function launch(configPath: string, port: number, healthPort: number) {
  return execa('node', [CLI, 'start', '--config', configPath], {
    env: {
      PATH: process.env.PATH ?? '',
      STATE_URL: stateDb.url,
      STAGING_URL: staging.url,
      DBOPS_LOG_LEVEL: 'info',
      DBOPS_HTTP_HOST: '127.0.0.1',
      DBOPS_HTTP_PORT: String(healthPort),
      SLACK_API_RETRIES: '0',
      SLACK_BOT_TOKEN: 'xoxb-test',
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_PORT: String(port),
      SLACK_API_URL: fake.apiUrl,
    },
    extendEnv: false,
    reject: false,
    buffer: false,
  });
}

/** Polls `check` until it holds (generous bound; the bot is a separate process). */
async function eventually(check: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  for (const started = Date.now(); Date.now() - started < ms; ) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}; bot log:\n${logs.join('\n')}`);
}

async function post(body: string, secret = SECRET) {
  return await postSigned(url, { secret, body, contentType: 'application/x-www-form-urlencoded' });
}

async function command(user: string, text: string, channel = 'COPS'): Promise<void> {
  const answer = await post(formBody(slashCommand(fake, { user, channel, text })));
  expect(answer.status).toBe(200);
}

function textOf(call: ApiCall): string {
  return JSON.stringify(call.body);
}

async function requestStatus(id: number): Promise<string | undefined> {
  const [row] = await adminQuery<{ status: string }>(
    'SELECT status FROM dbops_requests WHERE id = $1',
    [id],
    stateDb.name,
  );
  return row?.status;
}

beforeAll(async () => {
  [staging, stateDb] = await Promise.all([
    createDatabase('appr_staging', 'CREATE TABLE exams (id int); INSERT INTO exams VALUES (1);'),
    createDatabase('appr_state'),
  ]);
  fake = await FakeSlack.start();
  fake.userGroups.set('S0DBA', ['UDAN', 'UERIN']);
  fake.userGroups.set('S0ONCALL', ['UBOB']);
  fake.userGroups.set('S0LEAD', ['ULEA']);
  const configPath = join(tmpdir(), `dbops-approvers-${stateDb.name}.yaml`);
  writeFileSync(configPath, CONFIG);
  const port = await freePort();
  const healthPort = await freePort();
  url = `http://127.0.0.1:${port}/slack/events`;
  healthUrl = `http://127.0.0.1:${healthPort}`;
  child = launch(configPath, port, healthPort);
  child.stderr?.on('data', (chunk: Buffer) => logs.push(...chunk.toString().split('\n')));
  await eventually(() => logs.some((l) => l.includes('dbops started')), 'dbops started');
  // The groups are read at start.
  await fake.until(() => fake.callsOf('usergroups.users.list').length >= 4, 'the groups read');
});

afterAll(async () => {
  child?.kill('SIGTERM');
  await child;
  await fake?.close();
});

describe('Slack user groups as roles (the whole bot)', () => {
  it('grants a group role, and revokes it after a membership change and the refresh', async () => {
    let from = fake.calls.length;
    await command('UBOB', 'sizes staging');
    const answer = await fake.until(
      () =>
        fake
          .callsOf('chat.postMessage', from)
          .find((c) => textOf(c).includes('exams') || textOf(c).includes('staging')),
      'the sizes answer',
    );
    expect(textOf(answer)).not.toContain('Refused');

    fake.userGroups.set('S0ONCALL', []);
    const reads = fake.callsOf('usergroups.users.list').filter((c) => c.body.usergroup === 'S0ONCALL').length;
    await fake.until(
      () =>
        fake.callsOf('usergroups.users.list').filter((c) => c.body.usergroup === 'S0ONCALL').length >=
        reads + 2,
      'the group read again',
    );
    from = fake.calls.length;
    await command('UBOB', 'sizes staging');
    const refused = await fake.call('chat.postEphemeral', from);
    expect(String(refused.body.text)).toContain('slack:T1/UBOB');
    fake.userGroups.set('S0ONCALL', ['UBOB']);
  });

  it('names a group it cannot read in /readyz', async () => {
    const ready = (await (await fetch(`${healthUrl}/readyz`)).json()) as {
      checks: Record<string, { ok: boolean; detail?: string[] }>;
    };
    expect(ready.checks.slack?.ok).toBe(true);
    expect(ready.checks.slack?.detail?.join('\n')).toContain('S0MISSING cannot be read');
  });
});

describe('approvers told (the whole bot)', () => {
  it('sends the card to each eligible approver as a DM; a DM click approves under the same checks', async () => {
    const from = fake.calls.length;
    await command('UALICE', 'vacuum staging exams --full --reason "INC-42 <!here> bloat"');
    const opened = await fake.until(
      () =>
        fake.callsOf('conversations.open', from).length >= 2
          ? fake.callsOf('conversations.open', from)
          : false,
      'two DMs opened',
    );
    expect(opened.map((c) => c.body.users).sort()).toEqual(['UDAN', 'UERIN']);
    const dm = await fake.until(
      () => fake.callsOf('chat.postMessage', from).find((c) => c.body.channel === 'DUDAN'),
      'the DM to UDAN',
    );
    const dmText = textOf(dm);
    expect(dmText).toContain('needs 1 of: dba');
    expect(dmText).toContain('not <@UALICE>');
    // Slack's <!here> markup in the typed reason is shown as text, never as a mention.
    expect(dmText).toMatch(/INC-42 (@here|&lt;!here&gt;) bloat/);
    expect(dmText).not.toContain('<!here>');
    const approve = (dm.body.blocks as { type: string; elements?: { action_id: string; value: string }[] }[])
      .flatMap((b) => b.elements ?? [])
      .find((e) => e.action_id === 'dbops_approve');
    if (!approve) throw new Error(`no Approve button in the DM: ${dmText}`);
    const id = Number(approve.value);
    expect(await requestStatus(id)).toBe('pending');

    const click = (user: string) =>
      interactionBody(
        blockAction(fake, {
          user,
          channel: `D${user}`,
          messageTs: String(dm.response?.ts),
          actionId: 'dbops_approve',
          value: String(id),
        }),
      );
    // A forged click (not signed with the app's secret) is refused before anything runs.
    expect((await post(click('UDAN'), 'not-the-secret')).status).toBe(401);
    // A signed click by someone who may not approve (bob is oncall) is refused by the core.
    let mark = fake.calls.length;
    expect((await post(click('UBOB'))).status).toBe(200);
    const refusal = await fake.until(
      () => [...fake.callsOf('chat.postEphemeral', mark), ...fake.callsOf('response_url', mark)].at(0),
      'the refusal',
    );
    expect(textOf(refusal)).toContain('Refused');
    expect(await requestStatus(id)).toBe('pending');

    mark = fake.calls.length;
    expect((await post(click('UDAN'))).status).toBe(200);
    await eventually(async () => (await requestStatus(id)) === 'succeeded', 'the request run');
    const audit = await adminQuery<{ event: string; identity: string; reason: string | null }>(
      "SELECT event, identity, detail->>'reason' AS reason FROM dbops_audit WHERE request_id = $1 ORDER BY id",
      [id],
      stateDb.name,
    );
    expect(audit.find((a) => a.event === 'pending')?.reason).toMatch(/^INC-42 .*here bloat$/);
    expect(
      audit.some((a) => a.event === 'approved' || (a.event === 'vote' && a.identity === 'slack:T1/UDAN')),
    ).toBe(true);
  });

  it('refuses a request without the reason the environment requires', async () => {
    const from = fake.calls.length;
    await command('UALICE', 'vacuum staging exams --full');
    const refused = await fake.call('chat.postEphemeral', from);
    expect(String(refused.body.text)).toContain('INC-\\d+');
    expect(fake.callsOf('conversations.open', from)).toEqual([]);
  });

  it('mentions the approver groups on the card itself (blocks and text), and nowhere else', async () => {
    const from = fake.calls.length;
    await command('UALICE', 'vacuum prod exams --full');
    const card = await fake.until(
      () => fake.callsOf('chat.postMessage', from).find((c) => textOf(c).includes('dbops_approve')),
      'the card',
    );
    // Mobile notifications read `text`, desktop ones the blocks: the mention is in both.
    expect(String(card.body.text)).toContain('<!subteam^S0DBA> needs 1 of: dba — not <@UALICE>');
    // In the blocks, the group mention is Block Kit's rich_text usergroup element.
    expect(JSON.stringify(card.body.blocks)).toContain('{"type":"usergroup","usergroup_id":"S0DBA"}');
    expect(JSON.stringify(card.body.blocks)).toContain('needs 1 of: dba — not ');
    await new Promise((r) => setTimeout(r, 500));
    const mentions = fake.callsOf('chat.postMessage', from).filter((c) => textOf(c).includes('subteam'));
    expect(mentions).toEqual([card]);
    expect(fake.callsOf('conversations.open', from)).toEqual([]);
  });

  it('keeps the line on the card after a vote without a new mention; a decided card drops it', async () => {
    const from = fake.calls.length;
    await command('UALICE', 'vacuum crit exams --full');
    const card = await fake.until(
      () => fake.callsOf('chat.postMessage', from).find((c) => textOf(c).includes('dbops_approve')),
      'the card',
    );
    expect(String(card.body.text)).toContain('<!subteam^S0DBA> needs 2 of: dba');
    const ts = String(card.response?.ts);
    const id = Number(/#(\d+)/.exec(String(card.body.text))?.[1]);
    const click = (user: string) =>
      interactionBody(
        blockAction(fake, {
          user,
          channel: String(card.body.channel),
          messageTs: ts,
          threadTs: String(card.body.thread_ts),
          actionId: 'dbops_approve',
          value: String(id),
        }),
      );
    let mark = fake.calls.length;
    expect((await post(click('UDAN'))).status).toBe(200);
    const voted = await fake.until(
      () => fake.callsOf('chat.update', mark).find((c) => c.body.ts === ts),
      'the card redrawn after the vote',
    );
    expect(String(voted.body.text)).toContain('needs 1 of: dba — not <@UALICE>');
    expect(JSON.stringify(voted.body.blocks)).toContain('needs 1 of: dba');
    // The redraw is an edit (Slack pings nobody on chat.update); no new message mentions the group.
    expect(fake.callsOf('chat.postMessage', mark).filter((c) => textOf(c).includes('subteam'))).toEqual([]);

    mark = fake.calls.length;
    expect((await post(click('UERIN'))).status).toBe(200);
    await eventually(async () => (await requestStatus(id)) === 'succeeded', 'the request run');
    const decided = await fake.until(
      () =>
        fake
          .callsOf('chat.update', mark)
          .filter((c) => c.body.ts === ts)
          .find((c) => textOf(c).includes('approved by')),
      'the decided card',
    );
    expect(textOf(decided)).toContain('<@UDAN>');
    expect(textOf(decided)).not.toContain('subteam');
    expect(textOf(decided)).not.toContain('usergroup');
    expect(fake.callsOf('chat.postMessage', mark).filter((c) => textOf(c).includes('subteam'))).toEqual([]);
  });
});

describe('escalation (injected clock)', () => {
  let app: App | undefined;
  afterAll(async () => {
    await app?.close();
  });

  it('escalates a request once to the second group after escalate_after, across replicas', async () => {
    // Requests of the tests above are not this test's concern.
    await adminQuery(
      "UPDATE dbops_requests SET status = 'cancelled' WHERE status = 'pending'",
      [],
      stateDb.name,
    );
    let now = new Date('2030-01-01T10:00:00Z');
    const config = loadConfigText(CONFIG, 'approvers.yaml', {
      STATE_URL: stateDb.url,
      STAGING_URL: staging.url,
    });
    app = await startApp(config, () => now);
    const other = await startApp(config, () => now);
    const client = new webApi.WebClient('xoxb-test', {
      slackApiUrl: fake.apiUrl,
      retryConfig: { retries: 0 },
    });
    const notices = new SlackApproverNotices({ client, config, log: silentLogger() });
    const told: Promise<void>[] = [];
    app.escalations.onEscalate((request) => told.push(notices.escalated(request)));
    other.escalations.onEscalate((request) => told.push(notices.escalated(request)));

    const request = await as(app, 'T1/UALICE', 'slack')('/db vacuum prod exams --full');
    expect(request.status).toBe('pending');
    const id = request.requestId ?? -1;
    await app.state.setRefs(id, {
      slack: { channel: 'COPS', ts: '1700000999.000100', thread: '1700000998.000100' },
    });

    now = new Date(now.getTime() + 9 * 60_000);
    expect(await app.escalations.sweep()).toEqual([]);
    now = new Date(now.getTime() + 2 * 60_000);
    const from = fake.calls.length;
    const [first, second] = await Promise.all([app.escalations.sweep(), other.escalations.sweep()]);
    expect([...first, ...second].map((r) => r.id)).toEqual([id]);
    await Promise.all(told);
    const posted = fake.callsOf('chat.postMessage', from);
    expect(posted).toHaveLength(1);
    expect(posted[0]?.body).toMatchObject({ channel: 'COPS', thread_ts: '1700000998.000100' });
    expect(String(posted[0]?.body.text)).toContain('Escalated: <!subteam^S0LEAD>');
    expect(String(posted[0]?.body.text)).toContain('needs 1 of: lead');

    now = new Date(now.getTime() + 60 * 60_000);
    expect(await app.escalations.sweep()).toEqual([]);
    await other.close();
  });
});
