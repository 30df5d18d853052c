// The steps of `/db restore`: what a backup replaces (its scope), the checked backup file, current row counts, and the pg_restore / psql run in one transaction.
import { randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../../src/core/errors.js';
import type { OperationContext } from '../../src/core/operation.js';
import { formatCount } from '../../src/core/render.js';
import { quoteIdent, type Relation, resolveRelation } from '../../src/engine/relations.js';
import { conninfoDatabase, findPgTool, type PgTool, runTool } from '../../src/engine/tools.js';
import type { Session } from '../../src/engine/types.js';
import {
  type BackupFile,
  currentRowCounts,
  DUMP_TIMEOUT_MS,
  type Manifest,
  requireManifest,
  resolveBackup,
  sha256File,
  type TableCount,
  tableLabel,
  targetBackupDir,
  targetToolEnv,
  throttledProgress,
} from '../backup.js';

/**
 * How a backup goes back:
 * - `archive`: a custom dump, whole: pg_restore --single-transaction --clean --if-exists (drops and
 *   recreates what the archive holds, with its owners and grants);
 * - `table-data`: one table of a custom dump: its rows are replaced (TRUNCATE ONLY + the dump's COPY, one
 *   psql transaction). pg_restore -t would recreate the table WITHOUT its indexes, constraints and
 *   triggers, so the table's structure is kept and only its data comes back;
 * - `script`: a plain SQL dump (made with DROP … IF EXISTS) replayed by psql --single-transaction.
 */
export const MODES = ['archive', 'table-data', 'script'] as const;
type Mode = (typeof MODES)[number];

const FIND_TABLE_SQL = `
SELECT c.oid::int8 AS oid
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'r'`;

export interface Scope {
  mode: Mode;
  /** The single table concerned (the --table, or the table of a single-table backup), when there is one. */
  table: { schema: string; name: string } | null;
  /** That table as it exists now (undefined when the restore will create it). */
  relation?: Relation;
  /** The backup's tables that the restore replaces, with their counts. */
  replaced: TableCount[];
}

async function findTable(
  session: Session,
  table: { schema: string; name: string },
): Promise<Relation | undefined> {
  const [row] = await session.query<{ oid: number }>(FIND_TABLE_SQL, [table.schema, table.name]);
  if (!row) return undefined;
  return {
    oid: Number(row.oid),
    schema: table.schema,
    name: table.name,
    relkind: 'r',
    qualified: `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`,
  };
}

export function sameTable(
  a: { schema: string; name: string } | null,
  b: { schema: string; name: string } | null,
): boolean {
  return a === null || b === null ? a === b : a.schema === b.schema && a.name === b.name;
}

export async function scopeOf(
  ctx: OperationContext<RestoreArgs>,
  file: BackupFile,
  manifest: Manifest,
): Promise<Scope> {
  const typed = ctx.args.table;
  if (typed === undefined) {
    const mode: Mode = manifest.format === 'custom' ? 'archive' : 'script';
    const own = manifest.table;
    const relation = own ? await ctx.db.read((session) => findTable(session, own)) : undefined;
    return {
      mode,
      table: manifest.table,
      ...(relation ? { relation } : {}),
      replaced: manifest.tables,
    };
  }
  const relation = await ctx.db.read((session) => resolveRelation(session, typed, ['r'], '--table'));
  const table = { schema: relation.schema, name: relation.name };
  const inBackup = manifest.tables.find((t) => sameTable(t, table));
  if (!inBackup) {
    const held = manifest.tables.map((t) => tableLabel(t));
    throw new UserError(
      'invalid_argument',
      `argument --table: backup ${file.name} does not contain ${tableLabel(table)}` +
        (held.length > 0 && held.length <= 10 ? ` (it holds ${held.join(', ')})` : ''),
    );
  }
  if (manifest.format === 'plain') {
    if (!sameTable(manifest.table, table)) {
      throw new UserError(
        'invalid_argument',
        `argument --table: ${file.name} is a plain SQL backup of the whole database, which can only be restored ` +
          'whole; one table can be restored from a custom-format backup (`backup <target>` makes one)',
      );
    }
    return { mode: 'script', table, relation, replaced: [inBackup] };
  }
  return { mode: 'table-data', table, relation, replaced: [inBackup] };
}

export function changeText(now: number | undefined, backup: number): string {
  if (now === undefined) return 'table will be created';
  if (now === backup) return 'same count';
  const diff = backup - now;
  return `${diff > 0 ? '+' : '−'}${formatCount(Math.abs(diff))} ${Math.abs(diff) === 1 ? 'row' : 'rows'}`;
}

type RestoreArgs = { name: string; table?: string | undefined };

export async function checkedBackup(
  ctx: OperationContext<RestoreArgs>,
  name: string,
): Promise<{ file: BackupFile; manifest: Manifest; sha256: string }> {
  const file = await resolveBackup(ctx.backupsDir, ctx.target.name, name);
  const manifest = await requireManifest(file, 'restore');
  const sha256 = await sha256File(file.path);
  if (sha256 !== manifest.sha256) {
    throw new UserError(
      'invalid_argument',
      `backup ${file.name} does not match the checksum in its manifest (changed or damaged since it was made); ` +
        `refusing to restore it. \`verify-backup ${ctx.target.name} ${file.name}\` shows the details`,
    );
  }
  return { file, manifest, sha256 };
}

/** Current counts of the tables a restore replaces (exact, or estimates when counting would time out). */
export async function countsNow(
  ctx: OperationContext<RestoreArgs>,
  scope: Scope,
): Promise<{ counts: Map<string, number>; estimated: boolean; all: TableCount[] }> {
  if (scope.table && !scope.relation) return { counts: new Map(), estimated: false, all: [] };
  const { tables, estimated } = await currentRowCounts(ctx, scope.table ? scope.relation : undefined);
  return { counts: new Map(tables.map((t) => [tableLabel(t), t.rows])), estimated, all: tables };
}

interface RestoreTools {
  pgRestore?: PgTool;
  psql?: PgTool;
}

export async function restoreTools(
  ctx: OperationContext<RestoreArgs>,
  manifest: Manifest,
  mode: Mode,
): Promise<RestoreTools> {
  const serverVersionNum = await ctx.db.serverVersion();
  const env = targetToolEnv(ctx);
  const requires = {
    major: manifest.pgDump.major,
    purpose: `read an archive made by pg_dump ${manifest.pgDump.major}`,
  };
  const tools: RestoreTools = {};
  if (mode !== 'script')
    tools.pgRestore = await findPgTool('pg_restore', { serverVersionNum, env, requires });
  if (mode !== 'archive') tools.psql = await findPgTool('psql', { serverVersionNum, env });
  return tools;
}

const PSQL_BASE = [
  '--no-psqlrc',
  '--no-password',
  '--quiet',
  '--set=ON_ERROR_STOP=1',
  '--single-transaction',
];

export async function runRestore(
  ctx: OperationContext<RestoreArgs>,
  file: BackupFile,
  scope: Scope,
  tools: RestoreTools,
  database: string,
): Promise<void> {
  const env = targetToolEnv(ctx, database);
  const dbname = `--dbname=${conninfoDatabase(database)}`;
  const progress = throttledProgress(
    ctx.progress,
    'pg_restore',
    /^processing data for table "(.+)"$/,
    scope.replaced.length,
  );
  if (scope.mode === 'archive') {
    if (!tools.pgRestore) throw new Error('restore: pg_restore was not looked up');
    await runTool(
      {
        name: 'pg_restore',
        file: tools.pgRestore.path,
        args: [
          '--no-password',
          '--verbose',
          '--single-transaction',
          '--exit-on-error',
          '--clean',
          '--if-exists',
          dbname,
          file.path,
        ],
        env,
      },
      { timeoutMs: DUMP_TIMEOUT_MS, ...(ctx.signal ? { signal: ctx.signal } : {}), onStderrLine: progress },
    );
    return;
  }
  if (!tools.psql) throw new Error('restore: psql was not looked up');
  if (scope.mode === 'script') {
    await runTool(
      { name: 'psql', file: tools.psql.path, args: [...PSQL_BASE, dbname, `--file=${file.path}`], env },
      {
        timeoutMs: DUMP_TIMEOUT_MS,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        stdoutMaxBytes: 64 * 1024,
      },
    );
    return;
  }
  // table-data: the table's rows as a COPY script from the archive, then TRUNCATE + COPY in one transaction.
  const table = scope.table;
  const relation = scope.relation;
  if (!tools.pgRestore || !table || !relation)
    throw new Error('restore: table-data restore without its table');
  const dir = targetBackupDir(ctx.backupsDir, ctx.target.name);
  const script = join(dir, `.${randomBytes(8).toString('hex')}.restore.sql`);
  await (await open(script, 'wx', 0o600)).close();
  try {
    await runTool(
      {
        name: 'pg_restore',
        file: tools.pgRestore.path,
        args: [
          '--no-password',
          '--data-only',
          `--schema=${table.schema}`,
          `--table=${table.name}`,
          `--file=${script}`,
          file.path,
        ],
        env,
      },
      { timeoutMs: DUMP_TIMEOUT_MS, ...(ctx.signal ? { signal: ctx.signal } : {}) },
    );
    await runTool(
      {
        name: 'psql',
        file: tools.psql.path,
        args: [...PSQL_BASE, dbname, `--command=TRUNCATE ONLY ${relation.qualified}`, `--file=${script}`],
        env,
      },
      {
        timeoutMs: DUMP_TIMEOUT_MS,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        stdoutMaxBytes: 64 * 1024,
      },
    );
  } finally {
    await rm(script, { force: true });
  }
}

/** A word on the usual reasons a restore transaction is refused. */
export function failureHint(message: string): string {
  if (/cannot truncate a table referenced in a foreign key constraint/i.test(message)) {
    return ' The table is referenced by foreign keys of other tables, so its rows cannot be replaced alone: restore the whole backup instead.';
  }
  if (/depends? on/i.test(message)) {
    return ' Objects created since the backup depend on what it replaces; drop them first or restore into a new database by hand.';
  }
  if (/does not exist/i.test(message) && /column/i.test(message)) {
    return " The table's columns changed since the backup.";
  }
  return '';
}
