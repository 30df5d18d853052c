// "All columns (CSV)" in Slack, through the whole bot process in HTTP mode with requests signed for real: a
// phone-narrowed answer whose rows all fit is posted in one call with a button instead of a CSV upload; a
// press makes the CSV as whoever pressed, and a forged, foreign, destructive or stale reference runs nothing.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AnswerButton,
  type ApiCall,
  answerButtons,
  FakeSlack,
  pressOn,
  sendSigned,
  slashCommand,
} from './fakes/slack.js';
import { type BotProcess, startBotProcess } from './helpers/bot-process.js';
import { adminQuery, createDatabase } from './helpers/db.js';
import { type CuttableProxy, cuttableProxy } from './helpers/state-proxy.js';
import { freePort } from './setup/postgres.js';

const SECRET = 'test-signing-secret-csv';
const TARGETS = `
targets:
  staging:
    url: \${STAGING_URL}
    environment: staging
  vault:
    url: \${STAGING_URL}
    environment: vault
`;
const REST = `
people:
  alice: { slack: T1/UALICE, roles: [dba] }
  carol: { slack: T1/UCAROL, roles: [developer] }
policy:
  staging: { read: [everyone], write: [dba], request: [dba], approve: [dba] }
  vault: { read: [dba] }
`;
const HEAD = `
state:
  url: \${STATE_URL}
limits:
  statement_timeout: 5s
  lock_timeout: 1s
  row_cap: 50
  connect_timeout: 2s
`;

/** Tables with long names and a few rows each: `sizes` on a phone hides some of its columns. */
const SETUP = Array.from(
  { length: 4 },
  (_, i) =>
    `CREATE TABLE exam_submission_archive_${2020 + i} (id int PRIMARY KEY, body text);` +
    `INSERT INTO exam_submission_archive_${2020 + i} SELECT g, repeat('x', 200) FROM generate_series(1, ${(i + 1) * 300}) g;`,
).join('');

let fake: FakeSlack;
let stateDb: { name: string; url: string };
let staging: { name: string; url: string };
let proxy: CuttableProxy;
let url: string;
let child: BotProcess | undefined;

/** Starts the bot with this config (the same state database, Slack port and fake). */
async function startBot(yaml: string): Promise<void> {
  const configPath = join(tmpdir(), `dbops-csv-slack-${stateDb.name}-${Date.now()}.yaml`);
  writeFileSync(configPath, yaml);
  const port = await freePort();
  url = `http://127.0.0.1:${port}/slack/events`;
  ({ process: child } = await startBotProcess(configPath, {
    STATE_URL: proxy.url,
    STAGING_URL: staging.url,
    DBOPS_HTTP_HOST: '127.0.0.1',
    DBOPS_HTTP_PORT: String(await freePort()),
    SLACK_BOT_TOKEN: 'xoxb-test',
    SLACK_SIGNING_SECRET: SECRET,
    SLACK_PORT: String(port),
    SLACK_API_URL: fake.apiUrl,
  }));
}

async function stopBot(): Promise<void> {
  child?.kill('SIGTERM');
  await child;
  child = undefined;
}

beforeAll(async () => {
  staging = await createDatabase('pgcsv', SETUP);
  stateDb = await createDatabase('pgcsvstate');
  proxy = await cuttableProxy(stateDb.url);
  fake = await FakeSlack.start();
  await startBot(HEAD + TARGETS + REST);
}, 60_000);

afterAll(async () => {
  await stopBot();
  await fake?.close();
  await proxy?.close();
});

/** A signed command or interaction to the bot (acknowledged with a 200). */
const send = (payload: Record<string, unknown>, form: 'command' | 'interaction') =>
  sendSigned(url, SECRET, payload, form);

/** `user` presses the button on `answer` with `value`. */
const press = (user: string, answer: ApiCall, value: string) =>
  pressOn(fake, user, answer, 'dbops_csv', value);

function csvButtonOf(call: ApiCall): AnswerButton | undefined {
  return answerButtons(call).find((b) => b.action_id === 'dbops_csv');
}

/** A slash command's answer in its thread (the second chat.postMessage: the first is the parent). */
async function ask(user: string, text: string): Promise<{ answer: ApiCall; from: number }> {
  const from = fake.calls.length;
  await send(slashCommand(fake, { user, channel: 'COPS', text }), 'command');
  return { answer: await fake.call('chat.postMessage', from, 2), from };
}

/** What the bot said privately to a person after `from` (an ephemeral message). */
async function privately(from: number): Promise<string> {
  const said = await fake.call('chat.postEphemeral', from);
  return String(said.body.text);
}

async function audit<T extends Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
  return await adminQuery<T>(sql, params, stateDb.name);
}

const fileCalls = (from: number) => fake.calls.slice(from).filter((c) => c.method.startsWith('files.'));

