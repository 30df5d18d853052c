// "Next page" in Discord, through the whole bot process against the fake Discord: the button's custom id
// carries only a reference and a page, a press edits the answer with the next page as whoever pressed,
// and a forged or stale button runs nothing.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Call, FakeDiscord, type FakeMessage, fakeUser, type JsonBody } from './fakes/discord.js';
import { adminQuery, createDatabase } from './helpers/db.js';
import { freePort } from './setup/postgres.js';

const CLI = resolve('dist/src/cli.js');
const ALICE = fakeUser('100000000000000001', 'alice');
const CAROL = fakeUser('100000000000000003', 'carol');

const YAML = `
state:
  url: \${STATE_URL}
limits:
  statement_timeout: 5s
  lock_timeout: 2s
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
  alice: { discord: "${ALICE.id}", roles: [dba] }
  carol: { discord: "${CAROL.id}", roles: [developer] }
policy:
  staging: { read: [everyone] }
  vault: { read: [dba] }
`;

let fake: FakeDiscord;
let stateDb: string;
let proc: ReturnType<typeof spawnBot> | undefined;
let configPath: string;
let dbEnv: Record<string, string>;

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
    timeout: 90_000,
  });
}

beforeAll(async () => {
  const [state, staging] = await Promise.all([
    createDatabase('pgdstate'),
    createDatabase(
      'pgdstaging',
      Array.from({ length: 45 }, (_, i) => `CREATE SEQUENCE s${String(i).padStart(2, '0')};`).join(''),
    ),
  ]);
  stateDb = state.name;
  dbEnv = { STATE_URL: state.url, STAGING_URL: staging.url };
  configPath = join(tmpdir(), `dbops-paging-discord-${state.name}.yaml`);
  writeFileSync(configPath, YAML);
  fake = await FakeDiscord.start();
  proc = spawnBot(await freePort());
  let output = '';
  await new Promise<void>((ready, failed) => {
    const timer = setTimeout(() => failed(new Error(`the bot did not connect:\n${output}`)), 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('"msg":"discord connected"')) {
        clearTimeout(timer);
        ready();
      }
    };
    proc?.stderr?.on('data', onData);
    proc?.stdout?.on('data', onData);
  });
}, 60_000);

afterAll(async () => {
  proc?.kill('SIGTERM');
  await proc;
  await fake?.stop();
});

function customIds(message: { components?: JsonBody[] }): string[] {
  return (message.components ?? []).flatMap((row: JsonBody) =>
    row.components.map((c: { custom_id: string }) => c.custom_id),
  );
}

const patchOriginal = (token: string) => (c: Call) =>
  c.method === 'PATCH' && c.path === `/webhooks/${fake.applicationId}/${token}/messages/@original`;

async function executedReads(): Promise<number> {
  const [row] = await adminQuery<{ n: number }>(
    "SELECT count(*)::int AS n FROM dbops_audit WHERE event = 'executed' AND operation = 'sequences'",
    [],
    stateDb,
  );
  return row?.n ?? -1;
}

describe('Discord "Next page" button', () => {
  it('edits the answer with the next page, as the person who pressed; a forged or stale one runs nothing', async () => {
    const asked = fake.command(ALICE, { operation: 'sequences', target: 'vault', args: '--limit 10' });
    const answer = await fake.waitForCall(patchOriginal(asked.token));
    expect(answer.body.content).toContain('/db sequences vault --limit 10 --page 2');
    const messageId = fake.interactions.get(asked.id)?.originalId ?? '';
    const message = fake.messages.get(messageId) as FakeMessage;
    const [button] = customIds(message);
    // Only the reference and the page: nothing a person typed, no command.
    expect(button).toMatch(/^dbops:page:r[a-z2-9]{5}:2$/);

    // carol may not read vault: refused privately, the answer stays as it was.
    const carol = fake.click(CAROL, messageId, button ?? '');
    const refused = await fake.waitForCall(
      (c) => c.method === 'POST' && c.path === `/webhooks/${fake.applicationId}/${carol.token}`,
    );
    expect(refused.body.flags & 64).toBe(64);
    expect(refused.body.content).toContain('carol may not run read');
    expect(fake.calls.some(patchOriginal(carol.token))).toBe(false);
    expect(fake.messages.get(messageId)?.content).toBe(message.content);

    // alice presses: the answer now shows rows 11–20, with a button for page 3.
    const alice = fake.click(ALICE, messageId, button ?? '');
    const edited = await fake.waitForCall(patchOriginal(alice.token));
    expect(edited.body.content).toContain('rows 11–20, page 2');
    expect(edited.body.content).toContain('s10');
    expect(edited.body.content).not.toContain('s09');
    const now = fake.messages.get(messageId) as FakeMessage;
    expect(now.content).toBe(edited.body.content);
    expect(customIds(now)[0]).toMatch(/^dbops:page:r[a-z2-9]{5}:3$/);
    // The closing record follows the answer (written with others a moment later).
    await expect.poll(executedReads).toBe(2);

    // A forged id and an unknown reference: refused privately, nothing edited, nothing run.
    const forged = fake.click(ALICE, messageId, "dbops:page:'; DROP TABLE x; --:2");
    const said = await fake.waitForCall(
      (c) => c.method === 'POST' && c.path.startsWith(`/interactions/${forged.id}/`),
    );
    expect(said.body).toMatchObject({ type: 4, data: { flags: 64 } });
    expect(said.body.data.content).toContain('does not name a page');
    const stale = fake.click(ALICE, messageId, 'dbops:page:rzzzzz:2');
    const staleSaid = await fake.waitForCall(
      (c) => c.method === 'POST' && c.path === `/webhooks/${fake.applicationId}/${stale.token}`,
    );
    expect(staleSaid.body.content).toContain('out of date or unknown');
    expect(fake.calls.some(patchOriginal(stale.token))).toBe(false);
    expect(await executedReads()).toBe(2);
  }, 60_000);
});
