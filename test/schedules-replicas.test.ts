// Two built `dbops start` processes share one state database (through a proxy the test can cut): every
// cron slot runs once across both, a long run never overlaps the next, a replica killed mid-run leaves its
// run reported interrupted (once), and slots missed while the state database was down run once after.

import { writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminQuery, createDatabase, openClient } from './helpers/db.js';
import { type CuttableProxy, cuttableProxy } from './helpers/state-proxy.js';
import { freePort } from './setup/postgres.js';

const CLI = resolve('dist/src/cli.js');

const CONFIG = `
state:
  url: \${STATE_URL}
limits: { statement_timeout: 30s, lock_timeout: 20s, row_cap: 50, connect_timeout: 2s }
backups: { dir: "\${BACKUPS}" }
targets:
  staging: { url: "\${STAGING_URL}", environment: staging }
people:
  alice: { cli: alice, roles: [dba] }
  robot: { service: true, roles: [ops] }
policy:
  staging: { read: [ops, dba], write: [ops, dba], request: [dba], approve: [dba] }
schedules:
  tick: { cron: "*/5 * * * * *", operation: sizes, target: staging, as: robot, post: "slack:C0NOWHERE" }
  slow: { cron: "*/3 * * * * *", operation: vacuum, target: staging, args: exams, as: robot }
`;

interface Replica {
  child: ReturnType<typeof spawn>;
  logs: string[];
  pid: number;
  port: number;
}

let state: { name: string; url: string };
let staging: { name: string; url: string };
let proxy: CuttableProxy;
let configPath: string;
let backups: string;
const replicas: Replica[] = [];
const held: pg.Client[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function spawn(port: number) {
  return execa('node', [CLI, 'start', '--config', configPath], {
    env: {
      PATH: process.env.PATH ?? '',
      STATE_URL: proxy.url,
      STAGING_URL: staging.url,
      BACKUPS: backups,
      DBOPS_LOG_LEVEL: 'info',
      DBOPS_HTTP_HOST: '127.0.0.1',
      DBOPS_HTTP_PORT: String(port),
      DBOPS_SCHEDULE_TICK: '0.5',
      // Short for the test, but not so short that a loaded machine's late heartbeat looks like a death.
      DBOPS_SCHEDULE_LEASE: '4',
    },
    extendEnv: false,
    reject: false,
    buffer: false,
  });
}

async function launch(): Promise<Replica> {
  const port = await freePort();
  const child = spawn(port);
  const logs: string[] = [];
  child.stderr?.on('data', (chunk: Buffer) => logs.push(...chunk.toString().split('\n').filter(Boolean)));
  child.stdout?.on('data', (chunk: Buffer) => logs.push(...chunk.toString().split('\n').filter(Boolean)));
  const replica = { child, logs, pid: child.pid as number, port };
  replicas.push(replica);
  for (let waited = 0; ; waited += 100) {
    if (child.exitCode !== null) throw new Error(`replica exited:\n${logs.join('\n')}`);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    if (ready?.status === 200) return replica;
    if (waited > 30_000) throw new Error(`replica did not become ready:\n${logs.join('\n')}`);
    await sleep(100);
  }
}

interface RunRow {
  id: string;
  slot: Date;
  state: string;
  enqueued_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  runner: string | null;
}

async function runs(schedule: string): Promise<RunRow[]> {
  return await adminQuery<RunRow>(
    "SELECT * FROM dbops_schedule_runs WHERE schedule = $1 AND trigger = 'cron' ORDER BY slot",
    [schedule],
    state.name,
  );
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  for (let waited = 0; waited < ms; waited += 200) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(200);
  }
  throw new Error(
    `timed out waiting for ${what}\n${replicas.map((r) => r.logs.slice(-15).join('\n')).join('\n---\n')}`,
  );
}

beforeAll(async () => {
  [state, staging] = await Promise.all([
    createDatabase('sched_rep_state'),
    createDatabase(
      'sched_rep_target',
      'CREATE TABLE exams (id int primary key); INSERT INTO exams SELECT generate_series(1, 100);',
    ),
  ]);
  proxy = await cuttableProxy(state.url);
  backups = await mkdtemp(join(tmpdir(), 'dbops-sched-rep-'));
  configPath = join(backups, 'dbops.yaml');
  writeFileSync(configPath, CONFIG);
}, 60_000);

afterAll(async () => {
  for (const r of replicas) r.child.kill('SIGKILL');
  await Promise.allSettled(replicas.map((r) => r.child));
  await Promise.allSettled(held.map((c) => c.end()));
  await proxy?.close();
});

