// Nothing runs without its audit record: operations whose own SQL counts, as it runs, the audit records
// written for it, and a state database that refuses audit records (a trigger) stopping every run.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { as, startApp } from './helpers/app.js';
import { adminQuery, createDatabase } from './helpers/db.js';

/*
 * The target is the state database itself, so an operation's SQL can read dbops_audit at the moment it
 * runs: each run inserts how many audit records of the kind that must precede it existed then.
 */
const PACK = {
  'pack.yaml': 'name: probe\ndescription: operations that look for their own audit record\n',
  'probe-write.yaml': `name: probe-write
summary: records how many 'requested' audit records of itself exist as it runs
risk: write
sql: |
  INSERT INTO probe_runs (operation, audited)
  SELECT 'probe-write', count(*) FROM dbops_audit
   WHERE operation = 'probe-write' AND event = 'requested'
examples: [""]
`,
  'probe-wipe.yaml': `name: probe-wipe
summary: records how many 'approved' audit records of itself exist as it runs
risk: destructive
preview:
  sql: SELECT count(*) AS runs FROM probe_runs
columns:
  - { key: runs, label: runs so far, kind: count }
steps:
  - label: probe_runs
    sql: |
      INSERT INTO probe_runs (operation, audited)
      SELECT 'probe-wipe', count(*) FROM dbops_audit
       WHERE operation = 'probe-wipe' AND event = 'approved'
examples: [""]
`,
};

let app: App;
let stateDb: string;
const scratch = mkdtempSync(join(tmpdir(), 'dbops-audit-first-'));

beforeAll(async () => {
  const state = await createDatabase(
    'auditfirst',
    'CREATE TABLE probe_runs (id serial PRIMARY KEY, operation text NOT NULL, audited int NOT NULL)',
  );
  stateDb = state.name;
  mkdirSync(join(scratch, 'probe'));
  for (const [file, text] of Object.entries(PACK)) writeFileSync(join(scratch, 'probe', file), text);
  const yaml = `
state:
  url: \${STATE_URL}
packs:
  dirs: [${JSON.stringify(scratch)}]
backups:
  dir: ${JSON.stringify(join(scratch, 'backups'))}
targets:
  self:
    url: \${STATE_URL}
    environment: staging
    packs: [probe]
people:
  alice: { cli: alice, roles: [dba] }
  bob: { cli: bob, roles: [dba] }
policy:
  staging: { read: [dba], write: [dba], request: [dba], approve: [dba] }
`;
  app = await startApp(loadConfigText(yaml, 'audit-first.yaml', { STATE_URL: state.url }));
});

afterAll(async () => {
  await app?.close();
  rmSync(scratch, { recursive: true, force: true });
});

async function runs(operation: string): Promise<number[]> {
  const rows = await adminQuery<{ audited: number }>(
    'SELECT audited FROM probe_runs WHERE operation = $1 ORDER BY id',
    [operation],
    stateDb,
  );
  return rows.map((r) => r.audited);
}

/** A sick state database: every audit record of `event` for the probe operations is refused. */
async function refuseAudit(event: string | undefined): Promise<void> {
  await adminQuery('DROP TRIGGER IF EXISTS refuse_probe ON dbops_audit', [], stateDb);
  if (event === undefined) return;
  await adminQuery(
    `CREATE OR REPLACE FUNCTION refuse_probe() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       IF NEW.operation LIKE 'probe-%' AND NEW.event = '${event}' THEN
         RAISE EXCEPTION 'the audit log is full';
       END IF;
       RETURN NEW;
     END $$`,
    [],
    stateDb,
  );
  await adminQuery(
    'CREATE TRIGGER refuse_probe BEFORE INSERT ON dbops_audit FOR EACH ROW EXECUTE FUNCTION refuse_probe()',
    [],
    stateDb,
  );
}

describe('the audit record comes first', () => {
  it('a write runs only after its requested record is written, and not at all when it cannot be', async () => {
    const alice = as(app, 'alice');
    const first = await alice('/db probe-write self');
    expect(first.status, first.text).toBe('ok');
    // As its SQL ran, its own 'requested' record was already in the audit log.
    expect(await runs('probe-write')).toEqual([1]);
    await refuseAudit('requested');
    const refused = await alice('/db probe-write self');
    expect(refused.status).toBe('failed');
    expect(refused.code).toBe('state_unavailable');
    expect(refused.text).toContain('nothing was run');
    expect(await runs('probe-write')).toEqual([1]);
    await refuseAudit(undefined);
    expect((await alice('/db probe-write self')).status).toBe('ok');
    expect(await runs('probe-write')).toEqual([1, 2]);
  });

  it('an approved destructive operation runs only after its approved record, and not without it', async () => {
    const requested = await as(app, 'alice')('/db probe-wipe self');
    expect(requested.status, requested.text).toBe('pending');
    const id = requested.requestId;
    await refuseAudit('approved');
    const approved = await as(app, 'bob')(`/db approve ${id}`);
    expect(approved.status).not.toBe('ok');
    expect(await runs('probe-wipe')).toEqual([]);
    // The request is approved in the state database: dbops' own start of waiting runs (the sweep) must
    // not run it without a record either.
    await app.core.startWaitingRuns().catch(() => {});
    expect(await runs('probe-wipe')).toEqual([]);
    await refuseAudit(undefined);
    const again = await as(app, 'bob')(`/db approve ${id}`);
    expect(again.status, again.text).toBe('ok');
    expect(await runs('probe-wipe')).toEqual([1]);
  });
});
