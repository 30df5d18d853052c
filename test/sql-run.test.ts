// `/db sql` against real PostgreSQL 15 and 17: refusals never execute (canary), reads, dry runs and re-checks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sql, { type SqlPreviewState } from '../commands/sql.js';
import { UserError } from '../src/core/errors.js';
import { adminQuery, createDatabase, majors } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';

const SETUP = `
CREATE TABLE canary (note text);
CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance int, region text);
INSERT INTO accounts SELECT i, 'owner' || i, i * 10, CASE WHEN i % 3 = 0 THEN 'eu' ELSE 'us' END
FROM generate_series(1, 30) i;
CREATE TABLE nokey (a int);
INSERT INTO nokey SELECT generate_series(1, 4);
CREATE FUNCTION bump() RETURNS int LANGUAGE sql VOLATILE AS $$ INSERT INTO canary VALUES ('bumped') RETURNING 1 $$;
CREATE FUNCTION liar() RETURNS int LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN bump(); END $$;
CREATE VIEW sessions AS SELECT pid, query FROM pg_stat_activity;
CREATE VIEW people AS SELECT rolname FROM pg_roles;
CREATE VIEW bumping AS SELECT bump() AS b;
CREATE VIEW backends AS SELECT * FROM pg_stat_get_activity(NULL);
CREATE VIEW hostfile AS SELECT pg_read_file('/etc/hostname') AS x;
CREATE VIEW dbs AS SELECT datname FROM pg_database;
CREATE VIEW dbs2 AS SELECT * FROM dbs;
CREATE SEQUENCE seq;
`;

/** The canary: anything a refused statement would have done shows up here or in accounts. */
async function canary(db: string, major: 15 | 17): Promise<string> {
  const [row] = await adminQuery<{ state: string }>(
    `SELECT (SELECT count(*) FROM canary)::text || '/' || (SELECT count(*) FROM accounts)::text || '/' ||
            (SELECT sum(balance) FROM accounts)::text || '/' || (SELECT last_value FROM seq)::text AS state`,
    [],
    db,
    major,
  );
  return row?.state ?? '';
}

