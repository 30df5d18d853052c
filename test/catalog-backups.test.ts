// backup, backups, verify-backup and restore against real PostgreSQL with Debian's pg_dump / pg_restore / psql.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  copyFile,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import backup, {
  type Manifest,
  pgDumpArgs,
  pgDumpTablePattern,
  throttledProgress,
} from '../commands/backup.js';
import backups from '../commands/backups.js';
import restore from '../commands/restore.js';
import verifyBackup from '../commands/verify-backup.js';
import { UserError } from '../src/core/errors.js';
import {
  conninfoDatabase,
  findPgTool,
  libpqEnvironment,
  runTool,
  toolEnvironment,
} from '../src/engine/tools.js';
import { adminQuery, createDatabase, majors } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';
import { requireTool } from './setup/external-tools.js';
import type { Major } from './setup/postgres.js';

const suffix = randomBytes(4).toString('hex');
const botRole = `bk_bot_${suffix}`;
const appRole = `bk_app_${suffix}`;
const weakRole = `bk_weak_${suffix}`;
/** Characters that must be percent-encoded in the URL and decoded for PGPASSWORD. */
const PASSWORD = `Pw:@/%#?-bk-${suffix}`;
const ENCODED_PASSWORD = encodeURIComponent(PASSWORD);

function urlAs(url: string, user: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = ENCODED_PASSWORD;
  return u.toString();
}

/**
 * pg_dump for a major, or why not. Without any pg_dump (Debian's postgresql-client) the tests that run
 * it are skipped with a note, and fail in CI, which installs it.
 */
async function pgDumpFor(
  major: Major,
): Promise<{ ok: true } | { ok: false; message: string } | { ok: false; missing: true }> {
  try {
    await findPgTool('pg_dump', { serverVersionNum: major * 10_000, env: toolEnvironment(process.env) });
    return { ok: true };
  } catch (err) {
    if (err instanceof UserError && /cannot dump/.test(err.message))
      return { ok: false, message: err.message };
    if (err instanceof UserError && / not found; install /.test(err.message))
      return { ok: false, missing: true };
    throw err;
  }
}

const CAPABLE = new Map<Major, Awaited<ReturnType<typeof pgDumpFor>>>();
for (const major of majors()) CAPABLE.set(major, await pgDumpFor(major));

const SETUP = `
CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE NOT NULL);
INSERT INTO users (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 120) g;
CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users, amount numeric NOT NULL);
CREATE INDEX orders_user ON orders (user_id);
INSERT INTO orders SELECT g, 1 + g % 120, g * 1.5 FROM generate_series(1, 700) g;
CREATE SCHEMA audit;
CREATE TABLE audit.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, what text);
INSERT INTO audit.events (what) SELECT 'event ' || g FROM generate_series(1, 40) g;
CREATE TABLE empty_table (x int);
CREATE TABLE parent (id int);
CREATE TABLE child () INHERITS (parent);
INSERT INTO parent VALUES (1), (2);
INSERT INTO child VALUES (3), (4), (5);
CREATE TABLE busy (id bigserial PRIMARY KEY, at timestamptz DEFAULT now());
`;

const TABLES = [
  'audit.events',
  'public.busy',
  'public.child',
  'public.empty_table',
  'public.orders',
  'public.parent',
  'public.users',
];

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function userErrorOf(err: unknown): UserError {
  if (err instanceof UserError) return err;
  throw err;
}

async function rejection(promise: Promise<unknown>): Promise<UserError> {
  try {
    await promise;
  } catch (err) {
    return userErrorOf(err);
  }
  throw new Error('expected a UserError, but the operation succeeded');
}

