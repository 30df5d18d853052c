// Production concerns: Prometheus metrics fed by the core, /healthz /readyz /metrics, graceful shutdown.
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { SHUTTING_DOWN_MESSAGE } from '../src/core/dispatch.js';
import { silentLogger } from '../src/core/log.js';
import { Metrics } from '../src/observability/metrics.js';
import {
  type HealthServer,
  SERVICE_DEFAULTS,
  serviceSettings,
  startHealthServer,
  stateProbe,
} from '../src/observability/server.js';
import { FakeSlack, formBody, postSigned, slashCommand } from './fakes/slack.js';
import { as, FIXTURE_YAML, type Fixture, makeFixture } from './helpers/app.js';
import { adminQuery, openClient } from './helpers/db.js';
import { freePort } from './setup/postgres.js';

const CLI = resolve('dist/src/cli.js');
let fx: Fixture;
const held: pg.Client[] = [];
const apps: App[] = [];

beforeAll(async () => {
  fx = await makeFixture();
});

afterAll(async () => {
  await Promise.all(apps.map((a) => a.close().catch(() => {})));
  await Promise.all(held.map((c) => c.end().catch(() => {})));
});

/** One sample of the Prometheus text: `name{labels} value`, labels given as a subset to match. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[3]);
  }
  return undefined;
}

async function appWith(metrics: Metrics, clock?: () => Date, yaml = FIXTURE_YAML): Promise<App> {
  const config = loadConfigText(yaml, 'fixture.yaml', fx.env);
  const app = await createApp({ config, log: silentLogger(), metrics, ...(clock ? { clock } : {}) });
  apps.push(app);
  return app;
}

describe('metrics fed by the core', () => {
  it('counts commands by operation, outcome and risk, and times operations by target', async () => {
    const metrics = new Metrics();
    const app = await appWith(metrics);
    expect((await as(app, 'carol')('/db sizes staging')).status).toBe('ok');
    expect((await as(app, 'carol')('/db sizes staging')).status).toBe('ok');
    expect((await as(app, 'carol')('/db sizes kasm')).status).toBe('refused');
    expect((await as(app, 'carol')('/db sizez staging')).status).toBe('invalid');
    expect((await as(app, 'carol')('/db help')).status).toBe('ok');
    const down = await as(app, 'carol')('/db sizes down');
    expect(down).toMatchObject({ status: 'failed', code: 'target_down' });

    const text = await metrics.text();
    const commands = (labels: Record<string, string>) => sample(text, 'dbops_commands_total', labels);
    expect(commands({ operation: 'sizes', outcome: 'ok', risk: 'read' })).toBe(2);
    expect(commands({ operation: 'sizes', outcome: 'refused', risk: 'read' })).toBe(1);
    expect(commands({ operation: 'sizes', outcome: 'failed', risk: 'read' })).toBe(1);
    // A typo is not a label value of its own: the series can not grow with what people type.
    expect(commands({ operation: 'unknown', outcome: 'invalid', risk: 'none' })).toBe(1);
    expect(text).not.toContain('sizez');
    expect(commands({ operation: 'help', outcome: 'ok' })).toBe(1);

    const ran = (labels: Record<string, string>) =>
      sample(text, 'dbops_operation_duration_seconds_count', labels);
    expect(ran({ target: 'staging', operation: 'sizes', phase: 'run', outcome: 'ok' })).toBe(2);
    expect(ran({ target: 'down', operation: 'sizes', phase: 'run', outcome: 'error' })).toBe(1);
    // The refused command never reached its target.
    expect(ran({ target: 'kasm' })).toBeUndefined();
    expect(sample(text, 'dbops_command_duration_seconds_count', { surface: 'cli' })).toBe(6);

    // Pools are read at scrape time: staging has its idle connection, the others never opened one.
    expect(sample(text, 'dbops_target_pool_connections', { target: 'staging' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'dbops_target_pool_idle_connections', { target: 'staging' })).toBeGreaterThanOrEqual(
      1,
    );
    expect(sample(text, 'dbops_target_pool_connections', { target: 'kasm' })).toBe(0);
    expect(sample(text, 'dbops_target_pool_waiting', { target: 'staging' })).toBe(0);
    expect(sample(text, 'dbops_commands_in_flight')).toBe(0);
    expect(sample(text, 'dbops_shutting_down')).toBe(0);
  });

  it('observes the approval latency from the request timestamps when it is approved', async () => {
    const metrics = new Metrics();
    let now = new Date();
    const app = await appWith(metrics, () => now);
    const created = await as(app, 'alice')('/db reindex staging exams');
    expect(created.status).toBe('pending');
    expect(sample(await metrics.text(), 'dbops_approval_latency_seconds_count')).toBeUndefined();
    now = new Date(now.getTime() + 42_000);
    const approved = await as(app, 'bob')(`/db approve ${created.requestId}`);
    expect(approved.status).toBe('ok');

    const text = await metrics.text();
    expect(sample(text, 'dbops_approval_latency_seconds_count', { environment: 'staging' })).toBe(1);
    expect(sample(text, 'dbops_approval_latency_seconds_sum', { environment: 'staging' })).toBeCloseTo(42, 3);
    expect(sample(text, 'dbops_approval_latency_seconds_bucket', { environment: 'staging', le: '30' })).toBe(
      0,
    );
    expect(sample(text, 'dbops_approval_latency_seconds_bucket', { environment: 'staging', le: '60' })).toBe(
      1,
    );
    const ran = (phase: string) =>
      sample(text, 'dbops_operation_duration_seconds_count', { operation: 'reindex', phase, outcome: 'ok' });
    expect(ran('preview')).toBe(1);
    expect(ran('execute')).toBe(1);
    expect(sample(text, 'dbops_commands_total', { operation: 'reindex', outcome: 'pending' })).toBe(1);
    expect(sample(text, 'dbops_commands_total', { operation: 'approve', outcome: 'ok' })).toBe(1);
  });

  it('counts audit writes that fail (and the operation does not run)', async () => {
    const metrics = new Metrics();
    const app = await appWith(metrics);
    await adminQuery('ALTER TABLE dbops_audit RENAME TO dbops_audit_away', [], fx.state.name);
    try {
      const refused = await as(app, 'carol')('/db sizes staging');
      expect(refused).toMatchObject({ status: 'failed', code: 'state_unavailable' });
    } finally {
      await adminQuery('ALTER TABLE dbops_audit_away RENAME TO dbops_audit', [], fx.state.name);
    }
    const text = await metrics.text();
    expect(sample(text, 'dbops_audit_write_failures_total', { event: 'requested' })).toBe(1);
    expect(sample(text, 'dbops_operation_duration_seconds_count', { operation: 'sizes' })).toBeUndefined();
    expect((await as(app, 'carol')('/db sizes staging')).status).toBe('ok');
    expect(sample(await metrics.text(), 'dbops_audit_write_failures_total', { event: 'requested' })).toBe(1);
  });

  it('reports each chat surface as up or down, read when scraped', async () => {
    const metrics = new Metrics();
    let slackUp = true;
    metrics.observeSurfaces(() => [
      { name: 'slack', healthy: () => slackUp },
      { name: 'discord', healthy: () => true },
    ]);
    expect(sample(await metrics.text(), 'dbops_surface_up', { surface: 'slack' })).toBe(1);
    slackUp = false;
    const text = await metrics.text();
    expect(sample(text, 'dbops_surface_up', { surface: 'slack' })).toBe(0);
    expect(sample(text, 'dbops_surface_up', { surface: 'discord' })).toBe(1);
  });
});

/** A session holding an ACCESS EXCLUSIVE lock on staging's exams, as a migration would. */
async function lockExams(): Promise<pg.Client> {
  const client = await openClient(fx.staging.url, 'test-migration');
  held.push(client);
  await client.query('BEGIN');
  await client.query('LOCK TABLE exams IN ACCESS EXCLUSIVE MODE');
  return client;
}

