// A CSV attached to `@dbops import …` in Slack: the mention's file is downloaded with the bot token
// (url_private_download, size-capped) and imported after approval; signed HTTP-mode requests, fake Slack.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { fileOrigins } from '../src/surfaces/slack/settings.js';
import { appMention, BOT_USER, type FakeSlack, postSigned } from './fakes/slack.js';
import { type BuiltSlackBot, startBuiltSlackBot } from './helpers/built.js';
import { adminQuery, createDatabase } from './helpers/db.js';

const SECRET = 'import-signing-secret-3b1d';
let fake: FakeSlack;
let app: App;
let bot: BuiltSlackBot | undefined;
let url: string;
let dir: string;
let staging: { name: string; url: string };

beforeAll(async () => {
  const state = await createDatabase('sistate');
  staging = await createDatabase(
    'sistaging',
    'CREATE TABLE scores (id serial PRIMARY KEY, who text NOT NULL, points int);',
  );
  dir = await mkdtemp(join(tmpdir(), 'dbops-import-slack-'));
  const yaml = `
state:
  url: \${STATE_URL}
targets:
  staging:
    url: \${STAGING_URL}
    environment: staging
people:
  alice: { slack: T1/UALICE, roles: [dba] }
  dave:  { slack: T1/UDAVE, roles: [dba] }
policy:
  staging: { read: [everyone], write: [dba], request: [dba], approve: [dba] }
backups:
  dir: ${join(dir, 'backups')}
`;
  bot = await startBuiltSlackBot({
    yaml,
    file: 'import-slack.yaml',
    vars: { STATE_URL: state.url, STAGING_URL: staging.url },
    token: 'xoxb-imp',
    secret: SECRET,
  });
  ({ app, fake, url } = bot);
});

afterAll(async () => {
  await bot?.close();
  await rm(dir, { recursive: true, force: true });
});

let ts = 1_700_000_000;
async function mention(user: string, text: string, files: Record<string, unknown>[]): Promise<number> {
  ts += 1;
  const from = fake.calls.length;
  const event = appMention({
    user,
    channel: 'COPS',
    text: `<@${BOT_USER}> ${text}`,
    ts: `${ts}.000100`,
    files,
  });
  const posted = await postSigned(url, {
    secret: SECRET,
    body: JSON.stringify(event),
    contentType: 'application/json',
  });
  expect(posted.status).toBe(200);
  return from;
}

describe('import from a file attached to a Slack mention', () => {
  it('downloads the file with the bot token, previews it, and the approved request loads it', async () => {
    const file = fake.hostFile('scores.csv', Buffer.from('who,points\nann,3\n"=1+1",4\n'));
    const from = await mention('UALICE', 'import staging scores', [file]);
    const card = await fake.call('chat.postMessage', from);
    expect(JSON.stringify(card.body)).toMatch(/import 2 rows from scores\.csv/);
    expect(fake.downloads.at(-1)).toBe('Bearer xoxb-imp');
    const id = /"value":"(\d+)"/.exec(JSON.stringify(card.body))?.[1];
    expect(id).toBeDefined();
    const approved = await app.core.dispatch({
      surface: 'slack',
      identity: 'T1/UDAVE',
      text: `approve ${id}`,
    });
    expect(approved.text).toMatch(/imported 2 rows into public\.scores on staging/);
    expect(await adminQuery('SELECT who, points FROM scores ORDER BY id', [], staging.name)).toEqual([
      { who: 'ann', points: 3 },
      { who: '=1+1', points: 4 },
    ]);
  });

  it('refuses a file over the cap without downloading it, and a file from another host', async () => {
    const before = fake.downloads.length;
    const big = fake.hostFile('big.csv', Buffer.from('who\na\n'), { size: 50_000_000 });
    const from = await mention('UALICE', 'import staging scores', [big]);
    const refusal = await fake.call('chat.postEphemeral', from);
    expect(String(refusal.body.text)).toMatch(/big\.csv is 48 MB; files over 10 MB are not accepted/);
    expect(fake.downloads.length).toBe(before);

    const elsewhere = {
      ...fake.hostFile('x.csv', Buffer.from('who\na\n')),
      url_private_download: 'https://evil.example/x.csv',
    };
    const from2 = await mention('UALICE', 'import staging scores', [elsewhere]);
    const refusal2 = await fake.call('chat.postEphemeral', from2);
    expect(String(refusal2.body.text)).toMatch(
      /x\.csv: it is not hosted by the chat platform \(https:\/\/evil\.example\)/,
    );
    expect(fake.downloads.length).toBe(before);

    const connect = { id: 'F9', name: 'shared.csv', size: 10, file_access: 'check_file_info' };
    const from3 = await mention('UALICE', 'import staging scores', [connect]);
    const refusal3 = await fake.call('chat.postEphemeral', from3);
    expect(String(refusal3.body.text)).toMatch(/shared\.csv: the platform did not send its address/);
    expect(await adminQuery('SELECT count(*)::int AS n FROM scores', [], staging.name)).toEqual([{ n: 2 }]);
  });

  it('downloads only from files.slack.com in production', () => {
    expect(fileOrigins('https://slack.com/api/')).toEqual(['https://files.slack.com']);
  });
});
