// Sensitive columns in `/db sql` and `/db explain`: masked as plain output, refused where they could leak otherwise.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import explain from '../commands/explain.js';
import sql from '../commands/sql.js';
import type { ResolvedTarget } from '../src/config/schema.js';
import type { AnyOperation, OperationContext } from '../src/core/operation.js';
import type { OperationResult } from '../src/core/types.js';
import { MASK, matchesPattern } from '../src/sql/sensitive.js';
import { createDatabase, majors } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';

const SETUP = `
CREATE TABLE users (id int PRIMARY KEY, email text, password_hash text, note text);
INSERT INTO users SELECT i, 'user' || i || '@example.com', 'hash' || i, NULL FROM generate_series(1, 30) i;
UPDATE users SET email = NULL WHERE id = 30;
CREATE TABLE teams (id int PRIMARY KEY, email text);
CREATE TABLE members (id int PRIMARY KEY, password_hash text, note text NOT NULL DEFAULT '');
INSERT INTO members VALUES (1, 'hash-secret-1', 'n');
CREATE TABLE users_old () INHERITS (users);
INSERT INTO users_old VALUES (99, 'old99@example.com', 'hash99', NULL);
CREATE VIEW user_contacts AS SELECT id, email AS contact, length(note) AS note_len FROM users;
`;

const ANALYST = { name: 'ann', roles: ['analyst'] };
const PRIVACY = { name: 'pat', roles: ['privacy'] };

