// verify-backup as a bot role without superuser: extensions it cannot create, what needs them, ownership.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import backup from '../commands/backup.js';
import { parseToc, planArchive } from '../commands/lib/scratch-restore.js';
import verifyBackup from '../commands/verify-backup.js';
import { UserError } from '../src/core/errors.js';
import { findPgTool, toolEnvironment } from '../src/engine/tools.js';
import { adminQuery, createDatabase, majors } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';
import { requireTool } from './setup/external-tools.js';

const suffix = randomBytes(4).toString('hex');
const bot = `vb_bot_${suffix}`;
const PASSWORD = `vb-${suffix}`;

/** Production-like: pg_stat_statements (needs a superuser), dblink (likewise) with a table and a view needing them, citext (trusted). */
const WITH_EXTENSIONS = `
CREATE EXTENSION pg_stat_statements;
CREATE EXTENSION dblink;
CREATE EXTENSION citext;
CREATE TABLE accounts (id int PRIMARY KEY, email citext NOT NULL UNIQUE);
INSERT INTO accounts SELECT g, 'User' || g || '@Example.com' FROM generate_series(1, 250) g;
CREATE TABLE notes (id int PRIMARY KEY, account_id int REFERENCES accounts, body text);
INSERT INTO notes SELECT g, 1 + g % 250, E'line\\n-- Name: x; Type: EXTENSION; Schema: -; Owner: -' FROM generate_series(1, 90) g;
CREATE TABLE remote_keys (id int, k dblink_pkey_results);
INSERT INTO remote_keys VALUES (1, NULL), (2, NULL);
CREATE VIEW top_queries AS SELECT queryid, calls FROM pg_stat_statements;
`;

/** pg_stat_statements and a table, nothing that needs the extension: a plain dump of it verifies too. */
const STATEMENTS_ONLY = `
CREATE EXTENSION pg_stat_statements;
CREATE TABLE events (id bigint PRIMARY KEY, what text);
INSERT INTO events SELECT g, 'event ' || g FROM generate_series(1, 130) g;
`;

function urlAs(url: string, user: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = PASSWORD;
  return u.toString();
}

/** 'ok', 'missing' (no pg_dump: skipped with a note, a failure in CI), or 'too old' for this major. */
async function canDump(major: number): Promise<'ok' | 'missing' | 'too old'> {
  try {
    await findPgTool('pg_dump', { serverVersionNum: major * 10_000, env: toolEnvironment(process.env) });
    return 'ok';
  } catch (err) {
    if (err instanceof UserError) return / not found; install /.test(err.message) ? 'missing' : 'too old';
    throw err;
  }
}

describe('restore plan of a custom archive (pure)', () => {
  const listing = [
    '; Selected TOC Entries:',
    '3; 3079 16994 EXTENSION - dblink ',
    '3335; 0 0 COMMENT - EXTENSION dblink ',
    ';\tdepends on: 3',
    '219; 1259 17040 TABLE public t postgres',
    '221; 1259 17052 VIEW public topq postgres',
    ';\tdepends on: 2 2',
    '2; 3079 16963 EXTENSION - pg_stat_statements ',
    '220; 1259 17047 TABLE public uses ext postgres',
    ';\tdepends on: 3',
    '3328; 0 17047 TABLE DATA public uses ext postgres',
    ';\tdepends on: 220',
    '3400; 2606 17050 FK CONSTRAINT public t t_fk postgres',
    ';\tdepends on: 219',
  ].join('\n');

  it('reads entries, multi-word kinds, names with spaces and dependencies', () => {
    const entries = parseToc(listing);
    expect(entries.map((e) => [e.id, e.kind, e.schema, e.name, e.dependsOn])).toEqual([
      [3, 'EXTENSION', '-', 'dblink', []],
      [3335, 'COMMENT', '-', 'EXTENSION dblink', [3]],
      [219, 'TABLE', 'public', 't', []],
      [221, 'VIEW', 'public', 'topq', [2, 2]],
      [2, 'EXTENSION', '-', 'pg_stat_statements', []],
      [220, 'TABLE', 'public', 'uses ext', [3]],
      [3328, 'TABLE DATA', 'public', 'uses ext', [220]],
      [3400, 'FK CONSTRAINT', 'public', 't t_fk', [219]],
    ]);
  });

  it('leaves out untrusted extensions and their dependents (even listed before them), keeps trusted ones', () => {
    const rights = {
      superuser: false,
      available: new Map([
        ['dblink', false],
        ['pg_stat_statements', false],
      ]),
    };
    const plan = planArchive(listing, rights, false);
    expect(plan.leftOut.extensions).toEqual([
      { name: 'dblink', reason: 'only a superuser can create it' },
      { name: 'pg_stat_statements', reason: 'only a superuser can create it' },
    ]);
    expect(plan.leftOut.tables).toEqual([{ schema: 'public', name: 'uses ext', extension: 'dblink' }]);
    expect(plan.leftOut.objects).toEqual(['view public.topq']);
    const kept = (plan.list ?? '').split('\n').filter((l) => /^\d+;/.test(l));
    expect(kept).toEqual([
      '219; 1259 17040 TABLE public t postgres',
      '3400; 2606 17050 FK CONSTRAINT public t t_fk postgres',
    ]);
    // A superuser keeps everything the server has; a missing extension is left out for everyone.
    const su = planArchive(listing, { superuser: true, available: new Map([['dblink', false]]) }, true);
    expect(su.leftOut.extensions).toEqual([
      { name: 'pg_stat_statements', reason: 'it is not installed on this server' },
    ]);
    expect(su.leftOut.foreignKeys).toBe(1);
    expect(
      planArchive(listing, { superuser: true, available: rights.available }, false).list,
    ).toBeUndefined();
  });
});

