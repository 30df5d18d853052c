// A CSV attached to `/db import` in Discord (the `file` option) reaches the import, size-capped and from the CDN only.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { silentLogger } from '../src/core/log.js';
import { startDiscord } from '../src/surfaces/discord/index.js';
import type { RunningSurface } from '../src/surfaces/types.js';
import { type Call, FakeDiscord, fakeUser } from './fakes/discord.js';
import { adminQuery, createDatabase } from './helpers/db.js';

const ALICE = fakeUser('200000000000000001', 'alice');
const DAVE = fakeUser('200000000000000004', 'dave');

let fake: FakeDiscord;
let app: App;
let surface: RunningSurface | undefined;
let dir: string;
let staging: { name: string; url: string };

beforeAll(async () => {
  const state = await createDatabase('distate');
  staging = await createDatabase(
    'distaging',
    'CREATE TABLE scores (id serial PRIMARY KEY, who text NOT NULL, points int);',
  );
  dir = await mkdtemp(join(tmpdir(), 'dbops-import-discord-'));
  const yaml = `
state:
  url: \${STATE_URL}
targets:
  staging:
    url: \${STAGING_URL}
    environment: staging
    limits: { import_max_bytes: 2000 }
people:
  alice: { discord: "${ALICE.id}", roles: [dba] }
  dave:  { discord: "${DAVE.id}", roles: [dba] }
policy:
  staging: { read: [everyone], write: [dba], request: [dba], approve: [dba] }
backups:
  dir: ${join(dir, 'backups')}
`;
  const config = loadConfigText(yaml, 'import-discord.yaml', {
    STATE_URL: state.url,
    STAGING_URL: staging.url,
  });
  app = await createApp({ config, log: silentLogger() });
  fake = await FakeDiscord.start();
  surface = await startDiscord({ app, config, env: fake.env(), log: silentLogger() });
});

afterAll(async () => {
  await surface?.stop();
  await app?.close();
  await fake?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Waits for a message to the interaction (its answer, or a private follow-up) that matches `pattern`. */
async function said(i: { token: string }, pattern: RegExp): Promise<string> {
  const call = await fake.waitForCall(
    (c: Call) =>
      // A private refusal may be the interaction's first response (callback) or a webhook edit/follow-up.
      (c.path.startsWith(`/webhooks/${fake.applicationId}/${i.token}`) ||
        (c.path.startsWith('/interactions/') && c.path.includes(`/${i.token}/callback`))) &&
      pattern.test(JSON.stringify(c.body)),
  );
  return JSON.stringify(call.body);
}

async function answer(i: { token: string }): Promise<string> {
  const call = await fake.waitForCall(
    (c: Call) =>
      c.method === 'PATCH' && c.path === `/webhooks/${fake.applicationId}/${i.token}/messages/@original`,
  );
  return JSON.stringify(call.body);
}

describe('import from a Discord attachment', () => {
  it('downloads the attached CSV, previews it, and the approved request loads it', async () => {
    const file = fake.hostFile('scores.csv', Buffer.from('who,points\nann,3\nben,4\n'));
    const i = fake.command(
      ALICE,
      { operation: 'import', target: 'staging', args: 'scores' },
      fake.channel,
      file,
    );
    const text = await answer(i);
    expect(text).toMatch(/import 2 rows from scores\.csv/);
    const id = /dbops:approve:(\d+)/.exec(text)?.[1];
    expect(id).toBeDefined();
    expect(
      fake.calls.some(
        (c) => c.method === 'GET' && c.path.startsWith('/attachments/') && c.auth === undefined,
      ),
    ).toBe(true);
    const approved = await app.core.dispatch({
      surface: 'discord',
      identity: DAVE.id,
      text: `approve ${id}`,
    });
    expect(approved.text).toMatch(/imported 2 rows into public\.scores on staging/);
    expect(await adminQuery('SELECT who, points FROM scores ORDER BY id', [], staging.name)).toEqual([
      { who: 'ann', points: 3 },
      { who: 'ben', points: 4 },
    ]);
  });

  it('takes the file attached to an @dbops mention too', async () => {
    await adminQuery('TRUNCATE scores', [], staging.name);
    const file = fake.hostFile('mention.csv', Buffer.from('who\ncid\n'));
    const from = fake.calls.length;
    fake.say(ALICE, `<@${fake.bot.id}> import staging scores`, fake.channel, [file]);
    const card = await fake.waitForCall(
      (c: Call) =>
        fake.calls.indexOf(c) >= from &&
        c.method === 'POST' &&
        /import 1 row from mention\.csv/.test(JSON.stringify(c.body)),
    );
    const id = /dbops:approve:(\d+)/.exec(JSON.stringify(card.body))?.[1];
    expect(id).toBeDefined();
    const approved = await app.core.dispatch({
      surface: 'discord',
      identity: DAVE.id,
      text: `approve ${id}`,
    });
    expect(approved.text).toMatch(/imported 1 row into public\.scores/);
    expect(await adminQuery('SELECT who FROM scores', [], staging.name)).toEqual([{ who: 'cid' }]);
  });

  // Each refusal is awaited by its text: said() fails the test when no such answer comes.
  it('refuses a file over the cap (announced or actual) and a file not on the CDN, fetching nothing it should not', async () => {
    const announced = fake.hostFile('big.csv', Buffer.from('who\na\n'), { size: 20_000_000 });
    const before = fake.calls.length;
    const a = fake.command(
      ALICE,
      { operation: 'import', target: 'staging', args: 'scores' },
      fake.channel,
      announced,
    );
    expect(await said(a, /big\.csv is 19 MB; files over 10 MB are not accepted/)).toMatch(
      /big\.csv is 19 MB; files over 10 MB are not accepted/,
    );
    expect(fake.calls.slice(before).some((c) => c.path.startsWith('/attachments/'))).toBe(false);

    const lying = fake.hostFile('lying.csv', Buffer.from(`who\n${'x\n'.repeat(6_000_000)}`), { size: 10 });
    const b = fake.command(
      ALICE,
      { operation: 'import', target: 'staging', args: 'scores' },
      fake.channel,
      lying,
    );
    expect(await said(b, /lying\.csv is .*; files over 10 MB are not accepted/)).toMatch(
      /lying\.csv is .*; files over 10 MB are not accepted/,
    );

    const elsewhere = fake.hostFile('x.csv', Buffer.from('who\na\n'), { url: 'http://127.0.0.2:9/x.csv' });
    const c = fake.command(
      ALICE,
      { operation: 'import', target: 'staging', args: 'scores' },
      fake.channel,
      elsewhere,
    );
    await said(c, /x\.csv: it is not hosted by the chat platform \(http:\/\/127\.0\.0\.2:9\)/);

    // Within the surface's cap, the target's own limit (2,000 bytes) still applies.
    const over = fake.hostFile('over.csv', Buffer.from(`who\n${'y\n'.repeat(1500)}`));
    const d = fake.command(
      ALICE,
      { operation: 'import', target: 'staging', args: 'scores' },
      fake.channel,
      over,
    );
    expect(await said(d, /over this target's import limit of 2\.0 [kK]i?B/)).toMatch(
      /over this target's import limit of 2\.0 [kK]i?B/,
    );
    expect(await adminQuery('SELECT count(*)::int AS n FROM scores', [], staging.name)).toEqual([{ n: 1 }]);
  });
});
