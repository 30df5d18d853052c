// History samples against real PostgreSQL: each metric compared to ground truth read in the test, retention
// pruning, and `/db history` as a table within 80 columns and as a series in --json.
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { as, type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery, openClient } from './helpers/db.js';

const AT = new Date('2026-12-06T02:46:00Z');
const HOUR = 3600_000;
let now = new Date(AT.getTime() + HOUR);
let fx: Fixture;
let app: App;
const clients: pg.Client[] = [];

beforeAll(async () => {
  fx = await makeFixture();
  await adminQuery(
    `CREATE TABLE big (id int, pad text);
     INSERT INTO big SELECT i, repeat('x', 200) FROM generate_series(1, 5000) i;
     CREATE TABLE "odd <@U1> ‮name" (id int);
     INSERT INTO "odd <@U1> ‮name" SELECT generate_series(1, 3000);`,
    [],
    fx.staging.name,
  );
  app = await startApp(fx.config, () => now);
  // Two idle sessions and one idle in transaction, named so the ground truth can find them.
  for (let i = 0; i < 3; i++) clients.push(await openClient(fx.staging.url, 'history-test'));
  await clients[2]?.query('BEGIN; SELECT 1');
});

afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.end()));
  await app?.close();
});

function sampleOf(
  rows: { metric: string; subject: string; value: number | null }[],
  metric: string,
  subject = '',
) {
  return rows.find((r) => r.metric === metric && r.subject === subject)?.value;
}

async function stored(at: Date) {
  return await adminQuery<{ metric: string; subject: string; value: number | null }>(
    'SELECT metric, subject, value FROM dbops_samples WHERE target = $1 AND at = $2',
    ['staging', at],
    fx.state.name,
  );
}

