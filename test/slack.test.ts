// The Slack surface: the built bot process (`dbops start`) against a local fake Slack and real PostgreSQL,
// in Socket Mode and in HTTP mode with requests signed for real; and the Block Kit renderer's limits.
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { createApp } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { silentLogger } from '../src/core/log.js';
import type { Reply } from '../src/core/reply.js';
import type { OperationResult } from '../src/core/types.js';
import type { ApprovalRequest } from '../src/state/types.js';
import { renderCard } from '../src/surfaces/slack/cards.js';
import { commandText } from '../src/surfaces/slack/identity.js';
import { keptAliveHttp } from '../src/surfaces/slack/keep-alive-fetch.js';
import {
  type Block,
  escapeText,
  renderReply,
  resultBlocks,
  SLACK_LIMITS,
  textBlocks,
} from '../src/surfaces/slack/render.js';
import { SlackThreads } from '../src/surfaces/slack/threads.js';
import { SlackApi } from '../src/surfaces/slack/web-api.js';
import {
  type ApiCall,
  appMention,
  BOT_USER,
  blockAction,
  envelope,
  FakeSlack,
  formBody,
  interactionBody,
  postSigned,
  sign,
  slashCommand,
  viewSubmission,
} from './fakes/slack.js';
import { adminQuery, createDatabase, openClient } from './helpers/db.js';
import { freePort } from './setup/postgres.js';

const CLI = resolve('dist/src/cli.js');

const CONFIG = `
state:
  url: \${STATE_URL}
limits:
  statement_timeout: 5s
  lock_timeout: 1s
  row_cap: 500
  connect_timeout: 2s
targets:
  staging:
    url: \${STAGING_URL}
    environment: staging
  scratch:
    url: \${STAGING_URL}
    environment: scratch
people:
  alice: { slack: T1/UALICE, cli: alice, roles: [dba] }
  bob:   { slack: T1/UBOB, cli: bob, roles: [oncall] }
  carol: { slack: T1/UCAROL, roles: [developer] }
policy:
  staging: { read: [everyone], write: [oncall, dba], request: [oncall, dba], approve: [oncall, dba] }
  scratch: { read: [everyone], write: [oncall, dba], request: [oncall, dba], approve: [oncall, dba], expiry: 1s }
`;

/** 150 tables in schema "wide"; the biggest is named so that, unescaped, it would ping the channel. */
const WIDE_SQL = `
CREATE TABLE exams (id serial primary key, title text);
INSERT INTO exams (title) SELECT md5(i::text) FROM generate_series(1, 200) i;
CREATE SCHEMA wide;
CREATE TABLE wide."<!channel> ping" (id int, filler text);
INSERT INTO wide."<!channel> ping" SELECT i, repeat('x', 200) FROM generate_series(1, 2000) i;
DO $$ BEGIN
  FOR i IN 1..149 LOOP EXECUTE format('CREATE TABLE wide.%I (id int)', 'table_with_a_long_name_' || lpad(i::text, 3, '0')); END LOOP;
END $$;
`;

let staging: { name: string; url: string };
let stateDb: { name: string; url: string };
let configPath: string;
const held: pg.Client[] = [];
/** Every bot's log lines (pino JSON on stderr), checked for errors at the end. */
const allLogs: string[][] = [];

function launch(env: Record<string, string>, healthPort: number) {
  return execa('node', [CLI, 'start', '--config', configPath], {
    env: {
      PATH: process.env.PATH ?? '',
      STATE_URL: stateDb.url,
      STAGING_URL: staging.url,
      DBOPS_LOG_LEVEL: 'info',
      // The service's /healthz, /readyz and /metrics, on a free local port.
      DBOPS_HTTP_HOST: '127.0.0.1',
      DBOPS_HTTP_PORT: String(healthPort),
      SLACK_API_RETRIES: '0',
      ...env,
    },
    extendEnv: false,
    reject: false,
    buffer: false,
  });
}

interface Bot {
  child: ReturnType<typeof launch>;
  logs: string[];
  /** Resolves when a log line containing `text` appears (after `from` lines). */
  logged(text: string, from?: number): Promise<string>;
  /** The service's health endpoints (GET /readyz reports each chat surface). */
  healthUrl: string;
  stop(): Promise<number | undefined>;
}

