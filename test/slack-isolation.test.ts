// A sick target costs its own lane and nothing else: the built bot (`dbops start`, Slack HTTP mode with
// signed requests) answers a healthy target and built-ins while eight commands hang on a frozen target
// (half-open proxy), shows the stuck work in /metrics and /readyz, and recovers when the proxy heals.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiCall, FakeSlack, formBody, postSigned, slashCommand } from './fakes/slack.js';
import { createDatabase } from './helpers/db.js';
import { HalfOpenProxy } from './helpers/proxy.js';
import { freePort } from './setup/postgres.js';

const CLI = resolve('dist/src/cli.js');
const SECRET = 'isolation-signing-secret-1f9a';

const CONFIG = `
state:
  url: \${STATE_URL}
limits:
  statement_timeout: 3s
  lock_timeout: 1s
  row_cap: 50
  connect_timeout: 8s
targets:
  sick:
    url: \${SICK_URL}
    environment: staging
  well:
    url: \${WELL_URL}
    environment: staging
people:
  alice: { slack: T1/UALICE, cli: alice, roles: [dba] }
policy:
  staging: { read: [everyone], write: [dba], request: [dba], approve: [dba] }
`;

const SICK_ANSWER = /sick stopped answering|sick did not give dbops a connection|target sick did not give/;

let fake: FakeSlack;
let proxy: HalfOpenProxy;
let bot: ReturnType<typeof launch>;
let url: string;
let healthUrl: string;
const logs: string[] = [];

function launch(configPath: string, env: Record<string, string>) {
  return execa('node', [CLI, 'start', '--config', configPath], {
    env,
    extendEnv: false,
    reject: false,
    buffer: false,
  });
}

beforeAll(async () => {
  const [target, state] = await Promise.all([
    createDatabase('iso_target', 'CREATE TABLE marker_well_table (id int)'),
    createDatabase('iso_state'),
  ]);
  proxy = await HalfOpenProxy.start(target.url);
  fake = await FakeSlack.start();
  const configPath = join(tmpdir(), `dbops-isolation-${state.name}.yaml`);
  writeFileSync(configPath, CONFIG);
  const port = await freePort();
  const healthPort = await freePort();
  url = `http://127.0.0.1:${port}/slack/events`;
  healthUrl = `http://127.0.0.1:${healthPort}`;
  bot = launch(configPath, {
    PATH: process.env.PATH ?? '',
    STATE_URL: state.url,
    SICK_URL: proxy.url(),
    WELL_URL: target.url,
    DBOPS_LOG_LEVEL: 'info',
    DBOPS_HTTP_HOST: '127.0.0.1',
    DBOPS_HTTP_PORT: String(healthPort),
    SLACK_API_RETRIES: '0',
    SLACK_BOT_TOKEN: 'xoxb-test',
    SLACK_SIGNING_SECRET: SECRET,
    SLACK_PORT: String(port),
    SLACK_API_URL: fake.apiUrl,
  });
  bot.stderr?.on('data', (chunk: Buffer) => logs.push(chunk.toString()));
  for (let i = 0; i < 300; i++) {
    if (logs.join('').includes('dbops started')) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the bot did not start:\n${logs.join('')}`);
}, 60_000);

afterAll(async () => {
  bot?.kill('SIGTERM');
  await bot;
  proxy?.heal();
  await proxy?.close();
  await fake?.close();
});

async function command(text: string): Promise<void> {
  const sent = await postSigned(url, {
    secret: SECRET,
    body: formBody(slashCommand(fake, { user: 'UALICE', channel: 'COPS', text })),
    contentType: 'application/x-www-form-urlencoded',
  });
  expect(sent.status).toBe(200);
}

function matching(pattern: RegExp, from = 0): ApiCall[] {
  return fake.calls.slice(from).filter((call) => pattern.test(JSON.stringify(call.body)));
}

async function answered(pattern: RegExp, count = 1, from = 0, ms = 60_000): Promise<ApiCall[]> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const found = matching(pattern, from);
    if (found.length >= count) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `no ${count} answers matching ${pattern}:\n${fake.calls.map((c) => `${c.method} ${JSON.stringify(c.body).slice(0, 300)}`).join('\n')}`,
  );
}

describe('a frozen target does not hold up the others', () => {
  it('answers a healthy target and help while eight commands hang; shows them; recovers after healing', async () => {
    proxy.freeze();
    const from = fake.calls.length;
    for (let i = 0; i < 8; i++) await command('sizes sick');
    await command('table-sizes well');
    await command('help');
    // Answered while every sick command is still hanging (their deadlines are 8 s and more away).
    await answered(/marker_well_table/, 1, from, 20_000);
    await answered(/table-sizes/, 1, from, 20_000);
    expect(matching(SICK_ANSWER, from)).toHaveLength(0);

    const metrics = await (await fetch(`${healthUrl}/metrics`)).text();
    expect(metrics).toMatch(/^dbops_target_operations_in_flight\{target="sick"\} [1-9]\d*$/m);
    expect(metrics).toMatch(
      /^dbops_surface_queue_commands\{surface="slack",lane="target:sick",state="queued"\} 4$/m,
    );
    expect(metrics).toMatch(/^dbops_target_operations_in_flight\{target="well"\} 0$/m);

    // Once the work is older than 5 s, /readyz names it, and the bot stays ready.
    let detail: string[] = [];
    for (let i = 0; i < 100 && detail.length === 0; i++) {
      const ready = await fetch(`${healthUrl}/readyz`);
      expect(ready.status).toBe(200);
      const body = (await ready.json()) as { checks: { targets?: { detail?: string[] } } };
      detail = body.checks.targets?.detail ?? [];
      if (detail.length === 0) await new Promise((r) => setTimeout(r, 200));
    }
    expect(detail).toHaveLength(1);
    expect(detail[0]).toMatch(/^target sick: \d+ operations? stuck for \d+ s; slack has 8 commands for it/);

    // Every hung command ends with a clear answer, not silence and not "internal error".
    const sick = await answered(SICK_ANSWER, 8, from, 90_000);
    expect(sick).toHaveLength(8);
    expect(matching(/internal error/i, from)).toHaveLength(0);

    proxy.heal();
    const after = fake.calls.length;
    await command('sizes sick');
    await answered(/iso_target_/, 1, after, 30_000);
  }, 150_000);
});
