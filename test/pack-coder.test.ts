// The coder pack (runbook coder-ecs-rds.md) against the demo's coder fixture, through the whole core:
// reads and lookups against ground truth computed here, and set-template-description previewed, approved by
// a second person and checked for exactly the rows it changed.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { builtinPacksDir, loadPackDir } from '../src/packs/load.js';
import { as, startApp } from './helpers/app.js';
import { adminQuery, createDatabase } from './helpers/db.js';

const FIXTURE = readFileSync(join(import.meta.dirname, '../src/demo/fixtures/coder.sql'), 'utf8');
const CODER = 'A minimal starter template for Coder';
const WORKBENCH = 'A minimal starter template for Workbench';

let app: App;
let coderDb: string;
const alice = (text: string) => as(app, 'alice')(text);
const bob = (text: string) => as(app, 'bob')(text);
const truth = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) =>
  adminQuery<T>(sql, params, coderDb);

/** Timestamps as the engine hands them on: ISO strings of the Date node-postgres parsed. */
function iso<T extends Record<string, unknown>>(rows: T[]): Record<string, unknown>[] {
  return rows.map((row) =>
    Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v])),
  );
}

beforeAll(async () => {
  const [coder, state] = await Promise.all([createDatabase('coder', FIXTURE), createDatabase('coderstate')]);
  coderDb = coder.name;
  const yaml = `
state: { url: "\${STATE_URL}" }
targets:
  coder:
    url: "\${CODER_URL}"
    environment: production
    packs: [coder]
people:
  alice: { cli: alice, roles: [dba] }
  bob: { cli: bob, roles: [dba] }
policy:
  production: { read: [dba], write: [dba], request: [dba], approve: [dba] }
`;
  app = await startApp(
    loadConfigText(yaml, 'coder-pack.yaml', { STATE_URL: state.url, CODER_URL: coder.url }),
  );
});

afterAll(async () => app?.close());

const TEMPLATES_SQL = `
  SELECT t.id::text AS id, t.name, t.display_name, o.name AS organization, t.description, t.deleted, t.updated_at
    FROM templates t JOIN organizations o ON o.id = t.organization_id
   ORDER BY t.name, t.deleted, t.created_at`;

describe('coder pack: what it expects of the schema', () => {
  it('names tables and columns the Coder database has', async () => {
    const problems: string[] = [];
    const pack = loadPackDir(join(builtinPacksDir(), 'coder'), problems);
    expect(problems).toEqual([]);
    const tables = pack?.manifest.expects.tables ?? {};
    expect(Object.keys(tables)).toEqual(expect.arrayContaining(['templates', 'users', 'workspaces']));
    const columns = await truth<{ table_name: string; column_name: string }>(
      "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'",
    );
    const have = new Set(columns.map((c) => `${c.table_name}.${c.column_name}`));
    const missing = Object.entries(tables).flatMap(([table, cols]) =>
      cols.map((c) => `${table}.${c}`).filter((tc) => !have.has(tc)),
    );
    expect(missing).toEqual([]);
  });
});

