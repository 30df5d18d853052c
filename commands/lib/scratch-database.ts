// A backup restored into a scratch database of the target's server, for verify-backup: its pools, the schema it needs and the pg_restore / psql run.
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../../src/core/errors.js';
import type { OperationContext } from '../../src/core/operation.js';
import { quoteIdent } from '../../src/engine/relations.js';
import { TargetPools } from '../../src/engine/target-db.js';
import { conninfoDatabase, type PgTool, runTool } from '../../src/engine/tools.js';
import type { TargetDb } from '../../src/engine/types.js';
import { DUMP_TIMEOUT_MS, targetToolEnv, throttledProgress } from '../backup.js';
import {
  type BackupFile,
  countRows,
  type Manifest,
  type TableCount,
  targetBackupDir,
} from './backup-store.js';
import {
  type ExtensionRights,
  emptyLeftOut,
  filterPlainScript,
  type LeftOut,
  planArchive,
} from './scratch-restore.js';

export const LIST_TIMEOUT_MS = 10 * 60 * 1000;
/** CREATE / DROP DATABASE may wait for a checkpoint or for connections to go. */
export const DDL_TIMEOUT_MS = 120_000;

/** The target's URL pointed at another database on the same server, for a short-lived pool. */
function urlForDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  u.searchParams.delete('dbname');
  return u.toString();
}

/** Work on another database of the target's server, through a short-lived pool of one connection. */
async function onDatabase<R>(
  ctx: OperationContext<unknown>,
  database: string,
  fn: (db: TargetDb) => Promise<R>,
): Promise<R> {
  const name = ctx.target.name;
  const pools = new TargetPools({
    [name]: {
      ...ctx.target,
      url: urlForDatabase(ctx.target.url, database),
      limits: { ...ctx.limits, pool_max: 1 },
    },
  });
  try {
    return await fn(pools.get(name));
  } finally {
    await pools.closeAll();
  }
}

export async function countInDatabase(
  ctx: OperationContext<unknown>,
  database: string,
): Promise<TableCount[]> {
  return await onDatabase(ctx, database, (db) =>
    db.read((session) => countRows(session), { statementTimeoutMs: DUMP_TIMEOUT_MS }),
  );
}

/** A single-table dump does not create its schema; the temporary database gets it first. */
export async function prepareDatabase(
  ctx: OperationContext<unknown>,
  database: string,
  manifest: Manifest,
): Promise<void> {
  const schema = manifest.table?.schema;
  if (schema === undefined || schema === 'public') return;
  await onDatabase(ctx, database, (db) =>
    db.write((session) => session.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`)),
  );
}

/** A temporary file beside the backups (never in argv with secrets; removed after use). */
function scratchFile(ctx: OperationContext<unknown>, ext: string): string {
  return join(targetBackupDir(ctx.backupsDir, ctx.target.name), `.${randomBytes(8).toString('hex')}.${ext}`);
}

export async function restoreInto(
  ctx: OperationContext<unknown>,
  file: BackupFile,
  manifest: Manifest,
  database: string,
  tool: PgTool,
  toc: string | undefined,
  rights: ExtensionRights,
): Promise<LeftOut> {
  const env = targetToolEnv(ctx, database);
  const dbname = `--dbname=${conninfoDatabase(database)}`;
  const singleTable = manifest.table !== undefined;
  if (manifest.format === 'custom') {
    const args = ['--no-password', '--verbose', '--exit-on-error', '--no-owner', '--no-privileges', dbname];
    const plan =
      toc === undefined
        ? { list: undefined, leftOut: emptyLeftOut() }
        : planArchive(toc, rights, singleTable);
    let listFile: string | undefined;
    try {
      if (plan.list !== undefined) {
        listFile = scratchFile(ctx, 'toc');
        await writeFile(listFile, plan.list, { mode: 0o600, flag: 'wx' });
        args.push(`--use-list=${listFile}`);
      }
      await runTool(
        { name: 'pg_restore', file: tool.path, args: [...args, file.path], env },
        {
          timeoutMs: DUMP_TIMEOUT_MS,
          ...(ctx.signal ? { signal: ctx.signal } : {}),
          onStderrLine: throttledProgress(
            ctx.progress,
            'pg_restore',
            /^processing data for table "(.+)"$/,
            manifest.tables.length,
          ),
        },
      );
    } finally {
      if (listFile) await rm(listFile, { force: true });
    }
    return plan.leftOut;
  }
  /*
   * A plain script runs with ON_ERROR_STOP, always: after a failed COPY, psql would run the rows that
   * follow as SQL. So what this role cannot restore is filtered out of a copy first.
   */
  const script = scratchFile(ctx, 'sql');
  try {
    const leftOut = await filterPlainScript(file.path, script, rights, singleTable);
    try {
      await runTool(
        {
          name: 'psql',
          file: tool.path,
          args: [
            '--no-psqlrc',
            '--no-password',
            '--quiet',
            dbname,
            `--file=${script}`,
            '--set=ON_ERROR_STOP=1',
          ],
          env,
        },
        {
          timeoutMs: DUMP_TIMEOUT_MS,
          ...(ctx.signal ? { signal: ctx.signal } : {}),
          stdoutMaxBytes: 64 * 1024,
        },
      );
    } catch (err) {
      if (err instanceof UserError && err.code === 'tool_failed' && leftOut.extensions.length > 0) {
        const names = leftOut.extensions.map((e) => e.name).join(', ');
        throw new UserError(
          'tool_failed',
          `${err.message} (extension ${names} was left out; a plain dump does not say what needs it, a ` +
            'custom-format backup lets verify-backup leave that out too)',
        );
      }
      throw err;
    }
    return leftOut;
  } finally {
    await rm(script, { force: true });
  }
}
