// `/db restore <target> <name> [--table t]`: a safety backup first, then the backup in one transaction.
import { z } from 'zod';
import { identifierArg } from '../src/core/args.js';
import { UserError } from '../src/core/errors.js';
import { defineOperation } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import type { Column, OperationResult, Row } from '../src/core/types.js';
import { pgDumpFor, tableLabel, takeBackup } from './backup.js';
import {
  changeText,
  checkedBackup,
  countsNow,
  failureHint,
  MODES,
  restoreTools,
  runRestore,
  type Scope,
  sameTable,
  scopeOf,
} from './lib/restore-steps.js';

const tableRefSchema = z.object({ schema: z.string(), name: z.string() });

const previewStateSchema = z.object({
  file: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  mode: z.enum(MODES),
  table: tableRefSchema.nullable(),
});
export type RestoreState = z.infer<typeof previewStateSchema>;

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
