// Slack hands its result scope to the command it runs: the rows of a large export stay reserved in the
// bot's budget while its CSV is being uploaded, and are given back when the delivery ends, even when
// it fails. The built bot (HTTP mode), a fake Slack Web API, signed requests.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RowBudget } from '../src/core/result-budget.js';
import { formBody, postSigned, slashCommand } from './fakes/slack.js';
import { type BuiltSlackBot, built, startBuiltSlackBot } from './helpers/built.js';
import { createDatabase } from './helpers/db.js';

const SECRET = 'scope-signing-secret-51c2';
let bot: BuiltSlackBot;
let budget: RowBudget;

beforeAll(async () => {
  ({ resultBudget: budget } =
    await built<typeof import('../src/core/result-budget.js')>('core/result-budget.js'));
  const state = await createDatabase('rsstate');
  const staging = await createDatabase(
    'rsstaging',
    'CREATE TABLE exams (id serial PRIMARY KEY, title text); ' +
      'INSERT INTO exams (title) SELECT md5(i::text) FROM generate_series(1, 2000) i;',
  );
  bot = await startBuiltSlackBot({
    yaml: `
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
`,
    file: 'scope-slack.yaml',
    vars: { STATE_URL: state.url, STAGING_URL: staging.url },
    token: 'xoxb-scope',
    secret: SECRET,
  });
});

afterAll(async () => {
  await bot?.close();
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
    bot.fake.hold = (method) => (method === 'files.getUploadURLExternal' ? 'hang' : undefined);
    const command = slashCommand(bot.fake, {
      user: 'UALICE',
      channel: 'COPS',
      text: 'export staging exams --limit 1500',
    });
    const posted = await postSigned(bot.url, {
      secret: SECRET,
      body: formBody(command),
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(posted.status).toBe(200);
    await until('the upload to be asked for', () =>
      bot.fake.arrivals.some((a) => a.method === 'files.getUploadURLExternal'),
    );
    // The read returned long ago; its rows (past the free 1,000) are held for the answer.
    expect(budget.inUse).toBeGreaterThan(0);
    // The held call fails (the fake goes away): the delivery ends, and the rows go back.
    await bot.fake.close();
    await until('the rows to be given back', () => budget.inUse === 0);
    expect(budget.inUse).toBe(0);
  });
});