describe('coder pack: read operations', () => {
  it('templates lists live templates, finds text case-insensitively, and takes % and _ literally', async () => {
    const all = iso(await truth(TEMPLATES_SQL));
    const live = all.filter((t) => t.deleted === false);
    expect(live).toHaveLength(11);
    expect((await bob('/db templates coder')).result?.rows).toEqual(live);
    expect((await bob('/db templates coder --deleted')).result?.rows).toEqual(all);

    const found = await bob('/db templates coder --search "starter template for CODER"');
    const starter = live.filter((t) =>
      String(t.description).toLowerCase().includes('starter template for coder'),
    );
    expect(starter.map((t) => t.name)).toEqual(['aws-linux', 'docker', 'jupyter-gpu', 'kubernetes']);
    expect(found.result?.rows).toEqual(starter);

    // The runbook's LIKE '%Workbench%': one live template already says Workbench.
    const workbench = await bob('/db templates coder --search workbench');
    expect(workbench.result?.rows?.map((t) => t.name)).toEqual(['devcontainer']);

    for (const wild of ['%', '_', 'Coder%workspaces']) {
      const reply = await bob(`/db templates coder --search "${wild}"`);
      expect(reply.status).toBe('ok');
      expect(reply.result?.rows).toEqual(
        live.filter((t) => [t.name, t.display_name, t.description].join(' ').includes(wild)),
      );
      expect(reply.result?.rows).toEqual([]);
    }
    const tooLong = await bob(`/db templates coder --search ${'x'.repeat(129)}`);
    expect(tooLong).toMatchObject({ status: 'invalid', code: 'invalid_argument' });
  });

  it('users lists accounts by username, capped, and filters by text and status', async () => {
    const everyone = iso(
      await truth(
        `SELECT id::text AS id, username, email, status::text AS status, login_type::text AS login_type,
                array_to_string(rbac_roles, ', ') AS roles, created_at, last_seen_at
           FROM users WHERE NOT deleted ORDER BY username`,
      ),
    );
    expect(everyone).toHaveLength(420);
    const all = await bob('/db users coder');
    expect(all.result?.truncated).toBe(true);
    expect(all.result?.rows).toEqual(everyone.slice(0, 200));
    expect(all.text).not.toContain('hashed_password');

    const suspended = await bob('/db users coder --status suspended');
    const expected = everyone.filter((u) => u.status === 'suspended');
    expect(expected.length).toBeGreaterThan(0);
    expect(suspended.result?.rows).toEqual(expected);

    const ada = await bob('/db users coder --search ADA.');
    const adas = everyone.filter((u) => `${u.username} ${u.email}`.includes('ada.'));
    expect(adas.length).toBeGreaterThan(0);
    expect(ada.result?.rows).toEqual(adas);
  });

  it('workspaces lists live workspaces, of one template or one owner', async () => {
    const sql = `
      SELECT w.id::text AS id, w.name, u.username AS owner, t.name AS template, w.created_at, w.last_used_at
        FROM workspaces w JOIN users u ON u.id = w.owner_id JOIN templates t ON t.id = w.template_id
       WHERE NOT w.deleted AND ($1::text IS NULL OR t.name = $1) AND ($2::text IS NULL OR u.username = $2)
       ORDER BY w.last_used_at DESC, w.id`;
    const docker = await bob('/db workspaces coder --template Docker');
    const expected = iso(await truth(sql, ['docker', null]));
    expect(expected.length).toBeGreaterThan(50);
    expect(expected.length).toBeLessThan(200);
    expect(docker.result?.rows).toEqual(expected);
    const [owner] = await truth<{ username: string }>(
      `SELECT u.username FROM workspaces w JOIN users u ON u.id = w.owner_id WHERE NOT w.deleted
        GROUP BY u.username ORDER BY count(*) DESC, u.username LIMIT 1`,
    );
    const theirs = await bob(`/db workspaces coder --owner ${owner?.username}`);
    expect(theirs.result?.rows).toEqual(iso(await truth(sql, [null, owner?.username])));
    expect(theirs.result?.rows.length).toBeGreaterThan(3);
    const all = await bob('/db workspaces coder');
    expect(all.result?.truncated).toBe(true);
    expect(all.result?.rows).toEqual(iso(await truth(`${sql} LIMIT 200`, [null, null])));
  });

  it('workspaces-per-template counts live workspaces for every live template', async () => {
    const reply = await bob('/db workspaces-per-template coder');
    // In the server's collation order, for ties.
    const templates = await truth<{ id: string; name: string; organization: string }>(
      `SELECT t.id::text, t.name, o.name AS organization FROM templates t
         JOIN organizations o ON o.id = t.organization_id WHERE NOT t.deleted ORDER BY t.name, o.name`,
    );
    const workspaces = await truth<{ template_id: string; owner_id: string; deleted: boolean }>(
      'SELECT template_id::text, owner_id::text, deleted FROM workspaces',
    );
    const expected = templates
      .map((t) => {
        const mine = workspaces.filter((w) => w.template_id === t.id);
        const live = mine.filter((w) => !w.deleted);
        return {
          template: t.name,
          organization: t.organization,
          workspaces: live.length,
          owners: new Set(live.map((w) => w.owner_id)).size,
          deleted_workspaces: mine.length - live.length,
        };
      })
      .map((row, order) => ({ row, order }))
      .sort((a, b) => b.row.workspaces - a.row.workspaces || a.order - b.order)
      .map(({ row }) => row);
    expect(reply.result?.rows).toEqual(expected);
    expect(expected.reduce((n, t) => n + t.workspaces, 0)).toBe(workspaces.filter((w) => !w.deleted).length);
  });
});

