// `/db trend`: the chart (decoded PNG), the series behind it equal to the samples the test stored, the summary,
// and forecasts against max_connections, the disk budget and the wraparound stop on real PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { WRAPAROUND_STOP } from '../src/history/forecasts.js';
import { as, FIXTURE_YAML, type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery } from './helpers/db.js';
import { decodePng, inkedPixels } from './helpers/png.js';

const NOW = new Date('2026-12-06T12:00:00Z');
const HOUR = 3_600_000;
const GB = 1024 ** 3;
let fx: Fixture;
let app: App;

/** Hourly samples over the last `hours`, value = f(hours before now). */
async function store(
  metric: string,
  subject: string,
  hours: number,
  f: (i: number) => number,
  target = 'staging',
) {
  const at: string[] = [];
  const values: number[] = [];
  for (let i = hours; i >= 0; i--) {
    at.push(new Date(NOW.getTime() - i * HOUR).toISOString());
    values.push(f(hours - i));
  }
  await adminQuery(
    `INSERT INTO dbops_samples (target, metric, subject, at, value)
     SELECT $1, $2, $3, a, v FROM unnest($4::timestamptz[], $5::float8[]) AS u(a, v)`,
    [target, metric, subject, at, values],
    fx.state.name,
  );
}

beforeAll(async () => {
  fx = await makeFixture();
  const yaml = FIXTURE_YAML.replace(
    'description: exam platform (Alembic)',
    'description: exam platform (Alembic)\n    forecast: { disk_budget: 10GB, horizon: 30d }',
  );
  app = await startApp(loadConfigText(yaml, 'trend.yaml', fx.env), () => NOW);
  // A week: the database grows 1 GB a day from 2 GB; public.events takes 3/4 of the growth.
  await store('database_bytes', '', 7 * 24, (h) => 2 * GB + (h / 24) * GB);
  await store('table_bytes', 'public.events', 7 * 24, (h) => 0.5 * GB + (h / 24) * 0.75 * GB);
  await store('table_bytes', 'public.users', 7 * 24, (h) => 0.1 * GB + (h / 24) * 0.25 * GB);
  await store('xid_age', '', 7 * 24, () => 150_000_000);
  await store('connections', 'active', 48, (h) => 10 + h);
  await store('connections', 'idle', 48, () => 20);
});

afterAll(async () => {
  await app?.close();
});

