// `/db backup <target> [--table t] [--format custom|plain]`: pg_dump of one consistent snapshot, with a manifest.
// Also the backup store the other backup operations share: file names, manifests, checksums, row counts.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, link, lstat, mkdir, open, readdir, readFile, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { enumArg, identifierArg, quoteInput } from '../src/core/args.js';
import { UserError } from '../src/core/errors.js';
import { redactSecrets } from '../src/core/log.js';
import { defineOperation, type OperationContext } from '../src/core/operation.js';
import { formatBytes, formatCount } from '../src/core/render.js';
import { closest } from '../src/core/suggest.js';
import type { Column, Row } from '../src/core/types.js';
import { quoteIdent, type Relation, resolveRelation } from '../src/engine/relations.js';
import {
  findPgTool,
  hostEnvironment,
  libpqEnvironment,
  type PgTool,
  runTool,
  type ToolEnv,
  toolEnvironment,
} from '../src/engine/tools.js';
import type { Session } from '../src/engine/types.js';

// ---------------------------------------------------------------------------------------------------
// Limits

/** How long pg_dump, pg_restore and psql may run for one backup or restore. */
export const DUMP_TIMEOUT_MS = 2 * 3600 * 1000;
/** Exact row counts read every table once; they get the same budget as the dump itself. */
export const COUNT_TIMEOUT_MS = DUMP_TIMEOUT_MS;
/** Progress: a "dumping table" milestone at most this often, any other verbose line at most every PROGRESS_OTHER_MS. */
const PROGRESS_MILESTONE_MS = 2000;
const PROGRESS_OTHER_MS = 10_000;

// ---------------------------------------------------------------------------------------------------
// The manifest written beside every dump

export const BACKUP_FORMATS = ['custom', 'plain'] as const;
export type BackupFormat = (typeof BACKUP_FORMATS)[number];

const EXTENSION: Record<BackupFormat, string> = { custom: 'dump', plain: 'sql' };

const tableCountSchema = z.object({
  schema: z.string(),
  name: z.string(),
  rows: z.number().int().nonnegative(),
});
export type TableCount = z.infer<typeof tableCountSchema>;

const verificationSchema = z.looseObject({
  ok: z.boolean(),
  at: z.string(),
  /** One line: what passed or what failed. */
  summary: z.string(),
  tablesChecked: z.number().int().nonnegative(),
  tablesMatched: z.number().int().nonnegative(),
  differences: z.array(z.string()),
  durationSeconds: z.number(),
});
export type Verification = z.infer<typeof verificationSchema>;

/** Unknown keys are kept, so a newer dbops' manifest survives being re-written by this one. */
export const manifestSchema = z.looseObject({
  version: z.literal(1),
  file: z.string(),
  target: z.string(),
  database: z.string(),
  serverVersion: z.string(),
  serverVersionNum: z.number().int(),
  format: z.enum(BACKUP_FORMATS),
  /** The `--table` filter as schema and name, or null for the whole database. */
  table: z.object({ schema: z.string(), name: z.string() }).nullable(),
  createdAt: z.string(),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Exact row counts read in the same snapshot pg_dump dumped. */
  tables: z.array(tableCountSchema),
  pgDump: z.object({ version: z.string(), major: z.number() }),
  durationSeconds: z.number(),
  /** Why it was taken, when not asked for directly (e.g. a safety backup before a restore). */
  purpose: z.string().optional(),
  verification: verificationSchema.optional(),
});
export type Manifest = z.infer<typeof manifestSchema>;

export function tableLabel(t: { schema: string; name: string }): string {
  return `${t.schema}.${t.name}`;
}

export function totalRows(tables: readonly TableCount[]): number {
  return tables.reduce((sum, t) => sum + t.rows, 0);
}

// ---------------------------------------------------------------------------------------------------
// Files: one directory per target, 0700; files 0600; a dump appears under its name only when complete.