describe('Slack "All columns (CSV)" button', () => {
  it('posts a phone-narrowed answer in one call with a button; a press uploads the CSV as the presser', async () => {
    const { answer, from } = await ask('UALICE', 'sizes staging');
    const text = JSON.stringify(answer.body.blocks);
    // Every row fits; only columns were hidden, and the last line says where they are.
    expect(text).not.toContain('more row');
    expect(text).toMatch(/\(hidden: .+ — the All columns \(CSV\) button has them\)/);
    const button = csvButtonOf(answer);
    expect(button?.text.text).toBe('All columns (CSV)');
    const ref = /ref (r[a-z2-9]{5})/.exec(text)?.[1];
    expect(button?.value).toBe(ref);

    const pressedAt = fake.calls.length;
    await send(press('UALICE', answer, button?.value ?? ''), 'interaction');
    const done = await fake.call('files.completeUploadExternal', pressedAt);
    // The answer itself was one post in its thread (after the parent) and nothing else: no upload.
    expect(
      fake.calls
        .slice(from, pressedAt)
        .concat(fake.calls.slice(pressedAt).filter((c) => c.method === 'chat.postMessage'))
        .map((c) => c.method),
    ).toEqual(['chat.postMessage', 'chat.postMessage']);
    // The press: the file alone, into the answer's thread (three calls).
    expect(fileCalls(from).map((c) => c.method)).toEqual([
      'files.getUploadURLExternal',
      'files.completeUploadExternal',
    ]);
    const slot = await fake.call('files.getUploadURLExternal', pressedAt);
    expect(slot.body.filename).toBe(`sizes-staging-${ref}.csv`);
    expect(done.body).toMatchObject({ channel_id: 'COPS', thread_ts: answer.body.thread_ts });
    const [file] = done.body.files as { title: string }[];
    expect(file?.title).toMatch(
      new RegExp(
        `^sizes staging — all 7 columns, 4 rows, taken \\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2} UTC, of ${ref}$`,
      ),
    );
    const upload = await fake.call('upload', pressedAt);
    const lines = String(upload.body.content).split('\r\n');
    expect(lines[0]).toBe('relation,kind,total_bytes,table_bytes,index_bytes,toast_bytes,rows');
    expect(lines.filter((l) => l.length > 0)).toHaveLength(5);
    expect(String(upload.body.content)).toContain('public.exam_submission_archive_2023');

    // The read ran again, audited as alice's, under a reference of its own.
    const runs = await audit<{ ref: string; person: string }>(
      "SELECT ref, person FROM dbops_audit WHERE event = 'requested' AND operation = 'sizes' ORDER BY id",
    );
    expect(runs).toHaveLength(2);
    expect(runs[0]?.ref).toBe(ref);
    expect(runs[1]?.person).toBe('alice');
    expect(runs[1]?.ref).not.toBe(ref);
  }, 60_000);

  it('refuses a press by someone who may not read the target, and forged values, running nothing', async () => {
    const { answer } = await ask('UALICE', 'sizes vault');
    const button = csvButtonOf(answer);
    expect(button?.value).toMatch(/^r[a-z2-9]{5}$/);
    const before = await audit<{ n: string }>(
      "SELECT count(*)::text AS n FROM dbops_audit WHERE event = 'requested' AND operation = 'sizes'",
    );

    // carol may not read vault: her press reads nothing, and is told no more than for an unknown ref.
    let from = fake.calls.length;
    await send(press('UCAROL', answer, button?.value ?? ''), 'interaction');
    expect(await privately(from)).toContain(`${button?.value} names no answer of a read you may see`);
    const refused = await audit<{ person: string; outcome: string }>(
      "SELECT person, outcome FROM dbops_audit WHERE event = 'refused' ORDER BY id DESC LIMIT 1",
    );
    expect(refused).toEqual([{ person: 'carol', outcome: 'not_found' }]);

    // Values dbops never made: another shape, 100 KB, separators, a newline, bidi controls, upper case.
    const forged = [
      `${button?.value}:2`,
      'r'.repeat(100_000),
      `${button?.value}\n`,
      `\u202e${button?.value}`,
      String(button?.value).toUpperCase(),
      "'; DROP TABLE t; --",
    ];
    for (const value of forged) {
      from = fake.calls.length;
      await send(press('UALICE', answer, value), 'interaction');
      expect(await privately(from)).toBe('This button does not name a dbops answer, so nothing was run.');
    }
    // A well-formed reference of no answer.
    from = fake.calls.length;
    await send(press('UALICE', answer, 'rzzzzz'), 'interaction');
    expect(await privately(from)).toContain('rzzzzz names no answer of a read you may see');
    expect(fileCalls(from)).toEqual([]);
    const after = await audit<{ n: string }>(
      "SELECT count(*)::text AS n FROM dbops_audit WHERE event = 'requested' AND operation = 'sizes'",
    );
    expect(after).toEqual(before);
  }, 60_000);

  it('never re-runs an approval request or a write, whatever reference the value names', async () => {
    // A destructive request (pending) and a write that ran at once: their references, from the audit.
    let from = fake.calls.length;
    await send(
      slashCommand(fake, {
        user: 'UALICE',
        channel: 'COPS',
        text: 'vacuum staging exam_submission_archive_2021 --full',
      }),
      'command',
    );
    await fake.call('chat.postMessage', from, 2);
    const [request] = await audit<{ ref: string; request_id: number }>(
      "SELECT ref, request_id FROM dbops_audit WHERE operation = 'vacuum' AND request_id IS NOT NULL AND ref IS NOT NULL ORDER BY id LIMIT 1",
    );
    expect(request?.ref).toMatch(/^r[a-z2-9]{5}$/);
    const { answer } = await ask('UALICE', 'vacuum staging exam_submission_archive_2020');
    const [write] = await audit<{ ref: string }>(
      "SELECT ref FROM dbops_audit WHERE operation = 'vacuum' AND event = 'requested' AND request_id IS NULL",
    );
    expect(write?.ref).toMatch(/^r[a-z2-9]{5}$/);
    // A write's answer offers no CSV button.
    expect(csvButtonOf(answer)).toBeUndefined();

    // The write's closing record follows its answer (written a moment later, with others): wait for it.
    await expect
      .poll(
        async () =>
          (await audit("SELECT 1 FROM dbops_audit WHERE ref = $1 AND event <> 'requested'", [write?.ref]))
            .length,
        {
          timeout: 10_000,
        },
      )
      .toBeGreaterThan(0);
    const count = "SELECT count(*)::text AS n FROM dbops_audit WHERE operation = 'vacuum'";
    const before = await audit<{ n: string }>(count);
    from = fake.calls.length;
    await send(press('UALICE', answer, request?.ref ?? ''), 'interaction');
    expect(await privately(from)).toContain(
      `is about approval request #${request?.request_id}; a CSV is made only of reads that ran at once`,
    );
    from = fake.calls.length;
    await send(press('UALICE', answer, write?.ref ?? ''), 'interaction');
    expect(await privately(from)).toContain(
      'was `vacuum staging` (write); a CSV is made only by running a read',
    );
    // Nothing about vacuum was run (or requested) again: its records are as they were.
    expect(await audit<{ n: string }>(count)).toEqual(before);
  }, 60_000);

  it('answers `/db csv <ref>` typed by hand, and two presses at once with two files', async () => {
    const { answer } = await ask('UALICE', 'sizes staging');
    const ref = csvButtonOf(answer)?.value ?? '';
    let from = fake.calls.length;
    await send(slashCommand(fake, { user: 'UALICE', channel: 'COPS', text: `csv ${ref}` }), 'command');
    const typed = await fake.call('files.completeUploadExternal', from);
    expect(JSON.stringify(typed.body.files)).toContain(`sizes-staging-${ref}.csv`);
    const said = fake.callsOf('chat.postMessage', from).map((c) => JSON.stringify(c.body.blocks));
    expect(said.join('\n')).toContain(`all 7 columns, 4 rows, taken`);

    from = fake.calls.length;
    await Promise.all([
      send(press('UALICE', answer, ref), 'interaction'),
      send(press('UALICE', answer, ref), 'interaction'),
    ]);
    await fake.call('files.completeUploadExternal', from, 2);
    expect(fake.callsOf('upload', from)).toHaveLength(2);
  }, 60_000);

  it('says so when the state database is down at the press, and keeps answering once it is back', async () => {
    const { answer } = await ask('UALICE', 'sizes staging');
    const ref = csvButtonOf(answer)?.value ?? '';
    proxy.drop();
    let from = fake.calls.length;
    try {
      await send(press('UALICE', answer, ref), 'interaction');
      expect(await privately(from)).toContain('the state database is unreachable, so nothing was run');
      expect(fileCalls(from)).toEqual([]);
    } finally {
      proxy.restore();
    }
    from = fake.calls.length;
    await send(press('UALICE', answer, ref), 'interaction');
    await fake.call('files.completeUploadExternal', from);
  }, 60_000);

  it('says the target is gone when it left the config since the answer', async () => {
    const { answer } = await ask('UALICE', 'sizes vault');
    const ref = csvButtonOf(answer)?.value ?? '';
    await stopBot();
    await startBot(HEAD + TARGETS.replace(/ {2}vault:[\s\S]*$/, '') + REST.replace(/ {2}vault:.*\n/, ''));
    const from = fake.calls.length;
    await send(press('UALICE', answer, ref), 'interaction');
    expect(await privately(from)).toContain(`the target that ${ref} read is no longer in the config`);
    expect(fileCalls(from)).toEqual([]);
  }, 60_000);
});