describe('/db trend', () => {
  it('posts a PNG chart whose series are the stored samples, with the growth summary above it', async () => {
    const reply = await as(app, 'alice')('/db trend staging database_bytes --since 7d');
    expect(reply.status).toBe('ok');
    const result = reply.result;
    expect(result?.headline).toMatch(/\+1\.0 GB\/day over 7 days \(2\.0 GB → 9\.0 GB\)/);
    expect(result?.headline).toMatch(/public\.events is 75% of it/);
    const png = result?.attachments?.[0];
    expect(png?.contentType).toBe('image/png');
    const image = decodePng(Buffer.from(png?.bytes ?? new Uint8Array()));
    expect([image.width, image.height]).toEqual([1600, 900]);
    expect(inkedPixels(image)).toBeGreaterThan(5_000);
    const series = result?.data?.series as { at: string; value: number }[];
    const truth = await adminQuery<{ at: Date; value: number }>(
      `SELECT at, value FROM dbops_samples WHERE target = 'staging' AND metric = 'database_bytes'
       AND at >= $1 ORDER BY at`,
      [new Date(NOW.getTime() - 7 * 24 * HOUR)],
      fx.state.name,
    );
    expect(series.map((p) => [p.at, p.value])).toEqual(truth.map((t) => [t.at.toISOString(), t.value]));
  });

  it('forecasts the disk budget: 10 GB from 9 GB at 1 GB/day is one day away', async () => {
    const reply = await as(app, 'alice')('/db trend staging size');
    const forecast = (reply.result?.data?.forecast ?? {}) as { kind?: string; days?: number };
    expect(forecast.kind).toBe('reaches');
    expect(forecast.days).toBeCloseTo(1, 3);
    expect(reply.text.replace(/\s+/g, ' ')).toContain(
      'the disk budget 10 GB in 24 hours (2026-12-07 12:00 UTC)',
    );
    for (const line of reply.text.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
  });

  it('says a flat xid age does not reach the wraparound stop, without a division by zero', async () => {
    const reply = await as(app, 'alice')('/db trend staging xid-age');
    expect(reply.result?.data?.forecast).toMatchObject({ kind: 'no-growth', limit: WRAPAROUND_STOP });
    expect(reply.text.replace(/\s+/g, ' ')).toMatch(
      /wraparound stop .*: no growth, not reached at the current rate/,
    );
  });

  it('forecasts connections over all states against the live max_connections', async () => {
    const [max] = await adminQuery<{ n: string }>(
      "SELECT current_setting('max_connections') AS n",
      [],
      fx.staging.name,
    );
    const reply = await as(app, 'alice')('/db trend staging connections --since 2d');
    const forecast = (reply.result?.data?.forecast ?? {}) as {
      kind?: string;
      limit?: number;
      perDay?: number;
    };
    expect(forecast.limit).toBe(Number(max?.n));
    expect(forecast.perDay).toBeCloseTo(24, 6);
    expect(reply.result?.headline).toMatch(/peak 78 at 2026-12-06 12:00 UTC/);
    expect(reply.result?.rows.map((r) => r.series)).toEqual(['active', 'idle']);
  });

  it('charts tables as their own series and names the fastest grower', async () => {
    const reply = await as(app, 'alice')('/db trend staging table_bytes');
    expect(reply.result?.headline).toMatch(/2 series over 7 days; fastest: public\.events \+768 MB\/day/);
    const one = await as(app, 'alice')('/db trend staging table_bytes --table users');
    expect(one.result?.rows).toHaveLength(1);
    expect(one.result?.rows[0]?.series).toBe('public.users');
  });

  it('answers "no samples" and refuses unknown metrics and targets with the usage', async () => {
    const none = await as(app, 'alice')('/db trend kasm size');
    expect(none.text).toMatch(/no samples/);
    const bad = await as(app, 'alice')('/db trend staging sizez');
    expect(bad.status).not.toBe('ok');
    expect(bad.text).toMatch(/unknown metric/);
    const hidden = await as(app, 'carol')('/db trend kasm size');
    expect(hidden.status).not.toBe('ok');
  });

  it('makes health warn when a forecast falls inside the horizon, and stay quiet without samples', async () => {
    const reply = await as(app, 'alice')('/db health staging');
    const row = reply.result?.rows.find((r) => r.check === 'forecast');
    // The disk budget is a day away; connections may be too, depending on the server's max_connections.
    expect(row?.status).toBe('warn');
    expect(row?.detail).toMatch(/^[12] limits? within 30 days$/);
    expect(reply.result?.notes?.join(' ')).toMatch(/forecast: the disk budget 10 GB in 24 hours/);
    const quiet = await as(app, 'alice')('/db health kasm');
    expect(quiet.result?.rows.some((r) => r.check === 'forecast')).toBe(false);
  });

  it('samples how much of its range each sequence used, and forecasts when it runs out', async () => {
    await adminQuery(
      `CREATE SEQUENCE public.ticket_no AS smallint MAXVALUE 1000;
       SELECT setval('public.ticket_no', 250);`,
      [],
      fx.staging.name,
    );
    const at = new Date(NOW.getTime() - 30 * 60_000);
    await app.sampler('staging', at);
    const [stored] = await adminQuery<{ value: number }>(
      `SELECT value FROM dbops_samples WHERE target = 'staging' AND metric = 'sequence_used_percent'
       AND subject = 'public.ticket_no' AND at = $1`,
      [at],
      fx.state.name,
    );
    // (250 - 1) of the range 1..1000.
    expect(stored?.value).toBeCloseTo((100 * 249) / 999, 6);
    // A week of samples climbing 2 points a day up to 91%: 4.5 days left.
    await store('sequence_used_percent', 'public.orders_id_seq', 7 * 24, (h) => 77 + (h / 24) * 2);
    const reply = await as(app, 'alice')('/db trend staging sequences --sequence orders_id_seq');
    expect(reply.result?.data?.forecast).toMatchObject({ kind: 'reaches', limit: 100 });
    expect((reply.result?.data?.forecast as { days?: number } | undefined)?.days).toBeCloseTo(4.5, 3);
    const health = await as(app, 'alice')('/db health staging');
    const notes = health.result?.notes?.join(' ').replace(/\s+/g, ' ') ?? '';
    expect(notes).toMatch(/sequence public\.orders_id_seq its type's maximum in 4 days/);
  });
});
