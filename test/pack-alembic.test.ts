// The alembic pack (runbooks/exam-platform-staging.md) through the whole core, with a real alembic and
// a small migration project against the demo's staging fixture.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { checkPackExpectations } from '../src/packs/expectations.js';
import { builtinPacksDir, loadPacks } from '../src/packs/load.js';
import { as, startApp } from './helpers/app.js';
import { adminQuery, createDatabase } from './helpers/db.js';
import { requireTool, toolPresent } from './setup/external-tools.js';

const FIXTURE = readFileSync(new URL('../src/demo/fixtures/staging.sql', import.meta.url), 'utf8');

/** The revision the fixture's alembic_version holds, then the two this test adds after it. */
const INITIAL = '4f2a9c1e7b3d';
const SESSIONS = '7b1e4c9d2a6f';
const FLAGGED = 'c5d8e2f1a9b3';
const URL_ENV = 'EXAM_DATABASE_URL';

const ALEMBIC_INI = `[alembic]
script_location = %(here)s

[loggers]
keys = root,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARN
handlers = console

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
`;

// Reads the URL only from the variable the pack setting url_env names, as the exam platform's env.py does.
const ENV_PY = `import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine

if context.config.config_file_name is not None:
    fileConfig(context.config.config_file_name)

url = os.environ["${URL_ENV}"]
# SQLAlchemy 1.4+ only knows the postgresql:// spelling.
if url.startswith("postgres://"):
    url = "postgresql://" + url[len("postgres://"):]

if context.is_offline_mode():
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    with create_engine(url).connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
`;

const VERSIONS: Record<string, string> = {
  [`${INITIAL}_initial.py`]: `"""initial schema"""
from alembic import op
import sqlalchemy as sa

revision = "${INITIAL}"
down_revision = None


def upgrade():
    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True), sa.Column("email", sa.String(255)))


def downgrade():
    op.drop_table("users")
`,
  [`${SESSIONS}_proctoring_sessions.py`]: `"""proctoring sessions"""
from alembic import op
import sqlalchemy as sa

revision = "${SESSIONS}"
down_revision = "${INITIAL}"


def upgrade():
    op.create_table(
        "proctoring_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("attempt_id", sa.Integer, sa.ForeignKey("exam_attempts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade():
    op.drop_table("proctoring_sessions")
`,
  [`${FLAGGED}_flag_sessions.py`]: `"""flag suspicious sessions"""
from alembic import op
import sqlalchemy as sa

revision = "${FLAGGED}"
down_revision = "${SESSIONS}"


def upgrade():
    op.add_column("proctoring_sessions", sa.Column("flagged", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("ix_proctoring_sessions_flagged", "proctoring_sessions", ["flagged"])


def downgrade():
    op.drop_index("ix_proctoring_sessions_flagged", table_name="proctoring_sessions")
    op.drop_column("proctoring_sessions", "flagged")
`,
};

let app: App;
let db: { name: string; url: string };
let project: string;
/** Without alembic, the tests that run it are skipped with a note (and fail in CI, which installs it). */
const alembicPresent = await toolPresent('alembic');

const q = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) =>
  adminQuery<T>(sql, params, db.name);

/** alembic run here, outside dbops: what the pack's output must equal, line for line. */
async function alembicHere(...args: string[]): Promise<string[]> {
  const out = await execa('alembic', ['-c', 'alembic.ini', ...args], {
    cwd: project,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/', LC_MESSAGES: 'C', [URL_ENV]: db.url },
    extendEnv: false,
  });
  return `${out.stdout}\n${out.stderr}`.split('\n').filter((line) => line.trim() !== '');
}

const lines = (rows: readonly Record<string, unknown>[] | undefined): unknown[] =>
  (rows ?? []).map((r) => r.line);

const revisions = async (): Promise<string[]> =>
  (await q<{ version_num: string }>('SELECT version_num FROM alembic_version ORDER BY 1')).map(
    (r) => r.version_num,
  );

