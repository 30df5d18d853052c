// The activity pack (runbooks/activity-challenge-bot.md) through the whole core, on the demo's activity
// fixture: statistics and lookups against ground truth, and both destructive procedures — preview,
// approval by a second person, effect, and that nothing else changed.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { checkPackExpectations } from '../src/packs/expectations.js';
import { builtinPacksDir, loadPackDir } from '../src/packs/load.js';
import { as, startApp } from './helpers/app.js';
import { adminQuery, createDatabase } from './helpers/db.js';

const FIXTURE = readFileSync(new URL('../src/demo/fixtures/activity.sql', import.meta.url), 'utf8');

let app: App;
let db: { name: string; url: string };

const q = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) =>
  adminQuery<T>(sql, params, db.name);

const alice = (text: string) => as(app, 'alice')(text);
const bob = (text: string) => as(app, 'bob')(text);

beforeAll(async () => {
  const [activity, state] = await Promise.all([
    createDatabase('activity', FIXTURE),
    createDatabase('activitystate'),
  ]);
  db = activity;
  const yaml = `
state: { url: "\${STATE_URL}" }
targets:
  activity:
    url: "\${ACTIVITY_URL}"
    environment: production
    packs: [activity]
people:
  alice: { cli: alice, roles: [dba] }
  bob: { cli: bob, roles: [dba] }
  carol: { cli: carol, roles: [viewer] }
policy:
  production: { read: [dba, viewer], write: [dba], request: [dba], approve: [dba] }
`;
  app = await startApp(
    loadConfigText(yaml, 'activity.yaml', { STATE_URL: state.url, ACTIVITY_URL: activity.url }),
  );
});

afterAll(async () => app?.close());

describe('the activity pack', () => {
  it("finds every table and column it expects in the fixture's schema", async () => {
    const problems: string[] = [];
    const pack = loadPackDir(join(builtinPacksDir(), 'activity'), problems);
    expect(problems).toEqual([]);
    if (!pack) throw new Error('the activity pack did not load');
    expect(pack.operations.map((o) => o.def.name).sort()).toEqual([
      'archive-activities',
      'delete-test-users',
      'guild-stats',
      'test-users',
      'top-users',
      'user',
    ]);
    expect(await checkPackExpectations(db.url, pack)).toEqual([]);
  });
});