describe('two dbops start processes', () => {
  it('run each slot once, never overlap a long run, report a killed run, and catch up once', async () => {
    // A lock the scheduled vacuum waits behind: its runs last until the test lets go.
    const locker = await openClient(staging.url, 'locker');
    held.push(locker);
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE exams IN ACCESS EXCLUSIVE MODE');

    const [first] = await Promise.all([launch(), launch()]);
    const started = Date.now();
    // No chat surface runs, so nothing can post to the tick schedule's channel: ready, and said so.
    const ready = (await (await fetch(`http://127.0.0.1:${first.port}/readyz`)).json()) as {
      status: string;
      checks: Record<string, { ok: boolean; detail?: string[] }>;
    };
    expect(ready.status).toBe('ready');
    expect(ready.checks.schedules?.detail).toEqual([
      'cannot post to slack:C0NOWHERE: no chat surface is running that can post there',
    ]);
    expect(first.logs.join('\n')).toMatch(
      /a schedule posts to a channel no running chat surface can post to/,
    );

    // 1. Every 5 s slot of `tick` runs once across both replicas, through the core as robot.
    await until('four tick runs', async () =>
      (await runs('tick')).filter((r) => r.state === 'succeeded').length >= 4 ? true : undefined,
    );
    const ticks = (await runs('tick')).filter((r) => r.state === 'succeeded');
    const slots = ticks.map((r) => r.slot.getTime());
    expect(new Set(slots).size).toBe(slots.length);
    for (let i = 1; i < slots.length; i++) expect((slots[i] as number) - (slots[i - 1] as number)).toBe(5000);
    // A run's closing record follows its outcome by up to 25 ms (group commit): read once all are in.
    const executed = () =>
      adminQuery<{ thread: string; n: number }>(
        `SELECT thread, count(*)::int AS n FROM dbops_audit
         WHERE surface = 'schedule' AND operation = 'sizes' AND event = 'executed' GROUP BY thread`,
        [],
        state.name,
      );
    const audits = await until('an executed record of every tick run', async () => {
      const found = await executed();
      return ticks.every((run) => found.some((a) => a.thread === `schedule:tick:${run.id}`))
        ? found
        : undefined;
    });
    for (const run of ticks) {
      expect(audits.find((a) => a.thread === `schedule:tick:${run.id}`)?.n).toBe(1);
    }
    expect(audits.reduce((sum, a) => sum + a.n, 0)).toBe(
      (await runs('tick')).filter((r) => r.state !== 'queued' && r.state !== 'interrupted').length,
    );

    // 2. The vacuum that waits for the lock outlives its 3 s interval: one runs, the rest never overlap it.
    const slow = await runs('slow');
    expect(slow.filter((r) => r.state === 'running')).toHaveLength(1);
    expect(slow.filter((r) => r.state === 'queued').length).toBeLessThanOrEqual(1);
    expect(Date.now() - started).toBeGreaterThan(6000); // slots came due while it ran

    // 3. The replica running it is killed: the other reports the run interrupted, once.
    const running = slow.find((r) => r.state === 'running') as RunRow;
    const victim = replicas.find((r) => running.runner?.startsWith(`${hostname()}:${r.pid}:`));
    expect(victim).toBeDefined();
    victim?.child.kill('SIGKILL');
    await until('the run reported interrupted', async () =>
      (await runs('slow')).find((r) => r.id === running.id && r.state === 'interrupted') ? true : undefined,
    );
    const interrupted = await adminQuery<{ n: number }>(
      `SELECT count(*)::int AS n FROM dbops_audit WHERE event = 'interrupted' AND surface = 'schedule'
       AND detail->>'run' = $1`,
      [running.id],
      state.name,
    );
    expect(interrupted[0]?.n).toBe(1);
    // With the lock gone the survivor runs the waiting slot; never two at once, the intervals do not overlap.
    await locker.query('ROLLBACK');
    await until('a slow run succeeded after the kill', async () =>
      (await runs('slow')).some((r) => r.state === 'succeeded' && Number(r.id) > Number(running.id))
        ? true
        : undefined,
    );
    const finished = (await runs('slow')).filter((r) => r.started_at && r.finished_at);
    const spans = finished.map((r) => [r.started_at?.getTime() ?? 0, r.finished_at?.getTime() ?? 0] as const);
    spans.sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < spans.length; i++) {
      expect(spans[i]?.[0]).toBeGreaterThanOrEqual(spans[i - 1]?.[1] ?? 0);
    }

    // 4. The state database goes away just after a 5 s slot for 11 s (two slots missed), then comes back
    // 3.5 s before the next slot: the latest missed slot runs once, the other never.
    const toSlot = 5000 - (Date.now() % 5000);
    await sleep(toSlot + 500);
    const droppedAt = Date.now();
    proxy.drop();
    await sleep(11_000);
    proxy.restore();
    const restoredAt = Date.now();
    await until('a tick run after the outage', async () =>
      (await runs('tick')).some((r) => r.enqueued_at.getTime() >= restoredAt - 1000) ? true : undefined,
    );
    const missed = (await runs('tick')).filter(
      (r) => r.slot.getTime() > droppedAt && r.slot.getTime() <= restoredAt,
    );
    expect(missed).toHaveLength(1);
    expect(missed[0]?.slot.getTime()).toBeGreaterThan(restoredAt - 5000);
    const survivor = replicas.find((r) => r !== victim) as Replica;
    expect(survivor.child.exitCode).toBeNull();

    // 5. Metrics: runs by schedule and outcome, lag behind schedule (the caught-up run lagged seconds).
    const metrics = await (await fetch(`http://127.0.0.1:${survivor.port}/metrics`)).text();
    expect(metrics).toMatch(/^dbops_schedule_runs_total\{schedule="tick",outcome="succeeded"\} [1-9]/m);
    expect(metrics).toMatch(/^dbops_schedule_runs_total\{schedule="slow",outcome="interrupted"\} [1-9]/m);
    expect(metrics).toMatch(/^dbops_schedule_lag_seconds_count\{schedule="tick"\} [1-9]/m);
    const lag = Number(/^dbops_schedule_last_lag_seconds\{schedule="tick"\} (\S+)$/m.exec(metrics)?.[1]);
    expect(lag).toBeGreaterThanOrEqual(0);
    expect(lag).toBeLessThan(5);
  }, 120_000);
});
