// Several replicas behave as one: two built `dbops start` processes share one state database and one target,
// both take signed Slack HTTP requests, and a request, its approval and its expiry each happen exactly once.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ApiCall,
  blockAction,
  FakeSlack,
  formBody,
  interactionBody,
  postSigned,
  slashCommand,
} from './fakes/slack.js';
import { adminQuery, createDatabase, openClient } from './helpers/db.js';
import { freePort } from './setup/postgres.js';

const CLI = resolve('dist/src/cli.js');
const SECRET = 'replicas-signing-secret';
const FORM = 'application/x-www-form-urlencoded';

const CONFIG = `
state:
  url: \${STATE_URL}
limits:
  statement_timeout: 5s
  lock_timeout: 1s
  row_cap: 500
  connect_timeout: 2s
targets:
  staging:
    url: \${STAGING_URL}
    environment: staging
  scratch:
    url: \${STAGING_URL}
    environment: scratch
  slowlock:
    url: \${STAGING_URL}
    environment: staging
    limits: { lock_timeout: 60s, statement_timeout: 90s }
people:
  alice: { slack: T1/UALICE, roles: [dba] }
  bob:   { slack: T1/UBOB, roles: [oncall] }
policy:
  staging: { read: [everyone], write: [oncall, dba], request: [oncall, dba], approve: [oncall, dba] }
  scratch: { read: [everyone], write: [oncall, dba], request: [oncall, dba], approve: [oncall, dba], expiry: 3s }
`;

interface Replica {
  name: string;
  events: string;
  logs: string[];
  child: ReturnType<typeof spawn>;
}