async function startBot(env: Record<string, string>): Promise<Bot> {
  const healthPort = await freePort();
  const child = launch(env, healthPort);
  const logs: string[] = [];
  allLogs.push(logs);
  const waiters = new Set<() => void>();
  let pending = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    logs.push(...lines);
    for (const wake of waiters) wake();
  });
  let exited = false;
  void child.then(() => {
    exited = true;
    for (const wake of waiters) wake();
  });
  const logged = (text: string, from = 0) =>
    new Promise<string>((resolveLine, reject) => {
      const check = () => {
        const line = logs.slice(from).find((l) => l.includes(text));
        if (line) {
          done();
          resolveLine(line);
        } else if (exited) {
          done();
          reject(new Error(`the bot exited before logging "${text}":\n${logs.join('\n')}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`the bot did not log "${text}" in time:\n${logs.join('\n')}`));
      }, 15_000);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  await logged('dbops started');
  return {
    child,
    logs,
    logged,
    healthUrl: `http://127.0.0.1:${healthPort}`,
    async stop() {
      child.kill('SIGTERM');
      const result = await child;
      return result.exitCode;
    },
  };
}

/** A client session on staging that the bot may terminate; returns its pid. */
async function victim(name: string): Promise<number> {
  const client = await openClient(staging.url, name);
  held.push(client);
  const [row] = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows;
  if (!row) throw new Error('no pid');
  return row.pid;
}

/** Where the bot stored a request's card (it writes it just after posting the card, so this waits for it). */
async function storedRefs(id: number): Promise<{ channel: string; ts: string; thread: string }> {
  for (let waited = 0; waited < 5000; waited += 50) {
    const [row] = await adminQuery<{ refs: { slack?: { channel: string; ts: string; thread: string } } }>(
      'SELECT refs FROM dbops_requests WHERE id = $1',
      [id],
      stateDb.name,
    );
    if (row?.refs.slack) return row.refs.slack;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`request #${id} has no Slack refs`);
}

function blocksOf(call: ApiCall): Block[] {
  return (call.body.blocks ?? []) as Block[];
}

function textOf(call: ApiCall): string {
  return JSON.stringify(call.body);
}

/** A click on the approval card's Approve button, delivered over the Socket Mode connection. */
async function clickApproveOverSocket(
  fake: FakeSlack,
  user: string,
  id: number,
  cardTs: string,
  threadTs: string,
): Promise<void> {
  await fake.deliver(
    envelope(
      'interactive',
      blockAction(fake, {
        user,
        channel: 'COPS',
        messageTs: cardTs,
        threadTs,
        actionId: 'dbops_approve',
        value: String(id),
      }),
    ),
  );
}

/** The Approve/Deny buttons of a card message, if it has any. */
function buttons(call: ApiCall): { action_id: string; value: string }[] {
  return blocksOf(call).flatMap((b) =>
    b.type === 'actions' ? (b.elements as { action_id: string; value: string }[]) : [],
  );
}

beforeAll(async () => {
  [staging, stateDb] = await Promise.all([
    createDatabase('slack_staging', WIDE_SQL),
    createDatabase('slack_state'),
  ]);
  configPath = join(tmpdir(), `dbops-slack-${stateDb.name}.yaml`);
  writeFileSync(configPath, CONFIG);
});

afterAll(async () => {
  await Promise.all(held.map((c) => c.end().catch(() => {})));
});

describe('Slack in Socket Mode (the whole bot process)', () => {
  let fake: FakeSlack;
  let bot: Bot;

  beforeAll(async () => {
    fake = await FakeSlack.start();
    bot = await startBot({
      SLACK_BOT_TOKEN: 'xoxb-test',
      SLACK_APP_TOKEN: 'xapp-1-test-app-token',
      SLACK_API_URL: fake.apiUrl,
    });
    await fake.connected(1);
  });

  afterAll(async () => {
    await bot?.stop();
    await fake?.close();
  });

  /** Sends a slash command and returns its ack. */
  async function command(user: string, text: string, channel = 'COPS') {
    const env = envelope('slash_commands', slashCommand(fake, { user, channel, text }));
    return { env, ack: await fake.deliver(env) };
  }

  /** Sends a command that starts an approval; returns the parent, the card and the request id. */
  async function request(text: string) {
    const from = fake.calls.length;
    await command('UALICE', text);
    const parent = await fake.call('chat.postMessage', from, 1);
    const card = await fake.call('chat.postMessage', from, 2);
    const [approve] = buttons(card);
    if (!approve) throw new Error(`no buttons on the card: ${textOf(card)}`);
    return { parent, card, id: Number(approve.value) };
  }

  it('acks a command at once, posts one parent message and the result in its thread', async () => {
    const from = fake.calls.length;
    const { env, ack } = await command('UALICE', 'sizes staging');
    expect(ack.envelope_id).toBe(env.envelope_id);
    const parent = await fake.call('chat.postMessage', from, 1);
    const result = await fake.call('chat.postMessage', from, 2);
    // Acked before any Web API call was made for it.
    expect(ack.seq).toBeLessThan(parent.seq);
    expect(parent.body).toMatchObject({ channel: 'COPS', text: '<@UALICE> ran `/db sizes staging`' });
    expect(parent.body.thread_ts).toBeUndefined();
    expect(parent.authorization).toBe('Bearer xoxb-test');
    const parentTs = fake.calls.find((c) => c.method === 'chat.postMessage' && c.body.thread_ts)?.body
      .thread_ts;
    expect(result.body).toMatchObject({ channel: 'COPS', thread_ts: parentTs });
    expect(textOf(result)).toContain('exams');
    expect(textOf(result)).toMatch(/\d+(\.\d)? (kB|MB|bytes)/);
    expect(fake.calls.slice(from).map((c) => c.method)).toEqual(['chat.postMessage', 'chat.postMessage']);
  });

  it('answers refusals and usage errors privately, posting nothing in the channel', async () => {
    let from = fake.calls.length;
    await command('UCAROL', 'terminate staging 12345');
    const refusal = await fake.call('chat.postEphemeral', from);
    expect(refusal.body).toMatchObject({ channel: 'COPS', user: 'UCAROL' });
    expect(String(refusal.body.text)).toMatch(/^Refused: /);
    expect(fake.callsOf('chat.postMessage', from)).toEqual([]);

    from = fake.calls.length;
    await command('UALICE', 'sizez staging');
    const usage = await fake.call('chat.postEphemeral', from);
    expect(usage.body).toMatchObject({ channel: 'COPS', user: 'UALICE' });
    expect(String(usage.body.text)).toContain('did you mean `sizes`');

    from = fake.calls.length;
    await command('UNOBODY', 'sizes staging');
    const stranger = await fake.call('chat.postEphemeral', from);
    expect(stranger.body).toMatchObject({ user: 'UNOBODY' });
    expect(String(stranger.body.text)).toContain('slack:T1/UNOBODY');
    // (An earlier answer's CSV upload may still be finishing: files.* calls are not this command's.)
    expect(
      fake.calls
        .slice(from)
        .map((c) => c.method)
        .filter((m) => !m.startsWith('files.')),
    ).toEqual(['chat.postEphemeral']);
  });

  it('answers a mention inside a thread in that thread', async () => {
    const from = fake.calls.length;
    const env = envelope(
      'events_api',
      appMention({
        user: 'UBOB',
        channel: 'CINCIDENT',
        text: `<@${BOT_USER}> blocking staging`,
        ts: '1690000000.000500',
        threadTs: '1690000000.000100',
      }),
    );
    await fake.deliver(env);
    const answer = await fake.call('chat.postMessage', from);
    expect(answer.body).toMatchObject({ channel: 'CINCIDENT', thread_ts: '1690000000.000100' });
    expect(textOf(answer)).toContain('blocking staging');
    expect(fake.calls.slice(from).map((c) => c.method)).toEqual(['chat.postMessage']);
  });

  it('answers privately through response_url where the bot cannot post (not in the channel)', async () => {
    fake.fail = (method, body) =>
      body.channel === 'CPRIVATE' && method.startsWith('chat.') ? 'channel_not_found' : undefined;
    try {
      const from = fake.calls.length;
      await command('UBOB', 'sizes staging', 'CPRIVATE');
      const answer = await fake.call('response_url', from);
      expect(answer.body).toMatchObject({ response_type: 'ephemeral', replace_original: false });
      expect(textOf(answer)).toContain('invite me');
      expect(textOf(answer)).toContain('exams');
      expect(fake.calls.slice(from).map((c) => [c.method, c.response?.ok ?? true])).toEqual([
        ['chat.postMessage', false],
        ['chat.postEphemeral', false],
        ['response_url', true],
      ]);
    } finally {
      fake.fail = () => undefined;
    }
  });

  it('runs a re-delivered command once', async () => {
    const from = fake.calls.length;
    const logFrom = bot.logs.length;
    const env = envelope(
      'slash_commands',
      slashCommand(fake, { user: 'UBOB', channel: 'COPS', text: 'connections staging' }),
    );
    await fake.deliver(env);
    await fake.deliver({ ...env, retry_attempt: 1, retry_reason: 'timeout' });
    await bot.logged('repeated delivery dropped', logFrom);
    await fake.call('chat.postMessage', from, 2);
    expect(fake.callsOf('chat.postMessage', from).map((c) => c.body.text)).toEqual([
      '<@UBOB> ran `/db connections staging`',
      expect.stringContaining('connections staging'),
    ]);
  });

  it('approval: a card in the thread, self- and unauthorized clicks refused privately, another approver runs it', async () => {
    const pid = await victim('slack-victim-1');
    const { parent, card, id } = await request(`terminate staging ${pid}`);
    const parentTs = card.body.thread_ts as string;
    expect(parent.body.text).toBe(`<@UALICE> ran \`/db terminate staging ${pid}\``);
    expect(card.body).toMatchObject({ channel: 'COPS', thread_ts: parentTs });
    expect(buttons(card)).toEqual([
      expect.objectContaining({ action_id: 'dbops_approve', value: String(id) }),
      expect.objectContaining({ action_id: 'dbops_deny', value: String(id) }),
    ]);
    const cardText = textOf(card);
    for (const fact of [
      'terminate',
      'staging',
      'Environment',
      '<@UALICE>',
      `\`${pid}\``,
      '<!date^',
      'slack-victim-1',
    ]) {
      expect(cardText).toContain(fact);
    }
    // Where the card lives is stored with the request, for restarts and other replicas.
    const ref = await storedRefs(id);
    const cardTs = ref.ts;
    expect(ref).toEqual({ channel: 'COPS', ts: card.response?.ts, thread: parentTs });

    const clickOn = async (user: string) => {
      const payload = blockAction(fake, {
        user,
        channel: 'COPS',
        messageTs: cardTs,
        threadTs: parentTs,
        actionId: 'dbops_approve',
        value: String(id),
      });
      const env = envelope('interactive', payload);
      await fake.deliver(env);
      return env;
    };

    let from = fake.calls.length;
    await clickOn('UALICE');
    const self = await fake.call('chat.postEphemeral', from);
    expect(self.body).toMatchObject({ channel: 'COPS', user: 'UALICE', thread_ts: parentTs });
    expect(String(self.body.text)).toContain(`you requested #${id}`);

    from = fake.calls.length;
    await clickOn('UCAROL');
    const carol = await fake.call('chat.postEphemeral', from);
    expect(carol.body).toMatchObject({ channel: 'COPS', user: 'UCAROL', thread_ts: parentTs });
    expect(String(carol.body.text)).toMatch(/^Refused: /);

    from = fake.calls.length;
    const bobClick = await clickOn('UBOB');
    const update = await fake.call('chat.update', from);
    expect(update.body).toMatchObject({ channel: 'COPS', ts: cardTs });
    expect(buttons(update)).toEqual([]);
    expect(textOf(update)).toContain('approved by <@UBOB>');
    const outcome = await fake.until(
      () => fake.callsOf('chat.postMessage', from).find((c) => textOf(c).includes('terminated')),
      'the outcome in the thread',
    );
    expect(outcome.body).toMatchObject({ channel: 'COPS', thread_ts: parentTs });
    expect(textOf(outcome)).toContain('approved by <@UBOB>');
    expect(update.seq).toBeLessThan(outcome.seq);
    const alive = await adminQuery('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
    expect(alive).toEqual([]);
    // The self and unauthorized clicks were refused and audited by the core.
    const refusals = await adminQuery<{ identity: string; outcome: string }>(
      "SELECT identity, outcome FROM dbops_audit WHERE event = 'refused' AND request_id = $1 ORDER BY id",
      [id],
      stateDb.name,
    );
    expect(refusals).toEqual([
      { identity: 'slack:T1/UALICE', outcome: 'self_approval' },
      { identity: 'slack:T1/UCAROL', outcome: 'denied' },
    ]);

    // Slack re-delivers the click: nothing runs again, nothing is posted again.
    const logFrom = bot.logs.length;
    from = fake.calls.length;
    await fake.deliver({ ...bobClick, retry_attempt: 1, retry_reason: 'timeout' });
    await bot.logged('repeated delivery dropped', logFrom);
    // The closing 'executed' record follows the reply (written a moment later): wait for it, then check
    // that it stays one.
    const executed = async () =>
      await adminQuery<{ n: string }>(
        "SELECT count(*) AS n FROM dbops_audit WHERE event = 'executed' AND request_id = $1",
        [id],
        stateDb.name,
      );
    await expect.poll(executed, { timeout: 10_000 }).not.toEqual([{ n: '0' }]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await executed()).toEqual([{ n: '1' }]);
  });

  it('deny asks for a reason in a modal; the card then says who denied it and why', async () => {
    const pid = await victim('slack-victim-2');
    const { card, id } = await request(`terminate staging ${pid}`);
    const parentTs = card.body.thread_ts as string;
    const ref = await storedRefs(id);
    const cardTs = ref.ts;
    let from = fake.calls.length;
    const payload = blockAction(fake, {
      user: 'UBOB',
      channel: 'COPS',
      messageTs: cardTs,
      threadTs: parentTs,
      actionId: 'dbops_deny',
      value: String(id),
    });
    await fake.deliver(envelope('interactive', payload));
    const open = await fake.call('views.open', from);
    const view = open.body.view as { callback_id: string; private_metadata: string };
    expect(open.body.trigger_id).toBe(payload.trigger_id);
    expect(view.callback_id).toBe('dbops_deny_reason');
    expect(JSON.parse(view.private_metadata)).toEqual({ id, channel: 'COPS', thread: parentTs });
    expect(fake.calls.slice(from).map((c) => c.method)).toEqual(['views.open']);

    from = fake.calls.length;
    await fake.deliver(
      envelope(
        'interactive',
        viewSubmission({
          user: 'UBOB',
          viewId: 'VDENY1',
          callbackId: view.callback_id,
          privateMetadata: view.private_metadata,
          reason: 'not during the "exam" window --really',
        }),
      ),
    );
    const update = await fake.call('chat.update', from);
    expect(update.body).toMatchObject({ channel: 'COPS', ts: cardTs });
    expect(buttons(update)).toEqual([]);
    expect(textOf(update)).toContain('denied by <@UBOB>: not during the \\"exam\\" window --really');
    const said = await fake.call('chat.postMessage', from);
    expect(said.body).toMatchObject({ channel: 'COPS', thread_ts: parentTs });
    expect(String(said.body.text)).toContain(`#${id} denied`);
    const [row] = await adminQuery<{ status: string }>(
      'SELECT status FROM dbops_requests WHERE id = $1',
      [id],
      stateDb.name,
    );
    expect(row?.status).toBe('denied');
  });

  it('redraws a card whose request was decided elsewhere when someone clicks it', async () => {
    const pid = await victim('slack-victim-5');
    const { card, id } = await request(`terminate staging ${pid}`);
    const parentTs = card.body.thread_ts as string;
    const ref = await storedRefs(id);
    let from = fake.calls.length;
    // bob approves from a terminal: another process, no Slack in it.
    const exec = await execa(
      'node',
      [CLI, 'exec', '--config', configPath, '--as', 'bob', '--', `/db approve ${id}`],
      {
        env: { PATH: process.env.PATH ?? '', STATE_URL: stateDb.url, STAGING_URL: staging.url },
        extendEnv: false,
        reject: false,
      },
    );
    expect(exec.exitCode).toBe(0);
    expect(fake.calls.slice(from)).toEqual([]);
    from = fake.calls.length;
    await clickApproveOverSocket(fake, 'UCAROL', id, ref.ts, parentTs);
    const refusal = await fake.call('chat.postEphemeral', from);
    expect(refusal.body).toMatchObject({ user: 'UCAROL', thread_ts: parentTs });
    const update = await fake.call('chat.update', from);
    expect(update.body).toMatchObject({ channel: 'COPS', ts: ref.ts });
    expect(buttons(update)).toEqual([]);
    expect(textOf(update)).toContain('approved by bob — done');
  });

  it('updates the card of an expired request', async () => {
    const pid = await victim('slack-victim-3');
    const { card, id } = await request(`terminate scratch ${pid}`);
    const parentTs = card.body.thread_ts as string;
    const ref = await storedRefs(id);
    // Counted from here: the periodic expiry sweep may expire it (and update the card) before the click.
    const from = fake.calls.length;
    await new Promise((r) => setTimeout(r, 1200));
    await clickApproveOverSocket(fake, 'UBOB', id, ref.ts, parentTs);
    const update = await fake.call('chat.update', from);
    expect(update.body).toMatchObject({ channel: 'COPS', ts: ref.ts });
    expect(buttons(update)).toEqual([]);
    expect(textOf(update)).toContain('expired');
    const refusal = await fake.call('chat.postEphemeral', from);
    expect(refusal.body).toMatchObject({ user: 'UBOB', thread_ts: parentTs });
    expect(String(refusal.body.text)).toContain('expired');
    const alive = await adminQuery('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
    expect(alive).toHaveLength(1);
  });

  it('uploads a result too large for a message as CSV into the thread, escaped so nobody is pinged', async () => {
    const from = fake.calls.length;
    await command('UALICE', 'table-sizes staging --schema wide --limit 200');
    const parent = await fake.call('chat.postMessage', from, 1);
    const result = await fake.call('chat.postMessage', from, 2);
    const parentTs = result.body.thread_ts;
    expect(parent.body.text).toBe('<@UALICE> ran `/db table-sizes staging --schema wide --limit 200`');
    const blocks = blocksOf(result);
    expect(blocks.length).toBeLessThanOrEqual(SLACK_LIMITS.blocksPerMessage);
    for (const block of blocks) {
      if (block.type === 'section' && block.text) expect(block.text.text.length).toBeLessThanOrEqual(3000);
    }
    expect(textOf(result)).toMatch(/\d+ of 150 rows shown · \d+ more rows — full result attached as CSV/);
    expect(textOf(result)).toContain('&lt;!channel&gt; ping');
    for (const call of fake.calls.slice(from)) expect(textOf(call)).not.toMatch(/<!channel>/);

    const ask = await fake.call('files.getUploadURLExternal', from);
    expect(ask.body.filename).toMatch(/^table-sizes-staging-r[a-z2-9]{5}\.csv$/);
    const upload = await fake.call('upload', from);
    const complete = await fake.call('files.completeUploadExternal', from);
    expect(complete.body).toMatchObject({ channel_id: 'COPS', thread_ts: parentTs });
    expect(complete.body.files).toEqual([
      { id: upload.body.fileId, title: expect.stringContaining('full result (150 rows)') },
    ]);
    const csv = String(upload.body.content);
    expect(Number(ask.body.length)).toBe(Buffer.byteLength(csv));
    expect(csv.split('\r\n')[0]).toContain('relation');
    expect(csv.split('\r\n').filter((l) => l.length > 0)).toHaveLength(151);
    expect(csv).toContain('"wide.""<!channel> ping"""');
    expect(fake.calls.slice(from).map((c) => c.method)).toEqual([
      'chat.postMessage',
      'chat.postMessage',
      'files.getUploadURLExternal',
      'upload',
      'files.completeUploadExternal',
    ]);
  });

  it('reports a lost Socket Mode connection in /readyz, reconnects and keeps taking commands', async () => {
    const readyz = async () => {
      const response = await fetch(`${bot.healthUrl}/readyz`);
      return {
        status: response.status,
        body: (await response.json()) as { checks: Record<string, { ok: boolean; error?: string }> },
      };
    };
    expect(await readyz()).toMatchObject({ status: 200, body: { checks: { slack: { ok: true } } } });
    const logFrom = bot.logs.length;
    const sockets = fake.sockets.length;
    // Slack drops the connection and, for a while, will not give a new one.
    fake.fail = (method) => (method === 'apps.connections.open' ? 'internal_error' : undefined);
    fake.dropConnections();
    await bot.logged('Socket Mode connection lost', logFrom);
    await fake.until(
      () => fake.callsOf('apps.connections.open').at(-1)?.response?.ok === false,
      'a refused reconnect',
    );
    const down = await readyz();
    expect(down.status).toBe(503);
    expect(down.body.checks.slack).toEqual({
      ok: false,
      error: expect.stringMatching(
        /^Socket Mode connection lost since .*; reconnecting \(attempt \d+; last error: .*internal_error/,
      ),
    });
    fake.fail = () => undefined;
    await fake.connected(sockets + 1);
    await bot.logged('Socket Mode connection is back', logFrom);
    expect(await readyz()).toMatchObject({ status: 200, body: { checks: { slack: { ok: true } } } });
    const from = fake.calls.length;
    await command('UBOB', 'sizes staging');
    await fake.call('chat.postMessage', from, 2);
    expect(fake.callsOf('apps.connections.open').length).toBeGreaterThanOrEqual(2);
  });

  it('keeps the buttons of a pending request working after a restart', async () => {
    const pid = await victim('slack-victim-4');
    const { card, id } = await request(`terminate staging ${pid}`);
    const parentTs = card.body.thread_ts as string;
    const ref = await storedRefs(id);
    expect(await bot.stop()).toBe(0);
    const sockets = fake.sockets.length;
    bot = await startBot({
      SLACK_BOT_TOKEN: 'xoxb-test',
      SLACK_APP_TOKEN: 'xapp-1-test-app-token',
      SLACK_API_URL: fake.apiUrl,
    });
    await fake.connected(sockets + 1);
    const from = fake.calls.length;
    await clickApproveOverSocket(fake, 'UBOB', id, ref.ts, parentTs);
    const update = await fake.call('chat.update', from);
    expect(update.body).toMatchObject({ channel: 'COPS', ts: ref.ts });
    expect(textOf(update)).toContain('approved by <@UBOB>');
    const outcome = await fake.until(
      () => fake.callsOf('chat.postMessage', from).find((c) => textOf(c).includes('terminated')),
      'the outcome after the restart',
    );
    expect(outcome.body).toMatchObject({ channel: 'COPS', thread_ts: parentTs });
  });
});

describe('Slack in HTTP mode (signed requests)', () => {
  const SECRET = 'test-signing-secret-8f2c';
  let fake: FakeSlack;
  let bot: Bot;
  let url: string;

  beforeAll(async () => {
    fake = await FakeSlack.start();
    const port = await freePort();
    url = `http://127.0.0.1:${port}/slack/events`;
    bot = await startBot({
      SLACK_BOT_TOKEN: 'xoxb-test',
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_PORT: String(port),
      SLACK_API_URL: fake.apiUrl,
    });
  });

  afterAll(async () => {
    await bot?.stop();
    await fake?.close();
  });

  it('answers a correctly signed command; refuses a forged signature and a stale timestamp (401, nothing runs)', async () => {
    const from = fake.calls.length;
    const metricsBefore = await (await fetch(`${bot.healthUrl}/metrics`)).text();
    const forged = await postSigned(url, {
      secret: 'not-the-secret',
      body: formBody(slashCommand(fake, { user: 'UALICE', channel: 'COPS', text: 'kill-idle staging' })),
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(forged.status).toBe(401);
    const body = formBody(slashCommand(fake, { user: 'UALICE', channel: 'COPS', text: 'kill-idle staging' }));
    const stale = Math.floor(Date.now() / 1000) - 6 * 60;
    const old = await postSigned(url, {
      secret: SECRET,
      body,
      contentType: 'application/x-www-form-urlencoded',
      timestamp: stale,
      signature: sign(SECRET, stale, body),
    });
    expect(old.status).toBe(401);
    // Refusals are counted, and logged with the reason and the address, never the body (at most one line
    // per reason every 10 s: the first of this bot's refusals may have come from an earlier test).
    const forgedLine = await bot.logged('does not match the signing secret');
    expect(JSON.parse(forgedLine)).toMatchObject({
      level: 'warn',
      reason: 'bad_signature',
      remote: expect.stringContaining('127.0.0.1'),
    });
    expect(forgedLine).not.toContain('kill-idle');
    await bot.logged('timestamp over 5 minutes off');
    const metrics = await (await fetch(`${bot.healthUrl}/metrics`)).text();
    const refused = (text: string, reason: string) =>
      Number(
        text.match(
          new RegExp(`^dbops_slack_requests_refused_total\\{reason="${reason}"\\} (\\d+)`, 'm'),
        )?.[1] ?? 0,
      );
    expect(refused(metrics, 'bad_signature') - refused(metricsBefore, 'bad_signature')).toBe(1);
    expect(refused(metrics, 'stale_timestamp') - refused(metricsBefore, 'stale_timestamp')).toBe(1);

    const good = await postSigned(url, {
      secret: SECRET,
      body: formBody(slashCommand(fake, { user: 'UBOB', channel: 'COPS', text: 'sizes staging' })),
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(good.status).toBe(200);
    await fake.call('chat.postMessage', from, 2);
    expect(fake.calls.slice(from).map((c) => [c.method, c.body.text])).toEqual([
      ['chat.postMessage', '<@UBOB> ran `/db sizes staging`'],
      ['chat.postMessage', expect.stringContaining('sizes staging')],
    ]);
    const audited = await adminQuery<{ n: string }>(
      "SELECT count(*) AS n FROM dbops_audit WHERE operation = 'kill-idle'",
      [],
      stateDb.name,
    );
    expect(audited).toEqual([{ n: '0' }]);
  });

  it("answers Slack's URL check, refuses oversized and unparseable bodies, serves its health path, times acks", async () => {
    const challenge = await postSigned(url, {
      secret: SECRET,
      body: JSON.stringify({ token: 'unused', challenge: 'c-123', type: 'url_verification' }),
      contentType: 'application/json',
    });
    expect(challenge).toEqual({ status: 200, text: JSON.stringify({ challenge: 'c-123' }) });
    const huge = await postSigned(url, {
      secret: SECRET,
      body: `text=${'x'.repeat(1024 * 1024 + 10)}`,
      contentType: 'application/x-www-form-urlencoded',
    }).catch((err: unknown) => ({ status: 0, text: String(err) }));
    // The receiver answers 413 and closes; a client still sending may see the connection end instead.
    expect([413, 0]).toContain(huge.status);
    const garbled = await postSigned(url, {
      secret: SECRET,
      body: '{"type": ',
      contentType: 'application/json',
    });
    expect(garbled.status).toBe(400);
    const health = await fetch(url.replace('/slack/events', '/slack/healthz'));
    expect([health.status, await health.json()]).toEqual([200, { ok: true }]);
    expect((await fetch(url.replace('/slack/events', '/elsewhere'), { method: 'POST' })).status).toBe(404);

    const from = fake.calls.length;
    const command = await postSigned(url, {
      secret: SECRET,
      body: formBody(slashCommand(fake, { user: 'UBOB', channel: 'COPS', text: 'help' })),
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(command.status).toBe(200);
    await fake.call('chat.postEphemeral', from);

    const metrics = await (await fetch(`${bot.healthUrl}/metrics`)).text();
    expect(metrics).toMatch(/^dbops_slack_requests_refused_total\{reason="too_large"\} 1$/m);
    expect(metrics).toMatch(/^dbops_slack_requests_refused_total\{reason="unparseable"\} 1$/m);
    // Every accepted command's acknowledgement is timed.
    const acked = Number(metrics.match(/^dbops_slack_ack_seconds_count (\d+)$/m)?.[1]);
    expect(acked).toBeGreaterThanOrEqual(1);
  });

  it('cuts off a client that never finishes its headers (408), and keeps serving others', async () => {
    const port = Number(new URL(url).port);
    const started = Date.now();
    const socket = connect(port, '127.0.0.1', () =>
      socket.write('POST /slack/events HTTP/1.1\r\nHost: x\r\n'),
    );
    let answer = '';
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString();
    });
    // Meanwhile a whole request is answered at once.
    const health = await fetch(url.replace('/slack/events', '/slack/healthz'));
    expect(health.status).toBe(200);
    await once(socket, 'close');
    expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
    // Node's 60 s headers timeout would still be waiting.
    expect(Date.now() - started).toBeLessThan(30_000);
  }, 40_000);

  it('does not start when its Slack port is taken, and says which port', async () => {
    const squatter = createServer();
    await new Promise<void>((done) => squatter.listen(0, done));
    const taken = (squatter.address() as { port: number }).port;
    try {
      const child = launch(
        {
          SLACK_BOT_TOKEN: 'xoxb-test',
          SLACK_SIGNING_SECRET: SECRET,
          SLACK_PORT: String(taken),
          SLACK_API_URL: fake.apiUrl,
        },
        await freePort(),
      );
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const result = await child;
      expect(result.exitCode).not.toBe(0);
      expect(stderr).toContain(`cannot listen for Slack requests on port ${taken}`);
      expect(stderr).toContain('EADDRINUSE');
    } finally {
      await new Promise((done) => squatter.close(done));
    }
  });

  it('runs a retried event once (same event_id, x-slack-retry-num)', async () => {
    const from = fake.calls.length;
    const logFrom = bot.logs.length;
    const event = JSON.stringify(
      appMention({
        user: 'UBOB',
        channel: 'CINCIDENT',
        text: `<@${BOT_USER}> connections staging`,
        ts: '1690000001.000500',
        threadTs: '1690000001.000100',
        eventId: 'EvRETRY1',
      }),
    );
    const first = await postSigned(url, { secret: SECRET, body: event, contentType: 'application/json' });
    const retry = await postSigned(url, {
      secret: SECRET,
      body: event,
      contentType: 'application/json',
      retryNum: 1,
    });
    expect([first.status, retry.status]).toEqual([200, 200]);
    await bot.logged('repeated delivery dropped', logFrom);
    await fake.call('chat.postMessage', from);
    expect(fake.calls.slice(from).map((c) => [c.method, c.body.thread_ts])).toEqual([
      ['chat.postMessage', '1690000001.000100'],
    ]);
  });

  it('takes button clicks as signed interaction payloads', async () => {
    const pid = await victim('slack-victim-http');
    let from = fake.calls.length;
    await postSigned(url, {
      secret: SECRET,
      body: formBody(slashCommand(fake, { user: 'UBOB', channel: 'COPS', text: `terminate staging ${pid}` })),
      contentType: 'application/x-www-form-urlencoded',
    });
    const card = await fake.call('chat.postMessage', from, 2);
    const [approve] = buttons(card);
    const id = Number(approve?.value);
    const ref = await storedRefs(id);
    from = fake.calls.length;
    const clicked = await postSigned(url, {
      secret: SECRET,
      body: interactionBody(
        blockAction(fake, {
          user: 'UBOB',
          channel: 'COPS',
          messageTs: ref.ts,
          threadTs: ref.thread,
          actionId: 'dbops_approve',
          value: String(id),
        }),
      ),
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(clicked.status).toBe(200);
    const self = await fake.call('chat.postEphemeral', from);
    expect(self.body).toMatchObject({ user: 'UBOB', thread_ts: ref.thread });
    expect(String(self.body.text)).toContain(`you requested #${id}`);
  });
});

describe('the bot processes', () => {
  it('logged no error and no secret', () => {
    const lines = allLogs.flat();
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.filter((l) => l.includes('"level":"error"'))).toEqual([]);
    expect(lines.filter((l) => /xoxb-test|xapp-1-test|test-signing-secret/.test(l))).toEqual([]);
  });
});

describe('progress of a long operation', () => {
  it('goes to one message in the thread, edited as lines come', async () => {
    const fake = await FakeSlack.start();
    const config = loadConfigText(CONFIG, 'slack.yaml', { STATE_URL: stateDb.url, STAGING_URL: staging.url });
    const app = await createApp({ config, log: silentLogger() });
    const http = keptAliveHttp(5_000);
    try {
      const api = new SlackApi({
        apiUrl: fake.apiUrl,
        token: 'xoxb-test',
        http,
        retries: 0,
        log: silentLogger(),
      });
      const threads = new SlackThreads({ api, app, config, log: silentLogger() });
      const conversation = threads.conversation({ channel: 'COPS', user: 'UALICE', parentText: 'parent' });
      conversation.progress('vacuum public.a (1.2 GB)…');
      conversation.progress('1 of 2 done; vacuum public.b…');
      await conversation.flushProgress();
      conversation.progress('2 of 2 done <!channel>');
      await conversation.flushProgress();
      expect(fake.calls.map((c) => [c.method, c.body.thread_ts ?? null])).toEqual([
        ['chat.postMessage', null],
        ['chat.postMessage', expect.any(String)],
        ['chat.update', null],
      ]);
      const [, first, edit] = fake.calls;
      expect(textOf(first as ApiCall)).toContain('1 of 2 done; vacuum public.b');
      expect(edit?.body).toMatchObject({ channel: 'COPS', ts: first?.response?.ts });
      expect(textOf(edit as ApiCall)).toContain('2 of 2 done &lt;!channel&gt;');
    } finally {
      http.close();
      await app.close();
      await fake.close();
    }
  });
});

describe('the Slack app manifest', () => {
  it('declares what the surface uses: /db, the scopes, app_mention, interactivity and Socket Mode', () => {
    const manifest = parseYaml(readFileSync('config/slack-manifest.yaml', 'utf8')) as {
      features: { slash_commands: { command: string; should_escape: boolean }[] };
      oauth_config: { scopes: { bot: string[] } };
      settings: {
        event_subscriptions: { bot_events: string[] };
        interactivity: { is_enabled: boolean };
        socket_mode_enabled: boolean;
      };
    };
    expect(manifest.features.slash_commands).toEqual([
      expect.objectContaining({ command: '/db', should_escape: false }),
    ]);
    expect(manifest.oauth_config.scopes.bot.sort()).toEqual(
      [
        'app_mentions:read',
        'chat:write',
        'chat:write.public',
        'commands',
        'files:read',
        'files:write',
      ].sort(),
    );
    expect(manifest.settings.event_subscriptions.bot_events).toEqual(['app_mention']);
    expect(manifest.settings.interactivity.is_enabled).toBe(true);
    expect(manifest.settings.socket_mode_enabled).toBe(true);
  });
});

describe('Slack rendering', () => {
  const columns = [
    { key: 'name', label: 'name', kind: 'text' as const },
    { key: 'bytes', label: 'size', kind: 'bytes' as const },
  ];

  it('escapes database values so a row cannot ping, link or close a code block', () => {
    const result: OperationResult = {
      headline: 'Tables of <!here> & co',
      columns,
      rows: [
        { name: '<!channel>', bytes: 1536 },
        { name: '<@U123|boss> ```oops``` <https://evil.test|click>', bytes: 3 * 1024 ** 3 },
      ],
      truncated: false,
      notes: ['skipped <#C1>'],
    };
    const { blocks, omittedRows } = resultBlocks(result);
    const json = JSON.stringify(blocks);
    expect(omittedRows).toBe(0);
    expect(json).not.toMatch(/<[!@#]|<https?:/);
    expect(json).toContain('&lt;!channel&gt;');
    expect(json).toContain('&lt;!here&gt; &amp; co');
    expect(json).toContain('1.5 kB');
    expect(json).toContain('3.0 GB');
    const table = blocks.find((b) => b.type === 'section' && b.text?.text.startsWith('```'));
    expect(table?.type === 'section' && table.text?.text.match(/```/g)).toHaveLength(2);
    for (const block of blocks) {
      const texts = block.type === 'section' ? [block.text] : block.type === 'context' ? block.elements : [];
      for (const text of texts) expect(text).toMatchObject({ type: 'mrkdwn', verbatim: true });
    }
    expect(escapeText('a & <b>')).toBe('a &amp; &lt;b&gt;');
  });

  it('sizes tables to a section, counts the rows left out and attaches the full result', () => {
    const rows = Array.from({ length: 400 }, (_, i) => ({
      name: `relation_${i}_${'&'.repeat(30)}`,
      bytes: i * 1000,
    }));
    const reply: Reply = {
      status: 'ok',
      requestId: 42,
      operation: 'table-sizes',
      target: 'kasm',
      risk: 'read',
      result: { columns, rows, truncated: true },
      message: 'table-sizes kasm — done in 12ms',
      text: 'unused',
      ephemeral: false,
    };
    const rendered = renderReply(reply);
    expect(rendered.blocks.length).toBeLessThanOrEqual(SLACK_LIMITS.blocksPerMessage);
    for (const block of rendered.blocks) {
      if (block.type === 'section')
        expect(block.text?.text.length ?? 0).toBeLessThanOrEqual(SLACK_LIMITS.text);
    }
    const json = JSON.stringify(rendered.blocks);
    const shown = /(\d+) of 400 rows shown · (\d+) more rows — full result attached as CSV/.exec(json);
    expect(Number(shown?.[1]) + Number(shown?.[2])).toBe(400);
    expect(json).toContain('more rows exist in the database');
    expect(rendered.files).toEqual([
      expect.objectContaining({
        filename: 'table-sizes-kasm-42.csv',
        content: expect.stringContaining('relation_399'),
      }),
    ]);
    // Privately (no file can go with an ephemeral), the count says the rest is not shown.
    expect(JSON.stringify(renderReply(reply, { attach: false }))).toContain(
      'not shown (Slack message limit)',
    );
  });

  it('splits long text into code sections within the block limit', () => {
    const text = Array.from({ length: 3000 }, (_, i) => `line ${i} ${'<'.repeat(40)}`).join('\n');
    const blocks = textBlocks(text);
    expect(blocks.length).toBeLessThanOrEqual(SLACK_LIMITS.blocksPerMessage);
    for (const block of blocks) {
      if (block.type === 'section')
        expect(block.text?.text.length ?? 0).toBeLessThanOrEqual(SLACK_LIMITS.text);
    }
    expect(JSON.stringify(blocks.at(-1))).toMatch(/more lines cut/);
  });

  it('draws the approval card with buttons while pending and the decision once decided', () => {
    const request: ApprovalRequest = {
      id: 7,
      status: 'pending',
      operation: 'kill-idle',
      target: 'staging',
      environment: 'staging',
      args: { olderThan: 300 },
      command: 'kill-idle staging --older-than 5m',
      risk: 'destructive',
      requester: { person: 'alice', identity: 'slack:T1/UALICE', surface: 'slack' },
      preview: {
        result: {
          headline: '1 session would be terminated',
          columns,
          rows: [{ name: '<!everyone>', bytes: 1 }],
          truncated: false,
        },
        state: null,
      },
      approvalsRequired: 1,
      votes: [],
      createdAt: new Date('2025-01-01T10:00:00Z'),
      expiresAt: new Date('2025-01-01T10:15:00Z'),
      updatedAt: new Date('2025-01-01T10:00:00Z'),
      refs: {},
    };
    const pending = renderCard(request, ['oncall', 'dba']);
    const actions = pending.blocks.find((b) => b.type === 'actions');
    expect(actions).toMatchObject({
      elements: [
        { action_id: 'dbops_approve', value: '7', style: 'primary' },
        { action_id: 'dbops_deny', value: '7', style: 'danger' },
      ],
    });
    const json = JSON.stringify(pending.blocks);
    for (const fact of [
      'kill-idle',
      'staging',
      '<@UALICE>',
      '`--older-than 5m`',
      '<!date^1735726500^',
      'oncall or dba',
    ]) {
      expect(json).toContain(fact);
    }
    expect(json).not.toContain('<!everyone>');
    const approved = renderCard(
      {
        ...request,
        status: 'running',
        votes: [
          { person: 'bob', identity: 'slack:T1/UBOB', surface: 'slack', vote: 'approve', at: new Date() },
        ],
      },
      ['oncall', 'dba'],
    );
    expect(approved.blocks.some((b) => b.type === 'actions')).toBe(false);
    expect(JSON.stringify(approved.blocks)).toContain('approved by <@UBOB>');
    const byCli = renderCard(
      {
        ...request,
        status: 'denied',
        reason: '<!here> no',
        votes: [{ person: 'dave', identity: 'cli:dave', surface: 'cli', vote: 'deny', at: new Date() }],
      },
      [],
    );
    expect(JSON.stringify(byCli.blocks)).toContain('denied by dave: &lt;!here&gt; no');
  });

  it('reads commands out of Slack message markup', () => {
    expect(commandText('<@UBOT> lookup kasm user <mailto:a@b.test|a@b.test>', 'UBOT')).toBe(
      'lookup kasm user a@b.test',
    );
    expect(commandText('<@UBOT|dbops>   blocking   kasm', 'UBOT')).toBe('blocking kasm');
    expect(commandText('deny 7 a &lt; b &amp;&amp; c', 'UBOT')).toBe('deny 7 a < b && c');
  });
});
