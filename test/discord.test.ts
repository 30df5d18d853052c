// The Discord surface: the built bot process (`node dist/src/cli.js start`) against a local fake Discord
// (REST + gateway WebSocket, test/fakes/discord.ts) and real PostgreSQL; health and registration in-process.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { silentLogger } from '../src/core/log.js';
import type { OperationResult } from '../src/core/types.js';
import type { ApprovalRequest } from '../src/state/types.js';
import { startDiscord, startDiscordSurface } from '../src/surfaces/discord/index.js';
import { registerDiscordCommands } from '../src/surfaces/discord/register.js';
import { LIMITS, renderRequestCard, renderResult, renderText } from '../src/surfaces/discord/render.js';
import { readDiscordSettings } from '../src/surfaces/discord/settings.js';
import type { RunningSurface } from '../src/surfaces/types.js';
import { type Call, FakeDiscord, type FakeMessage, fakeUser, type JsonBody } from './fakes/discord.js';
import { adminQuery, createDatabase, openClient } from './helpers/db.js';
import { freePort } from './setup/postgres.js';

const CLI = resolve('dist/src/cli.js');

const ALICE = fakeUser('100000000000000001', 'alice');
const BOB = fakeUser('100000000000000002', 'bob');
const CAROL = fakeUser('100000000000000003', 'carol');
const DAVE = fakeUser('100000000000000004', 'dave');
const ERIN = fakeUser('100000000000000005', 'erin');
const MALLORY = fakeUser('100000000000000009', 'mallory');

const YAML = `
state:
  url: \${STATE_URL}
limits:
  statement_timeout: 5s
  lock_timeout: 2s
  row_cap: 500
  connect_timeout: 2s
targets:
  staging:
    url: \${STAGING_URL}
    environment: staging
    description: exam platform
  sandbox:
    url: \${STAGING_URL}
    environment: sandbox
  kasm:
    url: \${KASM_URL}
    environment: production
    packs: [kasm]
    settings:
      kasm: { token_batch_size: 100 }
people:
  alice: { discord: "${ALICE.id}", cli: alice, roles: [dba] }
  bob:   { discord: "${BOB.id}", cli: bob, roles: [oncall] }
  carol: { discord: "${CAROL.id}", roles: [developer] }
  dave:  { discord: "${DAVE.id}", roles: [dba] }
  erin:  { discord: "${ERIN.id}", roles: [dba] }
policy:
  staging:    { read: [everyone], write: [oncall, dba], request: [oncall, dba], approve: [oncall, dba] }
  sandbox:    { read: [everyone], write: [oncall, dba], request: [oncall, dba], approve: [oncall, dba], expiry: 1s }
  production: { read: [oncall, dba], write: [dba], request: [oncall, dba], approve: [dba], approvals: 2 }
`;

let fake: FakeDiscord;
let dbEnv: Record<string, string>;
let configPath: string;
let config: Config;
let stateDb: string;
let kasmDb: string;
function spawnBot(port: number) {
  return execa('node', [CLI, 'start', '--config', configPath], {
    env: {
      ...dbEnv,
      ...fake.env(),
      PATH: process.env.PATH ?? '',
      DBOPS_LOG_LEVEL: 'info',
      DBOPS_HTTP_HOST: '127.0.0.1',
      DBOPS_HTTP_PORT: String(port),
    },
    extendEnv: false,
    reject: false,
    timeout: 60_000,
  });
}
let bot: { proc: ReturnType<typeof spawnBot>; output: () => string; healthUrl: string } | undefined;
/** Everything every bot process logged (DISCORD_TEST_LOG=file keeps it). */
let allOutput = '';

async function startBot(): Promise<void> {
  let output = '';
  const port = await freePort();
  const proc = spawnBot(port);
  bot = { proc, output: () => output, healthUrl: `http://127.0.0.1:${port}` };
  await new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`the bot did not connect:\n${output}`)), 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      allOutput += chunk.toString();
      if (output.includes('"msg":"discord connected"')) {
        clearTimeout(timer);
        resolveReady();
      }
    };
    proc.stderr?.on('data', onData);
    proc.stdout?.on('data', onData);
    void proc.then((r) => {
      clearTimeout(timer);
      reject(new Error(`the bot exited (${r.exitCode}):\n${output}`));
    });
  });
}

async function stopBot(): Promise<void> {
  if (!bot) return;
  bot.proc.kill('SIGTERM');
  const result = await bot.proc;
  bot = undefined;
  expect(result.exitCode, result.stderr?.toString()).toBe(0);
}

