// Slack hands its result scope to the command it runs: the rows of a large export stay reserved in the
// bot's budget while its CSV is being uploaded, and are given back when the delivery ends, even when
// it fails. The built bot (HTTP mode), a fake Slack Web API, signed requests.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import type { RowBudget } from '../src/core/result-budget.js';
import type { RunningSurface } from '../src/surfaces/types.js';
import { FakeSlack, formBody, postSigned, slashCommand } from './fakes/slack.js';
import { createDatabase } from './helpers/db.js';
import { freePort } from './setup/postgres.js';

const SECRET = 'scope-signing-secret-51c2';
let fake: FakeSlack;
let app: App;
let surface: RunningSurface | undefined;
let url: string;
let budget: RowBudget;

/** HTTP mode acknowledges in a worker thread built beside the surface: the bot is the built one. */
async function built<M>(path: string): Promise<M> {
  return (await import(pathToFileURL(resolve('dist/src', path)).href)) as M;
}

beforeAll(async () => {
  const { createApp } = await built<typeof import('../src/app.js')>('app.js');
  const { loadConfigText } = await built<typeof import('../src/config/load.js')>('config/load.js');
  const { silentLogger } = await built<typeof import('../src/core/log.js')>('core/log.js');
  const { startSlack } =
    await built<typeof import('../src/surfaces/slack/index.js')>('surfaces/slack/index.js');
  ({ resultBudget: budget } =
    await built<typeof import('../src/core/result-budget.js')>('core/result-budget.js'));
  const state = await createDatabase('rsstate');
  const staging = await createDatabase(
    'rsstaging',
    'CREATE TABLE exams (id serial PRIMARY KEY, title text); ' +
      'INSERT INTO exams (title) SELECT md5(i::text) FROM generate_series(1, 2000) i;',
  );
  const yaml = `
state:
  url: \${STATE_URL}
targets:
  staging:
    url: \${STAGING_URL}
    environment: staging
people:
  alice: { slack: T1/UALICE, roles: [dba] }
policy:
  staging: { read: [everyone], write: [dba], request: [dba], approve: [dba] }
`;
  const config = loadConfigText(yaml, 'scope-slack.yaml', { STATE_URL: state.url, STAGING_URL: staging.url });
  app = await createApp({ config, log: silentLogger() });
  fake = await FakeSlack.start();
  const port = await freePort();
  url = `http://127.0.0.1:${port}/slack/events`;
  surface = await startSlack({
    app,
    config,
    log: silentLogger(),
    env: {
      SLACK_BOT_TOKEN: 'xoxb-scope',
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_PORT: String(port),
      SLACK_API_URL: fake.apiUrl,
      SLACK_API_RETRIES: '0',
    },
  });
});

afterAll(async () => {
  await surface?.stop();
  await app?.close();
  await fake?.close();
});

async function until(what: string, done: () => boolean): Promise<void> {
  for (let waited = 0; !done(); waited += 10) {
    if (waited > 20_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('a Slack command’s result scope', () => {
  it('holds a large export’s rows until its upload ends, then gives them back', async () => {
    // The upload never gets its URL: the answer is still being delivered.
    fake.hold = (method) => (method === 'files.getUploadURLExternal' ? 'hang' : undefined);
    const command = slashCommand(fake, {
      user: 'UALICE',
      channel: 'COPS',
      text: 'export staging exams --limit 1500',
    });
    const posted = await postSigned(url, {
      secret: SECRET,
      body: formBody(command),
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(posted.status).toBe(200);
    await until('the upload to be asked for', () =>
      fake.arrivals.some((a) => a.method === 'files.getUploadURLExternal'),
    );
    // The read returned long ago; its rows (past the free 1,000) are held for the answer.
    expect(budget.inUse).toBeGreaterThan(0);
    // The held call fails (the fake goes away): the delivery ends, and the rows go back.
    await fake.close();
    await until('the rows to be given back', () => budget.inUse === 0);
    expect(budget.inUse).toBe(0);
  });
});
