// The digest: biggest growers and forecasts from stored samples, unused indexes that appeared since the last
// digest (remembered in the state database), slow queries or why not, and the charts it attaches.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import type { ChannelRef, OutgoingPost } from '../src/notify/poster.js';
import { as, FIXTURE_YAML, type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery } from './helpers/db.js';
import { decodePng, inkedPixels } from './helpers/png.js';

const HOUR = 3_600_000;
const MB = 1024 ** 2;
let now = new Date('2026-12-06T09:00:00Z');
let fx: Fixture;
let app: App;

async function store(metric: string, subject: string, f: (h: number) => number) {
  const at: string[] = [];
  const values: number[] = [];
  for (let h = 0; h <= 7 * 24; h += 6) {
    at.push(new Date(now.getTime() - (7 * 24 - h) * HOUR).toISOString());
    values.push(f(h));
  }
  await adminQuery(
    `INSERT INTO dbops_samples (target, metric, subject, at, value)
     SELECT 'staging', $1, $2, a, v FROM unnest($3::timestamptz[], $4::float8[]) AS u(a, v)`,
    [metric, subject, at, values],
    fx.state.name,
  );
}

beforeAll(async () => {
  fx = await makeFixture();
  await adminQuery(
    `CREATE TABLE events (id int, kind text); CREATE INDEX events_kind_idx ON events (kind);
     INSERT INTO events SELECT i, 'k' || (i % 7) FROM generate_series(1, 2000) i; ANALYZE events;`,
    [],
    fx.staging.name,
  );
  app = await startApp(fx.config, () => now);
  await store('database_bytes', '', (h) => 100 * MB + h * MB);
  await store('table_bytes', 'public.events', (h) => 10 * MB + h * 0.5 * MB);
  await store('table_bytes', 'public.audit <@U1>', (h) => 5 * MB + h * 0.1 * MB);
  await store('table_bytes', 'public.static', () => 50 * MB);
  await store('xid_age', '', (h) => 1_000_000 + h * 1_000);
});

afterAll(async () => {
  await app?.close();
});

describe('/db digest', () => {
  it('lists the biggest growers, the forecasts and what is new, with charts, within 80 columns', async () => {
    const reply = await as(app, 'alice')('/db digest staging');
    expect(reply.status).toBe('ok');
    const text = reply.text;
    for (const line of text.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    expect(text).toMatch(/100 MB → 268 MB \(\+168 MB, \+24 MB\/day\)/);
    const growers = text.slice(text.indexOf('biggest growers'), text.indexOf('forecasts'));
    expect(growers.indexOf('public.events')).toBeGreaterThan(-1);
    expect(growers.indexOf('public.events')).toBeLessThan(growers.indexOf('public.audit'));
    expect(growers).not.toContain('public.static');
    // The hostile table name is shown, never turned into a live mention by the text itself.
    expect(reply.result?.data?.growers).toEqual(
      expect.arrayContaining([expect.objectContaining({ table: 'public.audit <@U1>' })]),
    );
    expect(text.replace(/\s+/g, ' ')).toMatch(
      /the wraparound stop \(2,144,483,648 transactions\): not within 10 years/,
    );
    expect(text).toContain('events_kind_idx');
    expect(text).toMatch(/first digest: everything is new/);
    const charts = reply.result?.attachments ?? [];
    expect(charts.map((c) => c.filename)).toEqual(['digest-staging-size.png', 'digest-staging-growers.png']);
    for (const chart of charts) {
      const image = decodePng(Buffer.from(chart.bytes ?? new Uint8Array()));
      expect(image.width).toBe(1600);
      expect(inkedPixels(image)).toBeGreaterThan(5_000);
    }
  });

  it('says only what appeared since the last digest', async () => {
    now = new Date(now.getTime() + 7 * 24 * HOUR);
    await adminQuery('CREATE INDEX events_id_idx ON events (id)', [], fx.staging.name);
    const reply = await as(app, 'alice')('/db digest staging');
    const section = reply.text.slice(reply.text.indexOf('unused indexes that appeared'));
    expect(section).toContain('events_id_idx');
    expect(section).not.toContain('events_kind_idx');
    expect(reply.result?.data?.newUnusedIndexes).toEqual([
      expect.objectContaining({ index: 'public.events_id_idx' }),
    ]);
  });

  it('refuses a target the person cannot read, and audits the reads it ran', async () => {
    const refused = await as(app, 'carol')('/db digest kasm');
    expect(refused.status).not.toBe('ok');
    const audited = await adminQuery<{ operation: string }>(
      "SELECT operation FROM dbops_audit WHERE operation IN ('slow-queries', 'unused-indexes') AND target = 'staging'",
      [],
      fx.state.name,
    );
    expect(audited.length).toBeGreaterThanOrEqual(2);
  });
});

describe('the digest schedule', () => {
  it('runs /db digest as its service person and posts the text with its charts', async () => {
    const yaml = `${FIXTURE_YAML.replace('people:\n', 'people:\n  robot: { service: true, roles: [oncall] }\n')}
schedules:
  weekly:
    cron: "0 9 * * 1"
    kind: digest
    target: staging
    args: "--since 14d"
    as: robot
    post: "slack:CREVIEW"
`;
    const scheduled = await startApp(loadConfigText(yaml, 'digest.yaml', fx.env), () => now);
    const posts: { to: ChannelRef; message: OutgoingPost }[] = [];
    scheduled.schedules.poster = {
      post: async (to, message) => {
        posts.push({ to, message });
        return { ...to, id: String(posts.length) };
      },
    };
    try {
      const reply = await as(scheduled, 'alice')('/db run-schedule weekly');
      expect(reply.status, reply.text).toBe('ok');
      expect(posts).toHaveLength(1);
      const [post] = posts;
      expect(post?.to).toEqual({ surface: 'slack', channel: 'CREVIEW' });
      expect(post?.message.text).toContain('digest of staging');
      expect(post?.message.text).toContain('biggest growers');
      expect(post?.message.files?.map((f) => f.name)).toEqual([
        'digest-staging-size.png',
        'digest-staging-growers.png',
      ]);
      for (const file of post?.message.files ?? []) expect(decodePng(file.data).width).toBe(1600);
      // The digest's reads ran as the service person, audited.
      const audited = await adminQuery<{ person: string }>(
        "SELECT DISTINCT person FROM dbops_audit WHERE operation = 'unused-indexes' AND identity = 'service:robot'",
        [],
        fx.state.name,
      );
      expect(audited).toEqual([{ person: 'robot' }]);
    } finally {
      await scheduled.close();
    }
  });
});