function quoted(statement: string): string {
  return `"${statement.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

for (const major of majors()) {
  describe(`sql on PostgreSQL ${major}`, () => {
    let db: { name: string; url: string };
    let h: OpHarness;
    let initial: string;

    beforeAll(async () => {
      db = await createDatabase('sqlrun', SETUP, major);
      h = new OpHarness([testTarget('t', db.url, { limits: { row_cap: 25 } })]);
      initial = await canary(db.name, major);
    });
    afterAll(async () => {
      await h.close();
    });

    const run = (statement: string, extra = '') => h.run(sql, 't', `${quoted(statement)} ${extra}`);
    const preview = (statement: string, extra = '') => h.preview(sql, 't', `${quoted(statement)} ${extra}`);

    it.each([
      ['SELECT 1; DELETE FROM accounts', /2 statements/],
      ["SELECT 'abc", /does not parse: unterminated quoted string/],
      ['SELECT 1 -- \n; DELETE FROM accounts', /2 statements/],
      ['SELECT bump()', /public\.bump\(\) is VOLATILE/],
      ['SELECT * FROM bumping', /public\.bump\(\) \(reached through public\.bumping\) is VOLATILE/],
      ['WITH d AS (DELETE FROM accounts RETURNING *) SELECT * FROM d', /hides a data-modifying DELETE/],
      ['EXPLAIN ANALYZE DELETE FROM accounts', /EXPLAIN ANALYZE runs the statement/],
      [`SELECT * FROM ${'other'}.public.accounts`, /refers to database "other"/],
      ["SELECT nextval('seq')", /nextval\(\) is refused/],
      ['SELECT * FROM pg_stat_activity', /pg_catalog\.pg_stat_activity shows other databases/],
      [
        'SELECT * FROM sessions',
        /pg_stat_activity \(reached through public\.sessions\)|pg_stat_get_activity/,
      ],
      ['SELECT * FROM people', /pg_authid \(reached through public\.people\)|pg_roles/],
      ['SELECT datname FROM pg_database', /pg_catalog\.pg_database shows other databases/],
      ['SELECT * FROM backends', /pg_stat_get_activity\(\) \(reached through public\.backends\) is refused/],
      ['SELECT * FROM hostfile', /pg_read_file\(\) \(reached through public\.hostfile\) is refused/],
      ['SELECT * FROM dbs2', /pg_catalog\.pg_database \(reached through public\.dbs\) shows/],
      ['SELECT name, setting FROM pg_settings', /pg_settings shows/],
      ['SELECT pg_terminate_backend(pg_backend_pid())', /pg_terminate_backend\(\) is refused/],
      ['DELETE FROM accounts WHERE id = $1', /\$1-style placeholders/],
    ])('refuses %s and runs nothing', async (statement, reason) => {
      await expect(run(statement)).rejects.toThrow(reason);
      // also through the approval path: the preview refuses before any dry run
      await expect(preview(statement)).rejects.toThrow(reason);
      expect(await canary(db.name, major)).toBe(initial);
    });

    it('a function that lies about its volatility still cannot write: the read is READ ONLY', async () => {
      await expect(run('SELECT liar()')).rejects.toThrow(/read-only transaction/);
      expect(await canary(db.name, major)).toBe(initial);
    });

    it('refuses a 10 MB statement as an argument, before parsing', () => {
      const huge = `SELECT '${'x'.repeat(10 * 1024 * 1024)}'`;
      expect(() => h.context(sql, 't', quoted(huge))).toThrow(/over the 100 kB limit for ad-hoc SQL/);
    });

    it('runs a read with the row cap and attaches the whole result as CSV when long', async () => {
      const small = await run("SELECT id, owner FROM accounts WHERE region = 'eu' ORDER BY id LIMIT 3");
      expect(small.rows).toEqual([
        { id: 3, owner: 'owner3' },
        { id: 6, owner: 'owner6' },
        { id: 9, owner: 'owner9' },
      ]);
      expect(small.attachments).toBeUndefined();
      const big = await run('SELECT id FROM accounts ORDER BY id');
      expect(big.truncated).toBe(true);
      expect(big.rows).toHaveLength(20);
      expect(big.notes?.join('\n')).toMatch(/row cap of 25/);
      const csv = big.attachments?.[0]?.content ?? '';
      expect(csv.trim().split('\r\n')).toHaveLength(26);
    });

    it('keeps every output column of a join, duplicate names and order included, with their types', async () => {
      const result = await run(
        'SELECT a.id, b.id, a.owner, NULL::int AS gap, now() AS t, \'{"k": 1}\'::jsonb AS j, 12345678901234567890::numeric AS big ' +
          'FROM accounts a JOIN accounts b ON b.id = a.id + 1 WHERE a.id = 1',
      );
      expect(result.columns.map((c) => c.label)).toEqual(['id', 'id', 'owner', 'gap', 't', 'j', 'big']);
      expect(result.rows).toEqual([
        {
          id: 1,
          'id (2)': 2,
          owner: 'owner1',
          gap: null,
          t: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
          j: '{"k":1}',
          big: '12345678901234567890',
        },
      ]);
    });

    it('reads SHOW, TABLE and VALUES, and keeps a CSV of wide values within its budget', async () => {
      expect((await run('SHOW statement_timeout')).rows).toEqual([{ statement_timeout: '5s' }]);
      expect((await run('TABLE nokey')).rows).toHaveLength(4);
      // volatile only because sizes change: allowed in a read
      const size = await run(
        "SELECT pg_size_pretty(pg_total_relation_size('accounts')) AS size, random() < 2 AS r",
      );
      expect(size.rows[0]).toMatchObject({ r: true, size: expect.stringMatching(/kB$/) });
      expect((await run('VALUES (1, 2)')).rows).toEqual([{ column1: 1, column2: 2 }]);
      const wide = await run("SELECT i, repeat('x', 1024 * 1024) AS blob FROM generate_series(1, 25) i");
      const csv = wide.attachments?.[0]?.content ?? '';
      expect(csv.length).toBeGreaterThan(1024 * 1024);
      expect(csv.length).toBeLessThanOrEqual(8 * 1024 * 1024);
      expect(wide.notes?.join('\n')).toMatch(/the CSV has more \(the first \d+: 8\.0 MB limit\)/);
    });

    it('previews an UPDATE by dry run: the count and rows before/after match the truth, nothing changes', async () => {
      const statement = "UPDATE accounts SET balance = balance + 1 WHERE region = 'eu' AND id <= 12";
      const [truth] = await adminQuery<{ n: number }>(
        "SELECT count(*)::int AS n FROM accounts WHERE region = 'eu' AND id <= 12",
        [],
        db.name,
        major,
      );
      const p = await preview(statement);
      expect((p.state as SqlPreviewState).rows).toBe(truth?.n);
      expect(p.result.headline).toMatch(/^UPDATE would affect 4 rows on t/);
      const before = p.result.rows.filter((r) => r.row === 'before');
      const after = p.result.rows.filter((r) => r.row === 'after');
      expect(before.length).toBe(4);
      for (const b of before) {
        const a = after.find((x) => x.id === b.id);
        expect(a?.balance).toBe(Number(b.balance) + 1);
        expect(b.balance).toBe(Number(b.id) * 10);
      }
      expect(p.result.notes?.join('\n')).toMatch(/plan:\n.*Update on public\.accounts/);
      expect(await canary(db.name, major)).toBe(initial);
    });

    it('previews a DELETE with the rows it would delete, and an INSERT with its count', async () => {
      const del = await preview('DELETE FROM accounts WHERE id IN (1, 2, 99)');
      expect((del.state as SqlPreviewState).rows).toBe(2);
      expect(del.result.rows.map((r) => [r.row, r.id])).toEqual(
        expect.arrayContaining([
          ['deleted', 1],
          ['deleted', 2],
        ]),
      );
      const ins = await preview("INSERT INTO canary SELECT 'x' FROM generate_series(1, 7)");
      expect((ins.state as SqlPreviewState).rows).toBe(7);
      const nokey = await preview('UPDATE nokey SET a = a * 2 WHERE a > 2');
      expect((nokey.state as SqlPreviewState).rows).toBe(2);
      expect(nokey.result.notes?.join('\n')).toMatch(/no primary key/);
      expect(await canary(db.name, major)).toBe(initial);
    });

    it('dry-runs an UPDATE … FROM whose tables share column names', async () => {
      const p = await preview(
        'UPDATE accounts a SET balance = b.balance FROM accounts b WHERE a.id = b.id AND b.id <= 2',
      );
      expect((p.state as SqlPreviewState).rows).toBe(2);
      expect(p.result.rows.filter((r) => r.row === 'before').map((r) => r.id)).toEqual(
        expect.arrayContaining([1, 2]),
      );
    });

    it('refuses UPDATE/DELETE without WHERE unless --all-rows', async () => {
      await expect(preview('DELETE FROM nokey')).rejects.toThrow(/without WHERE.*--all-rows/);
      const all = await preview('DELETE FROM nokey', '--all-rows');
      expect((all.state as SqlPreviewState).rows).toBe(4);
      expect(all.result.notes?.join('\n')).toMatch(/every row of the table \(--all-rows\)/);
    });

    it('names the table and its size for DDL and warns of the ACCESS EXCLUSIVE lock; the dry run keeps it', async () => {
      const p = await preview('DROP TABLE nokey');
      const notes = (p.result.notes?.join('\n') ?? '').replace(/\s+/g, ' ');
      expect(notes).toMatch(/drops table public\.nokey: \d+(\.\d)? kB, about/);
      expect(notes).toMatch(
        /takes an ACCESS EXCLUSIVE lock on public\.nokey until it commits: every read and write/,
      );
      expect((p.state as SqlPreviewState).kind).toBe('ddl');
      const [still] = await adminQuery<{ n: number }>(
        'SELECT count(*)::int AS n FROM nokey',
        [],
        db.name,
        major,
      );
      expect(still?.n).toBe(4);
    });

    it('refuses writes to shared or server-wide catalogs', async () => {
      await expect(
        preview("UPDATE pg_database SET datallowconn = false WHERE datname = 'x'"),
      ).rejects.toThrow(/pg_catalog\.pg_database shows other databases/);
      await expect(preview("DELETE FROM pg_catalog.pg_authid WHERE rolname = 'x'")).rejects.toThrow(
        /pg_catalog\.pg_authid shows/,
      );
    });

    it('refuses a volatile user function in a write: its effects outside the transaction cannot be undone', async () => {
      await expect(preview('UPDATE accounts SET balance = bump() WHERE id = 5')).rejects.toThrow(
        /public\.bump\(\) is a VOLATILE function/,
      );
      expect(await canary(db.name, major)).toBe(initial);
    });

    it('executes the approved statement when it affects the previewed rows, and refuses when that changed', async () => {
      const statement = "UPDATE accounts SET owner = upper(owner) WHERE region = 'us' AND id > 25";
      const p = await preview(statement);
      expect((p.state as SqlPreviewState).rows).toBe(3); // 26, 28, 29
      // between approval and execution another row starts to qualify
      await adminQuery("UPDATE accounts SET region = 'us' WHERE id = 27", [], db.name, major);
      const stale = h.execute(sql, 't', quoted(statement), p.state);
      await expect(stale).rejects.toThrow(UserError);
      await expect(h.execute(sql, 't', quoted(statement), p.state)).rejects.toThrow(
        /now affects 4 rows, but the approved dry run affected 3 rows: rolled back, nothing changed/,
      );
      const [unchanged] = await adminQuery<{ n: number }>(
        "SELECT count(*)::int AS n FROM accounts WHERE owner LIKE 'OWNER%'",
        [],
        db.name,
        major,
      );
      expect(unchanged?.n).toBe(0);
      // approved again with the new effect: runs and commits
      const again = await preview(statement);
      const done = await h.execute(sql, 't', quoted(statement), again.state);
      expect(done.headline).toMatch(/UPDATE changed 4 rows on t, as in the approved dry run; committed/);
      const [changed] = await adminQuery<{ n: number }>(
        "SELECT count(*)::int AS n FROM accounts WHERE owner LIKE 'OWNER%'",
        [],
        db.name,
        major,
      );
      expect(changed?.n).toBe(4);
    });

    it('a read held for approval is checked and planned first, and runs once approved', async () => {
      const statement = 'SELECT count(*) AS n FROM accounts';
      const p = await preview(statement);
      expect(p.state).toMatchObject({ kind: 'read', rows: null });
      expect(p.result.headline).toMatch(/runs once approved; the result goes to this thread/);
      expect(p.result.rows[0]?.line).toMatch(/Aggregate/);
      const done = await h.execute(sql, 't', quoted(statement), p.state);
      expect(done.rows).toEqual([{ n: 30 }]);
      await expect(preview('SELECT * FROM pg_stat_activity')).rejects.toThrow(/shows other databases/);
    });

    it('binds the approval to the exact statement text', async () => {
      const p = await preview('DELETE FROM accounts WHERE id = 30');
      await expect(
        h.execute(sql, 't', quoted('DELETE FROM accounts WHERE id >= 30'), p.state),
      ).rejects.toThrow(/not the one approved/);
      const [row] = await adminQuery<{ n: number }>(
        'SELECT count(*)::int AS n FROM accounts',
        [],
        db.name,
        major,
      );
      expect(row?.n).toBe(30);
    });
  });
}
