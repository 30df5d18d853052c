// Who may run ad-hoc SQL (sql_read / sql_write), and `/db sql` through the whole core: audited verbatim, refused or held for approval.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sql from '../commands/sql.js';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import type { EnvironmentPolicy, ResolvedPerson } from '../src/config/schema.js';
import { decide } from '../src/core/policy.js';
import { as, FIXTURE_YAML, type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery } from './helpers/db.js';

const rules = (over: Partial<EnvironmentPolicy>): EnvironmentPolicy => ({
  read: ['everyone'],
  write: [],
  request: [],
  approve: [],
  approvals: 1,
  approve_writes: false,
  ...over,
});
const person = (name: string, roles: string[]): ResolvedPerson => ({
  name,
  roles,
  identities: { cli: name },
});
const analyst = person('ann', ['analyst']);
const dba = person('dan', ['dba']);

function decision(who: ResolvedPerson, action: 'sql_read' | 'sql_write', policy: EnvironmentPolicy) {
  return decide({
    person: who,
    identity: `cli:${who.name}`,
    action,
    environment: 'prod',
    policy: { prod: policy },
  });
}

describe('sql policy', () => {
  it('grants SQL only to the roles listed: read access alone never allows SQL', () => {
    const none = decision(analyst, 'sql_read', rules({}));
    expect(none).toMatchObject({ allowed: false });
    expect(none.allowed === false && none.reason).toMatch(/ann may not run ad-hoc SQL reads on prod/);
    const reads = rules({ sql_read: ['analyst'], sql_write: ['dba'], approvals: 2 });
    expect(decision(analyst, 'sql_read', reads)).toEqual({
      allowed: true,
      action: 'sql_read',
      needsApproval: false,
      approvalsRequired: 0,
    });
    expect(decision(analyst, 'sql_write', reads)).toMatchObject({ allowed: false });
    // writes and DDL always wait for the environment's approvals, like destructive operations
    expect(decision(dba, 'sql_write', reads)).toEqual({
      allowed: true,
      action: 'sql_write',
      needsApproval: true,
      approvalsRequired: 2,
    });
  });

  it('a switch makes reads wait for approval too', () => {
    const held = rules({ sql_read: ['analyst'], approve_sql_reads: true });
    expect(decision(analyst, 'sql_read', held)).toMatchObject({ allowed: true, needsApproval: true });
  });

  it('the sql operation asks for sql_read or sql_write by what the statement is', async () => {
    // The core awaits preload (the SQL parser) before it asks riskFor / actionFor.
    await sql.preload?.();
    expect(sql.actionFor?.({ statement: 'SELECT 1', all_rows: false })).toBe('sql_read');
    expect(sql.actionFor?.({ statement: 'DELETE FROM t WHERE id = 1', all_rows: false })).toBe('sql_write');
    expect(sql.riskFor?.({ statement: 'DROP TABLE t', all_rows: false })).toBe('destructive');
  });

  it('accepts the keys in config', () => {
    const yaml = FIXTURE_YAML.replace(
      'staging:     { read: [everyone],',
      'staging:     { sql_read: [dba], sql_write: [dba], approve_sql_reads: true, read: [everyone],',
    );
    const config = loadConfigText(yaml, 'f.yaml', {
      STATE_URL: 'postgres://x@h/s',
      STAGING_URL: 'postgres://x@h/a',
      KASM_URL: 'postgres://x@h/b',
      DOWN_URL: 'postgres://x@h/c',
    });
    expect(config.policy.staging).toMatchObject({
      sql_read: ['dba'],
      sql_write: ['dba'],
      approve_sql_reads: true,
    });
  });
});

