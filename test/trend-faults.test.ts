// A target that accepts the login and then goes silent: /db trend answers from the stored samples without
// the live limit, /db digest says which reads were not available, both within their deadlines, and other
// commands keep answering meanwhile.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { as, FIXTURE_YAML, type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery } from './helpers/db.js';
import { HalfOpenProxy } from './helpers/proxy.js';

const NOW = new Date('2026-12-06T12:00:00Z');
let fx: Fixture;
let app: App;
let proxy: HalfOpenProxy;

beforeAll(async () => {
  fx = await makeFixture();
  proxy = await HalfOpenProxy.start(fx.staging.url);
  app = await startApp(
    loadConfigText(FIXTURE_YAML, 'faults.yaml', { ...fx.env, STAGING_URL: proxy.url() }),
    () => NOW,
  );
  for (const [metric, subject] of [
    ['connections', 'active'],
    ['database_bytes', ''],
  ] as const) {
    await adminQuery(
      `INSERT INTO dbops_samples (target, metric, subject, at, value)
       SELECT 'staging', $1, $2, $3::timestamptz - make_interval(hours => h), 100 - h
       FROM generate_series(0, 48) h`,
      [metric, subject, NOW],
      fx.state.name,
    );
  }
  // Open the pool through the proxy while it still passes traffic, then go silent.
  expect((await as(app, 'alice')('/db sizes staging')).status).toBe('ok');
  proxy.freeze();
});

afterAll(async () => {
  await app?.close();
  await proxy?.close();
});

describe('trend and digest on a target gone silent', () => {
  it('trend answers from the samples without the live limit; others keep answering', async () => {
    const started = Date.now();
    const [trend, targets] = await Promise.all([
      as(app, 'alice')('/db trend staging connections'),
      as(app, 'alice')('/db targets'),
    ]);
    expect(targets.status).toBe('ok');
    expect(trend.status).toBe('ok');
    expect(trend.result?.data?.forecast).toBeUndefined();
    expect(trend.result?.attachments?.[0]?.bytes?.length ?? 0).toBeGreaterThan(1000);
    expect(Date.now() - started).toBeLessThan(25_000);
  }, 40_000);

  it('digest says which reads were not available, within 80 columns', async () => {
    const reply = await as(app, 'alice')('/db digest staging');
    expect(reply.status).toBe('ok');
    const text = reply.text;
    expect(text.slice(text.indexOf('new slow queries'))).toMatch(/not available: /);
    expect(text.slice(text.indexOf('unused indexes'))).toMatch(/not available: /);
    for (const line of text.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
  }, 60_000);
});