describe('takeSamples', () => {
  it('stores each metric as the target reports it', async () => {
    const xidBefore = await adminQuery<{ xid: string }>(
      'SELECT age(datfrozenxid) AS xid FROM pg_database WHERE datname = current_database()',
      [],
      fx.staging.name,
    );
    const { samples } = await app.sampler('staging', AT);
    const rows = await stored(AT);
    expect(samples).toBe(rows.length);

    const [truth] = await adminQuery<{ bytes: string; xid: string; hit: string; read: string }>(
      `SELECT pg_database_size(current_database()) AS bytes, age(d.datfrozenxid) AS xid,
              s.blks_hit AS hit, s.blks_read AS read
       FROM pg_database d JOIN pg_stat_database s ON s.datid = d.oid WHERE d.datname = current_database()`,
      [],
      fx.staging.name,
    );
    expect(sampleOf(rows, 'database_bytes')).toBe(Number(truth?.bytes));
    // The cluster's transactions age every database between the reads: the sample lies between them.
    expect(sampleOf(rows, 'xid_age')).toBeGreaterThanOrEqual(Number(xidBefore[0]?.xid));
    expect(sampleOf(rows, 'xid_age')).toBeLessThanOrEqual(Number(truth?.xid));
    const hit = Number(truth?.hit);
    const read = Number(truth?.read);
    expect(sampleOf(rows, 'cache_hit_percent')).toBeCloseTo((100 * hit) / (hit + read), 0);

    const tables = await adminQuery<{ name: string; bytes: string }>(
      `SELECT n.nspname || '.' || c.relname AS name, pg_total_relation_size(c.oid) AS bytes
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind = 'r' AND n.nspname = 'public'`,
      [],
      fx.staging.name,
    );
    expect(tables.length).toBe(3);
    for (const t of tables) expect(sampleOf(rows, 'table_bytes', t.name)).toBe(Number(t.bytes));

    const states = await adminQuery<{ state: string; n: string }>(
      `SELECT state, count(*) AS n FROM pg_stat_activity
       WHERE datname = current_database() AND application_name = 'history-test' GROUP BY state`,
      [],
      fx.staging.name,
    );
    expect(Object.fromEntries(states.map((s) => [s.state, Number(s.n)]))).toEqual({
      idle: 2,
      'idle in transaction': 1,
    });
    expect(sampleOf(rows, 'connections', 'idle')).toBe(2);
    expect(sampleOf(rows, 'connections', 'idle in transaction')).toBe(1);
    expect(sampleOf(rows, 'connections', 'active')).toBe(0);

    // No standby and no pg_stat_statements on the suite's servers: stored as "not available".
    const [ext] = await adminQuery<{ loaded: boolean }>(
      "SELECT EXISTS (SELECT 1 FROM pg_settings WHERE name = 'pg_stat_statements.max') AS loaded",
    );
    if (!ext?.loaded) expect(sampleOf(rows, 'slow_query_calls')).toBeNull();
    expect(sampleOf(rows, 'replication_lag_seconds')).toBeNull();
  });

  it('answers /db history as a table of at most 80 columns, and the series in its data', async () => {
    await adminQuery(
      "INSERT INTO big SELECT i, repeat('y', 200) FROM generate_series(1, 5000) i",
      [],
      fx.staging.name,
    );
    await app.sampler('staging', new Date(AT.getTime() + HOUR));
    now = new Date(AT.getTime() + 2 * HOUR);
    const reply = await as(app, 'alice')('/db history staging table_bytes --table big --since 1d');
    expect(reply.status).toBe('ok');
    const lines = reply.text.split('\n');
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(80);
    expect(reply.text).toContain('2026-12-06 02:46 UTC');
    expect(reply.text).toContain('2026-12-06 03:46 UTC');
    expect(reply.message).toMatch(/table_bytes of staging \(public\.big\) since .*: 2 samples, .* → /);
    const series = reply.result?.data?.series as { at: string; value: number }[];
    const [size] = await adminQuery<{ bytes: string }>(
      "SELECT pg_total_relation_size('big') AS bytes",
      [],
      fx.staging.name,
    );
    expect(series.map((p) => p.at)).toEqual([AT.toISOString(), new Date(AT.getTime() + HOUR).toISOString()]);
    expect(series[1]?.value).toBe(Number(size?.bytes));
    expect(series[1]?.value).toBeGreaterThan(series[0]?.value ?? Infinity);

    const conns = await as(app, 'alice')('/db history staging connections --since 1d');
    expect(conns.text).toMatch(/at\s+active\s+idle\s+idle in transaction/);
    for (const line of conns.text.split('\n')) expect(line.length).toBeLessThanOrEqual(80);

    const slow = await as(app, 'alice')('/db history staging slow_query_calls');
    const [ext] = await adminQuery<{ loaded: boolean }>(
      "SELECT EXISTS (SELECT 1 FROM pg_settings WHERE name = 'pg_stat_statements.max') AS loaded",
    );
    if (!ext?.loaded) expect(slow.text).toContain('not available (pg_stat_statements');

    // A hostile table name is shown with its invisible character visible, not obeyed.
    const odd = await as(app, 'alice')('/db history staging table_bytes --since 1d');
    expect(odd.text).toContain('odd <@U1> <U+202E>name');
    expect(odd.text).not.toContain('\u202e');
  });

  it('refuses unknown metrics and targets the person may not read, with what would work', async () => {
    const typo = await as(app, 'alice')('/db history staging databse_bytes');
    expect(typo.status).toBe('invalid');
    expect(typo.message).toContain('did you mean `database_bytes`');
    const hidden = await as(app, 'carol')('/db history kasm database_bytes');
    expect(hidden.status).not.toBe('ok');
    expect(hidden.message).toContain('unknown target');
    const since = await as(app, 'alice')('/db history staging xid_age --since soon');
    expect(since.message).toContain('--since');
  });

  it('prunes samples older than the retention when it samples', async () => {
    const later = new Date(AT.getTime() + 91 * 86_400_000);
    await app.sampler('staging', later);
    const left = await adminQuery<{ at: Date }>(
      'SELECT DISTINCT at FROM dbops_samples WHERE target = $1 ORDER BY at',
      ['staging'],
      fx.state.name,
    );
    // Both earlier samples (91 days, and 91 days less an hour old) are past the 90 days kept.
    expect(left.map((r) => r.at.toISOString())).toEqual([later.toISOString()]);
  });
});

describe('alerts: and history: in the config', () => {
  it('reads the reminder interval, retention and table count, and refuses a bad one', async () => {
    const { loadConfigText } = await import('../src/config/load.js');
    const env = { ...fx.env };
    const withSettings = `${fx.yaml}\nalerts:\n  remind_every: 15m\nhistory:\n  retention: 30d\n  top_tables: 3\n`;
    const config = loadConfigText(withSettings, 'settings.yaml', env);
    expect(config.alerts).toEqual({ remindEverySeconds: 900 });
    expect(config.history).toEqual({ retentionSeconds: 30 * 86_400, topTables: 3 });
    expect(fx.config.history).toBeUndefined();
    expect(() => loadConfigText(`${fx.yaml}\nhistory:\n  top_tables: 0\n`, 'bad.yaml', env)).toThrow(
      /top_tables/,
    );
  });
});