describe('sql through the core', () => {
  let fx: Fixture;
  let app: App;

  beforeAll(async () => {
    fx = await makeFixture();
    const yaml = FIXTURE_YAML.replace(
      'staging:     { read: [everyone],',
      'staging:     { sql_read: [everyone], sql_write: [oncall, dba], read: [everyone],',
    ).replace(
      '    description: exam platform (Alembic)\n',
      '    description: exam platform (Alembic)\n    sensitive: { columns: [exams.title], visible_to: [privacy] }\n',
    );
    expect(yaml).toContain('sensitive:');
    app = await startApp(loadConfigText(yaml, 'fixture.yaml', fx.env));
  });
  afterAll(async () => {
    await app.close();
  });

  /** The audit records of a reply: its approval request's and its own (by reference). */
  async function audit(of: { requestId: number | null; ref?: string | undefined }) {
    return await adminQuery<{
      event: string;
      outcome: string;
      args: { statement?: string };
      error: string | null;
    }>(
      'SELECT event, outcome, args, error FROM dbops_audit WHERE request_id = $1 OR ref = $2 ORDER BY id',
      [of.requestId, of.ref ?? null],
      fx.state.name,
    );
  }

  async function exams(): Promise<number> {
    const [row] = await adminQuery<{ n: number }>(
      'SELECT count(*)::int AS n FROM exams',
      [],
      fx.staging.name,
    );
    return row?.n ?? -1;
  }

  it('runs a read and audits the statement verbatim', async () => {
    const statement = 'SELECT count(*) AS n\n  FROM exams  -- how many';
    const reply = await as(app, 'alice')(`/db sql staging "${statement}"`);
    expect(reply.status).toBe('ok');
    expect(reply.result?.rows).toEqual([{ n: 2000 }]);
    const events = await audit(reply);
    expect(events.map((e) => e.event)).toEqual(['requested', 'executed']);
    expect(events[0]?.args.statement).toBe(statement);
  });

  it('masks sensitive columns in the reply text and result (what every surface and --json render)', async () => {
    const [truth] = await adminQuery<{ title: string }>(
      'SELECT title FROM exams WHERE id = 10',
      [],
      fx.staging.name,
    );
    const reply = await as(app, 'alice')('/db sql staging "SELECT id, title FROM exams WHERE id = 10"');
    expect(reply.status).toBe('ok');
    expect(reply.result?.rows).toEqual([{ id: 10, title: '••••••' }]);
    expect(JSON.stringify(reply)).not.toContain(truth?.title ?? 'missing');
    expect(reply.text).toContain('masked (sensitive): title');
    const refused = await as(
      app,
      'alice',
    )(`/db sql staging "SELECT id FROM exams WHERE title = '${truth?.title}'"`);
    expect(refused.status).toBe('refused');
    expect(refused.message).toMatch(/using column title this way/);
  });

  it.each([
    ['SELECT 1; DELETE FROM exams', /2 statements/],
    ['WITH d AS (DELETE FROM exams RETURNING *) SELECT count(*) FROM d', /hides a data-modifying DELETE/],
    ['EXPLAIN ANALYZE DELETE FROM exams', /EXPLAIN ANALYZE runs the statement/],
    ['SELECT * FROM elsewhere.public.exams', /refers to database "elsewhere"/],
  ])('refuses %s, audits it verbatim with the reason, runs nothing', async (statement, reason) => {
    const reply = await as(app, 'alice')(`/db sql staging "${statement}"`);
    expect(reply.status).toBe('refused');
    expect(reply.message).toMatch(reason);
    const events = await audit(reply);
    const last = events.at(-1);
    expect(last).toMatchObject({ event: 'refused', outcome: 'denied' });
    expect(last?.error).toMatch(reason);
    expect(last?.args.statement).toBe(statement);
    expect(await exams()).toBe(2000);
  });

  it('holds a write for approval with its dry run, changing nothing yet', async () => {
    const reply = await as(app, 'alice')('/db sql staging "DELETE FROM exams WHERE id <= 3"');
    expect(reply.status).toBe('pending');
    expect(reply.text).toMatch(/DELETE would affect 3 rows on staging/);
    expect(await exams()).toBe(2000);
    const events = await audit(reply);
    expect(events.at(-1)).toMatchObject({ event: 'pending' });
    expect(events.at(-1)?.args.statement).toBe('DELETE FROM exams WHERE id <= 3');
    const approved = await as(app, 'dave')(`/db approve ${reply.requestId}`);
    expect(approved.status).toBe('ok');
    expect(approved.text).toMatch(/DELETE changed 3 rows on staging, as in the approved dry run; committed/);
    expect(await exams()).toBe(1997);
  });

  it('rolls back an approved write whose row count changed, and says both numbers', async () => {
    const reply = await as(app, 'alice')('/db sql staging "UPDATE exams SET title = \'x\' WHERE id > 1990"');
    expect(reply.status).toBe('pending');
    await adminQuery('DELETE FROM exams WHERE id = 2000', [], fx.staging.name);
    const approved = await as(app, 'dave')(`/db approve ${reply.requestId}`);
    expect(approved.status).not.toBe('ok');
    expect(approved.message ?? approved.text).toMatch(
      /now affects 9 rows, but the approved dry run affected 10 rows: rolled back, nothing changed/,
    );
    const [row] = await adminQuery<{ n: number }>(
      "SELECT count(*)::int AS n FROM exams WHERE title = 'x'",
      [],
      fx.staging.name,
    );
    expect(row?.n).toBe(0);
  });
});