describe('statistics and lookups', () => {
  it('guild-stats: users, total and average points per guild, as the runbook exports them', async () => {
    const reply = await as(app, 'carol')('/db guild-stats activity');
    expect(reply.status).toBe('ok');
    // Ground truth from the raw rows, summed in tenths of a point so no float rounding creeps in.
    const users = await q<{ guild: string | null; tenths: number }>(
      'SELECT guild, (points * 10)::int AS tenths FROM users',
    );
    const byGuild = new Map<string, { n: number; tenths: number }>();
    for (const u of users) {
      if (u.guild === null) continue;
      const g = byGuild.get(u.guild) ?? { n: 0, tenths: 0 };
      g.n += 1;
      g.tenths += u.tenths;
      byGuild.set(u.guild, g);
    }
    const truth = [...byGuild.entries()]
      .map(([guild, g]) => ({ guild, n: g.n, total: g.tenths / 10, avg: g.tenths / 10 / g.n }))
      .sort((a, b) => b.total - a.total || a.guild.localeCompare(b.guild));
    const rows = reply.result?.rows ?? [];
    expect(rows.map((r) => [r.guild, r.registered_users, r.total_points])).toEqual(
      truth.map((t) => [t.guild, t.n, t.total]),
    );
    rows.forEach((r, i) => {
      expect(r.avg_points).toBeCloseTo(truth[i]?.avg ?? Number.NaN, 1);
    });
    expect(rows).toHaveLength(6);
    expect(reply.text).toContain('total points');
  });

  it('lookup user: a card by username (any case, with or without @) or by Telegram id', async () => {
    const [busiest] = await q<{ id: number; username: string; telegram_id: string; guild: string | null }>(
      `SELECT u.id, u.username, u.telegram_id::text, u.guild
         FROM (SELECT *, count(*) OVER (PARTITION BY lower(username)) AS same FROM users) u
         JOIN (SELECT user_id, count(*) AS n FROM activities GROUP BY user_id) a ON a.user_id = u.id
        WHERE u.username IS NOT NULL AND u.same = 1
        ORDER BY a.n DESC, u.id LIMIT 1`,
    );
    if (!busiest) throw new Error('no user');
    const [facts] = await q<{ n: number; points: string; last: string; place: number; everyone: number }>(
      `SELECT (SELECT count(*)::int FROM activities WHERE user_id = $1) AS n,
              (SELECT points::text FROM users WHERE id = $1) AS points,
              (SELECT to_char(activity_date, 'YYYY-MM-DD') || ' ' || activity_type || ', ' || duration || ' min, '
                      || points || ' points'
                 FROM activities WHERE user_id = $1 ORDER BY activity_date DESC, created_at DESC, id DESC LIMIT 1) AS last,
              1 + (SELECT count(*)::int FROM users WHERE points > (SELECT points FROM users WHERE id = $1)) AS place,
              (SELECT count(*)::int FROM users) AS everyone`,
      [busiest.id],
    );
    const expected = {
      username: busiest.username,
      telegram_id: Number(busiest.telegram_id),
      guild: busiest.guild,
      points: Number(facts?.points),
      rank: `${facts?.place} of ${facts?.everyone}`,
      activities: facts?.n,
      last_activity: facts?.last,
      user_id: busiest.id,
    };
    for (const key of [busiest.username.toUpperCase(), `@${busiest.username}`, busiest.telegram_id]) {
      const reply = await as(app, 'carol')(`/db lookup activity user ${key}`);
      expect(reply.status).toBe('ok');
      expect(reply.result?.display).toBe('card');
      expect(reply.result?.rows).toHaveLength(1);
      expect(reply.result?.rows[0]).toMatchObject(expected);
    }
    const card = await as(app, 'carol')(`/db lookup activity user ${busiest.username}`);
    expect(card.text).toMatch(new RegExp(`last activity:\\s+${facts?.last}`));
    expect(card.text).toMatch(/activities:\s+\d/);

    const nobody = await as(app, 'carol')('/db lookup activity user no_such_person');
    expect(nobody.status).toBe('ok');
    expect(nobody.result?.rows).toEqual([]);
    // A value that looks like SQL is only ever a bound parameter.
    const odd = await as(app, 'carol')(`/db lookup activity user "x' OR 1=1 --"`);
    expect(odd.status).toBe('ok');
    expect(odd.result?.rows).toEqual([]);
  });

  it('top-users: the leaderboard, overall and within a guild', async () => {
    const truth = await q<{ username: string | null; points: string; n: number }>(
      `SELECT u.username, u.points::text, (SELECT count(*)::int FROM activities a WHERE a.user_id = u.id) AS n
         FROM users u ORDER BY u.points DESC NULLS LAST, u.id LIMIT 5`,
    );
    const reply = await as(app, 'carol')('/db top-users activity --limit 5');
    expect(reply.status).toBe('ok');
    expect(reply.result?.rows.map((r) => [r.username, r.points, r.activities])).toEqual(
      truth.map((t) => [t.username, Number(t.points), t.n]),
    );
    expect(reply.result?.rows[0]?.place).toBe(1);

    const draco = await q<{ username: string | null }>(
      "SELECT username FROM users WHERE guild = 'Draco' ORDER BY points DESC NULLS LAST, id LIMIT 3",
    );
    const inGuild = await as(app, 'carol')('/db top-users activity --guild Draco --limit 3');
    expect(inGuild.result?.rows.map((r) => r.username)).toEqual(draco.map((d) => d.username));
    expect(inGuild.result?.rows.every((r) => r.guild === 'Draco')).toBe(true);

    const bad = await as(app, 'carol')('/db top-users activity --limit 0');
    expect(bad).toMatchObject({ status: 'invalid', code: 'invalid_argument' });
    expect(bad.message).toContain('limit');
  });

  it("test-users: the runbook's find query, and which accounts the delete would take", async () => {
    const reply = await as(app, 'carol')('/db test-users activity');
    expect(reply.status).toBe('ok');
    const truth = await q<{ id: number; username: string | null }>(
      `SELECT id, username FROM users
        WHERE lower(left(username, 4)) = 'test' OR lower(left(first_name, 4)) = 'test' ORDER BY id`,
    );
    expect(reply.result?.rows.map((r) => [r.user_id, r.username, r.deleted])).toEqual(
      truth.map((t) => [t.id, t.username, t.username?.slice(0, 4) === 'test']),
    );
    // The fixture's five development accounts; the one without a username is listed but not deleted.
    expect(truth.map((t) => t.id)).toEqual([1201, 1202, 1203, 1204, 1205]);
    expect(reply.result?.rows.find((r) => r.user_id === 1205)?.deleted).toBe(false);
  });
});

