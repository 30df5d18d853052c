// `/db restore <target> <name> [--table t]`: a safety backup first, then the backup in one transaction.
import { randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { identifierArg } from '../src/core/args.js';
import { UserError } from '../src/core/errors.js';
import { defineOperation, type OperationContext } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import type { Column, OperationResult, Row } from '../src/core/types.js';
import { quoteIdent, type Relation, resolveRelation } from '../src/engine/relations.js';
import { conninfoDatabase, findPgTool, type PgTool, runTool } from '../src/engine/tools.js';
import type { Session } from '../src/engine/types.js';
import {
  type BackupFile,
  currentRowCounts,
  DUMP_TIMEOUT_MS,
  type Manifest,
  pgDumpFor,
  requireManifest,
  resolveBackup,
  sha256File,
  type TableCount,
  tableLabel,
  takeBackup,
  targetBackupDir,
  targetToolEnv,
  throttledProgress,
} from './backup.js';

/**
 * How a backup goes back:
 * - `archive`: a custom dump, whole: pg_restore --single-transaction --clean --if-exists (drops and
 *   recreates what the archive holds, with its owners and grants);
 * - `table-data`: one table of a custom dump: its rows are replaced (TRUNCATE ONLY + the dump's COPY, one
 *   psql transaction). pg_restore -t would recreate the table WITHOUT its indexes, constraints and
 *   triggers, so the table's structure is kept and only its data comes back;
 * - `script`: a plain SQL dump (made with DROP … IF EXISTS) replayed by psql --single-transaction.
 */
const MODES = ['archive', 'table-data', 'script'] as const;
type Mode = (typeof MODES)[number];

const tableRefSchema = z.object({ schema: z.string(), name: z.string() });

const previewStateSchema = z.object({
  file: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  mode: z.enum(MODES),
  table: tableRefSchema.nullable(),
});
export type RestoreState = z.infer<typeof previewStateSchema>;

const FIND_TABLE_SQL = `
SELECT c.oid::int8 AS oid
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'r'`;

const CURRENT_DATABASE_SQL = 'SELECT current_database() AS database';

const PREVIEW_COLUMNS: Column[] = [
  { key: 'table', label: 'table', kind: 'text' },
  { key: 'current_rows', label: 'rows now', kind: 'count' },
  { key: 'backup_rows', label: 'rows in backup', kind: 'count' },
  { key: 'change', label: 'change', kind: 'text' },
];

const EXECUTE_COLUMNS: Column[] = [
  { key: 'table', label: 'table', kind: 'text' },
  { key: 'rows_before', label: 'rows before', kind: 'count' },
  { key: 'rows_after', label: 'rows after', kind: 'count' },
  { key: 'backup_rows', label: 'rows in backup', kind: 'count' },
  { key: 'as_backup', label: 'as backup', kind: 'bool' },
];

/** What a restore will replace, worked out the same way at preview and at execution. */
interface Scope {
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

function sameTable(
  a: { schema: string; name: string } | null,
  b: { schema: string; name: string } | null,
): boolean {
  return a === null || b === null ? a === b : a.schema === b.schema && a.name === b.name;
}

async function scopeOf(
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

function changeText(now: number | undefined, backup: number): string {
  if (now === undefined) return 'table will be created';
  if (now === backup) return 'same count';
  const diff = backup - now;
  return `${diff > 0 ? '+' : '−'}${formatCount(Math.abs(diff))} ${Math.abs(diff) === 1 ? 'row' : 'rows'}`;
}

type RestoreArgs = { name: string; table?: string | undefined };

async function checkedBackup(
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
async function countsNow(
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

async function restoreTools(
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

async function runRestore(
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
function failureHint(message: string): string {
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

export default defineOperation({
  name: 'restore',
  summary: 'Restore a backup (or one table of it) after a safety backup, in one transaction',
  usage: 'restore <target> <name> [--table t]',
  description:
    'Shows what the backup would replace (its tables, or the one --table, with rows now vs in the backup) and, ' +
    "after approval, re-checks the file's sha256, takes a safety backup (custom format, same scope), then " +
    'restores in a single transaction: a custom dump with pg_restore --single-transaction --clean --if-exists ' +
    "(owners and grants as in the dump); one table by replacing only its rows (TRUNCATE + the dump's data, so " +
    'its indexes, constraints and grants stay); a plain SQL dump with psql --single-transaction. If anything ' +
    'fails the transaction rolls back and nothing changes. Tables not in the backup are left alone.',
  positionals: ['name'],
  args: z.object({
    name: z.string().min(1).max(255),
    table: identifierArg().optional(),
  }),
  risk: 'destructive',

  async preview(ctx) {
    const { file, manifest, sha256 } = await checkedBackup(ctx, ctx.args.name);
    const scope = await scopeOf(ctx, file, manifest);
    // No approval is asked for a restore this host cannot run (safety backup and restore tools alike).
    await pgDumpFor(ctx);
    await restoreTools(ctx, manifest, scope.mode);
    const now = await countsNow(ctx, scope);
    const [db] = await ctx.db.read((s) => s.query<{ database: string }>(CURRENT_DATABASE_SQL));
    const rows: Row[] = scope.replaced.map((t) => {
      const current = now.counts.get(tableLabel(t));
      return {
        table: tableLabel(t),
        current_rows: current ?? null,
        backup_rows: t.rows,
        change: changeText(current, t.rows),
      };
    });
    const cap = ctx.limits.row_cap;
    const notes: string[] = [];
    const what =
      scope.mode === 'table-data' && scope.table
        ? `the rows of ${tableLabel(scope.table)} (its structure, indexes and grants stay)`
        : `${formatCount(scope.replaced.length)} ${scope.replaced.length === 1 ? 'table' : 'tables'} ` +
          `(${scope.mode === 'script' ? 'dropped and re-created by the SQL script' : 'dropped and re-created with their indexes, constraints, owners and grants'})`;
    notes.push(
      `created ${manifest.createdAt} from database ${manifest.database} (PostgreSQL ${manifest.serverVersion})`,
    );
    if (db && db.database !== manifest.database) {
      notes.push(
        `the backup was made from database ${manifest.database}; it would be restored into ${db.database}`,
      );
    }
    const safetyScope = scope.relation
      ? `table ${tableLabel(scope.relation)}`
      : `database ${db?.database ?? ''}`;
    notes.push(
      `first a safety backup of ${safetyScope} is taken (custom format, into ${ctx.target.name}'s backups); ` +
        'its name is in the result',
    );
    notes.push(
      'writes to these tables are blocked while the restore runs, and writes committed after the safety backup ' +
        'are lost: stop the application from writing first',
    );
    if (now.estimated)
      notes.push('current row counts are planner estimates (exact counting would take too long)');
    if (scope.mode !== 'table-data' && !scope.table) {
      const replaced = new Set(scope.replaced.map((t) => tableLabel(t)));
      const others = now.all.filter((t) => !replaced.has(tableLabel(t))).map((t) => tableLabel(t));
      if (others.length > 0) {
        notes.push(
          `${others.length} ${others.length === 1 ? 'table is' : 'tables are'} not in the backup and stay as they are: ` +
            `${others.slice(0, 10).join(', ')}${others.length > 10 ? ', …' : ''}`,
        );
      }
    }
    if (rows.length > cap) notes.push(`showing ${cap} of ${rows.length} tables`);
    const state: RestoreState = { file: file.name, sha256, mode: scope.mode, table: scope.table };
    const result: OperationResult = {
      headline: `restore ${file.name} into ${ctx.target.name} would replace ${what}`,
      columns: PREVIEW_COLUMNS,
      rows: rows.slice(0, cap),
      truncated: rows.length > cap,
      notes,
      data: {
        file: file.name,
        sha256,
        mode: scope.mode,
        table: scope.table ? tableLabel(scope.table) : null,
        tables: scope.replaced.length,
        estimatedCounts: now.estimated,
      },
    };
    return { result, state };
  },

  async execute(ctx, previewState) {
    const parsed = previewStateSchema.safeParse(previewState);
    if (!parsed.success) throw new Error(`restore: malformed preview state: ${parsed.error.message}`);
    const previewed = parsed.data;
    const started = performance.now();
    const { file, manifest, sha256 } = await checkedBackup(ctx, previewed.file);
    if (sha256 !== previewed.sha256) {
      throw new UserError(
        'invalid_argument',
        `backup ${file.name} changed since the preview (sha256 ${previewed.sha256.slice(0, 12)}… then, ` +
          `${sha256.slice(0, 12)}… now); nothing was restored. Request the restore again to see what it holds now`,
      );
    }
    const scope = await scopeOf(ctx, file, manifest);
    if (scope.mode !== previewed.mode || !sameTable(scope.table, previewed.table)) {
      throw new UserError(
        'invalid_argument',
        `what ${file.name} would replace changed since the preview; nothing was restored. Request the restore again`,
      );
    }
    // Every tool is found (and version-checked) before anything is written.
    const tools = await restoreTools(ctx, manifest, scope.mode);
    const before = await countsNow(ctx, scope);
    const [db] = await ctx.db.read((s) => s.query<{ database: string }>(CURRENT_DATABASE_SQL));
    if (!db) throw new Error('current_database() returned no row');

    const safety = await takeBackup(ctx, {
      format: 'custom',
      ...(scope.relation ? { table: scope.relation.qualified } : {}),
      purpose: `safety backup before restoring ${file.name}`,
    });
    ctx.progress(`safety backup ${safety.file.name} taken; restoring ${file.name}`);

    try {
      await runRestore(ctx, file, scope, tools, db.database);
    } catch (err) {
      if (!(err instanceof UserError) || err.code !== 'tool_failed') throw err;
      throw new UserError(
        'tool_failed',
        `restore of ${file.name} failed and was rolled back (one transaction): ${ctx.target.name} is as it was. ` +
          `The safety backup ${safety.file.name} was taken before. ${err.message.replace(/\.+$/, '')}.` +
          failureHint(err.message),
        { ...err.detail, safetyBackup: safety.file.name },
      );
    }

    const afterScope: Scope = scope.relation || !scope.table ? scope : await scopeOf(ctx, file, manifest);
    const after = await countsNow(ctx, afterScope);
    const rows: Row[] = scope.replaced.map((t) => {
      const label = tableLabel(t);
      const rowsAfter = after.counts.get(label);
      return {
        table: label,
        rows_before: before.counts.get(label) ?? null,
        rows_after: rowsAfter ?? null,
        backup_rows: t.rows,
        as_backup: rowsAfter === t.rows,
      };
    });
    const differing = rows.filter((r) => r.as_backup !== true).length;
    const cap = ctx.limits.row_cap;
    const notes = [
      `safety backup taken first: ${safety.file.name} (${formatCount(safety.manifest.tables.length)} tables, ` +
        `restore it the same way to undo)`,
    ];
    if (after.estimated) notes.push('row counts are planner estimates (exact counting would take too long)');
    else if (differing > 0) {
      notes.push(
        `${differing} ${differing === 1 ? 'table does' : 'tables do'} not have the backup's row count now: ` +
          'sessions wrote to them right after the restore committed',
      );
    }
    if (rows.length > cap) notes.push(`showing ${cap} of ${rows.length} tables`);
    const durationSeconds = Math.round(performance.now() - started) / 1000;
    const what =
      scope.mode === 'table-data' && scope.table
        ? `the rows of ${tableLabel(scope.table)}`
        : `${formatCount(scope.replaced.length)} ${scope.replaced.length === 1 ? 'table' : 'tables'}`;
    return {
      headline: `restored ${what} from ${file.name} into ${db.database} on ${ctx.target.name}`,
      columns: EXECUTE_COLUMNS,
      rows: rows.slice(0, cap),
      truncated: rows.length > cap,
      notes,
      data: {
        file: file.name,
        mode: scope.mode,
        table: scope.table ? tableLabel(scope.table) : null,
        safetyBackup: safety.file.name,
        durationSeconds,
        tables: rows.length,
      },
    };
  },
});