beforeAll(async () => {
  const [state, staging, kasm] = await Promise.all([
    createDatabase('dstate'),
    createDatabase(
      'dstaging',
      `CREATE TABLE exams (id serial primary key, title text);
       INSERT INTO exams (title) SELECT md5(i::text) FROM generate_series(1, 2000) i;
       CREATE TABLE "@everyone" (id int, note text);
       INSERT INTO "@everyone" SELECT i, repeat('x', 200) FROM generate_series(1, 3000) i;
       DO $$ BEGIN FOR i IN 1..120 LOOP EXECUTE format('CREATE TABLE filler_%s (id int)', i); END LOOP; END $$;`,
    ),
    createDatabase(
      'dkasm',
      `CREATE TABLE session_tokens (session_token text PRIMARY KEY, user_id int, session_token_date timestamptz,
                                    expiration timestamptz);
       INSERT INTO session_tokens
         SELECT md5(i::text), i % 7, now() - interval '2 days', now() - interval '1 day' FROM generate_series(1, 1000) i;
       INSERT INTO session_tokens
         SELECT md5((-i)::text), i, now(), now() + interval '1 day' FROM generate_series(1, 5) i;`,
    ),
  ]);
  stateDb = state.name;
  kasmDb = kasm.name;
  dbEnv = { STATE_URL: state.url, STAGING_URL: staging.url, KASM_URL: kasm.url };
  config = loadConfigText(YAML, 'discord-test.yaml', dbEnv);
  configPath = join(tmpdir(), `dbops-discord-${state.name}.yaml`);
  writeFileSync(configPath, YAML);
  fake = await FakeDiscord.start();
  await startBot();
});

afterAll(async () => {
  if (process.env.DISCORD_TEST_LOG) writeFileSync(process.env.DISCORD_TEST_LOG, allOutput);
  if (process.env.DISCORD_TEST_DUMP)
    writeFileSync(process.env.DISCORD_TEST_DUMP, JSON.stringify([...fake.messages.values()], null, 1));
  if (bot) {
    bot.proc.kill('SIGTERM');
    await bot.proc;
  }
  await fake?.stop();
});

// ---- helpers ----------------------------------------------------------------------------------------------

function isCallback(i: { id: string }) {
  return (c: Call) => c.method === 'POST' && c.path.startsWith(`/interactions/${i.id}/`);
}

function isWebhook(i: { token: string }, method: string, suffix = '') {
  return (c: Call) => c.method === method && c.path === `/webhooks/${fake.applicationId}/${i.token}${suffix}`;
}

const ORIGINAL = '/messages/@original';

/** The bot's answer in place of the deferral. */
async function editedOriginal(i: { token: string }): Promise<Call> {
  return await fake.waitForCall(isWebhook(i, 'PATCH', ORIGINAL));
}

function originalMessage(i: { id: string }): FakeMessage {
  const id = fake.interactions.get(i.id)?.originalId;
  const message = id ? fake.messages.get(id) : undefined;
  if (!message) throw new Error('no original response');
  return message;
}

function customIds(message: { components: JsonBody[] }): string[] {
  return message.components.flatMap((row) => row.components.map((c: { custom_id: string }) => c.custom_id));
}

async function requestId(fromCard: FakeMessage): Promise<number> {
  const match = /dbops:approve:(\d+)/.exec(customIds(fromCard).join(' '));
  if (!match?.[1]) throw new Error(`no approve button on ${JSON.stringify(fromCard.components)}`);
  return Number(match[1]);
}

/** Requests an operation that waits for approval and returns its card once the thread intro is posted. */
async function requestApproval(user = ALICE, args = 'exams --full', target = 'staging') {
  const i = fake.command(user, { operation: 'vacuum', target, args });
  await editedOriginal(i);
  const card = originalMessage(i);
  const id = await requestId(card);
  const threadCall = await fake.waitForCall(
    (c) => c.method === 'POST' && c.path === `/channels/${card.channel_id}/messages/${card.id}/threads`,
  );
  await fake.waitForCall((c) => c.method === 'POST' && c.path === `/channels/${card.id}/messages`);
  return { i, card, id, threadCall, thread: card.id };
}

