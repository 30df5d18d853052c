// Ad-hoc SQL classification from the real parser's tree: what is a read, a write or DDL, and what is refused.
import { beforeAll, describe, expect, it } from 'vitest';
import { sqlAction, sqlRisk } from '../commands/sql.js';
import { classify } from '../src/sql/classify.js';
import { touchedRelations } from '../src/sql/lint.js';
import { loadSqlParser, MAX_STATEMENT_BYTES, parseStatement, SqlRefusal } from '../src/sql/parse.js';

function kind(text: string): string {
  return classify(parseStatement(text)).kind;
}

function refusal(text: string): string {
  try {
    classify(parseStatement(text));
  } catch (err) {
    if (err instanceof SqlRefusal) return err.message;
    throw err;
  }
  throw new Error(`not refused: ${text}`);
}

// The parser loads lazily (only what reads SQL text pays for it).
beforeAll(loadSqlParser);

describe('classification', () => {
  it.each([
    ['SELECT * FROM users WHERE id = 1', 'read'],
    ['select 1; ', 'read'],
    ['TABLE users', 'read'],
    ['VALUES (1), (2)', 'read'],
    ['SHOW work_mem', 'read'],
    ['WITH t AS (SELECT 1 AS x) SELECT x FROM t', 'read'],
    ['EXPLAIN SELECT 1', 'read'],
    ['EXPLAIN (ANALYZE false) DELETE FROM t', 'read'],
    ["INSERT INTO t (a) VALUES ('x')", 'write'],
    ['UPDATE t SET a = 1 WHERE id = 2', 'write'],
    ['DELETE FROM t WHERE id = 2', 'write'],
    ['WITH d AS (DELETE FROM t WHERE id = 1 RETURNING *) INSERT INTO t_log SELECT * FROM d', 'write'],
    ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE', 'write'],
    ["INSERT INTO t (id) VALUES (nextval('t_id_seq'))", 'write'],
    ['CREATE TABLE t2 (id int)', 'ddl'],
    ['ALTER TABLE t ADD COLUMN b int', 'ddl'],
    ['DROP TABLE t', 'ddl'],
    ['TRUNCATE t', 'ddl'],
    ['CREATE INDEX ON t (a)', 'ddl'],
    ['SELECT * INTO t3 FROM t', 'ddl'],
  ])('%s is a %s', (text, expected) => {
    expect(kind(text)).toBe(expected);
  });

  it.each([
    // the bad inputs of the issue
    ['SELECT 1; DELETE FROM t', /2 statements/],
    ["SELECT 'abc", /does not parse: unterminated quoted string .* at character 8/],
    ['SELECT 1 /* ; */ ; -- hidden\nDROP TABLE t', /2 statements/],
    ['WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d', /hides a data-modifying DELETE/],
    ['EXPLAIN ANALYZE DELETE FROM t', /EXPLAIN ANALYZE runs the statement/],
    ['EXPLAIN (ANALYZE, FORMAT JSON) UPDATE t SET a = 1', /EXPLAIN ANALYZE runs the statement/],
    ['SELECT * FROM otherdb.public.users', /refers to database "otherdb"/],
    ['SELECT otherdb.public.users.email FROM users', /refers to another database/],
    ['DELETE FROM otherdb.public.users WHERE id = 1', /refers to database "otherdb"/],
    ['UPDATE otherdb.public.users SET a = 1 WHERE id = 1', /refers to database "otherdb"/],
    // refused whatever the role
    ['BEGIN', /transaction control/],
    ['COMMIT', /transaction control/],
    ['SET ROLE postgres', /SET ROLE/],
    ['SET SESSION AUTHORIZATION postgres', /SET ROLE/],
    ["ALTER SYSTEM SET work_mem = '1GB'", /ALTER SYSTEM/],
    ["COPY t TO PROGRAM 'curl evil'", /COPY is refused/],
    ["COPY t FROM '/etc/passwd'", /COPY is refused/],
    ['DO $$ BEGIN PERFORM 1; END $$', /DO blocks/],
    ["SELECT pg_read_file('/etc/passwd')", /pg_read_file\(\) is refused: it reads server files/],
    ["SELECT pg_catalog.pg_ls_dir('.')", /pg_ls_dir\(\) is refused/],
    ["SELECT lo_import('/etc/passwd')", /lo_import\(\) is refused/],
    ["SELECT lo_export(1, '/tmp/x')", /lo_export\(\) is refused/],
    ["SELECT * FROM dblink('host=x', 'select 1') AS t(a int)", /dblink\(\) is refused/],
    ['SELECT pg_terminate_backend(123)', /pg_terminate_backend\(\) is refused.*\/db terminate/],
    ['SELECT pg_cancel_backend(123)', /pg_cancel_backend\(\) is refused/],
    ['SELECT pg_reload_conf()', /pg_reload_conf\(\) is refused/],
    ["SELECT nextval('s')", /nextval\(\) is refused/],
    ["UPDATE t SET a = setval('s', 1) WHERE id = 1", /setval\(\) is refused/],
    ["SELECT set_config('role', 'postgres', false)", /set_config\(\) is refused/],
    ['SELECT pg_advisory_lock(1)', /pg_advisory_lock\(\) is refused/],
    ["SELECT query_to_xml('delete from t', true, true, '')", /runs SQL given as text/],
    ['UPDATE t SET a = pg_terminate_backend(pid) WHERE true', /pg_terminate_backend/],
    ['SELECT * FROM t FOR UPDATE', /locks rows/],
    ['VACUUM FULL t', /\/db vacuum/],
    ['CREATE INDEX CONCURRENTLY ON t (a)', /CONCURRENTLY cannot run inside a transaction/],
    ['CREATE EXTENSION dblink', /extensions are installed by an admin/],
    ['SHOW ALL', /\/db settings/],
    ["CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'x')", /foreign servers/],
    ['CALL p()', /CALL is refused/],
    ['', /no statement/],
    ['-- only a comment', /no statement/],
  ])('refuses %s', (text, reason) => {
    expect(refusal(text)).toMatch(reason);
  });

  it('refuses a 10 MB statement before parsing it', () => {
    const huge = `SELECT '${'x'.repeat(10 * 1024 * 1024)}'`;
    const started = performance.now();
    expect(refusal(huge)).toMatch(/is 10 MB, over the 100 kB limit .* not parsed or run/);
    // generous bound: the parser would take far longer on 10 MB; the cap is a byte count
    expect(performance.now() - started).toBeLessThan(2000);
    expect(MAX_STATEMENT_BYTES).toBe(100 * 1024);
  });

  it('keeps the statement text without the trailing semicolon or comment', () => {
    expect(parseStatement('  UPDATE t SET a = 1 WHERE id = 2; -- done').text).toBe(
      'UPDATE t SET a = 1 WHERE id = 2',
    );
  });

  it('decides risk and policy action from the classification; refused text falls to a read, refused at run', () => {
    expect(sqlRisk('SELECT 1')).toBe('read');
    expect(sqlAction('SELECT 1')).toBe('sql_read');
    expect(sqlRisk('DELETE FROM t WHERE id = 1')).toBe('destructive');
    expect(sqlAction('DELETE FROM t WHERE id = 1')).toBe('sql_write');
    expect(sqlRisk('ALTER TABLE t ADD b int')).toBe('destructive');
    expect(sqlRisk('SELECT 1; DELETE FROM t')).toBe('read');
    expect(sqlAction('DO $$ BEGIN END $$')).toBe('sql_read');
  });

  it('names the tables DDL touches and the lock it takes', () => {
    const touched = (text: string) => touchedRelations(classify(parseStatement(text)));
    expect(touched('DROP TABLE public.a, b')).toEqual([
      { schema: 'public', name: 'a', verb: 'drops table', lock: 'ACCESS EXCLUSIVE' },
      { name: 'b', verb: 'drops table', lock: 'ACCESS EXCLUSIVE' },
    ]);
    expect(touched('TRUNCATE a')[0]?.lock).toBe('ACCESS EXCLUSIVE');
    expect(touched('ALTER TABLE a ADD COLUMN x int')[0]?.lock).toBe('ACCESS EXCLUSIVE');
    expect(touched('ALTER TABLE a ALTER COLUMN x SET STATISTICS 500')[0]?.lock).toBe(
      'SHARE UPDATE EXCLUSIVE',
    );
    expect(touched('CREATE INDEX ON a (x)')[0]?.lock).toBe('SHARE');
  });
});