async function columnsOf(table: string): Promise<string[]> {
  const rows = await q<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns
      WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`,
    [table],
  );
  return rows.map((r) => r.column_name);
}

beforeAll(async () => {
  const [staging, state] = await Promise.all([
    createDatabase('staging', FIXTURE),
    createDatabase('alembicstate'),
  ]);
  db = staging;
  project = mkdtempSync(join(tmpdir(), 'dbops-alembic-'));
  mkdirSync(join(project, 'versions'));
  writeFileSync(join(project, 'alembic.ini'), ALEMBIC_INI);
  writeFileSync(join(project, 'env.py'), ENV_PY);
  for (const [file, text] of Object.entries(VERSIONS)) writeFileSync(join(project, 'versions', file), text);
  const yaml = `
state: { url: "\${STATE_URL}" }
targets:
  staging:
    url: "\${STAGING_URL}"
    environment: staging
    packs: [alembic]
    settings:
      alembic:
        command: [alembic, -c, alembic.ini]
        cwd: ${JSON.stringify(project)}
        url_env: ${URL_ENV}
people:
  alice: { cli: alice, roles: [dba] }
  bob: { cli: bob, roles: [oncall] }
policy:
  staging: { read: [everyone], write: [oncall, dba], request: [oncall, dba], approve: [oncall, dba] }
`;
  app = await startApp(
    loadConfigText(yaml, join(project, 'dbops.yaml'), { STATE_URL: state.url, STAGING_URL: db.url }),
  );
});

afterAll(async () => app?.close());

describe('the alembic pack', () => {
  it('has a real alembic to run, which reads the project', async (ctx) => {
    requireTool(ctx, 'alembic', alembicPresent);
    expect(await alembicHere('heads')).toContain(`${FLAGGED} (head)`);
  });

  it('loads from commands/packs, and its schema expectations hold on the fixture', async () => {
    const pack = loadPacks([builtinPacksDir()]).find((p) => p.name === 'alembic');
    expect(pack?.operations.map((o) => o.def.name).sort()).toEqual([
      'migrate-down',
      'migrate-heads',
      'migrate-history',
      'migrate-up',
      'migrations',
    ]);
    if (pack) expect(await checkPackExpectations(db.url, pack)).toEqual([]);
  });

  it('reads the current revision from alembic_version, one row per head', async () => {
    const reply = await as(app, 'bob')('/db migrations staging');
    expect(reply.status).toBe('ok');
    expect(reply.result?.rows).toEqual([{ version_num: INITIAL }]);
    expect(await revisions()).toEqual([INITIAL]);
    // Two branches applied: two rows, as `alembic current` shows two heads.
    await q("INSERT INTO alembic_version VALUES ('0a1b2c3d4e5f')");
    try {
      const two = await as(app, 'bob')('/db migrations staging');
      expect(two.result?.rows).toEqual((await revisions()).map((version_num) => ({ version_num })));
      expect(two.result?.rows).toHaveLength(2);
    } finally {
      await q("DELETE FROM alembic_version WHERE version_num = '0a1b2c3d4e5f'");
    }
  });

  it('shows heads and history through the configured command, the current revision marked', async (ctx) => {
    requireTool(ctx, 'alembic', alembicPresent);
    const [heads, headsHere] = await Promise.all([
      as(app, 'bob')('/db migrate-heads staging'),
      alembicHere('heads'),
    ]);
    expect(heads.status).toBe('ok');
    expect(lines(heads.result?.rows)).toEqual(headsHere);
    expect(lines(heads.result?.rows)).toContain(`${FLAGGED} (head)`);

    const [history, historyHere] = await Promise.all([
      as(app, 'bob')('/db migrate-history staging'),
      alembicHere('history', '--indicate-current'),
    ]);
    expect(history.status).toBe('ok');
    expect(lines(history.result?.rows)).toEqual(historyHere);
    // "(current)" comes from the database: env.py found the URL in EXAM_DATABASE_URL.
    expect(lines(history.result?.rows)).toContain(`<base> -> ${INITIAL} (current), initial schema`);
    expect(history.result?.headline).toBe('alembic -c alembic.ini history --indicate-current');
  });

  it('upgrades after approval, with the offline SQL of the pending migrations as preview', async (ctx) => {
    requireTool(ctx, 'alembic', alembicPresent);
    const [request, sqlHere] = await Promise.all([
      as(app, 'alice')('/db migrate-up staging'),
      alembicHere('upgrade', `${INITIAL}:head`, '--sql'),
    ]);
    expect(request.status).toBe('pending');
    const preview = lines(request.result?.rows);
    expect(preview).toEqual(sqlHere);
    expect(preview).toContain('CREATE TABLE proctoring_sessions (');
    expect(preview).toContain(
      'ALTER TABLE proctoring_sessions ADD COLUMN flagged BOOLEAN DEFAULT false NOT NULL;',
    );
    // Only what is pending: the initial revision is applied already.
    expect(preview.some((l) => String(l).includes('CREATE TABLE users'))).toBe(false);
    expect(request.text).toContain(`Now: current: ${INITIAL} (checked again before it runs)`);
    expect(request.text).toContain('WARNING: The SQL below is rendered offline by Alembic');
    // The URL reaches alembic in the environment, never in argv or chat.
    const password = new URL(db.url).password;
    expect(request.result?.headline).toBe(`alembic -c alembic.ini upgrade ${INITIAL}:head --sql`);
    expect(request.text).not.toContain(password);
    // Nothing ran yet.
    expect(await revisions()).toEqual([INITIAL]);
    expect(await columnsOf('proctoring_sessions')).toEqual([]);

    const done = await as(app, 'bob')(`/db approve ${request.requestId}`);
    expect(done.status).toBe('ok');
    expect(done.result?.headline).toBe('alembic -c alembic.ini upgrade head');
    expect(lines(done.result?.rows)).toEqual(
      expect.arrayContaining([
        expect.stringContaining(`Running upgrade ${INITIAL} -> ${SESSIONS}, proctoring sessions`),
        expect.stringContaining(`Running upgrade ${SESSIONS} -> ${FLAGGED}, flag suspicious sessions`),
      ]),
    );
    expect(await revisions()).toEqual([FLAGGED]);
    expect(await columnsOf('proctoring_sessions')).toEqual(['id', 'attempt_id', 'started_at', 'flagged']);
    const after = await as(app, 'bob')('/db migrations staging');
    expect(after.result?.rows).toEqual([{ version_num: FLAGGED }]);
  });

  it('runs nothing when the database moved between the preview and the approval', async (ctx) => {
    requireTool(ctx, 'alembic', alembicPresent);
    const before = await revisions();
    const request = await as(app, 'alice')('/db migrate-up staging');
    expect(request.status).toBe('pending');
    // Someone upgrades by hand meanwhile.
    await adminQuery('UPDATE alembic_version SET version_num = $1', [SESSIONS], db.name);
    try {
      const late = await as(app, 'bob')(`/db approve ${request.requestId}`);
      expect(late).toMatchObject({ status: 'refused', code: 'stale_preview' });
      expect(late.message).toContain(`"current":"${before[0]}"`);
      expect(late.message).toContain(`"current":"${SESSIONS}"`);
      expect(await revisions()).toEqual([SESSIONS]);
      expect((await app.state.getRequest(request.requestId ?? -1))?.status).toBe('failed');
    } finally {
      await adminQuery('UPDATE alembic_version SET version_num = $1', [before[0]], db.name);
    }
  });

  it('requires an explicit target revision to roll back', async (ctx) => {
    requireTool(ctx, 'alembic', alembicPresent);
    const noTarget = await as(app, 'alice')('/db migrate-down staging');
    expect(noTarget).toMatchObject({ status: 'invalid' });
    expect(noTarget.message).toContain('rev');
    const injected = await as(app, 'alice')(`/db migrate-down staging "${INITIAL}; rm -rf /"`);
    expect(injected).toMatchObject({ status: 'invalid', code: 'invalid_argument' });
    expect(injected.message).toContain('expected an Alembic revision');
    // A revision the scripts do not know: alembic refuses while rendering the preview; no request.
    const unknown = await as(app, 'alice')('/db migrate-down staging deadbeef0000');
    expect(unknown).toMatchObject({ status: 'failed', code: 'tool_failed' });
    expect(unknown.message).toContain("Can't locate revision identified by 'deadbeef0000'");
    expect((await as(app, 'bob')('/db pending')).text).not.toContain('migrate-down');
  });

  it('rolls back after approval, previewing the offline downgrade SQL with the runbook warning', async (ctx) => {
    requireTool(ctx, 'alembic', alembicPresent);
    const [request, sqlHere] = await Promise.all([
      as(app, 'alice')(`/db migrate-down staging ${INITIAL}`),
      alembicHere('downgrade', `${FLAGGED}:${INITIAL}`, '--sql'),
    ]);
    expect(request.status).toBe('pending');
    const preview = lines(request.result?.rows);
    expect(preview).toEqual(sqlHere);
    expect(preview).toContain('DROP TABLE proctoring_sessions;');
    expect(request.text.replace(/\s+/g, ' ')).toContain(
      "WARNING: Only rollback if the migration is designed to be reversible and you've tested it.",
    );
    expect(await revisions()).toEqual([FLAGGED]);

    const done = await as(app, 'bob')(`/db approve ${request.requestId}`);
    expect(done.status).toBe('ok');
    expect(done.result?.headline).toBe(`alembic -c alembic.ini downgrade ${INITIAL}`);
    expect(await revisions()).toEqual([INITIAL]);
    expect(await columnsOf('proctoring_sessions')).toEqual([]);
  });
});
