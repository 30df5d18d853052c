// One world for the approvals-channel tests: a state database (reached by the replicas through a proxy a
// test cuts), the fake Slack and Discord, two replicas running the built surfaces as `dbops start` does,
// and the requesting process (as `dbops exec` is) that reaches the state database directly.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'vitest';
import type { App } from '../../src/app.js';
import type { Config } from '../../src/config/schema.js';
import type { RunningSurface } from '../../src/surfaces/types.js';
import { FakeDiscord, fakeUser } from '../fakes/discord.js';
import { type ApiCall, FakeSlack } from '../fakes/slack.js';
import { freePort } from '../setup/postgres.js';
import { adminQuery, createDatabase } from './db.js';
import { type CuttableProxy, cuttableProxy } from './state-proxy.js';

export const SECRET = 'approvals-channel-signing-secret';
export const DAN = fakeUser('400000000000000004', 'dan');
export const ROLE_DBA = '400000000000000777';

/** The built modules, as `dbops start` runs them (the Slack receiver uses dist/). */
async function built<M>(path: string): Promise<M> {
  return (await import(pathToFileURL(resolve('dist/src', path)).href)) as M;
}

const yaml = (discordChannel: string) => `
state:
  url: \${STATE_URL}
limits: { statement_timeout: 5s, lock_timeout: 1s, connect_timeout: 2s }
targets:
  prod:
    url: \${TARGET_URL}
    environment: production
  stage:
    url: \${TARGET_URL}
    environment: staging
  lab:
    url: \${TARGET_URL}
    environment: lab
  dmt:
    url: \${TARGET_URL}
    environment: dmenv
people:
  bob: { cli: bob, roles: [oncall] }
  dan: { cli: dan, slack: T1/UDAN, discord: "${DAN.id}", roles: [dba] }
role_sources:
  roles:
    dba: { slack_groups: [S0DBA], discord_roles: ["${ROLE_DBA}"] }
    lead: { slack_groups: [S0LEAD] }
policy:
  production:
    read: [oncall, dba]
    request: [oncall, dba]
    approve: [dba]
    notify: mention
    escalate_after: 10m
    escalate_to: [lead]
    approvals_channel: { slack: C0APPROVALS, name: "#ops-approvals" }
  staging:
    read: [oncall, dba]
    request: [oncall, dba]
    approve: [dba]
    notify: mention
    approvals_channel: { discord: "${discordChannel}" }
  lab: { read: [oncall, dba], request: [oncall, dba], approve: [dba], notify: mention }
  dmenv:
    read: [oncall, dba]
    request: [oncall, dba]
    approve: [dba]
    notify: dm
    approvals_channel: { slack: C0DMAPPROVALS }
`;

export interface World {
  slack: FakeSlack;
  discord: FakeDiscord;
  proxy: CuttableProxy;
  stateDb: { name: string; url: string };
  targetUrl: string;
  configPath: string;
  /** The requesting process. */
  cli: App;
  directConfig: Config;
  replicas: { app: App; surfaces: RunningSurface[]; url: string }[];
  /** The replicas' clock (escalation). */
  setNow(date: Date): void;
  close(): Promise<void>;
}

export async function startWorld(prefix: string): Promise<World> {
  const { createApp } = await built<typeof import('../../src/app.js')>('app.js');
  const { loadConfigText } = await built<typeof import('../../src/config/load.js')>('config/load.js');
  const { silentLogger } = await built<typeof import('../../src/core/log.js')>('core/log.js');
  const { startSurfaces } = await built<typeof import('../../src/surfaces/start.js')>('surfaces/start.js');
  const [stateDb, target] = await Promise.all([
    createDatabase(`${prefix}_state`),
    createDatabase(`${prefix}_target`, 'CREATE TABLE exams (id int); INSERT INTO exams VALUES (1);'),
  ]);
  const slack = await FakeSlack.start();
  slack.userGroups.set('S0DBA', ['UDAN']);
  slack.userGroups.set('S0LEAD', ['ULEA']);
  const discord = await FakeDiscord.start({ guildRoles: [ROLE_DBA] });
  const proxy = await cuttableProxy(stateDb.url);
  const text = yaml(discord.channel.id);
  const configPath = join(tmpdir(), `dbops-announce-${stateDb.name}.yaml`);
  writeFileSync(configPath, text);
  const directConfig: Config = loadConfigText(text, 'announce.yaml', {
    STATE_URL: stateDb.url,
    TARGET_URL: target.url,
  });
  const cli = await createApp({ config: directConfig, log: silentLogger() });
  const config = loadConfigText(text, 'announce.yaml', { STATE_URL: proxy.url, TARGET_URL: target.url });
  let now = new Date();
  const replicas: World['replicas'] = [];
  for (const withDiscord of [true, false]) {
    const app = await createApp({ config, log: silentLogger(), clock: () => now });
    const port = await freePort();
    const env = {
      SLACK_BOT_TOKEN: 'xoxb-annc',
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_PORT: String(port),
      SLACK_API_URL: slack.apiUrl,
      SLACK_API_RETRIES: '0',
      ...(withDiscord ? discord.env() : {}),
    };
    const surfaces = await startSurfaces({
      app,
      config,
      env,
      log: silentLogger(),
      announceEveryMs: SWEEP_MS,
    });
    replicas.push({ app, surfaces, url: `http://127.0.0.1:${port}/slack/events` });
  }
  return {
    slack,
    discord,
    proxy,
    stateDb,
    targetUrl: target.url,
    configPath,
    cli,
    directConfig,
    replicas,
    setNow(date) {
      now = date;
    },
    async close() {
      for (const replica of replicas) {
        await Promise.allSettled(replica.surfaces.map((s) => s.stop()));
        await replica.app.close();
      }
      await cli.close();
      await proxy.close();
      await slack.close();
      await discord.stop();
    },
  };
}

export function textOf(call: ApiCall): string {
  return JSON.stringify(call.body);
}

/** Cards in the approvals channel (top-level messages with the buttons of request `id`). */
export function cardsOf(world: World, id: number): ApiCall[] {
  return world.slack
    .callsOf('chat.postMessage')
    .filter(
      (c) =>
        c.body.channel === 'C0APPROVALS' &&
        c.body.thread_ts === undefined &&
        textOf(c).includes(`"value":"${id}"`) &&
        textOf(c).includes('dbops_approve'),
    );
}

export async function announced(
  world: World,
  id: number,
): Promise<{ at: Date | null; refs: Record<string, unknown> }> {
  const [row] = await adminQuery<{ announced_at: Date | null; refs: Record<string, unknown> }>(
    'SELECT announced_at, refs FROM dbops_requests WHERE id = $1',
    [id],
    world.stateDb.name,
  );
  return { at: row?.announced_at ?? null, refs: row?.refs ?? {} };
}

/** A request made as bob through the core's CLI path (what `dbops exec` does). */
export async function request(world: World, text: string): Promise<{ id: number; text: string }> {
  const reply = await world.cli.core.dispatch({ surface: 'cli', identity: 'bob', text });
  expect(reply.status).toBe('pending');
  return { id: reply.requestId ?? -1, text: reply.text };
}

/** How often each replica sweeps in these tests (2 s in production). */
const SWEEP_MS = 250;

/** Longer than a few sweeps of every replica. */
export const severalSweeps = () => new Promise((r) => setTimeout(r, 6 * SWEEP_MS));