const TARGET_NAME = /^[a-z][a-z0-9_-]{0,62}$/;
const BACKUP_FILE = /^[^.].*\.(dump|sql)$/;

/** `<backups dir>/<target>`; target names are config-validated, checked again since they become a path. */
export function targetBackupDir(backupsDir: string, target: string): string {
  if (!TARGET_NAME.test(target))
    throw new Error(`target name ${JSON.stringify(target)} cannot name a directory`);
  return join(backupsDir, target);
}

async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

/** `20240131T235959Z` */
function utcStamp(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

/** `<target>-<UTC timestamp>[-<schema.table>]` (without extension); the table part is made file-safe. */
export function backupBaseName(target: string, when: Date, table?: { schema: string; name: string }): string {
  const tablePart = table
    ? `-${tableLabel(table)
        .replace(/[^A-Za-z0-9_.-]/g, '_')
        .slice(0, 80)}`
    : '';
  return `${target}-${utcStamp(when)}${tablePart}`;
}

export function manifestPathOf(dumpPath: string): string {
  return `${dumpPath}.json`;
}

function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest('hex');
}

/** Writes the manifest beside its dump: a temporary file renamed into place, 0600. */
export async function writeManifest(dumpPath: string, manifest: Manifest): Promise<void> {
  const path = manifestPathOf(dumpPath);
  const dir = join(path, '..');
  const temp = join(dir, `.${randomBytes(6).toString('hex')}.manifest.tmp`);
  try {
    await open(temp, 'wx', 0o600).then(async (handle) => {
      try {
        await handle.writeFile(`${JSON.stringify(manifest, null, 2)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
    });
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

export type ManifestRead = { manifest: Manifest } | { problem: string };

export async function readManifest(dumpPath: string): Promise<ManifestRead> {
  let text: string;
  try {
    text = await readFile(manifestPathOf(dumpPath), 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return { problem: 'no manifest' };
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { problem: 'manifest is not valid JSON' };
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      problem: `manifest is malformed (${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'})`,
    };
  }
  return { manifest: parsed.data };
}

export interface BackupFile {
  name: string;
  path: string;
  bytes: number;
  modifiedAt: Date;
}

/** Dumps in a target's directory: regular files only (a symlink never leads elsewhere), temp files hidden. */
export async function listBackupFiles(dir: string): Promise<BackupFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    throw err;
  }
  const files: BackupFile[] = [];
  for (const name of names) {
    if (!BACKUP_FILE.test(name)) continue;
    const path = join(dir, name);
    const stats = await lstat(path).catch(() => undefined);
    if (!stats?.isFile()) continue;
    files.push({ name, path, bytes: stats.size, modifiedAt: stats.mtime });
  }
  return files.sort((a, b) => (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
}

/**
 * A backup named by a person: exactly a file name (no directory, no leading dot) that exists in the
 * target's directory, with or without its extension; anything else is refused with the closest names.
 */
export async function resolveBackup(backupsDir: string, target: string, typed: string): Promise<BackupFile> {
  const usage = `give the file name exactly as \`backups ${target}\` lists it`;
  if (typed === '' || /[/\\\0]/.test(typed) || typed.startsWith('.')) {
    throw new UserError(
      'invalid_argument',
      `argument <name>: ${quoteInput(typed)} is not a backup name; ${usage} (a plain file name, no directories)`,
    );
  }
  const files = await listBackupFiles(targetBackupDir(backupsDir, target));
  const found =
    files.find((f) => f.name === typed) ??
    files.find((f) => f.name === `${typed}.dump`) ??
    files.find((f) => f.name === `${typed}.sql`);
  if (found) return found;
  if (typed.endsWith('.json')) {
    throw new UserError(
      'invalid_argument',
      `argument <name>: ${quoteInput(typed)} is a manifest; name its dump instead`,
    );
  }
  const guesses = closest(
    typed,
    files.map((f) => f.name),
  );
  const hint =
    files.length === 0
      ? `; ${target} has no backups yet (\`backup ${target}\` makes one)`
      : guesses.length > 0
        ? ` — did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?`
        : `; ${usage}`;
  throw new UserError(
    'invalid_argument',
    `argument <name>: there is no backup ${quoteInput(typed)} of ${target}${hint}`,
  );
}

/** The manifest of a resolved backup, or a UserError saying why the operation needs it. */
export async function requireManifest(file: BackupFile, operation: string): Promise<Manifest> {
  const read = await readManifest(file.path);
  if ('manifest' in read) return read.manifest;
  throw new UserError(
    'invalid_argument',
    `backup ${file.name}: ${read.problem} (${file.name}.json); ${operation} needs the manifest's checksum and row ` +
      'counts, so it only works on backups made by dbops',
  );
}

// ---------------------------------------------------------------------------------------------------
// Exact row counts

/*
 * Exact rows of every table pg_dump dumps data for (ordinary tables, partitions included, outside system
 * schemas and extensions), or of one table ($1). ONLY: pg_dump dumps each inheritance parent's own rows.
 * query_to_xml counts each table inside this one statement, so they all see the same snapshot.
 */
export const TABLE_ROW_COUNTS_SQL = `
SELECT n.nspname AS schema, c.relname AS name,
       (xpath('/row/c/text()',
              query_to_xml(format('SELECT count(*) AS c FROM ONLY %I.%I', n.nspname, c.relname), false, true, '')
       ))[1]::text::int8 AS rows
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_toast'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  AND ($1::oid IS NULL OR c.oid = $1::oid)
ORDER BY 1, 2
`;

/** Planner estimates, when exact counting would run past the statement timeout (previews). */
export const TABLE_ROW_ESTIMATES_SQL = `
SELECT n.nspname AS schema, c.relname AS name, GREATEST(c.reltuples, 0)::int8 AS rows
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_toast'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  AND ($1::oid IS NULL OR c.oid = $1::oid)
ORDER BY 1, 2
`;

function toCounts(rows: { schema: string; name: string; rows: unknown }[]): TableCount[] {
  return rows.map((r) => {
    const n = Number(r.rows);
    if (!Number.isSafeInteger(n) || n < 0)
      throw new Error(`row count of ${r.schema}.${r.name} is not a count`);
    return { schema: r.schema, name: r.name, rows: n };
  });
}

export async function countRows(session: Session, relation?: Relation): Promise<TableCount[]> {
  const rows = await session.query<{ schema: string; name: string; rows: unknown }>(TABLE_ROW_COUNTS_SQL, [
    relation?.oid ?? null,
  ]);
  return toCounts(rows);
}

/**
 * Current row counts for a preview: exact within the operation's statement timeout, else the planner's
 * estimates (said so by `estimated`).
 */
export async function currentRowCounts(
  ctx: OperationContext<unknown>,
  relation?: Relation,
): Promise<{ tables: TableCount[]; estimated: boolean }> {
  try {
    return { tables: await ctx.db.read((session) => countRows(session, relation)), estimated: false };
  } catch (err) {
    if (!(err instanceof UserError) || err.code !== 'timeout') throw err;
  }
  const rows = await ctx.db.read((session) =>
    session.query<{ schema: string; name: string; rows: unknown }>(TABLE_ROW_ESTIMATES_SQL, [
      relation?.oid ?? null,
    ]),
  );
  return { tables: toCounts(rows), estimated: true };
}

// ---------------------------------------------------------------------------------------------------
// pg_dump

/**
 * A pg_dump `--table` pattern that matches exactly one table: inside double quotes pattern characters
 * (`*`, `?`, `.`, regex syntax) are literal and `"` is doubled, like a quoted SQL identifier.
 */
export function pgDumpTablePattern(table: { schema: string; name: string }): string {
  return `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
}

export interface PgDumpArgsInput {
  /** Where pg_dump writes (the temporary file). */
  file: string;
  format: BackupFormat;
  /** An exported snapshot id to dump (pg_export_snapshot()). */
  snapshot?: string;
  table?: { schema: string; name: string };
  lockWaitTimeoutMs: number;
}

/**
 * pg_dump's argument array: connection settings come from libpq variables (the password only as
 * PGPASSWORD), so nothing secret is ever in argv. Plain dumps carry DROP … IF EXISTS so that they can be
 * replayed over the live database by `restore`.
 */
export function pgDumpArgs(input: PgDumpArgsInput): string[] {
  const args = [
    '--no-password',
    '--verbose',
    `--format=${input.format}`,
    `--file=${input.file}`,
    `--lock-wait-timeout=${Math.max(1, Math.round(input.lockWaitTimeoutMs))}`,
  ];
  if (input.snapshot) args.push(`--snapshot=${input.snapshot}`);
  if (input.format === 'plain') args.push('--clean', '--if-exists');
  if (input.table) args.push(`--table=${pgDumpTablePattern(input.table)}`, '--strict-names');
  return args;
}

/** The environment every PostgreSQL tool of this target runs with (allowlist + libpq variables). */
export function targetToolEnv(ctx: OperationContext<unknown>, database?: string): ToolEnv {
  return toolEnvironment(
    hostEnvironment(),
    libpqEnvironment(ctx.target.url, {
      connectTimeoutSeconds: ctx.limits.connect_timeout,
      lockTimeoutMs: ctx.limits.lock_timeout * 1000,
      ...(database !== undefined ? { database } : {}),
    }),
  );
}

/**
 * Forwards a tool's --verbose stderr to the thread without flooding it: a table milestone at most every
 * couple of seconds (and always the first), any other line at most every ten.
 */
export function throttledProgress(
  progress: (line: string) => void,
  tool: string,
  milestone: RegExp,
  total?: number,
  clock: () => number = Date.now,
): (line: string) => void {
  // Chatter (connecting, reading catalogs) only after a long silence; the first milestone at once.
  let last = clock();
  let seen = 0;
  const prefix = new RegExp(`^${tool}:\\s*`);
  return (raw) => {
    const line = redactSecrets(raw.replace(prefix, '').trim());
    if (line === '') return;
    const now = clock();
    const match = milestone.exec(line);
    if (match) {
      seen += 1;
      if (seen === 1 || now - last >= PROGRESS_MILESTONE_MS) {
        const of = total !== undefined ? ` (${seen} of ${total})` : '';
        progress(`${tool}: ${line}${of}`);
        last = now;
      }
    } else if (now - last >= PROGRESS_OTHER_MS) {
      progress(`${tool}: ${line}`);
      last = now;
    }
  };
}

const DUMP_MILESTONE = /^dumping contents of table "(.+)"$/;

const SNAPSHOT_BEGIN = 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY';
/** The snapshot-holding session waits idle while pg_dump runs; a server-wide idle timeout must not end it. */
const NO_IDLE_TIMEOUT = "SELECT set_config('idle_in_transaction_session_timeout', '0', true)";
const EXPORT_SNAPSHOT_SQL = `
SELECT pg_export_snapshot() AS snapshot, current_database() AS database,
       current_setting('server_version') AS server_version,
       current_setting('server_version_num')::int AS server_version_num`;

export interface BackupRequest {
  format: BackupFormat;
  /** The table as typed (resolved inside the snapshot), or undefined for the whole database. */
  table?: string;
  purpose?: string;
}

export interface BackupMade {
  file: BackupFile;
  manifest: Manifest;
  pgDump: PgTool;
}

async function publish(temp: string, dir: string, base: string, extension: string): Promise<string> {
  // link() never replaces an existing file, so two backups in the same second get distinct names.
  for (let n = 1; n <= 100; n++) {
    const name = n === 1 ? `${base}.${extension}` : `${base}-${n}.${extension}`;
    try {
      await link(temp, join(dir, name));
      await unlink(temp);
      return name;
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw err;
    }
  }
  throw new Error(`backup: no free file name for ${base}`);
}

/** The pg_dump that can dump this target, or the UserError saying what to install. */
export async function pgDumpFor(ctx: OperationContext<unknown>): Promise<PgTool> {
  return await findPgTool('pg_dump', {
    serverVersionNum: await ctx.db.serverVersion(),
    env: targetToolEnv(ctx),
  });
}

/**
 * pg_dump of one REPEATABLE READ snapshot, exported by a session that counts every table's rows in that
 * same snapshot, so the manifest's counts are exactly what the dump holds. The dump is written to a
 * hidden temporary file and linked under its final name only when complete, with its manifest.
 */
export async function takeBackup(
  ctx: OperationContext<unknown>,
  request: BackupRequest,
): Promise<BackupMade> {
  const started = performance.now();
  const versionNum = await ctx.db.serverVersion();
  const env = targetToolEnv(ctx);
  // Refuses a missing or too old pg_dump before anything else happens.
  const pgDump = await findPgTool('pg_dump', { serverVersionNum: versionNum, env });

  const dir = targetBackupDir(ctx.backupsDir, ctx.target.name);
  await ensureDir(dir);
  const temp = join(dir, `.${randomBytes(8).toString('hex')}.partial`);
  await (await open(temp, 'wx', 0o600)).close();

  try {
    const snapshot = await ctx.db.direct(
      async (session) => {
        await session.query(SNAPSHOT_BEGIN);
        await session.query(NO_IDLE_TIMEOUT);
        const [info] = await session.query<{
          snapshot: string;
          database: string;
          server_version: string;
          server_version_num: number;
        }>(EXPORT_SNAPSHOT_SQL);
        if (!info) throw new Error('pg_export_snapshot returned no row');
        const relation = request.table
          ? await resolveRelation(session, request.table, ['r'], '--table')
          : undefined;
        const tables = await countRows(session, relation);
        ctx.progress(
          `backup of ${ctx.target.name}${relation ? ` table ${tableLabel(relation)}` : ''}: ` +
            `${tables.length} ${tables.length === 1 ? 'table' : 'tables'}, ${formatCount(totalRows(tables))} rows ` +
            `in snapshot ${info.snapshot}; running pg_dump ${pgDump.major} (${request.format} format)`,
        );
        await runTool(
          {
            name: 'pg_dump',
            file: pgDump.path,
            args: pgDumpArgs({
              file: temp,
              format: request.format,
              snapshot: info.snapshot,
              ...(relation ? { table: { schema: relation.schema, name: relation.name } } : {}),
              lockWaitTimeoutMs: ctx.limits.lock_timeout * 1000,
            }),
            env,
          },
          {
            timeoutMs: DUMP_TIMEOUT_MS,
            onStderrLine: throttledProgress(ctx.progress, 'pg_dump', DUMP_MILESTONE, tables.length),
          },
        );
        await session.query('ROLLBACK');
        return { info, relation, tables };
      },
      { statementTimeoutMs: COUNT_TIMEOUT_MS },
    );

    const [sha256, stats] = await Promise.all([sha256File(temp), lstat(temp)]);
    const table = snapshot.relation
      ? { schema: snapshot.relation.schema, name: snapshot.relation.name }
      : null;
    const base = backupBaseName(ctx.target.name, ctx.now, table ?? undefined);
    const name = await publish(temp, dir, base, EXTENSION[request.format]);
    const path = join(dir, name);
    const manifest: Manifest = {
      version: 1,
      file: name,
      target: ctx.target.name,
      database: snapshot.info.database,
      serverVersion: snapshot.info.server_version,
      serverVersionNum: snapshot.info.server_version_num,
      format: request.format,
      table,
      createdAt: ctx.now.toISOString(),
      bytes: stats.size,
      sha256,
      tables: snapshot.tables,
      pgDump: { version: pgDump.version, major: pgDump.major },
      durationSeconds: Math.round(performance.now() - started) / 1000,
      ...(request.purpose ? { purpose: request.purpose } : {}),
    };
    try {
      await writeManifest(path, manifest);
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
    return { file: { name, path, bytes: stats.size, modifiedAt: stats.mtime }, manifest, pgDump };
  } finally {
    // A failed dump leaves nothing behind; after success the temporary name is already gone.
    await rm(temp, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------------
// The operation

const COLUMNS: Column[] = [
  { key: 'file', label: 'file', kind: 'text' },
  { key: 'bytes', label: 'size', kind: 'bytes' },
  { key: 'sha256', label: 'sha256', kind: 'text' },
  { key: 'tables', label: 'tables', kind: 'count' },
  { key: 'rows', label: 'rows', kind: 'count' },
  { key: 'duration_seconds', label: 'duration', kind: 'seconds' },
];

export default defineOperation({
  name: 'backup',
  summary: 'pg_dump the target (or one table) into the backup directory, with checksum and exact row counts',
  usage: 'backup <target> [--table t] [--format custom|plain]',
  description:
    'Runs pg_dump (custom format by default; plain SQL with DROP … IF EXISTS on request) on one exported ' +
    'REPEATABLE READ snapshot, and counts every dumped table in that same snapshot, so the manifest written ' +
    'beside the dump (<file>.json: sha256, size, server and pg_dump versions, exact row counts) matches the ' +
    'dump exactly. Files land in <backups dir>/<target>/ (0700), appear only when complete, and are named ' +
    '<target>-<UTC timestamp>[-<table>].dump|.sql. pg_dump must be at least as new as the server: the ' +
    'matching postgresql-client-<major> is picked from /usr/lib/postgresql when installed.',
  args: z.object({
    table: identifierArg().optional(),
    format: enumArg(BACKUP_FORMATS).default('custom'),
  }),
  risk: 'write',
  async run(ctx) {
    const made = await takeBackup(ctx, {
      format: ctx.args.format,
      ...(ctx.args.table !== undefined ? { table: ctx.args.table } : {}),
    });
    const { manifest, file } = made;
    const rows = totalRows(manifest.tables);
    const row: Row = {
      file: file.name,
      bytes: file.bytes,
      sha256: manifest.sha256,
      tables: manifest.tables.length,
      rows,
      duration_seconds: manifest.durationSeconds,
    };
    const scope = manifest.table ? `table ${tableLabel(manifest.table)}` : `database ${manifest.database}`;
    return {
      headline:
        `backed up ${scope} of ${ctx.target.name} to ${file.name}: ${formatBytes(file.bytes)}, ` +
        `${formatCount(manifest.tables.length)} ${manifest.tables.length === 1 ? 'table' : 'tables'}, ` +
        `${formatCount(rows)} rows`,
      columns: COLUMNS,
      rows: [row],
      truncated: false,
      notes: [
        `pg_dump ${manifest.pgDump.version} of PostgreSQL ${manifest.serverVersion}, ${manifest.format} format; ` +
          `manifest ${file.name}.json`,
        `\`verify-backup ${ctx.target.name} ${file.name}\` restores it into a temporary database and compares row counts`,
      ],
      data: {
        file: file.name,
        bytes: file.bytes,
        sha256: manifest.sha256,
        format: manifest.format,
        table: manifest.table ? tableLabel(manifest.table) : null,
        database: manifest.database,
        serverVersion: manifest.serverVersion,
        pgDumpVersion: manifest.pgDump.version,
        durationSeconds: manifest.durationSeconds,
        rows,
        tables: manifest.tables.map((t) => ({ table: tableLabel(t), rows: t.rows })),
      },
    };
  },
});
