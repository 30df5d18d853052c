// `/db backup <target> [--table t] [--format custom|plain]`: pg_dump of one consistent snapshot, with a manifest.
// The backup store it writes to is commands/lib/backup-store.ts.
import { randomBytes } from 'node:crypto';
import { link, lstat, open, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { enumArg, identifierArg } from '../src/core/args.js';
import { redactSecrets } from '../src/core/log.js';
import { defineOperation, type OperationContext } from '../src/core/operation.js';
import { formatBytes, formatCount } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';
import { quoteIdent, resolveRelation } from '../src/engine/relations.js';
import {
  findPgTool,
  hostEnvironment,
  libpqEnvironment,
  type PgTool,
  runTool,
  type ToolEnv,
  toolEnvironment,
} from '../src/engine/tools.js';
import {
  BACKUP_FORMATS,
  type BackupFile,
  type BackupFormat,
  backupBaseName,
  countRows,
  DUMP_EXTENSION,
  ensureDir,
  errnoOf,
  type Manifest,
  sha256File,
  tableLabel,
  targetBackupDir,
  totalRows,
  writeManifest,
} from './lib/backup-store.js';

// The store used to live here; restore.ts and the tests still import it from this module.
export {
  BACKUP_FORMATS,
  type BackupFile,
  type BackupFormat,
  backupBaseName,
  countRows,
  currentRowCounts,
  listBackupFiles,
  type Manifest,
  type ManifestRead,
  manifestPathOf,
  manifestSchema,
  readManifest,
  requireManifest,
  resolveBackup,
  sha256File,
  TABLE_ROW_COUNTS_SQL,
  TABLE_ROW_ESTIMATES_SQL,
  type TableCount,
  tableLabel,
  targetBackupDir,
  totalRows,
  type Verification,
  writeManifest,
} from './lib/backup-store.js';

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
        const of = total !== undefined ? ` (${formatCount(seen)} of ${formatCount(total)})` : '';
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
            `${formatCount(tables.length)} ${tables.length === 1 ? 'table' : 'tables'}, ${formatCount(totalRows(tables))} rows ` +
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
            ...(ctx.signal ? { signal: ctx.signal } : {}),
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
    const name = await publish(temp, dir, base, DUMP_EXTENSION[request.format]);
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
