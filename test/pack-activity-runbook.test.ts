// The activity pack on a database built from exactly the columns activity-challenge-bot.md's SQL names
// (its queries, exports and CSV import; users.id, which the import says activities.user_id refers to),
// without telegram_id, last_name, activities.id or feedback.user_id: every read operation and the lookup
// against ground truth computed here, delete-test-users and archive-activities run after approval.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { as, startApp } from './helpers/app.js';
import { adminQuery, createDatabase } from './helpers/db.js';

const ACTIVITY_RUNBOOK_SCHEMA = `
CREATE TABLE users (id serial PRIMARY KEY, username varchar(255), first_name varchar(255),
                    guild varchar(100), points decimal(10, 1) DEFAULT 0, created_at timestamp);
CREATE TABLE activities (user_id integer NOT NULL REFERENCES users (id), activity_type varchar(255) NOT NULL,
                         duration integer NOT NULL, points decimal(10, 1) NOT NULL, activity_date date NOT NULL);
CREATE TABLE feedback (message text);
INSERT INTO users (username, first_name, guild, points, created_at)
SELECT CASE WHEN i % 10 = 0 THEN 'test_user' || i WHEN i = 7 THEN 'Testarossa' ELSE 'runner' || i END,
       CASE WHEN i = 3 THEN 'Tester' ELSE 'Name' || i END,
       CASE WHEN i % 4 = 0 THEN NULL ELSE (ARRAY['TiK', 'SIK', 'KIK'])[1 + i % 3] END,
       (i * 37) % 200, timestamp '2025-11-01' + i * interval '1 day'
  FROM generate_series(1, 40) i;
INSERT INTO activities
SELECT 1 + i % 40, (ARRAY['running', 'cycling', 'gym'])[1 + i % 3], 10 + i % 50, 1 + i % 5,
       date '2025-11-15' + (i % 60)
  FROM generate_series(1, 400) i;
INSERT INTO feedback VALUES ('great bot');
CREATE TABLE activities_archive (LIKE activities INCLUDING ALL);
`;

let app: App;
let db: string;
const alice = (text: string) => as(app, 'alice')(text);
const bob = (text: string) => as(app, 'bob')(text);
const truth = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) =>
  adminQuery<T>(sql, params, db);

beforeAll(async () => {
  const [activity, state] = await Promise.all([
    createDatabase('activityrb', ACTIVITY_RUNBOOK_SCHEMA),
    createDatabase('activityrbstate'),
  ]);
  db = activity.name;
  const yaml = `
state: { url: "\${STATE_URL}" }
limits: { row_cap: 500 }
targets:
  bot: { url: "\${BOT_URL}", environment: production, packs: [activity] }
people:
  alice: { cli: alice, roles: [dba] }
  bob: { cli: bob, roles: [dba] }
policy:
  production: { read: [dba], write: [dba], request: [dba], approve: [dba] }
`;
  app = await startApp(
    loadConfigText(yaml, 'activity-rb.yaml', { STATE_URL: state.url, BOT_URL: activity.url }),
  );
});

afterAll(async () => app?.close());