/** md5 of a query's rows, to show a table's other rows did not change. */
async function fingerprint(sql: string, params: unknown[] = []): Promise<string> {
  const [row] = await q<{ md5: string | null }>(
    `SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS md5 FROM (${sql}) t`,
    params,
  );
  return row?.md5 ?? '';
}

describe('delete-test-users', () => {
  it('previews exactly who would go, spares --keep, and deletes them with their activities in one transaction', async () => {
    // A real participant whose name happens to start with "test", a look-alike the delete must not touch
    // (capital T), and feedback from a test account.
    await q(`
      INSERT INTO users (id, telegram_id, username, first_name, guild, points) VALUES
        (5001, 900000001, 'testarossa_fan', 'Marco', 'Fenix', 3.5),
        (5002, 900000002, 'TestPilot', 'Jaana', 'Cygnus', 0),
        (5003, 900000003, 'my_test', 'Olli', NULL, 0);
      INSERT INTO activities (user_id, activity_type, duration, points, activity_date)
        VALUES (5001, 'running', 15, 3.0, '2026-01-05'), (5001, 'walking', 5, 0.5, '2026-01-06');
      INSERT INTO feedback (user_id, message) VALUES (1201, 'test feedback'), (1201, 'another'), (5001, 'real');
    `);
    const matching = await q<{ id: number; activities: number; feedback: number }>(
      `SELECT u.id, (SELECT count(*)::int FROM activities a WHERE a.user_id = u.id) AS activities,
              (SELECT count(*)::int FROM feedback f WHERE f.user_id = u.id) AS feedback
         FROM users u WHERE left(u.username, 4) = 'test' ORDER BY u.id`,
    );
    expect(matching.map((m) => m.id)).toEqual([1201, 1202, 1203, 1204, 5001]);

    const first = await alice('/db delete-test-users activity');
    expect(first.status).toBe('pending');
    expect(first.result?.rows.map((r) => [r.user_id, r.activities, r.feedback])).toEqual(
      matching.map((m) => [m.id, m.activities, m.feedback]),
    );
    expect(first.text).toContain('testarossa_fan');
    expect(first.text.replace(/\s+/g, ' ')).toContain('5 users that would be deleted, with their activities');
    expect(first.text).toContain('WARNING: Deletes the accounts listed');
    // The real participant is on the list: deny, and ask again sparing them.
    expect((await bob(`/db deny ${first.requestId} testarossa_fan is a real participant`)).status).toBe('ok');

    const doomed = matching.filter((m) => m.id !== 5001);
    const ids = doomed.map((m) => m.id);
    const [before] = await q<{ users: number; activities: number; feedback: number }>(
      `SELECT (SELECT count(*)::int FROM users) AS users, (SELECT count(*)::int FROM activities) AS activities,
              (SELECT count(*)::int FROM feedback) AS feedback`,
    );
    const others = {
      users: await fingerprint('SELECT * FROM users WHERE id <> ALL ($1)', [ids]),
      activities: await fingerprint('SELECT * FROM activities WHERE user_id <> ALL ($1)', [ids]),
      // Feedback stays, only its user is unset.
      feedback: await fingerprint(
        'SELECT id, CASE WHEN user_id = ANY ($1) THEN NULL ELSE user_id END, message, created_at FROM feedback',
        [ids],
      ),
    };

    const request = await alice('/db delete-test-users activity --keep testarossa_fan');
    expect(request.status).toBe('pending');
    expect(request.result?.rows.map((r) => r.user_id)).toEqual(ids);
    expect(request.result?.rows.some((r) => r.username === 'testarossa_fan')).toBe(false);

    const done = await bob(`/db approve ${request.requestId}`);
    expect(done.status).toBe('ok');
    const activities = doomed.reduce((n, m) => n + m.activities, 0);
    const feedback = doomed.reduce((n, m) => n + m.feedback, 0);
    expect(feedback).toBeGreaterThanOrEqual(2);
    expect(done.result?.rows).toEqual([
      { step: 'activities (of the deleted users)', rows: activities },
      { step: 'feedback (kept, user unset)', rows: feedback },
      { step: 'users', rows: ids.length },
    ]);
    expect(done.result?.notes ?? []).toEqual([]);

    const [after] = await q<{ users: number; activities: number; feedback: number; left: number }>(
      `SELECT (SELECT count(*)::int FROM users) AS users, (SELECT count(*)::int FROM activities) AS activities,
              (SELECT count(*)::int FROM feedback) AS feedback,
              (SELECT count(*)::int FROM users WHERE id = ANY ($1)) AS left`,
      [ids],
    );
    expect(after).toEqual({
      users: (before?.users ?? 0) - ids.length,
      activities: (before?.activities ?? 0) - activities,
      feedback: before?.feedback,
      left: 0,
    });
    expect(await fingerprint('SELECT * FROM users WHERE id <> ALL ($1)', [ids])).toBe(others.users);
    expect(await fingerprint('SELECT * FROM activities WHERE user_id <> ALL ($1)', [ids])).toBe(
      others.activities,
    );
    expect(await fingerprint('SELECT id, user_id, message, created_at FROM feedback')).toBe(others.feedback);

    // Nothing left to delete: no approval is asked for.
    const again = await alice('/db delete-test-users activity --keep testarossa_fan');
    expect(again.status).toBe('ok');
    expect(again.message).toContain('nothing to do');
  });
});

