// The Alembic project the demo ships for staging (src/demo/alembic) with a real alembic: its revisions
// build exactly the fixture's schema up to the fixture's alembic_version, and the pending one applies
// and rolls back.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALEMBIC_COMMAND, ALEMBIC_URL_ENV, writeAlembicProject } from '../src/demo/alembic.js';
import { adminQuery, createDatabase } from './helpers/db.js';
import { requireTool, toolPresent } from './setup/external-tools.js';

const FIXTURE = readFileSync(new URL('../src/demo/fixtures/staging.sql', import.meta.url), 'utf8');
const alembicPresent = await toolPresent('alembic');

/** Columns, constraints and indexes of the public schema, in a stable order (names, not oids). */
const SCHEMA_SQL = `
SELECT 'column' AS kind, table_name || '.' || column_name AS name,
       concat_ws(' ', data_type, character_maximum_length, numeric_precision, numeric_scale,
                 is_nullable, column_default) AS definition
FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'index', indexrelid::regclass::text, pg_get_indexdef(indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'public'::regnamespace
ORDER BY 1, 2`;

/** Written by hand in the fixture, not by a migration (see the comment in staging.sql). */
const HAND_MADE_INDEX = 'answers_attempt_id_idx';

let project: string;
let fixture: { name: string; url: string };
let migrated: { name: string; url: string };

async function alembic(url: string, ...args: string[]): Promise<string> {
  const [command, ...prefix] = ALEMBIC_COMMAND;
  const out = await execa(command, [...prefix, ...args], {
    cwd: project,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/', [ALEMBIC_URL_ENV]: url },
    extendEnv: false,
    all: true,
  });
  return out.all ?? '';
}

async function schemaOf(database: string): Promise<{ kind: string; name: string; definition: string }[]> {
  return await adminQuery(SCHEMA_SQL, [], database);
}

beforeAll(async () => {
  project = await mkdtemp(join(tmpdir(), 'dbops-demo-alembic-'));
  await writeAlembicProject(project);
  [fixture, migrated] = await Promise.all([
    createDatabase('demo_fixture', FIXTURE),
    createDatabase('demo_migrated'),
  ]);
});

afterAll(async () => {
  for (const db of [fixture, migrated]) {
    if (db) await adminQuery(`DROP DATABASE IF EXISTS "${db.name}" WITH (FORCE)`);
  }
  if (project) await rm(project, { recursive: true, force: true });
});

describe("the demo's staging Alembic project", () => {
  it("builds the fixture's schema up to the fixture's revision, and knows one more", async (ctx) => {
    requireTool(ctx, 'alembic', alembicPresent);
    const [current] = await adminQuery<{ version_num: string }>(
      'SELECT version_num FROM alembic_version',
      [],
      fixture.name,
    );
    const revision = current?.version_num ?? '';
    expect(revision).toMatch(/^[0-9a-f]{12}$/);
    await alembic(migrated.url, 'upgrade', revision);

    const built = await schemaOf(migrated.name);
    const expected = (await schemaOf(fixture.name)).filter((row) => row.name !== HAND_MADE_INDEX);
    expect(built).toEqual(expected);
    expect(built.filter((r) => r.kind === 'column').length).toBeGreaterThan(40);

    // The history marks the fixture's revision current, with one pending head after it.
    const history = await alembic(fixture.url, 'history', '--indicate-current');
    expect(history).toContain(`-> ${revision} (current)`);
    expect(history).toMatch(new RegExp(`${revision} -> [0-9a-f]{12} \\(head\\), proctoring sessions`));
  });

  it('applies the pending revision on the fixture and rolls it back', async (ctx) => {
    requireTool(ctx, 'alembic', alembicPresent);
    const [before] = await adminQuery<{ version_num: string }>(
      'SELECT version_num FROM alembic_version',
      [],
      fixture.name,
    );
    await alembic(fixture.url, 'upgrade', 'head');
    const tables = async () =>
      (
        await adminQuery<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public' AND tablename = 'proctoring_sessions'",
          [],
          fixture.name,
        )
      )[0]?.n;
    expect(await tables()).toBe(1);
    await alembic(fixture.url, 'downgrade', before?.version_num ?? '');
    expect(await tables()).toBe(0);
    const [after] = await adminQuery<{ version_num: string }>(
      'SELECT version_num FROM alembic_version',
      [],
      fixture.name,
    );
    expect(after).toEqual(before);
  });
});