async function threadMessages(threadId: string, count: number): Promise<Call[]> {
  const posts = () =>
    fake.calls.filter((c) => c.method === 'POST' && c.path === `/channels/${threadId}/messages`);
  const deadline = Date.now() + 10_000;
  while (posts().length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  return posts();
}

async function auditCount(id: number, event: string): Promise<number> {
  const rows = await adminQuery<{ n: string }>(
    'SELECT count(*)::text AS n FROM dbops_audit WHERE request_id = $1 AND event = $2',
    [id, event],
    stateDb,
  );
  return Number(rows[0]?.n ?? 0);
}

/** The closing 'executed' record follows the reply (written just after it): wait for it, then check it stays one. */
async function executedOnce(id: number): Promise<number> {
  await expect.poll(() => auditCount(id, 'executed'), { timeout: 10_000 }).toBeGreaterThan(0);
  await new Promise((resolve) => setTimeout(resolve, 300));
  return await auditCount(id, 'executed');
}

// ---- the bot process -------------------------------------------------------------------------------------

describe('the Discord bot process', () => {
  it('connects through the gateway URL that GET /gateway/bot hands out, with non-privileged intents', () => {
    const gatewayCall = fake.calls.find((c) => c.path === '/gateway/bot');
    expect(gatewayCall?.auth).toBe(`Bot ${fake.token}`);
    const identify = fake.received.find((p) => p.op === 2);
    expect(identify?.d.token).toBe(fake.token);
    // Guilds (1) | GuildMessages (512); not MessageContent (privileged).
    expect(identify?.d.intents).toBe(1 | 512);
    expect(bot?.output()).not.toContain(fake.token);
  });

  it('defers a command at once, then edits the answer in: a table in a code block', async () => {
    const i = fake.command(CAROL, { operation: 'sizes', target: 'staging' });
    const ack = await fake.waitForCall(isCallback(i));
    expect(ack.body).toEqual({ type: 5, data: { flags: 0 } });
    expect(ack.at - (fake.interactions.get(i.id)?.dispatchedAt ?? 0)).toBeLessThan(3000);
    const edit = await editedOriginal(i);
    expect(edit.body.content).toMatch(/sizes staging/);
    expect(edit.body.content).toContain('```');
    expect(edit.body.content).toContain('exams');
    expect(edit.body.allowed_mentions).toEqual({ parse: [] });
    expect(edit.body.content.length).toBeLessThanOrEqual(2000);
    // Nothing private, nothing deleted, no thread for an answer that is complete.
    expect(fake.callsOf(i).map((c) => `${c.method} ${c.path.replace(i.token, 'TOKEN')}`)).toEqual([
      `POST /interactions/${i.id}/TOKEN/callback`,
      `PATCH /webhooks/${fake.applicationId}/TOKEN${ORIGINAL}`,
    ]);
    expect(originalMessage(i).flags & 64).toBe(0);
  });

  it('autocompletes operations the person may run (with the target pack) and targets they may see', async () => {
    const bobTargets = fake.autocomplete(BOB, {}, 'target');
    const bobChoices = (await fake.waitForCall(isCallback(bobTargets))).body;
    expect(bobChoices.type).toBe(8);
    expect(bobChoices.data.choices.map((c: { value: string }) => c.value)).toEqual([
      'staging',
      'sandbox',
      'kasm',
    ]);

    const carolTargets = fake.autocomplete(CAROL, {}, 'target');
    const carolChoices = (await fake.waitForCall(isCallback(carolTargets))).body.data.choices;
    expect(carolChoices.map((c: { value: string }) => c.value)).toEqual(['staging', 'sandbox']);

    const bobOps = fake.autocomplete(BOB, { operation: 'kasm', target: 'kasm' }, 'operation');
    const ops = (await fake.waitForCall(isCallback(bobOps))).body.data.choices as {
      name: string;
      value: string;
    }[];
    expect(ops.map((c) => c.value)).toEqual(expect.arrayContaining(['kasm-user', 'kasm-sessions']));
    expect(ops.every((c) => c.name.length <= 100)).toBe(true);
    // carol cannot read production, so the kasm pack is not hers to run.
    const carolOps = fake.autocomplete(CAROL, { operation: 'kasm' }, 'operation');
    const carolOpChoices = (await fake.waitForCall(isCallback(carolOps))).body.data.choices;
    expect(carolOpChoices.map((c: { value: string }) => c.value)).not.toContain('kasm-user');

    const all = fake.autocomplete(ALICE, { operation: '' }, 'operation');
    expect((await fake.waitForCall(isCallback(all))).body.data.choices.length).toBe(25);
  });

  it('answers refusals and usage errors only to the person: one ephemeral initial response, nothing public', async () => {
    const channelMessages = () =>
      [...fake.messages.values()].filter((m) => !(m.flags & 64) && m.author.id === fake.bot.id);
    const publicBefore = channelMessages().length;

    const refused = fake.command(CAROL, { operation: 'sizes', target: 'kasm' });
    const answer = await fake.waitForCall(isCallback(refused));
    expect(answer.body.type).toBe(4);
    expect(answer.body.data.flags).toBe(64);
    expect(answer.body.data.content).toMatch(/^Refused: carol may not run read operations on production/);
    expect(answer.at - (fake.interactions.get(refused.id)?.dispatchedAt ?? 0)).toBeLessThan(3000);
    // No "thinking…", no "Answered privately.", nothing deleted: the callback is the whole conversation.
    expect(fake.callsOf(refused).map((c) => c.method)).toEqual(['POST']);
    expect(originalMessage(refused).flags & 64).toBe(64);

    const invalid = fake.command(CAROL, { operation: 'sizez', target: 'staging' });
    expect((await fake.waitForCall(isCallback(invalid))).body).toMatchObject({
      type: 4,
      data: {
        flags: 64,
        content: expect.stringMatching(/^Invalid: unknown operation `sizez` — did you mean `sizes`/),
      },
    });
    expect(fake.callsOf(invalid)).toHaveLength(1);

    // A long private answer (help) is split into ephemeral messages that each fit: the first is the
    // initial response, the rest ephemeral follow-ups.
    const help = fake.command(BOB, { operation: 'help' });
    const first = await fake.waitForCall(isCallback(help));
    await fake.waitForCall(isWebhook(help, 'POST'));
    await new Promise((r) => setTimeout(r, 300));
    const rest = fake.callsOf(help).filter((c) => c.method === 'POST' && c.path.startsWith('/webhooks/'));
    expect(rest.length).toBeGreaterThan(0);
    expect(fake.callsOf(help).every((c) => c.method === 'POST')).toBe(true);
    const parts = [first.body.data, ...rest.map((c) => c.body)];
    for (const part of parts) {
      expect(part.flags).toBe(64);
      expect(part.content).toMatch(/^```\n[\s\S]+\n```$/);
      expect(part.content.length).toBeLessThanOrEqual(2000);
    }
    expect(parts.map((p) => p.content).join('\n')).toContain('kill-idle');

    const stranger = fake.command(MALLORY, { operation: 'sizes', target: 'staging' });
    expect((await fake.waitForCall(isCallback(stranger))).body).toMatchObject({
      type: 4,
      data: {
        flags: 64,
        content: expect.stringContaining(`discord:${MALLORY.id} is not in dbops' people list`),
      },
    });
    // None of them put anything in the channel.
    expect(channelMessages().length).toBe(publicBefore);
  });

  it('defers a slow read publicly, then edits the answer in; a private answer after it settles the deferral', async () => {
    // The audit table locked in the state database holds every command until the test lets go.
    const lock = await openClient(dbEnv.STATE_URL ?? '');
    try {
      await lock.query('BEGIN');
      await lock.query('LOCK TABLE dbops_audit IN ACCESS EXCLUSIVE MODE');
      const slow = fake.command(CAROL, { operation: 'sizes', target: 'staging' });
      const ack = await fake.waitForCall(isCallback(slow));
      expect(ack.body).toEqual({ type: 5, data: { flags: 0 } });
      expect(ack.at - (fake.interactions.get(slow.id)?.dispatchedAt ?? 0)).toBeLessThan(3000);
      expect(ack.at - (fake.interactions.get(slow.id)?.dispatchedAt ?? 0)).toBeGreaterThan(500);
      const refusedSlowly = fake.command(CAROL, { operation: 'sizes', target: 'kasm' });
      expect((await fake.waitForCall(isCallback(refusedSlowly))).body).toEqual({
        type: 5,
        data: { flags: 0 },
      });
      await lock.query('COMMIT');

      const edit = await editedOriginal(slow);
      expect(edit.body.content).toContain('exams');
      expect(originalMessage(slow).flags & 64).toBe(0);
      expect(originalMessage(slow).deleted).toBe(false);
      // Deferred publicly before the answer was known: settled, answered privately, the deferral deleted.
      await fake.waitForCall(isWebhook(refusedSlowly, 'DELETE', ORIGINAL));
      expect(fake.callsOf(refusedSlowly).map((c) => c.method)).toEqual(['POST', 'PATCH', 'POST', 'DELETE']);
    } finally {
      await lock.query('ROLLBACK').catch(() => undefined);
      await lock.end();
    }
  });

  it('defers at once a command delivered late, and runs nothing when Discord no longer takes it', async () => {
    try {
      // 2.5 s old on arrival: no time for a window, so deferred first; the refusal then settles it.
      fake.deliveredLateMs = 2_500;
      const late = fake.command(CAROL, { operation: 'sizes', target: 'kasm' });
      expect((await fake.waitForCall(isCallback(late))).body).toEqual({ type: 5, data: { flags: 0 } });
      await fake.waitForCall(isWebhook(late, 'DELETE', ORIGINAL));
      expect(fake.callsOf(late).map((c) => c.method)).toEqual(['POST', 'PATCH', 'POST', 'DELETE']);

      // 3.5 s old: Discord refuses the acknowledgement, and the command is not run (nothing audited).
      const audited = async () =>
        Number(
          (await adminQuery<{ n: string }>('SELECT count(*)::text AS n FROM dbops_audit', [], stateDb))[0]?.n,
        );
      const before = await audited();
      fake.deliveredLateMs = 3_500;
      const expired = fake.command(CAROL, { operation: 'sizes', target: 'staging' });
      await fake.waitForCall(isCallback(expired));
      await new Promise((r) => setTimeout(r, 500));
      expect(fake.callsOf(expired)).toHaveLength(1);
      expect(fake.interactions.get(expired.id)?.ack).toBeUndefined();
      expect(await audited()).toBe(before);
    } finally {
      fake.deliveredLateMs = 0;
    }
  });

  it('posts an approval card with buttons and a thread; refuses self-approval and unauthorized clicks privately', async () => {
    const { card, id, threadCall } = await requestApproval();
    expect(customIds(card)).toEqual([`dbops:approve:${id}`, `dbops:deny:${id}`]);
    expect(card.embeds[0].title).toBe(`#${id} vacuum staging exams --full`);
    expect(threadCall.body).toEqual({
      name: `#${id} vacuum staging exams --full`,
      auto_archive_duration: 1440,
    });
    const [intro] = await threadMessages(card.id, 1);
    expect(intro?.body.content).toContain(`Request #${id} needs 1 approval from oncall or dba — not alice`);
    expect(
      (await adminQuery('SELECT refs FROM dbops_requests WHERE id = $1', [id], stateDb))[0]?.refs,
    ).toEqual({
      discord: { channel: fake.channel.id, message: card.id, thread: card.id },
    });

    const self = fake.click(ALICE, card.id, `dbops:approve:${id}`);
    expect((await fake.waitForCall(isCallback(self))).body).toEqual({ type: 5, data: { flags: 64 } });
    const selfAnswer = await editedOriginal(self);
    expect(selfAnswer.body.content).toMatch(
      /^Refused: you requested #\d+; a different person must approve it/,
    );
    expect(originalMessage(self).flags & 64).toBe(64);

    const carol = fake.click(CAROL, card.id, `dbops:approve:${id}`);
    expect((await editedOriginal(carol)).body.content).toMatch(
      /^Refused: carol may not approve requests on staging/,
    );

    // Both refusals are audited; the card still has its buttons and nothing ran.
    expect(await auditCount(id, 'refused')).toBe(2);
    expect(
      fake.calls.some(
        (c) => c.method === 'PATCH' && c.path === `/channels/${card.channel_id}/messages/${card.id}`,
      ),
    ).toBe(false);
    expect(customIds(fake.messages.get(card.id) as FakeMessage)).toHaveLength(2);
  });

  it('runs an approval by another person once, even on a double click; the buttons go at once', async () => {
    const { card, id } = await requestApproval();
    const first = fake.click(BOB, card.id, `dbops:approve:${id}`);
    const second = fake.click(BOB, card.id, `dbops:approve:${id}`);
    // The same delivery again (a replay) is dropped: it is never acknowledged twice.
    fake.redeliver(first.payload);
    const answers = await Promise.all([editedOriginal(first), editedOriginal(second)]);
    const texts = answers.map((a) => a.body.content as string);
    expect(texts.filter((t) => t.startsWith('✅'))).toHaveLength(1);
    expect(texts.filter((t) => t.startsWith('Refused:'))).toHaveLength(1);
    expect(fake.callsOf(first).filter((c) => c.path.endsWith('/callback'))).toHaveLength(1);
    expect(await executedOnce(id)).toBe(1);

    const thread = await threadMessages(card.id, 3);
    const cardEdits = () =>
      fake.calls.filter(
        (c) => c.method === 'PATCH' && c.path === `/channels/${card.channel_id}/messages/${card.id}`,
      );
    const removed = cardEdits()[0];
    expect(removed?.body.components).toEqual([]);
    const succeeded = thread.find((c) => String(c.body.content).includes('succeeded'));
    expect(removed && succeeded && removed.at <= succeeded.at).toBe(true);
    expect(thread.map((c) => c.body.content)).toEqual([
      expect.stringContaining(`Request #${id} needs`),
      expect.stringMatching(/approved by bob — running now/),
      expect.stringMatching(/succeeded \(approved by bob\)/),
    ]);
    await expect
      .poll(() => fake.messages.get(card.id)?.embeds[0]?.fields?.[0]?.value)
      .toBe('succeeded (approved by bob)');
    expect(fake.messages.get(card.id)?.components).toEqual([]);
  });

  it('needs two approvals on production: the first keeps the buttons, the second runs it with progress in the thread', async () => {
    const i = fake.command(ALICE, { operation: 'clean-expired-tokens', target: 'kasm' });
    await editedOriginal(i);
    const card = originalMessage(i);
    const id = await requestId(card);
    await threadMessages(card.id, 1);

    const dave = fake.click(DAVE, card.id, `dbops:approve:${id}`);
    expect((await editedOriginal(dave)).body.content).toBe(
      `Approval 1 of 2 recorded for #${id}; it needs another approver.`,
    );
    await expect
      .poll(() => fake.messages.get(card.id)?.embeds[0]?.fields?.[0]?.value)
      .toBe('waiting for approval — 1 of 2 (approved by dave)');
    expect(customIds(fake.messages.get(card.id) as FakeMessage)).toHaveLength(2);

    const erin = fake.click(ERIN, card.id, `dbops:approve:${id}`);
    expect((await editedOriginal(erin)).body.content).toMatch(
      /^✅ #\d+ clean-expired-tokens kasm — approved by dave, erin, done/,
    );
    const thread = await threadMessages(card.id, 5);
    expect(thread.map((c) => c.body.content)).toEqual([
      expect.stringContaining(`Request #${id} needs 2 approvals from dba — not alice`),
      expect.stringContaining('dave approved (1 of 2); waiting for 1 more approval'),
      expect.stringMatching(/approved by dave, erin — running now/),
      '```\nexpired session_tokens: 1,000 rows so far\n```',
      expect.stringMatching(/succeeded \(approved by dave, erin\)/),
    ]);
    expect(await adminQuery('SELECT count(*)::int AS n FROM session_tokens', [], kasmDb)).toEqual([{ n: 5 }]);
  });

  it('asks a reason in a modal on Deny; the submission denies the request as the clicker', async () => {
    const { card, id } = await requestApproval();
    const click = fake.click(BOB, card.id, `dbops:deny:${id}`);
    const modal = (await fake.waitForCall(isCallback(click))).body;
    expect(modal.type).toBe(9);
    expect(modal.data.custom_id).toBe(`dbops:deny-reason:${id}`);
    expect(modal.data.components[0].components[0]).toMatchObject({
      type: 4,
      custom_id: 'reason',
      required: true,
    });

    const submit = fake.submitModal(
      BOB,
      `dbops:deny-reason:${id}`,
      { reason: 'not during "exams" week' },
      card.id,
    );
    expect((await fake.waitForCall(isCallback(submit))).body).toEqual({ type: 5, data: { flags: 64 } });
    expect((await editedOriginal(submit)).body.content).toBe(`Denied #${id}: not during "exams" week.`);
    const thread = await threadMessages(card.id, 2);
    expect(thread[1]?.body.content).toContain(
      'denied by bob — nothing ran.\nReason: not during "exams" week',
    );
    await expect.poll(() => fake.messages.get(card.id)?.components).toEqual([]);
    expect(await auditCount(id, 'denied')).toBe(1);
    expect(await auditCount(id, 'executed')).toBe(0);
  });

  it('fits a big result in a code block and attaches the full result as CSV; @everyone pings nobody', async () => {
    const i = fake.command(BOB, { operation: 'table-sizes', target: 'staging', args: '--limit 300' });
    const edit = await editedOriginal(i);
    const content = edit.body.content as string;
    expect(content.length).toBeLessThanOrEqual(2000);
    expect(content).toMatch(
      /```\n[\s\S]+\n```\n\d+ of 122 rows shown · \d+ more rows — full result attached as CSV$/,
    );
    expect(content).toContain('"@everyone"');
    expect(edit.files).toHaveLength(1);
    const [csv] = edit.files;
    expect(csv?.filename).toMatch(/^table-sizes-staging-r[a-z2-9]{5}\.csv$/);
    expect(csv?.contentType).toBe('text/csv');
    expect(csv?.content.trim().split('\r\n')).toHaveLength(123);
    expect(csv?.content).toContain('"@everyone"');
    expect(edit.body.attachments).toEqual([{ id: 0, filename: csv?.filename }]);
    expect(originalMessage(i).attachments.map((a) => a.filename)).toEqual([csv?.filename]);
  });

  it('takes the plain-text form `@dbops sizes staging` in a channel and in a thread', async () => {
    const said = fake.say(BOB, `<@${fake.bot.id}> sizes staging`);
    const answer = await fake.waitForCall(
      (c) =>
        c.method === 'POST' &&
        c.path === `/channels/${fake.channel.id}/messages` &&
        c.body?.message_reference?.message_id === said.id,
    );
    expect(answer.body.content).toContain('exams');
    expect(answer.body.allowed_mentions).toEqual({ parse: [] });

    // In a request's thread the answer stays in the thread; a mention of the bot's role works as well.
    const { thread } = await requestApproval();
    const threadChannel = fake.channels.get(thread);
    if (!threadChannel) throw new Error('no thread');
    const inThread = fake.say(BOB, `<@&${fake.botRoleId}> sizes staging`, threadChannel);
    const threadAnswer = await fake.waitForCall((c) => c.body?.message_reference?.message_id === inThread.id);
    expect(threadAnswer.path).toBe(`/channels/${thread}/messages`);
    expect(threadAnswer.body.content).toContain('exams');

    // A message cannot be ephemeral: a refusal goes to the person by direct message.
    fake.say(CAROL, `<@${fake.bot.id}> sizes kasm`);
    const dm = await fake.waitForCall((c) => c.method === 'POST' && c.path === '/users/@me/channels');
    expect(dm.body).toEqual({ recipient_id: CAROL.id });
    const dmChannel = [...fake.channels.values()].find((c) => c.type === 1);
    const refusal = await fake.waitForCall(
      (c) => c.method === 'POST' && c.path === `/channels/${dmChannel?.id}/messages`,
    );
    expect(refusal.body.content).toMatch(/^Refused: carol may not run read operations on production/);

    // Messages that do not start with the bot's mention are not commands.
    const before = fake.calls.length;
    fake.say(BOB, `sizes staging <@${fake.bot.id}>`);
    await new Promise((r) => setTimeout(r, 300));
    expect(fake.calls.slice(before).filter((c) => c.method === 'POST')).toEqual([]);
  });

  it('keeps pending requests across a restart and updates expired ones', async () => {
    const { card, id } = await requestApproval();
    const { card: soonExpired, id: expiring } = await requestApproval(ALICE, 'exams --full', 'sandbox');
    await stopBot();
    await startBot();

    const click = fake.click(BOB, card.id, `dbops:approve:${id}`);
    expect((await editedOriginal(click)).body.content).toMatch(
      /^✅ #\d+ vacuum staging exams --full — approved by bob, done/,
    );
    await expect.poll(() => fake.messages.get(card.id)?.components).toEqual([]);
    expect(await executedOnce(id)).toBe(1);

    // The sandbox request expired after 1 s; the next look at requests expires it and its card follows.
    const pending = fake.command(CAROL, { operation: 'pending' });
    await fake.waitForCall(isCallback(pending));
    await expect.poll(() => fake.messages.get(soonExpired.id)?.components, { timeout: 5000 }).toEqual([]);
    expect(fake.messages.get(soonExpired.id)?.embeds[0]?.fields?.[0]?.value).toBe(
      'expired without enough approvals — nothing ran',
    );
    const thread = await threadMessages(soonExpired.id, 2);
    expect(thread[1]?.body.content).toContain(`#${expiring}`);
    expect(thread[1]?.body.content).toContain('expired without enough approvals');
  });

  it('redraws a card decided where the bot could not see it at the next click on it', async () => {
    const { card, id } = await requestApproval();
    // Another process without Discord (dbops exec) approves it.
    const elsewhere = await createApp({ config, log: silentLogger() });
    try {
      const reply = await elsewhere.core.dispatch({
        surface: 'cli',
        identity: 'bob',
        text: `/db approve ${id}`,
      });
      expect(reply.status).toBe('ok');
    } finally {
      await elsewhere.close();
    }
    expect(fake.messages.get(card.id)?.components).toHaveLength(1);
    const click = fake.click(DAVE, card.id, `dbops:approve:${id}`);
    expect((await editedOriginal(click)).body.content).toMatch(
      /has succeeded, approved by bob and cannot be decided again/,
    );
    await expect.poll(() => fake.messages.get(card.id)?.components).toEqual([]);
    expect(fake.messages.get(card.id)?.embeds[0]?.fields?.[0]?.value).toBe('succeeded (approved by bob)');
  });

  it('sends allowed_mentions { parse: [] } with every message it creates or edits', () => {
    const calls = fake.messageCalls();
    expect(calls.length).toBeGreaterThan(20);
    for (const call of calls) {
      // An interaction callback carries the message in `data`.
      const body = /\/callback$/.test(call.path) ? call.body?.data : call.body;
      expect(body?.allowed_mentions, `${call.method} ${call.path}`).toEqual({ parse: [] });
    }
  });

  it('is ready on /readyz while connected, and reports a gateway it cannot reconnect to', async () => {
    const readyz = async () => {
      const res = await fetch(`${bot?.healthUrl}/readyz`);
      return { status: res.status, body: (await res.json()) as JsonBody };
    };
    expect(await readyz()).toMatchObject({ status: 200, body: { checks: { discord: { ok: true } } } });
    fake.closeGateway(4004);
    await expect.poll(async () => (await readyz()).status).toBe(503);
    expect((await readyz()).body.checks.discord.error).toMatch(/closed with 4004 \(AuthenticationFailed\)/);
  });
});

// ---- in-process: start-up, health, registration, rendering -------------------------------------------------

describe('startDiscord in-process', () => {
  let app: App;
  beforeAll(async () => {
    app = await createApp({ config, log: silentLogger() });
  });
  afterAll(async () => {
    await app.close();
  });

  it('is not started without DISCORD_TOKEN and refuses a bad token with the reason', async () => {
    expect(await startDiscord({ app, config, env: {}, log: silentLogger() })).toBeUndefined();
    const other = await FakeDiscord.start();
    try {
      const env = { ...other.env(), DISCORD_TOKEN: 'wrong' };
      await expect(startDiscord({ app, config, env, log: silentLogger() })).rejects.toThrow(
        /^Discord: DISCORD_TOKEN was refused/,
      );
    } finally {
      await other.stop();
    }
  });

  it('resumes after a dropped connection, reports an outage past the grace period, and a fatal close', async () => {
    const gateway = await FakeDiscord.start({ heartbeatIntervalMs: 200 });
    let surface: RunningSurface | undefined;
    try {
      const settings = readDiscordSettings(gateway.env());
      if (!settings) throw new Error('no settings');
      surface = await startDiscordSurface(
        { app, config, env: gateway.env(), log: silentLogger() },
        settings,
        {
          reconnectGraceMs: 300,
        },
      );
      expect(surface.healthy()).toBe(true);
      // Heartbeats are sent and acknowledged.
      await expect.poll(() => gateway.received.filter((p) => p.op === 1).length).toBeGreaterThan(1);

      // The connection drops and comes back: discord.js resumes the session (op 6), no new IDENTIFY.
      const resumed = gateway.next('resumed');
      gateway.closeGateway(4000);
      await resumed;
      expect(gateway.received.filter((p) => p.op === 2)).toHaveLength(1);
      await expect.poll(() => surface?.healthy()).toBe(true);

      // A command still works after the resume.
      const i = gateway.command(BOB, { operation: 'sizes', target: 'staging' });
      expect(
        (await gateway.waitForCall((c) => c.method === 'PATCH' && c.path.includes(i.token))).body.content,
      ).toContain('exams');

      // An outage longer than the grace period shows in the health check; the session resumes afterwards.
      gateway.dropConnections = true;
      gateway.closeGateway(4000);
      await expect
        .poll(() => surface?.problem(), { timeout: 5000 })
        .toMatch(/the Discord gateway has been disconnected for \d+ s and is still reconnecting/);
      expect(surface.healthy()).toBe(false);
      const back = gateway.next('resumed');
      gateway.dropConnections = false;
      await back;
      await expect.poll(() => surface?.healthy()).toBe(true);
      expect(gateway.received.filter((p) => p.op === 2)).toHaveLength(1);

      // Discord refuses the token for good (4004): discord.js stops, and the health check says why.
      gateway.closeGateway(4004);
      await expect.poll(() => surface?.problem()).toMatch(/closed with 4004 \(AuthenticationFailed\)/);
      expect(surface.healthy()).toBe(false);
    } finally {
      await surface?.stop();
      await gateway.stop();
    }
  });

  it('registers /db in one server or globally', async () => {
    const guild = await registerDiscordCommands({ env: fake.env(), config, guildId: fake.guildId });
    expect(guild).toMatchObject({ scope: 'guild', applicationId: fake.applicationId, warnings: [] });
    const guildCall = await fake.waitForCall(
      (c) =>
        c.method === 'PUT' &&
        c.path === `/applications/${fake.applicationId}/guilds/${fake.guildId}/commands`,
    );
    expect(guildCall.auth).toBe(`Bot ${fake.token}`);
    expect(guildCall.body).toHaveLength(1);
    expect(guildCall.body[0]).toMatchObject({
      name: 'db',
      type: 1,
      contexts: [0],
      options: [
        { name: 'operation', type: 3, required: true, autocomplete: true },
        { name: 'target', type: 3, required: false, autocomplete: true },
        { name: 'args', type: 3, required: false },
        { name: 'file', type: 11, required: false },
      ],
    });
    expect(guildCall.body[0]).not.toHaveProperty('default_member_permissions');

    const { DISCORD_APPLICATION_ID: _, ...withoutId } = fake.env();
    const global = await registerDiscordCommands({ env: withoutId, config });
    expect(global.scope).toBe('global');
    expect(fake.calls.some((c) => c.method === 'GET' && c.path === '/applications/@me')).toBe(true);
    expect(
      fake.calls.some((c) => c.method === 'PUT' && c.path === `/applications/${fake.applicationId}/commands`),
    ).toBe(true);
    await expect(registerDiscordCommands({ env: fake.env(), config, guildId: 'general' })).rejects.toThrow(
      /--guild/,
    );
  });
});

describe('rendering within Discord limits', () => {
  const wide: OperationResult = {
    headline: 'Everything',
    columns: [
      { key: 'name', label: 'name', kind: 'text' },
      { key: 'bytes', label: 'size', kind: 'bytes' },
      { key: 'note', label: 'note', kind: 'text' },
    ],
    rows: Array.from({ length: 400 }, (_, i) => ({
      name: `@everyone ${i} \`\`\` *x*`,
      bytes: i * 1e6,
      note: 'n'.repeat(70),
    })),
    truncated: false,
  };

  it('keeps content within 2,000 characters and never lets a value close the code block', () => {
    const rendered = renderResult(wide, LIMITS.content, 'wide');
    expect(rendered.text.length).toBeLessThanOrEqual(2000);
    expect(rendered.text.match(/```/g)).toHaveLength(2);
    expect(rendered.shownRows).toBeGreaterThan(5);
    expect(rendered.text).toContain(`${400 - rendered.shownRows} more rows — full result attached as CSV`);
    expect(rendered.files[0]?.data.toString().split('\r\n')).toHaveLength(402);
    for (const message of renderText('x'.repeat(9000).replace(/(.{80})/g, '$1\n'))) {
      expect(message.content?.length).toBeLessThanOrEqual(2000);
    }
  });

  it('keeps an approval card within 6,000 characters in all, 4,096 per description and 1,024 per field', () => {
    const request: ApprovalRequest = {
      id: 7,
      status: 'denied',
      operation: 'terminate',
      target: 'staging',
      environment: 'staging',
      args: {},
      command: `terminate staging ${'x'.repeat(400)}`,
      risk: 'destructive',
      requester: { person: 'alice', identity: `discord:${ALICE.id}`, surface: 'discord' },
      preview: { result: wide, state: null },
      approvalsRequired: 1,
      votes: [{ person: 'bob', identity: 'cli:bob', surface: 'cli', vote: 'deny', at: new Date() }],
      createdAt: new Date(),
      expiresAt: new Date(),
      updatedAt: new Date(),
      reason: 'r'.repeat(3000),
      error: 'e'.repeat(3000),
      refs: {},
    };
    const card = renderRequestCard(request, { approverRoles: ['dba'] });
    const embed = card.embeds?.[0];
    if (!embed) throw new Error('no embed');
    const total =
      (embed.title?.length ?? 0) +
      (embed.description?.length ?? 0) +
      (embed.footer?.text.length ?? 0) +
      (embed.fields ?? []).reduce((n, f) => n + f.name.length + f.value.length, 0);
    expect(total).toBeLessThanOrEqual(6000);
    expect(embed.description?.length).toBeLessThanOrEqual(4096);
    expect(embed.title?.length).toBeLessThanOrEqual(256);
    for (const f of embed.fields ?? []) expect(f.value.length).toBeLessThanOrEqual(1024);
    expect(card.components).toEqual([]);
    expect(embed.fields?.find((f) => f.name === 'Requested by')?.value).toBe(`alice (<@${ALICE.id}>)`);
  });
});