async function waitForLockWait(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const rows = await adminQuery(
      "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'dbops' AND wait_event_type = 'Lock'",
      [fx.staging.name],
    );
    if (rows.length > 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the export never waited for the lock');
}

// Long enough that the export waits for the test to release the lock, not for a timeout.
const PATIENT_YAML = FIXTURE_YAML.replace('lock_timeout: 1s', 'lock_timeout: 25s');

describe('graceful shutdown of the core', () => {
  it('refuses new commands while draining and waits for the running one to finish', async () => {
    const metrics = new Metrics();
    const app = await appWith(metrics, undefined, PATIENT_YAML);
    const migration = await lockExams();
    try {
      const slow = as(app, 'carol')('/db export staging exams --limit 5');
      await waitForLockWait();
      expect(app.core.inFlight).toBe(1);

      let drainedAs: boolean | undefined;
      const drained = app.core.drain(20_000).then((clean) => {
        drainedAs = clean;
        return clean;
      });
      expect(app.core.draining).toBe(true);
      const late = await as(app, 'bob')('/db sizes staging');
      expect(late).toMatchObject({ status: 'failed', requestId: null, ephemeral: true });
      expect(late.message).toBe(SHUTTING_DOWN_MESSAGE);
      expect(late.text).toContain('dbops is shutting down');
      expect(await app.core.sweepExpired()).toEqual([]);
      const during = await metrics.text();
      expect(sample(during, 'dbops_shutting_down')).toBe(1);
      expect(sample(during, 'dbops_commands_in_flight')).toBe(1);
      // Still waiting: the export holds the drain open until the lock goes away.
      await new Promise((r) => setTimeout(r, 300));
      expect(drainedAs).toBeUndefined();

      await migration.query('COMMIT');
      const finished = await slow;
      expect(finished.status).toBe('ok');
      expect(finished.result?.data?.rows).toBe(5);
      expect(await drained).toBe(true);
      expect(app.core.inFlight).toBe(0);
      // The refused command was answered but never audited or stored.
      const audited = await adminQuery<{ n: string }>(
        "SELECT count(*)::text AS n FROM dbops_audit WHERE identity = 'cli:bob' AND operation = 'sizes'",
        [],
        fx.state.name,
      );
      expect(audited[0]?.n).toBe('0');
    } finally {
      await migration.query('ROLLBACK').catch(() => {});
    }
  });

  it('gives up at the deadline and says so, leaving pending approvals as they are', async () => {
    const app = await appWith(new Metrics(), undefined, PATIENT_YAML);
    const pending = await as(app, 'alice')('/db reindex staging exams');
    expect(pending.status).toBe('pending');
    const migration = await lockExams();
    try {
      const slow = as(app, 'carol')('/db export staging exams --limit 5');
      await waitForLockWait();
      expect(await app.core.drain(300)).toBe(false);
      expect(app.core.inFlight).toBe(1);
      await migration.query('ROLLBACK');
      expect((await slow).status).toBe('ok');
    } finally {
      await migration.query('ROLLBACK').catch(() => {});
    }
    const rows = await adminQuery<{ status: string }>(
      'SELECT status FROM dbops_requests WHERE id = $1',
      [pending.requestId],
      fx.state.name,
    );
    expect(rows[0]?.status).toBe('pending');
  });

  it('drains at once when nothing runs', async () => {
    const app = await appWith(new Metrics());
    expect(await app.core.drain(5_000)).toBe(true);
    expect((await as(app, 'carol')('/db sizes staging')).message).toBe(SHUTTING_DOWN_MESSAGE);
  });
});

async function get(url: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(url, { method });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

describe('health endpoints', () => {
  let server: HealthServer;
  let stateUrl: string;
  let slack = { healthy: true, problem: undefined as string | undefined };
  let phase: string | undefined;
  const probes: { close(): Promise<void> }[] = [];

  beforeAll(async () => {
    stateUrl = fx.state.url;
    const metrics = new Metrics();
    server = await startHealthServer({
      host: '127.0.0.1',
      port: 0,
      metrics,
      log: silentLogger(),
      checkState: () => {
        const probe = stateProbe(stateUrl, { timeoutMs: 1_000 });
        probes.push(probe);
        return probe.check();
      },
      surfaces: () => [{ name: 'slack', healthy: () => slack.healthy, problem: () => slack.problem }],
      notTakingCommands: () => phase,
    });
  });

  afterAll(async () => {
    await server?.close();
    await Promise.all(probes.map((p) => p.close()));
  });

  it('/healthz answers while the process lives', async () => {
    expect(await get(`${server.url}/healthz`)).toMatchObject({ status: 200, body: '{"status":"alive"}\n' });
    expect((await get(`${server.url}/healthz`, 'HEAD')).status).toBe(200);
  });

  it('/readyz is 200 only when the state database answers and every surface is healthy', async () => {
    const ready = await get(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toMatchObject({
      status: 'ready',
      checks: { dbops: { ok: true }, state: { ok: true }, slack: { ok: true } },
    });

    slack = { healthy: false, problem: 'socket mode connection closed; reconnecting' };
    const noSlack = await get(`${server.url}/readyz`);
    expect(noSlack.status).toBe(503);
    expect(JSON.parse(noSlack.body)).toMatchObject({
      status: 'not ready',
      failed: ['slack'],
      checks: {
        state: { ok: true },
        slack: { ok: false, error: 'socket mode connection closed; reconnecting' },
      },
    });
    slack = { healthy: true, problem: undefined };

    const port = await freePort();
    stateUrl = `postgres://dbops:hunter2@127.0.0.1:${port}/state`;
    const noState = await get(`${server.url}/readyz`);
    stateUrl = fx.state.url;
    expect(noState.status).toBe(503);
    const body = JSON.parse(noState.body) as { failed: string[]; checks: { state: { error: string } } };
    expect(body.failed).toEqual(['state']);
    expect(body.checks.state.error).toMatch(/^state database: .*ECONNREFUSED/);
    expect(noState.body).not.toContain('hunter2');

    phase = 'shutting down';
    const stopping = await get(`${server.url}/readyz`);
    phase = undefined;
    expect(stopping.status).toBe(503);
    expect(JSON.parse(stopping.body)).toMatchObject({
      failed: ['dbops'],
      checks: { dbops: { ok: false, error: 'shutting down' } },
    });
  });

  it('/metrics serves the Prometheus text format; other paths and methods are refused', async () => {
    const metrics = await get(`${server.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.type).toContain('text/plain');
    expect(metrics.body).toContain('# TYPE dbops_commands_total counter');
    expect(metrics.body).toContain('# TYPE dbops_approval_latency_seconds histogram');
    expect((await get(`${server.url}/nothing`)).status).toBe(404);
    expect((await get(`${server.url}/readyz`, 'POST')).status).toBe(405);
  });
});

/** A TCP relay in front of the state database that the test can cut, as a network failure would. */
class Relay {
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();
  constructor(
    readonly port: number,
    private readonly to: { host: string; port: number },
  ) {}

  async open(): Promise<void> {
    const server = createServer((client) => {
      const upstream = tcpConnect(this.to.port, this.to.host);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.#server = server;
  }

  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise((r) => server.close(r));
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('service settings from the environment', () => {
  it('reads ports, the shutdown deadline and the run lease, and names every bad value at once', () => {
    expect(serviceSettings({})).toEqual(SERVICE_DEFAULTS);
    expect(
      serviceSettings({ DBOPS_HTTP_PORT: '9090', DBOPS_SHUTDOWN_TIMEOUT: '1m', DBOPS_RUN_LEASE: '90' }),
    ).toEqual({ ...SERVICE_DEFAULTS, port: 9090, shutdownTimeoutMs: 60_000, runLeaseMs: 90_000 });
    expect(serviceSettings({ DBOPS_RUN_LEASE: '2m' }).runLeaseMs).toBe(120_000);
    let problems: string[] = [];
    try {
      serviceSettings({ DBOPS_HTTP_PORT: 'http', DBOPS_RUN_LEASE: '500ms' });
    } catch (err) {
      problems = (err as { problems: string[] }).problems;
    }
    expect(problems).toHaveLength(2);
    expect(problems[1]).toBe(
      'DBOPS_RUN_LEASE: expected a duration of at least 1s like 60s or 2m, got "500ms"',
    );
  });
});

describe('dbops start (the built process)', () => {
  it('serves health and metrics, waits for its state database, and stops on SIGTERM with exit 0', async () => {
    const state = new URL(fx.state.url);
    const relay = new Relay(await freePort(), { host: state.hostname, port: Number(state.port) });
    const relayed = new URL(fx.state.url);
    relayed.port = String(relay.port);
    const httpPort = await freePort();
    const configPath = join(tmpdir(), `dbops-observability-${fx.state.name}.yaml`);
    writeFileSync(configPath, FIXTURE_YAML);
    const env = {
      ...fx.env,
      STATE_URL: relayed.toString(),
      PATH: process.env.PATH ?? '',
      DBOPS_HTTP_HOST: '127.0.0.1',
      DBOPS_HTTP_PORT: String(httpPort),
      DBOPS_SHUTDOWN_TIMEOUT: '10s',
    };
    const base = `http://127.0.0.1:${httpPort}`;
    const proc = execa('node', [CLI, 'start', '--config', configPath], {
      env,
      extendEnv: false,
      reject: false,
      timeout: 90_000,
    });
    try {
      // Nothing listens where the state database should be: alive, not ready, and it says why.
      await until('/healthz', async () => ((await get(`${base}/healthz`)).status === 200 ? true : undefined));
      const starting = await get(`${base}/readyz`);
      expect(starting.status).toBe(503);
      const why = JSON.parse(starting.body) as {
        failed: string[];
        checks: Record<string, { error?: string }>;
      };
      expect(why.failed).toEqual(['dbops', 'state']);
      expect(why.checks.dbops?.error).toMatch(/^starting: the state database is not reachable yet/);
      expect(why.checks.state?.error).toContain('ECONNREFUSED');
      expect(starting.body).not.toContain(state.password);

      // The database comes up: dbops connects, migrates and becomes ready without a restart.
      await relay.open();
      await until('ready', async () => ((await get(`${base}/readyz`)).status === 200 ? true : undefined));

      const metrics = await get(`${base}/metrics`);
      expect(metrics.status).toBe(200);
      for (const name of [
        'dbops_commands_total',
        'dbops_command_duration_seconds',
        'dbops_operation_duration_seconds',
        'dbops_approval_latency_seconds',
        'dbops_audit_write_failures_total',
        'dbops_surface_up',
      ]) {
        expect(metrics.body).toContain(`# TYPE ${name} `);
      }
      expect(sample(metrics.body, 'dbops_target_pool_connections', { target: 'staging' })).toBe(0);
      expect(sample(metrics.body, 'process_resident_memory_bytes')).toBeGreaterThan(0);

      // The state database goes away: not ready (still alive), and ready again when it is back.
      await relay.cut();
      const lost = await get(`${base}/readyz`);
      expect(lost.status).toBe(503);
      expect(JSON.parse(lost.body)).toMatchObject({ failed: ['state'] });
      expect((await get(`${base}/healthz`)).status).toBe(200);
      await relay.open();
      await until('ready again', async () =>
        (await get(`${base}/readyz`)).status === 200 ? true : undefined,
      );

      // A pending approval made by another process survives the shutdown untouched.
      const request = await execa(
        'node',
        [CLI, 'exec', '--config', configPath, '--as', 'alice', '--json', '--', '/db reindex staging exams'],
        { env: { ...fx.env, PATH: process.env.PATH ?? '' }, extendEnv: false, reject: false },
      );
      const pending = JSON.parse(request.stdout) as { status: string; request: number };
      expect(pending.status).toBe('pending');

      proc.kill('SIGTERM');
      const done = await proc;
      expect(done.exitCode).toBe(0);
      const log = String(done.stderr);
      expect(log).toContain('stopping: no new commands');
      expect(log).toContain('every running command finished');
      expect(log).toContain('dbops stopped');
      expect(log).not.toContain(state.password);
      const rows = await adminQuery<{ status: string }>(
        'SELECT status FROM dbops_requests WHERE id = $1',
        [pending.request],
        fx.state.name,
      );
      expect(rows[0]?.status).toBe('pending');
      await expect(fetch(`${base}/healthz`)).rejects.toThrow();
    } finally {
      proc.kill('SIGKILL');
      await relay.cut();
    }
  }, 90_000);

  it('on SIGTERM finishes the command it is running (taken over Slack HTTP), posts its answer, then exits 0', async () => {
    const fake = await FakeSlack.start();
    const secret = 'observability-signing-secret';
    const [httpPort, slackPort] = [await freePort(), await freePort()];
    const configPath = join(tmpdir(), `dbops-observability-patient-${fx.state.name}.yaml`);
    writeFileSync(configPath, PATIENT_YAML);
    const base = `http://127.0.0.1:${httpPort}`;
    const proc = execa('node', [CLI, 'start', '--config', configPath], {
      env: {
        ...fx.env,
        PATH: process.env.PATH ?? '',
        DBOPS_HTTP_HOST: '127.0.0.1',
        DBOPS_HTTP_PORT: String(httpPort),
        DBOPS_SHUTDOWN_TIMEOUT: '20s',
        SLACK_BOT_TOKEN: 'xoxb-obs',
        SLACK_MODE: 'http',
        SLACK_SIGNING_SECRET: secret,
        SLACK_PORT: String(slackPort),
        SLACK_API_URL: fake.apiUrl,
        SLACK_API_RETRIES: '0',
      },
      extendEnv: false,
      reject: false,
      timeout: 90_000,
    });
    let migration: pg.Client | undefined;
    try {
      const ready = await until('ready', async () => {
        const r = await get(`${base}/readyz`);
        return r.status === 200 ? r : undefined;
      });
      expect(JSON.parse(ready.body)).toMatchObject({ checks: { slack: { ok: true } } });
      expect(sample((await get(`${base}/metrics`)).body, 'dbops_surface_up', { surface: 'slack' })).toBe(1);

      migration = await lockExams();
      const ack = await postSigned(`http://127.0.0.1:${slackPort}/slack/events`, {
        secret,
        body: formBody(
          slashCommand(fake, { user: 'UALICE', channel: 'COPS', text: 'export staging exams --limit 5' }),
        ),
        contentType: 'application/x-www-form-urlencoded',
      });
      expect(ack.status).toBe(200);
      await waitForLockWait();
      expect(sample((await get(`${base}/metrics`)).body, 'dbops_commands_in_flight')).toBe(1);

      proc.kill('SIGTERM');
      // Readiness turns 503 because dbops is shutting down (under load another check may flap first).
      const draining = await until('draining', async () => {
        const r = await get(`${base}/readyz`);
        if (r.status !== 503) return undefined;
        const body = JSON.parse(r.body) as { checks?: { dbops?: { ok?: boolean } } };
        return body.checks?.dbops?.ok === false ? r : undefined;
      });
      expect(JSON.parse(draining.body)).toMatchObject({
        checks: { dbops: { ok: false, error: 'shutting down' } },
      });
      // The export still waits behind the lock, and the process waits for it.
      await new Promise((r) => setTimeout(r, 1_000));
      expect(proc.exitCode).toBeNull();
      expect(fake.calls.some((c) => JSON.stringify(c.body).includes('exported 5 rows'))).toBe(false);

      await migration.query('COMMIT');
      const done = await proc;
      expect(done.exitCode).toBe(0);
      expect(String(done.stderr)).toContain('every running command finished');
      // Its answer reached Slack before the process ended.
      expect(fake.calls.some((c) => JSON.stringify(c.body).includes('exported 5 rows'))).toBe(true);
    } finally {
      await migration?.query('ROLLBACK').catch(() => {});
      proc.kill('SIGKILL');
      await fake.close();
    }
  }, 90_000);
});