function quoted(statement: string): string {
  return `"${statement.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

describe('patterns', () => {
  it('match table.column, schema.table.column and * parts', () => {
    expect(matchesPattern('users.email', 'public', 'users', 'email')).toBe(true);
    expect(matchesPattern('users.email', 'public', 'teams', 'email')).toBe(false);
    expect(matchesPattern('*.password_hash', 'app', 'accounts', 'password_hash')).toBe(true);
    expect(matchesPattern('app.*.ssn', 'public', 'people', 'ssn')).toBe(false);
    expect(matchesPattern('app.*.ssn', 'app', 'people', 'ssn')).toBe(true);
  });
});

for (const major of majors()) {
  describe(`sensitive columns on PostgreSQL ${major}`, () => {
    let h: OpHarness;

    beforeAll(async () => {
      const db = await createDatabase('sqlsensitive', SETUP, major);
      const target: ResolvedTarget = {
        ...testTarget('t', db.url),
        sensitive: { columns: ['users.email', '*.password_hash'], visibleTo: ['privacy'] },
      };
      h = new OpHarness([target]);
    });
    afterAll(async () => {
      await h.close();
    });

    function ctxFor(spec: AnyOperation, argText: string, person?: { name: string; roles: string[] }) {
      const ctx: OperationContext<Record<string, unknown>> = h.context(spec, 't', argText);
      return person ? { ...ctx, person } : ctx;
    }
    async function read(statement: string, person: { name: string; roles: string[] } | undefined = ANALYST) {
      const run = sql.run;
      if (!run) throw new Error('sql has no run step');
      return await run(ctxFor(sql, quoted(statement), person) as never);
    }

    it('masks sensitive output columns by name, keeps the rest and NULLs, and says so', async () => {
      const result = await read('SELECT id, email, note FROM users WHERE id IN (1, 30) ORDER BY id');
      expect(result.rows).toEqual([
        { id: 1, email: MASK, note: null },
        { id: 30, email: null, note: null },
      ]);
      expect(result.notes).toContain('masked (sensitive): email');
      const star = await read('SELECT * FROM users WHERE id = 2');
      expect(star.rows).toEqual([{ id: 2, email: MASK, password_hash: MASK, note: null }]);
      const renamed = await read('SELECT email AS contact FROM users WHERE id = 3');
      expect(renamed.rows).toEqual([{ contact: MASK }]);
      // another table's email is not sensitive (pattern users.email), but a shared name is masked anyway
      expect((await read('SELECT count(*) AS n FROM teams')).rows).toEqual([{ n: 0 }]);
    });

    it('masks the CSV attachment too, and nothing masked for a person allowed to see', async () => {
      const all = await read('SELECT id, email FROM users ORDER BY id');
      const csv = all.attachments?.[0]?.content ?? '';
      expect(csv).not.toMatch(/@example\.com/);
      expect(csv).toContain(MASK);
      const seen = await read('SELECT email FROM users WHERE id = 1', PRIVACY);
      expect(seen.rows).toEqual([{ email: 'user1@example.com' }]);
      // no person passed by the core: no role, so masked
      const nobody = await read('SELECT email FROM users WHERE id = 1', undefined);
      expect(nobody.rows).toEqual([{ email: MASK }]);
    });

    it.each([
      ["SELECT id FROM users WHERE email = 'user1@example.com'", /using column email this way/],
      ['SELECT upper(email) FROM users', /using column email this way/],
      ['SELECT id FROM users ORDER BY email', /using column email this way/],
      ['SELECT (SELECT email FROM users LIMIT 1) AS e', /using column email this way/],
      ['SELECT * FROM users AS u(a, b, c)', /renaming columns in an alias/],
      ['WITH u(a, b) AS (SELECT id, email FROM users) SELECT * FROM u', /renaming columns of a WITH query/],
      ['SELECT u FROM users u', /whole-row reference u/],
      ['SELECT row_to_json(u) FROM users u', /whole-row reference u/],
      ['SELECT to_json(users.*) FROM users', /`\*` inside an expression/],
      ['SELECT * FROM users NATURAL JOIN teams', /NATURAL JOIN/],
      ['SELECT x FROM (SELECT email AS x FROM users) s', /using column email this way/],
    ])('refuses %s for a person who may not see sensitive values', async (statement, reason) => {
      await expect(read(statement)).rejects.toThrow(reason);
      await expect(read(statement)).rejects.toThrow(/shown only masked/);
    });

    it('follows sensitive columns through a view that renames them', async () => {
      const star = await read('SELECT * FROM user_contacts WHERE id = 2');
      expect(star.rows).toEqual([{ id: 2, contact: MASK, note_len: null }]);
      await expect(read("SELECT id FROM user_contacts WHERE contact LIKE 'user1%'")).rejects.toThrow(
        /using column contact this way/,
      );
      const seen = await read('SELECT contact FROM user_contacts WHERE id = 2', PRIVACY);
      expect(seen.rows).toEqual([{ contact: 'user2@example.com' }]);
    });

    it("covers inheritance children and partitions by their parent's pattern", async () => {
      const old = await read('SELECT * FROM users_old');
      expect(old.rows).toEqual([{ id: 99, email: MASK, password_hash: MASK, note: null }]);
    });

    it('lets a person allowed to see use them freely', async () => {
      const result = await read("SELECT id FROM users WHERE email = 'user4@example.com'", PRIVACY);
      expect(result.rows).toEqual([{ id: 4 }]);
    });

    it('masks dry-run samples of writes, and shows none when the write uses a sensitive column', async () => {
      const preview = sql.preview;
      if (!preview) throw new Error('sql has no preview');
      const plain = await preview(
        ctxFor(sql, quoted("UPDATE users SET note = 'x' WHERE id = 5"), ANALYST) as never,
      );
      const text = JSON.stringify(plain.result.rows);
      expect(plain.result.rows.length).toBe(2);
      expect(text).not.toMatch(/example\.com|hash5/);
      const copying = await preview(
        ctxFor(sql, quoted('UPDATE users SET note = email WHERE id = 5'), ANALYST) as never,
      );
      expect(copying.result.rows).toEqual([]);
      expect(copying.result.notes?.join('\n')).toMatch(
        /sample rows are not shown: the statement uses sensitive/,
      );
      const seen = await preview(
        ctxFor(sql, quoted('UPDATE users SET note = email WHERE id = 5'), PRIVACY) as never,
      );
      expect(JSON.stringify(seen.result.rows)).toMatch(/user5@example\.com/);
    });

    it('withholds the failing row PostgreSQL quotes in an error, unless the person may see it', async () => {
      const preview = sql.preview;
      if (!preview) throw new Error('sql has no preview');
      const statement = quoted('UPDATE members SET note = NULL WHERE id = 1');
      const failed = preview(ctxFor(sql, statement, ANALYST) as never);
      await expect(failed).rejects.toThrow(
        /violates not-null constraint \(SQLSTATE 23502; PostgreSQL's detail is not shown/,
      );
      await expect(preview(ctxFor(sql, statement, ANALYST) as never)).rejects.not.toThrow(/hash-secret/);
      await expect(preview(ctxFor(sql, statement, PRIVACY) as never)).rejects.toThrow(
        /Failing row contains \(1, hash-secret-1, null\)/,
      );
    });

    it('explain --analyze follows the same rule (row counts answer questions about values)', async () => {
      const run = explain.run;
      if (!run) throw new Error('explain has no run');
      const where = quoted("SELECT id FROM users WHERE email = 'user1@example.com'");
      await expect(run(ctxFor(explain, `${where} --analyze`, ANALYST) as never)).rejects.toThrow(
        /using column email this way/,
      );
      const planned: OperationResult = await run(ctxFor(explain, where, ANALYST) as never);
      expect(planned.rows.map((r) => r.line).join('\n')).toMatch(/Seq Scan on public\.users/);
    });
  });
}