let staging: { name: string; url: string };
let stateDb: { name: string; url: string };
let fake: FakeSlack;
let configPath: string;
const replicas: Replica[] = [];
const held: pg.Client[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function spawn(configPath: string, httpPort: number, slackPort: number, extraEnv: Record<string, string>) {
  return execa('node', [CLI, 'start', '--config', configPath], {
    env: {
      PATH: process.env.PATH ?? '',
      STATE_URL: stateDb.url,
      STAGING_URL: staging.url,
      DBOPS_LOG_LEVEL: 'info',
      DBOPS_HTTP_HOST: '127.0.0.1',
      DBOPS_HTTP_PORT: String(httpPort),
      // Both replicas look for overdue requests every second: they race for every expiry.
      DBOPS_SWEEP_INTERVAL: '1',
      SLACK_BOT_TOKEN: 'xoxb-replica',
      SLACK_MODE: 'http',
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_PORT: String(slackPort),
      SLACK_API_URL: fake.apiUrl,
      SLACK_API_RETRIES: '0',
      ...extraEnv,
    },
    extendEnv: false,
    reject: false,
    buffer: false,
  });
}

async function launch(
  name: string,
  configPath: string,
  extraEnv: Record<string, string> = {},
): Promise<Replica> {
  const [httpPort, slackPort] = [await freePort(), await freePort()];
  const child = spawn(configPath, httpPort, slackPort, extraEnv);
  const logs: string[] = [];
  child.stderr?.on('data', (chunk: Buffer) => logs.push(...chunk.toString().split('\n').filter(Boolean)));
  const replica = { name, events: `http://127.0.0.1:${slackPort}/slack/events`, logs, child };
  replicas.push(replica);
  for (let waited = 0; ; waited += 100) {
    if (child.exitCode !== null) throw new Error(`${name} exited:\n${logs.join('\n')}`);
    const ready = await fetch(`http://127.0.0.1:${httpPort}/readyz`).catch(() => undefined);
    if (ready?.status === 200) return replica;
    if (waited > 30_000) throw new Error(`${name} did not become ready:\n${logs.join('\n')}`);
    await sleep(100);
  }
}

function textOf(call: ApiCall): string {
  return JSON.stringify(call.body);
}

function buttons(call: ApiCall): { action_id: string; value: string }[] {
  return ((call.body.blocks ?? []) as { type: string; elements?: unknown }[]).flatMap((b) =>
    b.type === 'actions' ? (b.elements as { action_id: string; value: string }[]) : [],
  );
}

/** Idle sessions on the target that `kill-idle --older-than 1s` will find (once a second has passed). */
async function idleSessions(count: number, name: string): Promise<number[]> {
  const clients = await Promise.all(Array.from({ length: count }, () => openClient(staging.url, name)));
  held.push(...clients);
  const pids = [];
  for (const client of clients) {
    pids.push((await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid as number);
  }
  await sleep(1500);
  return pids;
}

async function alive(pids: number[]): Promise<number> {
  const rows = await adminQuery('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])', [pids]);
  return rows.length;
}

async function audits(id: number, event: string): Promise<number> {
  const [row] = await adminQuery<{ n: number }>(
    'SELECT count(*)::int AS n FROM dbops_audit WHERE request_id = $1 AND event = $2',
    [id, event],
    stateDb.name,
  );
  return row?.n ?? 0;
}

/** The closing 'executed' record follows the reply (written just after it): wait for it, then check it stays one. */
async function executedOnce(id: number): Promise<number> {
  await expect.poll(() => audits(id, 'executed'), { timeout: 10_000 }).toBeGreaterThan(0);
  await new Promise((resolve) => setTimeout(resolve, 300));
  return await audits(id, 'executed');
}

async function status(id: number): Promise<string | undefined> {
  const [row] = await adminQuery<{ status: string }>(
    'SELECT status FROM dbops_requests WHERE id = $1',
    [id],
    stateDb.name,
  );
  return row?.status;
}

/** Where the bot stored a request's card (written just after the card is posted). */
async function storedRefs(id: number): Promise<{ channel: string; ts: string; thread: string }> {
  for (let waited = 0; waited < 10_000; waited += 50) {
    const [row] = await adminQuery<{ refs: { slack?: { channel: string; ts: string; thread: string } } }>(
      'SELECT refs FROM dbops_requests WHERE id = $1',
      [id],
      stateDb.name,
    );
    if (row?.refs.slack) return row.refs.slack;
    await sleep(50);
  }
  throw new Error(`request #${id} has no Slack refs`);
}

/** Alice asks through `replica`; returns the request id and where its card is. */
async function request(replica: Replica, text: string) {
  const from = fake.calls.length;
  const ack = await postSigned(replica.events, {
    secret: SECRET,
    body: formBody(slashCommand(fake, { user: 'UALICE', channel: 'COPS', text })),
    contentType: FORM,
  });
  expect(ack.status).toBe(200);
  const card = await fake.until(
    () => fake.callsOf('chat.postMessage', from).find((c) => buttons(c).length > 0),
    `the approval card for ${text}`,
    15_000,
  );
  const approve = buttons(card).find((b) => b.action_id === 'dbops_approve');
  if (!approve) throw new Error(`no approve button: ${textOf(card)}`);
  const id = Number(approve.value);
  return { id, ref: await storedRefs(id) };
}

function approveClick(id: number, ref: { channel: string; ts: string; thread: string }): string {
  return interactionBody(
    blockAction(fake, {
      user: 'UBOB',
      channel: ref.channel,
      messageTs: ref.ts,
      threadTs: ref.thread,
      actionId: 'dbops_approve',
      value: String(id),
    }),
  );
}

async function settled(id: number): Promise<string> {
  for (let waited = 0; waited < 15_000; waited += 100) {
    const now = await status(id);
    if (now && !['pending', 'approved', 'running'].includes(now)) return now;
    await sleep(100);
  }
  throw new Error(`request #${id} did not finish`);
}

/** Results posted in the request's thread that report the run (not the card, not the parent). */
function resultPosts(from: number, thread: string): ApiCall[] {
  return fake
    .callsOf('chat.postMessage', from)
    .filter((c) => c.body.thread_ts === thread && buttons(c).length === 0 && /terminated/i.test(textOf(c)));
}

beforeAll(async () => {
  [staging, stateDb] = await Promise.all([
    createDatabase('replicas_staging'),
    createDatabase('replicas_state'),
  ]);
  configPath = join(tmpdir(), `dbops-replicas-${stateDb.name}.yaml`);
  writeFileSync(configPath, CONFIG);
  fake = await FakeSlack.start();
  // One at a time: both migrate the same state database, and the second must find it ready.
  await launch('A', configPath);
  await launch('B', configPath);
}, 90_000);

afterAll(async () => {
  await Promise.all(
    replicas.map(async (r) => {
      r.child.kill('SIGTERM');
      await r.child;
    }),
  );
  await Promise.all(held.map((c) => c.end().catch(() => {})));
  await fake?.close();
});

describe('two dbops replicas sharing one state database (Slack HTTP mode)', () => {
  it('a request made through replica A is approved by a click delivered to replica B, which runs it', async () => {
    const [a, b] = replicas as [Replica, Replica];
    const pids = await idleSessions(3, 'replica-idle-a');
    const { id, ref } = await request(a, 'kill-idle staging --older-than 1s');
    expect(await status(id)).toBe('pending');
    expect(await alive(pids)).toBe(3);

    const from = fake.calls.length;
    const click = await postSigned(b.events, {
      secret: SECRET,
      body: approveClick(id, ref),
      contentType: FORM,
    });
    expect(click.status).toBe(200);
    expect(await settled(id)).toBe('succeeded');
    expect(await alive(pids)).toBe(0);
    expect(await executedOnce(id)).toBe(1);
    await fake.until(() => resultPosts(from, ref.thread).length >= 1, 'the result in the thread');
    const update = await fake.until(
      () => fake.callsOf('chat.update', from).find((c) => c.body.ts === ref.ts && buttons(c).length === 0),
      'the card without buttons',
    );
    expect(textOf(update)).toContain('approved by');
  });

  it('the same click delivered to both replicas at once runs the operation once', async () => {
    const [a, b] = replicas as [Replica, Replica];
    const pids = await idleSessions(3, 'replica-idle-b');
    const { id, ref } = await request(b, 'kill-idle staging --older-than 1s');
    const from = fake.calls.length;
    const body = approveClick(id, ref);
    const acks = await Promise.all(
      [a, b].map((r) => postSigned(r.events, { secret: SECRET, body, contentType: FORM })),
    );
    expect(acks.map((x) => x.status)).toEqual([200, 200]);
    expect(await settled(id)).toBe('succeeded');
    expect(await alive(pids)).toBe(0);
    await fake.until(() => resultPosts(from, ref.thread).length >= 1, 'the result in the thread');
    // Whatever the losing replica might still do has had time to show.
    await sleep(2000);
    expect(await executedOnce(id)).toBe(1);
    expect(await audits(id, 'approved')).toBeLessThanOrEqual(1);
    expect(resultPosts(from, ref.thread)).toHaveLength(1);
    expect(fake.callsOf('chat.postEphemeral', from)).toEqual([]);
  });

  it('two different clicks on Approve, one to each replica at once, still run it once', async () => {
    const [a, b] = replicas as [Replica, Replica];
    const pids = await idleSessions(2, 'replica-idle-c');
    const { id, ref } = await request(a, 'kill-idle staging --older-than 1s');
    const from = fake.calls.length;
    // Two deliveries (two trigger ids): the claim on the delivery does not help, the request row decides.
    const acks = await Promise.all(
      [a, b].map((r) =>
        postSigned(r.events, { secret: SECRET, body: approveClick(id, ref), contentType: FORM }),
      ),
    );
    expect(acks.map((x) => x.status)).toEqual([200, 200]);
    expect(await settled(id)).toBe('succeeded');
    expect(await alive(pids)).toBe(0);
    await fake.until(() => resultPosts(from, ref.thread).length >= 1, 'the result in the thread');
    await sleep(2000);
    expect(await executedOnce(id)).toBe(1);
    expect(resultPosts(from, ref.thread)).toHaveLength(1);
  });

  it('a request expires once although both replicas sweep every second', async () => {
    const [a] = replicas as [Replica, Replica];
    const pids = await idleSessions(1, 'replica-idle-d');
    const { id, ref } = await request(a, 'kill-idle scratch --older-than 1s');
    const from = fake.calls.length;
    for (let waited = 0; (await status(id)) === 'pending'; waited += 200) {
      if (waited > 15_000) throw new Error(`request #${id} did not expire`);
      await sleep(200);
    }
    expect(await status(id)).toBe('expired');
    // Several more sweeps of each replica.
    await sleep(3500);
    expect(await audits(id, 'expired')).toBe(1);
    const updates = fake.callsOf('chat.update', from).filter((c) => c.body.ts === ref.ts);
    expect(updates).toHaveLength(1);
    expect(textOf(updates[0] as ApiCall)).toContain('expired');
    expect(buttons(updates[0] as ApiCall)).toEqual([]);
    expect(await audits(id, 'executed')).toBe(0);
    expect(await alive(pids)).toBe(1);
  });

  it('a replica killed in the middle of a run: another reports the run interrupted, once, on its card', async () => {
    const c = await launch('C', configPath, { DBOPS_RUN_LEASE: '2s' });
    await adminQuery('CREATE TABLE lease_victim (id int)', [], staging.name);
    // VACUUM FULL waits for this lock (lock_timeout 60 s on slowlock): the run stays under way.
    const locker = await openClient(staging.url, 'replica-locker');
    held.push(locker);
    await locker.query('BEGIN; LOCK TABLE lease_victim IN ACCESS SHARE MODE');
    try {
      const { id, ref } = await request(c, 'vacuum slowlock lease_victim --full');
      const click = await postSigned(c.events, {
        secret: SECRET,
        body: approveClick(id, ref),
        contentType: FORM,
      });
      expect(click.status).toBe(200);
      for (let waited = 0; (await status(id)) !== 'running'; waited += 50) {
        if (waited > 15_000) throw new Error(`request #${id} did not start`);
        await sleep(50);
      }
      const from = fake.calls.length;
      c.child.kill('SIGKILL');
      await c.child;
      // C's lease (2 s) runs out; A and B sweep every second: exactly one of them reports it.
      expect(await settled(id)).toBe('failed');
      const [row] = await adminQuery<{ error: string; runner: string }>(
        'SELECT error, runner FROM dbops_requests WHERE id = $1',
        [id],
        stateDb.name,
      );
      expect(row?.error).toContain(`interrupted: the dbops replica running it (${row?.runner})`);
      expect(row?.error).toContain('whether the operation took effect is unknown');
      await sleep(2500);
      expect(await audits(id, 'interrupted')).toBe(1);
      expect(await audits(id, 'executed')).toBe(0);
      const updates = fake.callsOf('chat.update', from).filter((u) => u.body.ts === ref.ts);
      expect(updates).toHaveLength(1);
      expect(textOf(updates[0] as ApiCall)).toContain('interrupted');
      expect(buttons(updates[0] as ApiCall)).toEqual([]);
    } finally {
      await locker.query('ROLLBACK');
      replicas.splice(replicas.indexOf(c), 1);
    }
  });

  it('logged no errors in either replica', () => {
    for (const r of replicas) {
      const errors = r.logs.filter((l) => /"level":(50|60)/.test(l));
      expect(errors, `${r.name}:\n${errors.join('\n')}`).toEqual([]);
    }
  });
});