describe("activity pack on the runbook's schema", () => {
  it('guild-stats and top-users', async () => {
    const stats = await bob('/db guild-stats bot');
    expect(stats.status).toBe('ok');
    expect(stats.result?.rows).toEqual(
      await truth(
        `SELECT guild, count(*)::int AS registered_users, coalesce(sum(points), 0)::float8 AS total_points,
                round(avg(points), 1)::float8 AS avg_points
           FROM users WHERE guild IS NOT NULL GROUP BY guild ORDER BY total_points DESC, guild`,
      ),
    );
    const top = await bob('/db top-users bot --limit 5 --guild SIK');
    expect(top.status).toBe('ok');
    expect(top.result?.rows).toEqual(
      await truth(
        `WITH t AS (SELECT u.id, rank() OVER (ORDER BY u.points DESC NULLS LAST)::int AS place FROM users u
                     WHERE u.guild = 'SIK' ORDER BY u.points DESC NULLS LAST, u.id LIMIT 5)
         SELECT t.place, u.username, u.first_name AS name, u.guild, u.points::float8 AS points,
                (SELECT count(*)::int FROM activities a WHERE a.user_id = u.id) AS activities,
                (SELECT to_char(max(a.activity_date), 'YYYY-MM-DD') FROM activities a WHERE a.user_id = u.id)
                  AS last_activity
           FROM t JOIN users u ON u.id = t.id ORDER BY t.place, u.id`,
      ),
    );
  });

  it('test-users and the user lookup', async () => {
    const tests = await bob('/db test-users bot');
    expect(tests.status).toBe('ok');
    const want = await truth<{ user_id: number; username: string; deleted: boolean }>(
      `SELECT id AS user_id, username, starts_with(username, 'test') AS deleted FROM users
        WHERE lower(username) LIKE 'test%' OR lower(first_name) LIKE 'test%' ORDER BY id`,
    );
    expect(tests.result?.rows.map((r) => [r.user_id, r.username, r.deleted])).toEqual(
      want.map((r) => [r.user_id, r.username, r.deleted]),
    );
    expect(tests.result?.columns.map((c) => c.key)).not.toContain('telegram_id');
    const user = await bob('/db lookup bot user @RUNNER5');
    expect(user.status).toBe('ok');
    const [u] = await truth<{ n: number; last: string; rank: string }>(
      `SELECT (SELECT count(*)::int FROM activities WHERE user_id = 5) AS n,
              (SELECT rank FROM (SELECT id, rank() OVER (ORDER BY points DESC NULLS LAST) || ' of ' || count(*) OVER ()
                                   AS rank FROM users) r WHERE id = 5) AS rank,
              (SELECT to_char(activity_date, 'YYYY-MM-DD') || ' ' || activity_type || ', ' || duration || ' min, '
                      || points || ' points'
                 FROM activities WHERE user_id = 5 ORDER BY activity_date DESC, activity_type, duration DESC LIMIT 1)
                AS last`,
    );
    expect(user.result?.rows).toEqual([
      expect.objectContaining({
        username: 'runner5',
        activities: u?.n,
        last_activity: u?.last,
        rank: u?.rank,
      }),
    ]);
  });

  it('delete-test-users deletes the test accounts and their activities, sparing --keep', async () => {
    const request = await alice('/db delete-test-users bot --keep TEST_User20');
    expect(request.status).toBe('pending');
    const doomed = await truth<{ id: number }>(
      "SELECT id FROM users WHERE starts_with(username, 'test') AND username <> 'test_user20' ORDER BY id",
    );
    expect(request.result?.rows.map((r) => r.user_id)).toEqual(doomed.map((r) => r.id));
    expect((await bob(`/db approve ${request.requestId}`)).status).toBe('ok');
    expect(await truth("SELECT username FROM users WHERE starts_with(username, 'test') ORDER BY 1")).toEqual([
      { username: 'test_user20' },
    ]);
    const [left] = await truth<{ n: number }>(
      'SELECT count(*)::int AS n FROM activities WHERE user_id = ANY($1::int[])',
      [doomed.map((r) => r.id)],
    );
    expect(left?.n).toBe(0);
  });

  it('archive-activities moves the old activities in batches keyed by ctid', async () => {
    const [before] = await truth<{ old: number; total: number }>(
      "SELECT count(*) FILTER (WHERE activity_date < '2025-12-01')::int AS old, count(*)::int AS total FROM activities",
    );
    expect(before?.old).toBeGreaterThan(0);
    const request = await alice('/db archive-activities bot --before 2025-12-01');
    expect(request.status).toBe('pending');
    expect(request.result?.rows[0]).toMatchObject({ activities: before?.old });
    expect(String(request.result?.rows[0]?.archive_table)).toMatch(/^ready/);
    expect((await bob(`/db approve ${request.requestId}`)).status).toBe('ok');
    const [after] = await truth<{ old: number; archived: number; total: number }>(
      `SELECT (SELECT count(*)::int FROM activities WHERE activity_date < '2025-12-01') AS old,
              (SELECT count(*)::int FROM activities_archive) AS archived,
              (SELECT count(*)::int FROM activities) AS total`,
    );
    expect(after).toEqual({
      old: 0,
      archived: before?.old,
      total: (before?.total ?? 0) - (before?.old ?? 0),
    });
  });
});
