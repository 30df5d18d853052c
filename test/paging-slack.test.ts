// "Next page" in Slack, through the whole bot process in HTTP mode with requests signed for real: the
// button carries only a reference, a press edits the message with the next page as whoever pressed,
// and a forged or stale button runs nothing.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiCall, answerButtons, FakeSlack, pressOn, sendSigned, slashCommand } from './fakes/slack.js';
import { type BotProcess, startBotProcess } from './helpers/bot-process.js';
import { adminQuery, createDatabase } from './helpers/db.js';
import { freePort } from './setup/postgres.js';

const SECRET = 'test-signing-secret-paging';
const CONFIG = `
state:
  url: \${STATE_URL}
limits:
  statement_timeout: 5s
  lock_timeout: 1s
  row_cap: 20
  connect_timeout: 2s
targets:
  staging:
    url: \${STAGING_URL}
    environment: staging
  vault:
    url: \${STAGING_URL}
    environment: vault
people:
  alice: { slack: T1/UALICE, roles: [dba] }
  carol: { slack: T1/UCAROL, roles: [developer] }
policy:
  staging: { read: [everyone] }
  vault: { read: [dba] }
`;

let fake: FakeSlack;
let stateDb: { name: string; url: string };
let url: string;
let child: BotProcess | undefined;

beforeAll(async () => {
  const staging = await createDatabase(
    'pgslack',
    'CREATE TABLE t (id int PRIMARY KEY); ' +
      Array.from({ length: 45 }, (_, i) => `CREATE SEQUENCE s${String(i).padStart(2, '0')};`).join(''),
  );
  stateDb = await createDatabase('pgslackstate');
  const configPath = join(tmpdir(), `dbops-paging-slack-${stateDb.name}.yaml`);
  writeFileSync(configPath, CONFIG);
  fake = await FakeSlack.start();
  const port = await freePort();
  url = `http://127.0.0.1:${port}/slack/events`;
  ({ process: child } = await startBotProcess(configPath, {
    STATE_URL: stateDb.url,
    STAGING_URL: staging.url,
    DBOPS_HTTP_HOST: '127.0.0.1',
    DBOPS_HTTP_PORT: String(await freePort()),
    SLACK_BOT_TOKEN: 'xoxb-test',
    SLACK_SIGNING_SECRET: SECRET,
    SLACK_PORT: String(port),
    SLACK_API_URL: fake.apiUrl,
  }));
}, 60_000);

afterAll(async () => {
  child?.kill('SIGTERM');
  await child;
  await fake?.close();
});

/** A signed command or interaction to the bot (acknowledged with a 200). */
const send = (payload: Record<string, unknown>, form: 'command' | 'interaction') =>
  sendSigned(url, SECRET, payload, form);

/** `user` presses the button on `answer` with `value`. */
const press = (user: string, answer: ApiCall, value: string) =>
  pressOn(fake, user, answer, 'dbops_page', value);

describe('Slack "Next page" button', () => {
  it('edits the message with the next page, as the person who pressed; a forged or stale one runs nothing', async () => {
    let from = fake.calls.length;
    await send(
      slashCommand(fake, { user: 'UALICE', channel: 'COPS', text: 'sequences vault --limit 10' }),
      'command',
    );
    const answer = await fake.call('chat.postMessage', from, 2);
    const [button] = answerButtons(answer);
    expect(button?.action_id).toBe('dbops_page');
    // Only the reference and the page: nothing a person typed, no command.
    expect(button?.value).toMatch(/^r[a-z2-9]{5}:2$/);
    expect(JSON.stringify(answer.body.blocks)).toContain('/db sequences vault --limit 10 --page 2');

    // carol may not read vault: her press is refused privately and the message stays as it was.
    from = fake.calls.length;
    await send(press('UCAROL', answer, button?.value ?? ''), 'interaction');
    const refused = await fake.call('chat.postEphemeral', from);
    expect(refused.body).toMatchObject({ user: 'UCAROL' });
    expect(String(refused.body.text)).toContain('carol may not run read');
    expect(fake.callsOf('chat.update', from)).toEqual([]);

    // alice presses: the same message now shows rows 11–20, with a button for page 3.
    from = fake.calls.length;
    await send(press('UALICE', answer, button?.value ?? ''), 'interaction');
    const edited = await fake.call('chat.update', from);
    expect(edited.body.ts).toBe(answer.response?.ts ?? answer.body.ts);
    const text = JSON.stringify(edited.body.blocks);
    expect(text).toContain('rows 11–20, page 2');
    expect(text).toContain('s10');
    expect(text).not.toContain('s09');
    expect(answerButtons(edited)[0]?.value).toMatch(/^r[a-z2-9]{5}:3$/);

    // A forged value and an unknown reference: refused privately, nothing edited, nothing run.
    for (const value of ["'; DROP TABLE t; --", 'rzzzzz:2']) {
      from = fake.calls.length;
      await send(press('UALICE', answer, value), 'interaction');
      const said = await fake.call('chat.postEphemeral', from);
      expect(String(said.body.text)).toMatch(/does not name a page|out of date or unknown/);
      expect(fake.callsOf('chat.update', from)).toEqual([]);
    }
    const executed = await adminQuery<{ n: string }>(
      "SELECT count(*)::text AS n FROM dbops_audit WHERE event = 'executed' AND operation = 'sequences'",
      [],
      stateDb.name,
    );
    expect(executed).toEqual([{ n: '2' }]);
  }, 60_000);
});