describe('external tool runner (pure parts)', () => {
  it('puts the password only in PGPASSWORD, decoded, and passes only allowlisted variables', () => {
    const url = `postgres://bot:${ENCODED_PASSWORD}@db.example.com:6543/app%20db?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=x`;
    const env = toolEnvironment(
      {
        PATH: '/usr/bin',
        HOME: '/home/bot',
        LANG: 'C.UTF-8',
        LC_ALL: 'de_DE.UTF-8',
        LC_CTYPE: 'C.UTF-8',
        SLACK_BOT_TOKEN: 'xoxb-1',
        DATABASE_URL: url,
        PGPASSWORD: 'stale',
      },
      libpqEnvironment(url, { connectTimeoutSeconds: 3 }),
    );
    expect(env).toEqual({
      PATH: '/usr/bin',
      HOME: '/home/bot',
      LANG: 'C.UTF-8',
      LC_CTYPE: 'C.UTF-8',
      LC_MESSAGES: 'C',
      PGHOST: 'db.example.com',
      PGPORT: '6543',
      PGUSER: 'bot',
      PGPASSWORD: PASSWORD,
      PGDATABASE: 'app db',
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: '/etc/ca.pem',
      PGCONNECT_TIMEOUT: '3',
      PGAPPNAME: 'dbops',
    });
    const args = pgDumpArgs({
      file: '/backups/t/.x.partial',
      format: 'custom',
      snapshot: '00000003-0000001B-1',
      table: { schema: 'public', name: 'orders' },
      lockWaitTimeoutMs: 1000,
    });
    expect(args).toEqual([
      '--no-password',
      '--verbose',
      '--format=custom',
      '--file=/backups/t/.x.partial',
      '--lock-wait-timeout=1000',
      '--snapshot=00000003-0000001B-1',
      '--table="public"."orders"',
      '--strict-names',
    ]);
    for (const arg of args) {
      expect(arg).not.toContain(PASSWORD);
      expect(arg).not.toContain(ENCODED_PASSWORD);
    }
    expect(pgDumpArgs({ file: 'f.sql', format: 'plain', lockWaitTimeoutMs: 500 })).toEqual([
      '--no-password',
      '--verbose',
      '--format=plain',
      '--file=f.sql',
      '--lock-wait-timeout=500',
      '--clean',
      '--if-exists',
    ]);
  });

  it('quotes --table patterns so pattern characters match literally, and database names as conninfo', () => {
    expect(pgDumpTablePattern({ schema: 'we*ird', name: 'Ta"b.le?' })).toBe('"we*ird"."Ta""b.le?"');
    expect(conninfoDatabase("it's\\db")).toBe("dbname='it\\'s\\\\db'");
    expect(libpqEnvironment('postgres://u@%2Fvar%2Frun%2Fpostgresql/d').PGHOST).toBe('/var/run/postgresql');
    expect(libpqEnvironment('postgres://u@[::1]:5433/d', { database: 'other' })).toMatchObject({
      PGHOST: '::1',
      PGPORT: '5433',
      PGDATABASE: 'other',
    });
  });

  it('runs with exactly the given environment, and fails with the exit code and redacted stderr', async () => {
    const env = toolEnvironment({ PATH: process.env.PATH, SECRET_TOKEN: 'leak-me' });
    const out = await runTool({ name: 'env', file: 'env', args: [], env }, { timeoutMs: 5000 });
    expect(out.stdout).not.toContain('SECRET_TOKEN');
    expect(out.stdout).toContain('LC_MESSAGES=C');

    const lines: string[] = [];
    const failed = await rejection(
      runTool(
        {
          name: 'fake-tool',
          file: 'sh',
          args: [
            '-c',
            'echo "progress one" >&2; echo "cannot reach postgres://bot:hunter2@db/x" >&2; exit 3',
          ],
          env,
        },
        { timeoutMs: 5000, onStderrLine: (l) => lines.push(l) },
      ),
    );
    expect(failed.code).toBe('tool_failed');
    expect(failed.message).toContain('fake-tool failed (exit code 3)');
    expect(failed.message).toContain('postgres://bot:***@db/x');
    expect(failed.message).not.toContain('hunter2');
    expect(failed.detail).toMatchObject({ exitCode: 3, timedOut: false });
    // Progress lines are redacted too (issue 13): they go to chat threads and logs.
    expect(lines).toEqual(['progress one', 'cannot reach postgres://bot:***@db/x']);

    const slow = await rejection(
      runTool({ name: 'sleep', file: 'sleep', args: ['10'], env }, { timeoutMs: 200 }),
    );
    expect(slow.message).toContain('sleep ran past its time limit');
  });

  it('throttles verbose tool output to milestones and rare chatter', () => {
    const lines: string[] = [];
    let now = 0;
    const progress = throttledProgress(
      (l) => lines.push(l),
      'pg_dump',
      /^dumping contents of table "(.+)"$/,
      4,
      () => now,
    );
    progress('pg_dump: reading extensions');
    progress('pg_dump: dumping contents of table "public.a"');
    now = 500;
    progress('pg_dump: dumping contents of table "public.b"');
    now = 2600;
    progress('pg_dump: dumping contents of table "public.c"');
    now = 5000;
    progress('pg_dump: reading indexes');
    now = 13_000;
    progress('pg_dump: saving encoding = UTF8');
    progress('pg_dump: dumping contents of table "public.d"');
    expect(lines).toEqual([
      'pg_dump: dumping contents of table "public.a" (1 of 4)',
      'pg_dump: dumping contents of table "public.c" (3 of 4)',
      'pg_dump: saving encoding = UTF8',
    ]);
  });

  it('says which package to install when pg_dump is missing', async () => {
    const err = await rejection(
      findPgTool('pg_dump', {
        serverVersionNum: 150_004,
        env: { PATH: '/nonexistent' },
        roots: ['/nonexistent'],
      }),
    );
    expect(err.code).toBe('tool_failed');
    expect(err.message).toBe(
      'pg_dump not found; install postgresql-client-15 (Debian/PGDG) on the dbops host',
    );
  });
});

