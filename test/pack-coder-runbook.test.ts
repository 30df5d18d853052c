// The coder pack on a database built from exactly the tables and columns coder-ecs-rds.md's own SQL
// names (templates without deleted flags or organizations, users without status): every read operation
// and lookup against ground truth computed here, and the runbook's description update run after approval.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { as, startApp } from './helpers/app.js';
import { adminQuery, createDatabase } from './helpers/db.js';

const CODER_RUNBOOK_SCHEMA = `
CREATE TABLE templates (id uuid PRIMARY KEY, name text NOT NULL, description text NOT NULL,
                        updated_at timestamptz NOT NULL);
CREATE TABLE users (id uuid PRIMARY KEY, username text NOT NULL, email text NOT NULL,
                    created_at timestamptz NOT NULL);
CREATE TABLE workspaces (id uuid PRIMARY KEY, name text NOT NULL, owner_id uuid NOT NULL,
                         template_id uuid NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO templates SELECT md5('t' || i)::uuid, (ARRAY['docker', 'kubernetes', 'aws-linux', 'gcp-vm'])[i],
       CASE WHEN i <= 2 THEN 'A minimal starter template for Coder' ELSE 'Team template ' || i || ' 100%_done' END,
       timestamptz '2025-01-01' + i * interval '1 day'
  FROM generate_series(1, 4) i;
INSERT INTO users SELECT md5('u' || i)::uuid, 'dev' || i, 'Dev' || i || '@Example.com',
       timestamptz '2025-02-01' + i * interval '3 hours'
  FROM generate_series(1, 9) i;
INSERT INTO workspaces SELECT md5('w' || i)::uuid, 'ws-' || (i % 4), md5('u' || (1 + i % 9))::uuid,
       md5('t' || (1 + i % 3))::uuid, timestamptz '2025-03-01' + i * interval '5 hours'
  FROM generate_series(1, 30) i;
`;

let app: App;
let db: string;
const alice = (text: string) => as(app, 'alice')(text);
const bob = (text: string) => as(app, 'bob')(text);
const truth = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) =>
  adminQuery<T>(sql, params, db);
const iso = (rows: Record<string, unknown>[]) =>
  rows.map((r) =>
    Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v])),
  );

beforeAll(async () => {
  const [coder, state] = await Promise.all([
    createDatabase('coderrb', CODER_RUNBOOK_SCHEMA),
    createDatabase('coderrbstate'),
  ]);
  db = coder.name;
  const yaml = `
state: { url: "\${STATE_URL}" }
limits: { row_cap: 500 }
targets:
  coder: { url: "\${CODER_URL}", environment: production, packs: [coder] }
people:
  alice: { cli: alice, roles: [dba] }
  bob: { cli: bob, roles: [dba] }
policy:
  production: { read: [dba], write: [dba], request: [dba], approve: [dba] }
`;
  app = await startApp(loadConfigText(yaml, 'coder-rb.yaml', { STATE_URL: state.url, CODER_URL: coder.url }));
});

afterAll(async () => app?.close());

describe("coder pack on the runbook's schema", () => {
  it('templates: the search matches name or description, % and _ literally', async () => {
    const all = await bob('/db templates coder');
    expect(all.status).toBe('ok');
    expect(all.result?.rows).toEqual(
      iso(
        await truth(
          'SELECT id::text AS id, name, description, updated_at FROM templates ORDER BY name, id::text',
        ),
      ),
    );
    const coder = await bob('/db templates coder --search coder');
    expect(coder.result?.rows.map((r) => r.name)).toEqual(['docker', 'kubernetes']);
    const literal = await bob('/db templates coder --search 100%_done');
    expect(literal.result?.rows.map((r) => r.name)).toEqual(['aws-linux', 'gcp-vm']);
    expect((await bob('/db templates coder --search 100x')).result?.rows).toEqual([]);
  });

  it('users, workspaces and workspaces-per-template', async () => {
    const users = await bob('/db users coder --search example');
    expect(users.status).toBe('ok');
    expect(users.result?.rows).toEqual(
      iso(
        await truth(
          'SELECT id::text AS id, username, email, created_at FROM users ORDER BY username, id::text',
        ),
      ),
    );
    const workspaces = await bob('/db workspaces coder --owner DEV3');
    expect(workspaces.status).toBe('ok');
    const want = iso(
      await truth(
        `SELECT w.id::text AS id, w.name, u.username AS owner, t.name AS template, w.created_at
           FROM workspaces w JOIN users u ON u.id = w.owner_id JOIN templates t ON t.id = w.template_id
          WHERE u.username = 'dev3' ORDER BY w.created_at DESC, w.id::text`,
      ),
    );
    expect(want.length).toBeGreaterThan(0);
    expect(workspaces.result?.rows).toEqual(want);
    // The same person found as lookup user finds them: by email too, ignoring case.
    expect((await bob('/db workspaces coder --owner dev3@EXAMPLE.com')).result?.rows).toEqual(want);
    const per = await bob('/db workspaces-per-template coder');
    expect(per.result?.rows).toEqual(
      await truth(
        `SELECT t.name AS template, count(w.id)::int AS workspaces, count(DISTINCT w.owner_id)::int AS owners
           FROM templates t LEFT JOIN workspaces w ON w.template_id = t.id
          GROUP BY t.id, t.name ORDER BY workspaces DESC, t.name`,
      ),
    );
  });

  it('lookups user and workspace', async () => {
    const user = await bob('/db lookup coder user dev4@example.COM');
    expect(user.status).toBe('ok');
    const [u] = await truth<{ n: number; by: string }>(
      `SELECT count(*)::int AS n,
              (SELECT string_agg(c.name || ' ' || c.n, ', ' ORDER BY c.n DESC, c.name)
                 FROM (SELECT t.name, count(*) AS n FROM workspaces w JOIN templates t ON t.id = w.template_id
                        WHERE w.owner_id = md5('u4')::uuid GROUP BY t.name) c) AS by
         FROM workspaces WHERE owner_id = md5('u4')::uuid`,
    );
    expect(user.result?.rows).toEqual([
      expect.objectContaining({ username: 'dev4', workspaces: u?.n, by_template: u?.by }),
    ]);
    const ws = await bob('/db lookup coder workspace dev3/WS-2');
    expect(ws.status).toBe('ok');
    const want = iso(
      await truth(
        `SELECT w.id::text AS id, w.name, u.username AS owner, t.name AS template, w.created_at
           FROM workspaces w JOIN users u ON u.id = w.owner_id JOIN templates t ON t.id = w.template_id
          WHERE u.username = 'dev3' AND w.name = 'ws-2' ORDER BY w.created_at, w.id::text`,
      ),
    );
    expect(want.length).toBeGreaterThan(0);
    expect(ws.result?.rows).toEqual(want);
  });

  it("set-template-description does the runbook's update after approval", async () => {
    const request = await alice(
      '/db set-template-description coder --from "A minimal starter template for Coder" --to "A minimal starter template for Workbench"',
    );
    expect(request.status).toBe('pending');
    expect(request.result?.rows.map((r) => r.name)).toEqual(['docker', 'kubernetes']);
    expect((await bob(`/db approve ${request.requestId}`)).status).toBe('ok');
    expect(
      await truth('SELECT name, description FROM templates WHERE description LIKE $1 ORDER BY name', [
        '%Workbench',
      ]),
    ).toEqual([
      { name: 'docker', description: 'A minimal starter template for Workbench' },
      { name: 'kubernetes', description: 'A minimal starter template for Workbench' },
    ]);
  });
});