describe('coder pack: lookups', () => {
  it('lookup workspace: by name or owner/name, with the latest build and its job error', async () => {
    const [failed] = await truth<{ name: string; owner: string }>(
      `SELECT w.name, u.username AS owner FROM workspaces w JOIN users u ON u.id = w.owner_id
         JOIN LATERAL (SELECT job_id FROM workspace_builds b WHERE b.workspace_id = w.id
                        ORDER BY build_number DESC LIMIT 1) b ON true
         JOIN provisionerjobs j ON j.id = b.job_id
        WHERE j.error IS NOT NULL AND NOT w.deleted ORDER BY w.name LIMIT 1`,
    );
    const [card] = await truth(
      `SELECT w.id::text AS id, w.name, u.username AS owner, t.name AS template, o.name AS organization, w.deleted,
              w.created_at, w.last_used_at, w.autostart_schedule, (w.ttl / 1000000000)::int AS ttl,
              b.build_number, b.transition::text AS transition, b.reason::text AS reason,
              b.created_at AS build_created_at, 'failed' AS job_status, j.error AS job_error
         FROM workspaces w JOIN users u ON u.id = w.owner_id JOIN templates t ON t.id = w.template_id
         JOIN organizations o ON o.id = w.organization_id
         JOIN workspace_builds b ON b.workspace_id = w.id AND b.build_number = 4
         JOIN provisionerjobs j ON j.id = b.job_id
        WHERE w.name = $1`,
      [failed?.name],
    );
    const reply = await bob(`/db lookup coder workspace ${failed?.name}`);
    expect(reply.status).toBe('ok');
    expect(reply.result?.display).toBe('card');
    expect(reply.result?.rows).toEqual(iso([card ?? {}]));
    expect(reply.text).toMatch(/error:\s+terraform apply: exit status 1/);
    const qualified = await bob(`/db lookup coder workspace ${failed?.owner}/${failed?.name.toUpperCase()}`);
    expect(qualified.result?.rows).toEqual(reply.result?.rows);

    const [gone] = await truth<{ name: string }>(
      'SELECT name FROM workspaces WHERE deleted ORDER BY name LIMIT 1',
    );
    const deleted = await bob(`/db lookup coder workspace ${gone?.name}`);
    expect(deleted.result?.rows).toMatchObject([
      { name: gone?.name, deleted: true, transition: 'delete', build_number: 4 },
    ]);
    const none = await bob('/db lookup coder workspace no-such-workspace');
    expect(none.result?.rows).toEqual([]);
  });

  it('lookup user: by username or email, with the workspaces by template', async () => {
    const [someone] = await truth<{ id: string; email: string }>(
      `SELECT u.id::text, u.email FROM users u JOIN workspaces w ON w.owner_id = u.id
        GROUP BY u.id, u.email HAVING bool_or(w.deleted) ORDER BY count(*) DESC, u.email LIMIT 1`,
    );
    const [user] = await truth(
      `SELECT id::text AS id, username, email, name, status::text AS status, deleted,
              array_to_string(rbac_roles, ', ') AS roles, login_type::text AS login_type, created_at, last_seen_at
         FROM users WHERE id = $1`,
      [someone?.id],
    );
    const byTemplate = await truth<{ name: string; n: number }>(
      `SELECT t.name, count(*)::int AS n FROM workspaces w JOIN templates t ON t.id = w.template_id
        WHERE w.owner_id = $1 AND NOT w.deleted GROUP BY t.name ORDER BY n DESC, t.name`,
      [someone?.id],
    );
    const [deleted] = await truth<{ n: number }>(
      'SELECT count(*)::int AS n FROM workspaces WHERE owner_id = $1 AND deleted',
      [someone?.id],
    );
    const expected = [
      {
        ...iso([user ?? {}])[0],
        workspaces: byTemplate.reduce((n, t) => n + t.n, 0),
        by_template: byTemplate.map((t) => `${t.name} ${t.n}`).join(', '),
        deleted_workspaces: deleted?.n,
      },
    ];
    const byEmail = await bob(`/db lookup coder user ${someone?.email.toUpperCase()}`);
    expect(byEmail.result?.rows).toEqual(expected);
    const byName = await bob(`/db lookup coder user ${user?.username}`);
    expect(byName.result?.rows).toEqual(expected);
    expect(byName.text).toMatch(/workspaces:\s+\d/);
  });
});