describe.each(majors())('PostgreSQL %i', (major) => {
  const capable = CAPABLE.get(major);
  const present = !(capable && 'missing' in capable);
  beforeEach((ctx) => requireTool(ctx, 'pg_dump', present));
  let dir: string;
  let db: { name: string; url: string };
  let harness: OpHarness;
  let url: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dbops-backups-'));
    db = await createDatabase(`backups_${major}`, SETUP, major);
    await adminQuery(
      `CREATE ROLE ${botRole} LOGIN SUPERUSER PASSWORD '${PASSWORD.replace(/'/g, "''")}'`,
      [],
      'postgres',
      major,
    );
    await adminQuery(`CREATE ROLE ${appRole} NOLOGIN`, [], 'postgres', major);
    await adminQuery(
      `CREATE ROLE ${weakRole} LOGIN PASSWORD '${PASSWORD.replace(/'/g, "''")}'`,
      [],
      'postgres',
      major,
    );
    await adminQuery(`GRANT SELECT ON users TO ${appRole}`, [], db.name, major);
    url = urlAs(db.url, botRole);
    harness = new OpHarness([testTarget('t', url)], { backupsDir: dir });
  });

  afterAll(async () => {
    await harness?.close();
    if (db) await adminQuery(`DROP DATABASE IF EXISTS "${db.name}" WITH (FORCE)`, [], 'postgres', major);
    for (const role of [botRole, appRole, weakRole]) {
      await adminQuery(`DROP ROLE IF EXISTS ${role}`, [], 'postgres', major);
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Exact counts as the test measures them: one count(*) FROM ONLY per table, as pg_dump dumps rows. */
  async function groundTruth(): Promise<{ schema: string; name: string; rows: number }[]> {
    const tables = await adminQuery<{ schema: string; name: string }>(
      `SELECT schemaname AS schema, tablename AS name FROM pg_tables
        WHERE schemaname IN ('public', 'audit') ORDER BY 1, 2`,
      [],
      db.name,
      major,
    );
    const out: { schema: string; name: string; rows: number }[] = [];
    for (const t of tables) {
      const [row] = await adminQuery<{ n: string }>(
        `SELECT count(*) AS n FROM ONLY "${t.schema}"."${t.name}"`,
        [],
        db.name,
        major,
      );
      out.push({ ...t, rows: Number(row?.n) });
    }
    return out;
  }

  async function fingerprint(table: string, order = 'id'): Promise<string> {
    const [row] = await adminQuery<{ md5: string }>(
      `SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t.${order}), '')) AS md5 FROM ${table} t`,
      [],
      db.name,
      major,
    );
    return row?.md5 ?? '';
  }

  async function count(table: string): Promise<number> {
    const [row] = await adminQuery<{ n: string }>(`SELECT count(*) AS n FROM ${table}`, [], db.name, major);
    return Number(row?.n);
  }

  async function verifyDatabasesLeft(): Promise<string[]> {
    const rows = await adminQuery<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE 'dbops\\_verify\\_%'",
      [],
      'postgres',
      major,
    );
    return rows.map((r) => r.datname);
  }

  async function manifestOf(file: string): Promise<Manifest> {
    return JSON.parse(await readFile(join(dir, 't', `${file}.json`), 'utf8')) as Manifest;
  }

  /** A copy of a backup under another name, with its manifest edited by `edit`. */
  async function copyBackup(
    from: string,
    to: string,
    edit: (m: Manifest) => Manifest = (m) => m,
  ): Promise<void> {
    await copyFile(join(dir, 't', from), join(dir, 't', to));
    const manifest = await manifestOf(from);
    await writeFile(join(dir, 't', `${to}.json`), JSON.stringify(edit({ ...manifest, file: to })));
  }

  function pgRestoreList(file: string): string {
    return execFileSync('pg_restore', ['--list', join(dir, 't', file)], { encoding: 'utf8' });
  }

  if (!capable?.ok) {
    it(`refuses with a clear message: no pg_dump ${major} on this host`, async () => {
      const err = await rejection(harness.run(backup, 't'));
      expect(err.code).toBe('tool_failed');
      expect(err.message).toMatch(
        new RegExp(
          `^pg_dump \\d+ cannot dump a PostgreSQL ${major} server; install postgresql-client-${major} \\(Debian/PGDG\\) on the dbops host$`,
        ),
      );
      // Refused before anything ran: no directory content, no temporary file.
      const files = await readdir(join(dir, 't')).catch(() => []);
      expect(files).toEqual([]);
    });
    return;
  }

  const made: Record<string, string> = {};

  it('backup (custom): a complete dump and a manifest with exact row counts and the real sha256', async () => {
    harness.progressLines.length = 0;
    const before = await groundTruth();
    const result = await harness.run(backup, 't');
    const file = String(result.data?.file);
    made.custom = file;
    expect(file).toMatch(/^t-\d{8}T\d{6}Z(-\d+)?\.dump$/);

    const path = join(dir, 't', file);
    const bytes = await readFile(path);
    const manifest = await manifestOf(file);
    expect(manifest.sha256).toBe(sha256(bytes));
    expect(manifest.bytes).toBe(bytes.length);
    expect(manifest.format).toBe('custom');
    expect(manifest.table).toBeNull();
    expect(manifest.database).toBe(db.name);
    expect(manifest.target).toBe('t');
    expect(manifest.tables).toEqual(before);
    expect(manifest.tables.map((t) => `${t.schema}.${t.name}`)).toEqual(TABLES);
    // ONLY: the inheritance parent's own rows, as pg_dump dumps them.
    expect(manifest.tables.find((t) => t.name === 'parent')?.rows).toBe(2);
    expect(Math.floor(manifest.serverVersionNum / 10_000)).toBe(major);
    expect(manifest.pgDump.major).toBeGreaterThanOrEqual(major);

    expect(result.rows).toEqual([
      {
        file,
        bytes: bytes.length,
        sha256: sha256(bytes),
        tables: TABLES.length,
        rows: before.reduce((s, t) => s + t.rows, 0),
        duration_seconds: manifest.durationSeconds,
      },
    ]);
    expect(result.columns.find((c) => c.key === 'bytes')?.kind).toBe('bytes');

    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 't'))).mode & 0o777).toBe(0o700);
    expect((await readdir(join(dir, 't'))).filter((f) => f.startsWith('.'))).toEqual([]);

    const list = pgRestoreList(file);
    for (const table of TABLES) {
      const [schema, name] = table.split('.');
      expect(list).toContain(`TABLE DATA ${schema} ${name} `);
    }

    expect(harness.progressLines[0]).toMatch(/snapshot .+; running pg_dump/);
    expect(
      harness.progressLines.some((l) => /^pg_dump: dumping contents of table ".+" \(1 of 7\)$/.test(l)),
    ).toBe(true);
    const everything = JSON.stringify(result) + harness.progressLines.join('\n') + JSON.stringify(manifest);
    expect(everything).not.toContain(PASSWORD);
    expect(everything).not.toContain(ENCODED_PASSWORD);
  });

  it('backup counts rows in the very snapshot pg_dump dumps, even while rows are being inserted', async () => {
    const writer = new pg.Client({ connectionString: db.url });
    await writer.connect();
    let running = true;
    const inserting = (async () => {
      while (running) await writer.query('INSERT INTO busy DEFAULT VALUES');
    })();
    try {
      while ((await count('busy')) < 50) await new Promise((r) => setTimeout(r, 10));
      const result = await harness.run(backup, 't');
      made.busy = String(result.data?.file);
    } finally {
      running = false;
      await inserting;
      await writer.end();
    }
    const manifest = await manifestOf(made.busy);
    const counted = manifest.tables.find((t) => t.name === 'busy')?.rows ?? -1;
    expect(counted).toBeGreaterThanOrEqual(50);
    expect(counted).toBeLessThan(await count('busy'));
    // The dump itself holds exactly that many rows: verified by restoring it.
    const verified = await harness.run(verifyBackup, 't', made.busy);
    expect(verified.data?.verified).toBe(true);
    await adminQuery('TRUNCATE busy', [], db.name, major);
  });

  it('backup --format plain: an SQL script that drops and re-creates, with its manifest', async () => {
    const result = await harness.run(backup, 't', '--format plain');
    const file = String(result.data?.file);
    made.plain = file;
    expect(file).toMatch(/^t-\d{8}T\d{6}Z(-\d+)?\.sql$/);
    const text = await readFile(join(dir, 't', file), 'utf8');
    expect(text).toContain('-- PostgreSQL database dump');
    expect(text).toContain('DROP TABLE IF EXISTS public.users;');
    expect(text).toContain('COPY public.orders (id, user_id, amount) FROM stdin;');
    const manifest = await manifestOf(file);
    expect(manifest.format).toBe('plain');
    expect(manifest.sha256).toBe(sha256(Buffer.from(text)));
    expect(manifest.tables).toEqual(await groundTruth());
  });

  it('backup --table: only that table, matched exactly, with its count', async () => {
    const result = await harness.run(backup, 't', '--table orders');
    const file = String(result.data?.file);
    made.orders = file;
    expect(file).toMatch(/^t-\d{8}T\d{6}Z-public\.orders(-\d+)?\.dump$/);
    const manifest = await manifestOf(file);
    expect(manifest.table).toEqual({ schema: 'public', name: 'orders' });
    expect(manifest.tables).toEqual([{ schema: 'public', name: 'orders', rows: 700 }]);
    const list = pgRestoreList(file);
    expect(list).toContain('TABLE DATA public orders ');
    expect(list).not.toContain('TABLE DATA public users ');
    expect(list).toContain('INDEX public orders_user ');

    const plain = await harness.run(backup, 't', '--table audit.events --format plain');
    made.eventsPlain = String(plain.data?.file);
    expect(made.eventsPlain).toMatch(/^t-\d{8}T\d{6}Z-audit\.events(-\d+)?\.sql$/);
    const script = await readFile(join(dir, 't', made.eventsPlain), 'utf8');
    expect(script).toContain('COPY audit.events');
    expect(script).not.toContain('COPY public.');
    expect((await manifestOf(made.eventsPlain)).tables).toEqual([
      { schema: 'audit', name: 'events', rows: 40 },
    ]);

    const unknown = await rejection(harness.run(backup, 't', '--table order'));
    expect(unknown.code).toBe('invalid_argument');
    expect(unknown.message).toContain('did you mean `orders`');
    expect((await readdir(join(dir, 't'))).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('a backup that cannot lock a table fails cleanly and leaves no file behind', async () => {
    const before = await readdir(join(dir, 't'));
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
      const err = await rejection(harness.run(backup, 't'));
      expect(['timeout', 'tool_failed']).toContain(err.code);
      expect(err.message).toMatch(/lock/);
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    expect(await readdir(join(dir, 't'))).toEqual(before);
  });

  it('backups lists them with format, table, checksum and verification', async () => {
    const result = await harness.run(backups, 't');
    const byName = new Map(result.rows.map((r) => [r.name, r]));
    expect(result.headline).toMatch(/^5 backups of t, /);
    const custom = byName.get(made.custom ?? '');
    const manifest = await manifestOf(made.custom ?? '');
    expect(custom).toMatchObject({
      format: 'custom',
      table: null,
      sha256: manifest.sha256.slice(0, 12),
      bytes: manifest.bytes,
      verified: null,
      created: manifest.createdAt,
    });
    expect(byName.get(made.plain ?? '')).toMatchObject({ format: 'plain', table: null });
    expect(byName.get(made.orders ?? '')).toMatchObject({
      format: 'custom',
      table: 'public.orders',
      rows: 700,
    });
    expect(byName.get(made.busy ?? '')).toMatchObject({ verified: true });

    // A dump dbops did not make is listed and named, but not verified or restored without a manifest.
    await writeFile(join(dir, 't', 'by-hand.sql'), '-- PostgreSQL database dump\n');
    try {
      const listed = await harness.run(backups, 't');
      expect(listed.rows.find((r) => r.name === 'by-hand.sql')).toMatchObject({
        format: 'plain',
        sha256: null,
      });
      expect(listed.notes?.join('\n')).toContain('by-hand.sql: no manifest');
      const err = await rejection(harness.run(verifyBackup, 't', 'by-hand'));
      expect(err.message).toContain('by-hand.sql: no manifest');
      expect((await rejection(harness.preview(restore, 't', 'by-hand.sql'))).message).toContain(
        'no manifest',
      );
    } finally {
      await rm(join(dir, 't', 'by-hand.sql'));
    }
  });

  it('verify-backup passes on good custom and plain backups, records it, and leaves no database behind', async () => {
    for (const file of [made.custom ?? '', made.plain ?? '']) {
      const result = await harness.run(verifyBackup, 't', file);
      expect(result.data?.verified).toBe(true);
      expect(result.headline).toContain(`backup ${file} verified`);
      expect(result.rows).toHaveLength(TABLES.length);
      expect(result.rows.every((r) => r.match === true && r.backup_rows === r.restored_rows)).toBe(true);
      expect(result.data?.temporaryDatabase).toMatch(/^dbops_verify_[0-9a-f]{12}$/);
      expect((await manifestOf(file)).verification).toMatchObject({ ok: true, tablesMatched: TABLES.length });
    }
    expect(await verifyDatabasesLeft()).toEqual([]);
    const listed = await harness.run(backups, 't');
    expect(listed.rows.find((r) => r.name === made.custom)?.verified).toBe(true);
  });

  it('verify-backup restores single-table backups alone, leaving out foreign keys to other tables', async () => {
    const custom = await harness.run(verifyBackup, 't', made.orders ?? '');
    expect(custom.data?.verified).toBe(true);
    expect(custom.rows).toEqual([
      { table: 'public.orders', backup_rows: 700, restored_rows: 700, match: true },
    ]);
    expect(custom.notes).toContain(
      '1 foreign key of this single-table backup points at a table outside it and was left out of the temporary database',
    );
    const plain = await harness.run(verifyBackup, 't', made.eventsPlain ?? '');
    expect(plain.data?.verified).toBe(true);
    expect(plain.rows).toEqual([{ table: 'audit.events', backup_rows: 40, restored_rows: 40, match: true }]);
    // audit.events has no foreign key; the schema it lives in was created for it.
    expect(plain.notes?.some((n) => n.includes('foreign key'))).toBe(false);
    expect(await verifyDatabasesLeft()).toEqual([]);
  });

  it('verify-backup FAILS on a tampered file, without even restoring it', async () => {
    const name = 't-tampered.dump';
    await copyBackup(made.custom ?? '', name);
    const path = join(dir, 't', name);
    const bytes = await readFile(path);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = (bytes[middle] ?? 0) ^ 0xff;
    await writeFile(path, bytes);

    const result = await harness.run(verifyBackup, 't', name);
    expect(result.data?.verified).toBe(false);
    expect(result.headline).toMatch(/FAILED verification: sha256 mismatch/);
    expect(result.data?.temporaryDatabase).toBeNull();
    expect((await manifestOf(name)).verification).toMatchObject({ ok: false });
    expect(await verifyDatabasesLeft()).toEqual([]);
  });

  it('verify-backup FAILS when restored counts differ from the manifest, and drops the temporary database', async () => {
    const name = 't-miscounted.dump';
    await copyBackup(made.custom ?? '', name, (m) => ({
      ...m,
      tables: m.tables.map((t) => (t.name === 'users' ? { ...t, rows: t.rows + 1 } : t)),
    }));
    const result = await harness.run(verifyBackup, 't', name);
    expect(result.data?.verified).toBe(false);
    expect(result.headline).toContain('FAILED verification');
    expect(result.data?.differences).toEqual(['public.users: 121 rows in the manifest, 120 restored']);
    expect(result.rows[0]).toEqual({
      table: 'public.users',
      backup_rows: 121,
      restored_rows: 120,
      match: false,
    });
    expect(result.data?.temporaryDatabase).toMatch(/^dbops_verify_/);
    expect(await verifyDatabasesLeft()).toEqual([]);
    expect((await manifestOf(name)).verification).toMatchObject({
      ok: false,
      tablesMatched: TABLES.length - 1,
    });
  });

  it('verify-backup FAILS when the archive cannot be restored, and still drops the temporary database', async () => {
    const name = 't-truncated.dump';
    await copyBackup(made.custom ?? '', name);
    const path = join(dir, 't', name);
    const size = (await stat(path)).size;
    await truncate(path, Math.floor(size * 0.8));
    const bytes = await readFile(path);
    await writeFile(
      `${path}.json`,
      JSON.stringify({ ...(await manifestOf(name)), sha256: sha256(bytes), bytes: bytes.length }),
    );
    const result = await harness.run(verifyBackup, 't', name);
    expect(result.data?.verified).toBe(false);
    expect(result.headline).toMatch(
      /FAILED verification: (restoring into a temporary database failed|pg_restore --list)/,
    );
    expect(await verifyDatabasesLeft()).toEqual([]);
  });

  it('refuses names that are not a plain file of the backup directory', async () => {
    await symlink('/etc/passwd', join(dir, 't', 'evil.dump'));
    for (const typed of ['../../etc/passwd', '/etc/passwd', '.hidden.dump', 'evil.dump', 'evil']) {
      const err = await rejection(harness.run(verifyBackup, 't', typed));
      expect(err.code).toBe('invalid_argument');
      expect(err.message).not.toContain('root:');
    }
    const traversal = await rejection(harness.preview(restore, 't', '../../etc/passwd'));
    expect(traversal.message).toContain('is not a backup name');
    const typo = await rejection(
      harness.run(verifyBackup, 't', (made.custom ?? '').replace('.dump', '.dmp')),
    );
    expect(typo.message).toContain(`did you mean \`${made.custom}\``);
  });

  it('verify-backup without CREATEDB says which privilege is missing', async () => {
    const weak = new OpHarness([testTarget('t', urlAs(db.url, weakRole))], { backupsDir: dir });
    try {
      const err = await rejection(weak.run(verifyBackup, 't', made.custom ?? ''));
      expect(err.code).toBe('permission');
      expect(err.message).toContain('CREATEDB');
    } finally {
      await weak.close();
    }
  });

  it('restore: the preview shows the difference, execute brings the old rows back after a safety backup', async () => {
    const name = made.custom ?? '';
    const original = { users: await fingerprint('users'), orders: await fingerprint('orders') };
    await adminQuery(
      `DELETE FROM orders WHERE id > 600;
       UPDATE users SET email = 'changed-' || id WHERE id <= 10;
       INSERT INTO audit.events (what) VALUES ('after the backup');`,
      [],
      db.name,
      major,
    );
    const preview = await harness.preview(restore, 't', name);
    expect(preview.state).toMatchObject({ file: name, mode: 'archive', table: null });
    const row = (table: string) => preview.result.rows.find((r) => r.table === table);
    expect(row('public.orders')).toMatchObject({ current_rows: 600, backup_rows: 700, change: '+100 rows' });
    expect(row('audit.events')).toMatchObject({ current_rows: 41, backup_rows: 40, change: '−1 row' });
    expect(row('public.users')).toMatchObject({ current_rows: 120, backup_rows: 120, change: 'same count' });
    const notes = (preview.result.notes ?? []).join('\n');
    expect(notes).toContain('safety backup');
    expect(notes).toContain('writes to these tables are blocked');

    harness.progressLines.length = 0;
    const result = await harness.execute(restore, 't', name, preview.state);
    expect(await fingerprint('users')).toBe(original.users);
    expect(await fingerprint('orders')).toBe(original.orders);
    expect(await count('audit.events')).toBe(40);
    expect(result.rows.find((r) => r.table === 'public.orders')).toEqual({
      table: 'public.orders',
      rows_before: 600,
      rows_after: 700,
      backup_rows: 700,
      as_backup: true,
    });
    // Structure, owners and grants came back with the tables.
    const [grant] = await adminQuery<{ ok: boolean }>(
      `SELECT has_table_privilege('${appRole}', 'public.users', 'SELECT') AS ok`,
      [],
      db.name,
      major,
    );
    expect(grant?.ok).toBe(true);
    expect(
      await adminQuery("SELECT 1 FROM pg_indexes WHERE indexname = 'orders_user'", [], db.name, major),
    ).toHaveLength(1);

    const safety = String(result.data?.safetyBackup);
    expect(safety).not.toBe(name);
    const safetyManifest = await manifestOf(safety);
    expect(safetyManifest.purpose).toBe(`safety backup before restoring ${name}`);
    expect(safetyManifest.tables.find((t) => t.name === 'orders')?.rows).toBe(600);
    expect(safetyManifest.tables.find((t) => t.name === 'events')?.rows).toBe(41);
    expect(JSON.stringify(result)).not.toContain(PASSWORD);
  });

  it('restore --table replaces only that table, keeps its indexes, and leaves other tables untouched', async () => {
    const name = made.custom ?? '';
    const originalOrders = await fingerprint('orders');
    await adminQuery(
      `DELETE FROM orders WHERE id <= 50;
       INSERT INTO users (email) VALUES ('added-after@example.com');`,
      [],
      db.name,
      major,
    );
    const usersAfterChange = await fingerprint('users');
    const indexes = await adminQuery(
      "SELECT indexname FROM pg_indexes WHERE tablename = 'orders' ORDER BY 1",
      [],
      db.name,
      major,
    );

    const preview = await harness.preview(restore, 't', `${name} --table orders`);
    expect(preview.state).toMatchObject({ mode: 'table-data', table: { schema: 'public', name: 'orders' } });
    expect(preview.result.rows).toEqual([
      { table: 'public.orders', current_rows: 650, backup_rows: 700, change: '+50 rows' },
    ]);

    const result = await harness.execute(restore, 't', `${name} --table orders`, preview.state);
    expect(await fingerprint('orders')).toBe(originalOrders);
    expect(await fingerprint('users')).toBe(usersAfterChange);
    expect(await count('users')).toBe(121);
    expect(
      await adminQuery(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'orders' ORDER BY 1",
        [],
        db.name,
        major,
      ),
    ).toEqual(indexes);
    expect(result.rows).toEqual([
      { table: 'public.orders', rows_before: 650, rows_after: 700, backup_rows: 700, as_backup: true },
    ]);
    const safety = await manifestOf(String(result.data?.safetyBackup));
    expect(safety.table).toEqual({ schema: 'public', name: 'orders' });
    expect(safety.tables).toEqual([{ schema: 'public', name: 'orders', rows: 650 }]);
  });

  it('a failed restore rolls back, says so, and names the safety backup', async () => {
    const name = made.custom ?? '';
    const users = await fingerprint('users');
    const preview = await harness.preview(restore, 't', `${name} --table users`);
    const err = await rejection(harness.execute(restore, 't', `${name} --table users`, preview.state));
    expect(err.code).toBe('tool_failed');
    expect(err.message).toMatch(
      /failed and was rolled back .*: t is as it was\. The safety backup t-.+\.dump was taken before/,
    );
    expect(err.message).toContain('referenced by foreign keys');
    expect(await fingerprint('users')).toBe(users);
  });

  it('restore refuses a backup that changed since the preview', async () => {
    const name = 't-restore-copy.dump';
    await copyBackup(made.custom ?? '', name);
    const preview = await harness.preview(restore, 't', name);
    // Replaced by another (consistent) backup: its own checksum matches, but it is not what was approved.
    await copyFile(join(dir, 't', made.orders ?? ''), join(dir, 't', name));
    await writeFile(
      join(dir, 't', `${name}.json`),
      JSON.stringify({ ...(await manifestOf(made.orders ?? '')), file: name }),
    );
    const err = await rejection(harness.execute(restore, 't', name, preview.state));
    expect(err.code).toBe('invalid_argument');
    expect(err.message).toMatch(/changed since the preview \(sha256 .+\); nothing was restored/);
  });
});
