// Issue 16's bad input through the whole core on PostgreSQL 15 and 17: each refused with its reason, audited, nothing run (canary).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { silentLogger } from '../src/core/log.js';
import { adminQuery, createDatabase, majors } from './helpers/db.js';

const SETUP = `
CREATE TABLE canary (note text);
CREATE TABLE accounts (id int PRIMARY KEY, balance int);
INSERT INTO accounts SELECT i, i * 10 FROM generate_series(1, 30) i;
CREATE FUNCTION bump() RETURNS int LANGUAGE sql VOLATILE AS $$ INSERT INTO canary VALUES ('bumped') RETURNING 1 $$;
`;

const YAML = `
state:
  url: \${STATE_URL}
targets:
  t:
    url: \${TARGET_URL}
    environment: staging
people:
  alice: { cli: alice, roles: [dba] }
policy:
  staging: { read: [dba], write: [dba], request: [dba], approve: [dba], sql_read: [dba], sql_write: [dba] }
`;

function quoted(statement: string): string {
  return `"${statement.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

const BAD: [string, string, RegExp][] = [
  ['two statements', 'SELECT 1; DELETE FROM accounts', /holds 2 statements/],
  ['an unterminated string', "SELECT 'abc", /does not parse: unterminated quoted string/],
  [
    'a comment hiding a second statement',
    'SELECT 1 /* ; */ -- \n; DELETE FROM accounts',
    /holds 2 statements/,
  ],
  ['SELECT calling a volatile function that writes', 'SELECT bump()', /public\.bump\(\) is VOLATILE/],
  [
    'a CTE with DELETE … RETURNING',
    'WITH d AS (DELETE FROM accounts RETURNING *) SELECT * FROM d',
    /hides a data-modifying DELETE/,
  ],
  [
    'EXPLAIN ANALYZE DELETE smuggled as a read',
    'EXPLAIN ANALYZE DELETE FROM accounts',
    /EXPLAIN ANALYZE runs/,
  ],
  ['a statement referring to another database', 'SELECT * FROM other.public.accounts', /database "other"/],
];

for (const major of majors()) {
  describe(`bad ad-hoc SQL on PostgreSQL ${major}`, () => {
    let app: App;
    let target: { name: string; url: string };
    let state: { name: string; url: string };

    beforeAll(async () => {
      target = await createDatabase('sqlbad', SETUP, major);
      state = await createDatabase('sqlbadstate');
      const config = loadConfigText(YAML, 'bad.yaml', { STATE_URL: state.url, TARGET_URL: target.url });
      app = await createApp({ config, log: silentLogger() });
    });
    afterAll(async () => {
      await app?.close();
    });

    async function canary(): Promise<string> {
      const [row] = await adminQuery<{ s: string }>(
        "SELECT (SELECT count(*) FROM canary) || '/' || (SELECT count(*) FROM accounts) AS s",
        [],
        target.name,
        major,
      );
      return row?.s ?? '';
    }

    /** The audit records of one reply, by its reference (refusals take no request number). */
    async function lastAudit(ref: string | undefined) {
      const rows = await adminQuery<{ event: string; outcome: string; args: unknown; error: string | null }>(
        'SELECT event, outcome, args, error FROM dbops_audit WHERE ref = $1 ORDER BY id',
        [ref],
        state.name,
      );
      return rows.at(-1);
    }

    it.each(BAD)(
      'refuses %s: the reason, audited verbatim, nothing run',
      async (_what, statement, reason) => {
        const reply = await app.core.dispatch({
          surface: 'cli',
          identity: 'alice',
          text: `/db sql t ${quoted(statement)}`,
        });
        expect(reply.status).toBe('refused');
        expect(reply.text).toMatch(reason);
        const audited = await lastAudit(reply.ref);
        expect(audited).toMatchObject({ event: 'refused', outcome: 'denied', args: { statement } });
        expect(audited?.error).toMatch(reason);
        expect(await canary()).toBe('0/30');
      },
    );

    it('refuses a 10 MB statement before parsing it, audits the refusal without storing 10 MB, runs nothing', async () => {
      const huge = `DELETE FROM accounts WHERE note = '${'x'.repeat(10 * 1024 * 1024)}'`;
      const reply = await app.core.dispatch({
        surface: 'cli',
        identity: 'alice',
        text: `/db sql t ${quoted(huge)}`,
      });
      expect(reply.status).toBe('invalid');
      expect(reply.text).toMatch(
        /is 10 MB long, over the 100 kB limit for ad-hoc SQL; it was not parsed or run/,
      );
      const [row] = await adminQuery<{ n: number; size: number; error: string }>(
        `SELECT count(*)::int AS n, max(octet_length(args::text))::int AS size, max(error) AS error
           FROM dbops_audit WHERE error LIKE '%over the 100 kB limit%'`,
        [],
        state.name,
      );
      expect(row?.n).toBe(1);
      expect(row?.size ?? 0).toBeLessThan(200 * 1024);
      expect(await canary()).toBe('0/30');
    });
  });
}