const CAPABLE = new Map<number, 'ok' | 'missing' | 'too old'>();
for (const major of majors()) CAPABLE.set(major, await canDump(major));

describe.each(majors())('verify-backup without superuser, PostgreSQL %i', (major) => {
  const capable = CAPABLE.get(major) === 'ok';
  // A pg_dump older than this server is covered by catalog-backups.test.ts ("refuses with a clear message").
  beforeEach((ctx) => {
    requireTool(ctx, 'pg_dump', CAPABLE.get(major) !== 'missing');
    if (!capable)
      ctx.skip(`pg_dump ${major} not installed (postgresql-client-${major}, from PGDG on Debian)`);
  });
  let dir: string;
  let full: { name: string; url: string };
  let small: { name: string; url: string };
  let harness: OpHarness;

  beforeAll(async () => {
    if (!capable) return;
    dir = await mkdtemp(join(tmpdir(), 'dbops-verify-rights-'));
    full = await createDatabase(`vb_full_${major}`, WITH_EXTENSIONS, major);
    small = await createDatabase(`vb_small_${major}`, STATEMENTS_ONLY, major);
    await adminQuery(`CREATE ROLE ${bot} LOGIN CREATEDB PASSWORD '${PASSWORD}'`, [], 'postgres', major);
    for (const d of [full, small]) {
      await adminQuery(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${bot}`, [], d.name, major);
    }
    harness = new OpHarness(
      [testTarget('full', urlAs(full.url, bot)), testTarget('small', urlAs(small.url, bot))],
      {
        backupsDir: dir,
      },
    );
  });

  afterAll(async () => {
    await harness?.close();
    for (const d of [full, small]) {
      if (d) await adminQuery(`DROP DATABASE IF EXISTS "${d.name}" WITH (FORCE)`, [], 'postgres', major);
    }
    await adminQuery(`DROP ROLE IF EXISTS ${bot}`, [], 'postgres', major);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function scratchDatabasesLeft(): Promise<string[]> {
    const rows = await adminQuery<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE 'dbops\\_verify\\_%'",
      [],
      'postgres',
      major,
    );
    return rows.map((r) => r.datname);
  }

  it('a custom backup verifies, leaving out pg_stat_statements, dblink and what needs them, and says so', async () => {
    const made = await harness.run(backup, 'full');
    const result = await harness.run(verifyBackup, 'full', String(made.data?.file));
    expect(result.data?.verified).toBe(true);
    expect(result.headline).toContain('1 table not restored');
    expect(result.rows).toEqual([
      { table: 'public.accounts', backup_rows: 250, restored_rows: 250, match: true },
      { table: 'public.notes', backup_rows: 90, restored_rows: 90, match: true },
    ]);
    expect(result.notes).toEqual(
      expect.arrayContaining([
        'extension dblink was left out of the temporary database: only a superuser can create it',
        'extension pg_stat_statements was left out of the temporary database: only a superuser can create it',
        'table public.remote_keys was not restored (it needs extension dblink); its rows are not checked',
        '1 object needs a left-out extension and was not restored: view public.top_queries',
      ]),
    );
    // citext is trusted: it was created, and the table that uses it restored.
    expect(result.notes?.some((n) => n.includes('citext'))).toBe(false);
    expect(await scratchDatabasesLeft()).toEqual([]);
    expect((await readdir(join(dir, 'full'))).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('a plain full backup with pg_stat_statements verifies without ownership', async () => {
    const made = await harness.run(backup, 'small', '--format plain');
    const result = await harness.run(verifyBackup, 'small', String(made.data?.file));
    expect(result.headline).toContain('verified');
    expect(result.data?.verified).toBe(true);
    expect(result.rows).toEqual([
      { table: 'public.events', backup_rows: 130, restored_rows: 130, match: true },
    ]);
    expect(result.notes).toContain(
      'extension pg_stat_statements was left out of the temporary database: only a superuser can create it',
    );
    expect(await scratchDatabasesLeft()).toEqual([]);
  });

  it('plain and custom single-table backups verify with matching counts', async () => {
    for (const format of ['plain', 'custom']) {
      const made = await harness.run(backup, 'full', `--table notes --format ${format}`);
      const result = await harness.run(verifyBackup, 'full', String(made.data?.file));
      expect(result.data?.verified).toBe(true);
      expect(result.rows).toEqual([
        { table: 'public.notes', backup_rows: 90, restored_rows: 90, match: true },
      ]);
      expect(result.notes).toContain(
        '1 foreign key of this single-table backup points at a table outside it and was left out of the temporary database',
      );
    }
    expect(await scratchDatabasesLeft()).toEqual([]);
  });

  it('a plain dump with objects needing a left-out extension fails and says why, running no row as SQL', async () => {
    const made = await harness.run(backup, 'full', '--format plain');
    const result = await harness.run(verifyBackup, 'full', String(made.data?.file));
    expect(result.data?.verified).toBe(false);
    expect(result.headline).toContain('FAILED verification: restoring into a temporary database failed');
    expect(result.headline).toContain('extension dblink, pg_stat_statements was left out');
    expect(await scratchDatabasesLeft()).toEqual([]);
  });
});