describe('coder pack: set-template-description', () => {
  const snapshot = () =>
    truth<{
      id: string;
      name: string;
      organization: string;
      description: string;
      deleted: boolean;
      updated_at: Date;
      xmin: string;
    }>(TEMPLATES_SQL.replace('t.updated_at', 't.updated_at, t.xmin::text AS xmin'));

  it('refuses a missing or too long description', async () => {
    const missing = await alice(`/db set-template-description coder --from "${CODER}"`);
    expect(missing).toMatchObject({ status: 'invalid', code: 'invalid_argument' });
    expect(missing.message).toContain('--to: is required');
    const long = await alice(`/db set-template-description coder --from "${CODER}" --to ${'y'.repeat(129)}`);
    expect(long.message).toContain('--to: must be at most 128 characters');
  });

  it('--template changes one live template only, after approval', async () => {
    const before = await snapshot();
    const docker = before.find((t) => t.name === 'docker' && t.deleted === false);
    const request = await alice(
      `/db set-template-description coder --from "${CODER}" --to "${WORKBENCH}" --template docker`,
    );
    expect(request.status).toBe('pending');
    expect(request.result?.rows).toEqual([
      {
        id: docker?.id,
        name: 'docker',
        organization: 'coder',
        old_description: CODER,
        new_description: WORKBENCH,
      },
    ]);
    const [{ now } = { now: new Date(0) }] = await truth<{ now: Date }>('SELECT now()');
    const done = await bob(`/db approve ${request.requestId}`);
    expect(done.status).toBe('ok');
    expect(done.result?.rows).toEqual([{ step: 'templates', rows: 1 }]);
    const after = await snapshot();
    const changed = after.find((t) => t.id === docker?.id);
    expect(changed?.description).toBe(WORKBENCH);
    expect(changed?.updated_at.getTime()).toBeGreaterThanOrEqual(now.getTime());
    // The deleted template also called docker, with the same description, is untouched.
    expect(after.filter((t) => t.id !== docker?.id)).toEqual(before.filter((t) => t.id !== docker?.id));
  });

  it('the runbook’s rename changes exactly the live templates with the old text', async () => {
    const before = await snapshot();
    const targets = before.filter((t) => t.description === CODER && t.deleted === false);
    expect(targets.map((t) => t.name)).toEqual(['aws-linux', 'jupyter-gpu', 'kubernetes']);
    const request = await alice(`/db set-template-description coder --from "${CODER}" --to "${WORKBENCH}"`);
    expect(request.result?.rows).toEqual(
      targets.map((t) => ({
        id: t.id,
        name: t.name,
        organization: t.organization,
        old_description: CODER,
        new_description: WORKBENCH,
      })),
    );
    expect(request.text).toContain(
      'set-template-description on coder: 3 templates whose description would change',
    );
    // Shown in full (a card, not a clipped table column): the approver reads the exact text.
    expect(request.text).toContain(`old description: ${CODER}\nnew description: ${WORKBENCH}`);
    const done = await bob(`/db approve ${request.requestId}`);
    expect(done.result?.rows).toEqual([{ step: 'templates', rows: 3 }]);
    expect(done.result?.notes ?? []).toEqual([]);
    const after = await snapshot();
    const ids = new Set(targets.map((t) => t.id));
    for (const t of after.filter((t) => ids.has(t.id))) {
      expect(t.description).toBe(WORKBENCH);
      expect(t.updated_at.getTime()).toBeGreaterThan(
        before.find((b) => b.id === t.id)?.updated_at.getTime() ?? Number.POSITIVE_INFINITY,
      );
    }
    expect(after.filter((t) => !ids.has(t.id))).toEqual(before.filter((t) => !ids.has(t.id)));
    const deletedOld = after.filter((t) => t.deleted === true && t.description === CODER);
    expect(deletedOld.map((t) => t.name)).toEqual(['docker']);

    const again = await alice(`/db set-template-description coder --from "${CODER}" --to "${WORKBENCH}"`);
    expect(again.status).toBe('ok');
    expect(again.message).toContain('nothing to do');
  });
});