describe('archive-activities', () => {
  const BEFORE = '2025-12-24';
  const moving = `SELECT * FROM activities WHERE activity_date < '${BEFORE}'`;

  async function count(sql: string): Promise<number> {
    const [row] = await q<{ n: number }>(`SELECT count(*)::int AS n FROM (${sql}) t`);
    return row?.n ?? -1;
  }

  it('refuses bad arguments', async () => {
    const bad = await alice('/db archive-activities activity --before yesterday');
    expect(bad).toMatchObject({ status: 'invalid', code: 'invalid_argument' });
    expect(bad.message).toContain('expected a date like 2025-12-24');
    const missing = await alice('/db archive-activities activity');
    expect(missing).toMatchObject({ status: 'invalid', code: 'invalid_argument' });
    expect(missing.message).toContain('before');
  });

  it('refuses the request, with the fix, while the archive table is missing', async () => {
    const n = await count(moving);
    const request = await alice(`/db archive-activities activity --before ${BEFORE}`);
    expect(request).toMatchObject({ status: 'refused', code: 'cannot_succeed' });
    expect(request.message).toContain(
      'activities_archive is missing; a DBA creates it once: CREATE TABLE activities_archive (LIKE activities INCLUDING ALL)',
    );
    expect(await alice('/db pending activity')).toMatchObject({ requests: [] });
    expect(await count(moving)).toBe(n);
  });

  it('refuses the request while the archive columns differ from activities', async () => {
    // Same columns, another order: copying by position would put durations into user_id.
    await q(`CREATE TABLE activities_archive (id integer, duration integer, activity_type varchar(255),
      user_id integer, points numeric(10, 1), activity_date date, description text, created_at timestamp)`);
    const n = await count(moving);
    const request = await alice(`/db archive-activities activity --before ${BEFORE}`);
    expect(request).toMatchObject({ status: 'refused', code: 'cannot_succeed' });
    expect(request.message).toContain('does not have the columns of activities');
    expect(await count(moving)).toBe(n);
    expect(await count('SELECT * FROM activities_archive')).toBe(0);
    await q('DROP TABLE activities_archive');
  });

  it('previews count, dates and users, then moves every row in batches, each in its own transaction', async () => {
    await q('CREATE TABLE activities_archive (LIKE activities INCLUDING ALL)');
    const [truth] = await q<{
      n: number;
      first: string;
      last: string;
      users: number;
      tenths: number;
      most: number;
      fewest: number;
    }>(`
      SELECT count(*)::int AS n, min(activity_date)::text AS first, max(activity_date)::text AS last,
             count(DISTINCT user_id)::int AS users, sum(points * 10)::int AS tenths,
             (SELECT max(c) FROM (SELECT count(*)::int AS c FROM (${moving}) m GROUP BY user_id) x) AS most,
             (SELECT min(c) FROM (SELECT count(*)::int AS c FROM (${moving}) m GROUP BY user_id) x) AS fewest
        FROM (${moving}) m`);
    if (!truth) throw new Error('no truth');
    expect(truth.n).toBeGreaterThan(50_000);

    const request = await alice(`/db archive-activities activity --before ${BEFORE}`);
    expect(request.status).toBe('pending');
    expect(request.result?.display).toBe('card');
    const card = request.result?.rows[0];
    expect(card).toMatchObject({
      activities: truth.n,
      first_date: truth.first,
      last_date: '2025-12-23',
      points: truth.tenths / 10,
      users: truth.users,
      batches: Math.ceil(truth.n / 5000),
      archive_table: 'ready: activities_archive, same columns as activities',
    });
    expect(truth.last).toBe('2025-12-23');
    expect(String(card?.per_user)).toMatch(new RegExp(`^${truth.fewest} to ${truth.most}, median \\d+$`));
    expect(String(card?.top_users).split(', ')).toHaveLength(5);
    expect(String(card?.top_users)).toMatch(new RegExp(` ${truth.most}, `));
    expect(request.text.replace(/\s+/g, ' ')).toContain(
      'summary of the activities that would move to activities_archive',
    );
    expect(request.text).toContain('WARNING: The activities summarised here leave the activities table');

    // Someone logs a late activity for an old day between the request and the approval.
    await q(
      "INSERT INTO activities (user_id, activity_type, duration, points, activity_date) VALUES (1, 'yoga', 30, 3.0, '2025-12-01')",
    );
    const moved = truth.n + 1;
    const rowsToMove = await fingerprint(moving);
    const staying = await fingerprint(`SELECT * FROM activities WHERE activity_date >= '${BEFORE}'`);
    const [totals] = await q<{ n: number }>('SELECT count(*)::int AS n FROM activities');

    const done = await bob(`/db approve ${request.requestId}`);
    expect(done.status).toBe('ok');
    const batches = Math.ceil(moved / 5000);
    expect(done.result?.rows).toEqual([
      { step: 'activities moved to activities_archive', rows: moved, batches },
    ]);
    expect(done.result?.notes?.[0]).toContain('The data changed since the preview');

    // Every row left activities and arrived in the archive, unchanged; the rest stayed.
    expect(await count(moving)).toBe(0);
    expect(await fingerprint('SELECT * FROM activities_archive')).toBe(rowsToMove);
    expect(await fingerprint(`SELECT * FROM activities WHERE activity_date >= '${BEFORE}'`)).toBe(staying);
    const [sum] = await q<{ live: number; archived: number; transactions: number }>(
      `SELECT (SELECT count(*)::int FROM activities) AS live, (SELECT count(*)::int FROM activities_archive) AS archived,
              (SELECT count(DISTINCT xmin::text)::int FROM activities_archive) AS transactions`,
    );
    expect((sum?.live ?? 0) + (sum?.archived ?? 0)).toBe(totals?.n);
    // One transaction per batch: the archived rows were written by exactly `batches` transactions.
    expect(sum?.transactions).toBe(batches);

    const again = await alice(`/db archive-activities activity --before ${BEFORE}`);
    expect(again.status).toBe('ok');
    expect(again.message).toContain('nothing to do');
  });
});
