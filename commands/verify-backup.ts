// `/db verify-backup <target> <name>`: checksum, archive listing, then a real restore into a temporary database.
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { z } from 'zod';
import { UserError } from '../src/core/errors.js';
import { defineOperation, type OperationContext } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';
import { findPgTool, lastLines, type PgTool, runTool } from '../src/engine/tools.js';
import { targetToolEnv } from './backup.js';
import {
  type BackupFile,
  type Manifest,
  requireManifest,
  resolveBackup,
  sha256File,
  type TableCount,
  tableLabel,
  type Verification,
  writeManifest,
} from './lib/backup-store.js';
import {
  countInDatabase,
  DDL_TIMEOUT_MS,
  LIST_TIMEOUT_MS,
  prepareDatabase,
  restoreInto,
} from './lib/scratch-database.js';
import {
  dropScratchDatabase,
  type ExtensionRights,
  extensionRights,
  type LeftOut,
  leftOutNotes,
} from './lib/scratch-restore.js';

const CAN_CREATE_DB_SQL = `
SELECT r.rolname AS role, (r.rolcreatedb OR r.rolsuper) AS ok
FROM pg_roles r WHERE r.rolname = current_user`;

/*
 * The temporary database gets the source database's encoding and locale (from template0), so text that
 * fits the original fits the copy. format() quotes the catalog values; the name is generated, never typed.
 */
const CREATE_DATABASE_DDL_SQL = `
SELECT format('CREATE DATABASE %I TEMPLATE template0 ENCODING %L LC_COLLATE %L LC_CTYPE %L',
              $1::text, pg_encoding_to_char(d.encoding), d.datcollate, d.datctype) AS ddl
FROM pg_database d WHERE d.datname = current_database()`;

/** What a dump's first lines must say for a plain backup to be taken for one. */
const PLAIN_HEADER = '-- PostgreSQL database dump';
const PLAIN_FOOTER = '-- PostgreSQL database dump complete';

const COLUMNS: Column[] = [
  { key: 'table', label: 'table', kind: 'text' },
  { key: 'backup_rows', label: 'rows (manifest)', kind: 'count' },
  { key: 'restored_rows', label: 'rows (restored)', kind: 'count' },
  { key: 'match', label: 'match', kind: 'bool' },
];

/** The first and last bytes of a plain dump: a complete pg_dump script starts and ends with its banners. */
async function plainDumpLooksComplete(path: string, bytes: number): Promise<string | undefined> {
  const handle = await open(path, 'r');
  try {
    const size = Math.min(bytes, 4096);
    const head = Buffer.alloc(size);
    await handle.read(head, 0, size, 0);
    const tail = Buffer.alloc(size);
    await handle.read(tail, 0, size, Math.max(0, bytes - size));
    if (!head.toString('utf8').includes(PLAIN_HEADER)) return 'it does not start like a pg_dump SQL script';
    if (!tail.toString('utf8').includes(PLAIN_FOOTER))
      return 'it does not end with pg_dump\'s "dump complete" line (truncated?)';
    return undefined;
  } finally {
    await handle.close();
  }
}

interface Comparison {
  rows: Row[];
  matched: number;
  differences: string[];
}

export function compareCounts(expected: readonly TableCount[], restored: readonly TableCount[]): Comparison {
  const restoredBy = new Map(restored.map((t) => [tableLabel(t), t.rows]));
  const expectedNames = new Set(expected.map((t) => tableLabel(t)));
  const rows: Row[] = [];
  const differences: string[] = [];
  let matched = 0;
  for (const t of expected) {
    const label = tableLabel(t);
    const got = restoredBy.get(label);
    const match = got === t.rows;
    if (match) matched += 1;
    else if (got === undefined) differences.push(`${label}: missing after the restore`);
    else
      differences.push(`${label}: ${formatCount(t.rows)} rows in the manifest, ${formatCount(got)} restored`);
    rows.push({ table: label, backup_rows: t.rows, restored_rows: got ?? null, match });
  }
  for (const t of restored) {
    const label = tableLabel(t);
    if (expectedNames.has(label)) continue;
    differences.push(`${label}: restored but not in the manifest`);
    rows.push({ table: label, backup_rows: null, restored_rows: t.rows, match: false });
  }
  return { rows, matched, differences };
}

interface Outcome {
  ok: boolean;
  summary: string;
  comparison?: Comparison;
  notes: string[];
  tempDatabase?: string;
  leftOut?: LeftOut;
}

async function verify(
  ctx: OperationContext<unknown>,
  file: BackupFile,
  manifest: Manifest,
): Promise<Outcome> {
  const notes: string[] = [];
  const sha256 = await sha256File(file.path);
  if (sha256 !== manifest.sha256) {
    return {
      ok: false,
      summary:
        `sha256 mismatch: the file is not the one that was backed up (manifest ${manifest.sha256.slice(0, 12)}…, ` +
        `file ${sha256.slice(0, 12)}…); it was changed or damaged after the backup`,
      notes,
    };
  }
  const versionNum = await ctx.db.serverVersion();
  const env = targetToolEnv(ctx);
  const tool =
    manifest.format === 'custom'
      ? await findPgTool('pg_restore', {
          serverVersionNum: versionNum,
          env,
          requires: {
            major: manifest.pgDump.major,
            purpose: `read an archive made by pg_dump ${manifest.pgDump.major}`,
          },
        })
      : await findPgTool('psql', { serverVersionNum: versionNum, env });

  let toc: string | undefined;
  if (manifest.format === 'custom') {
    try {
      const listed = await runTool(
        { name: 'pg_restore', file: tool.path, args: ['--list', '--verbose', file.path], env },
        { timeoutMs: LIST_TIMEOUT_MS, stdoutMaxBytes: 16 * 1024 * 1024 },
      );
      // A cut-off listing cannot serve as a restore list (single-table backups use one).
      if (!listed.stdoutTruncated) toc = listed.stdout;
      const entries = listed.stdout.split('\n').filter((l) => /^\d+;/.test(l));
      const data = entries.filter((l) => / TABLE DATA /.test(l)).length;
      notes.push(
        `pg_restore --list: ${formatCount(entries.length)} archive entries, ${formatCount(data)} with table data`,
      );
    } catch (err) {
      if (!(err instanceof UserError) || err.code !== 'tool_failed') throw err;
      return { ok: false, summary: `pg_restore --list cannot read the archive: ${err.message}`, notes };
    }
  } else {
    const problem = await plainDumpLooksComplete(file.path, file.bytes);
    if (problem) return { ok: false, summary: `not a complete plain dump: ${problem}`, notes };
  }

  const [[role], rights] = await ctx.db.read(async (session) => [
    await session.query<{ role: string; ok: boolean }>(CAN_CREATE_DB_SQL),
    await extensionRights(session),
  ]);
  if (!role?.ok) {
    throw new UserError(
      'permission',
      `verify-backup restores into a temporary database, and the bot role ${role?.role ?? ''} may not create ` +
        `databases on ${ctx.target.name}: ALTER ROLE <bot role> CREATEDB (the checksum ${
          manifest.format === 'custom' ? 'and pg_restore --list ' : ''
        }passed)`,
    );
  }

  const tempDatabase = `dbops_verify_${randomBytes(6).toString('hex')}`;
  await ctx.db.direct(
    async (session) => {
      const [ddl] = await session.query<{ ddl: string }>(CREATE_DATABASE_DDL_SQL, [tempDatabase]);
      if (!ddl) throw new Error('current database not found in pg_database');
      await session.query(ddl.ddl);
    },
    { statementTimeoutMs: DDL_TIMEOUT_MS },
  );
  ctx.progress(`restoring ${file.name} into temporary database ${tempDatabase}`);
  let outcome: Outcome;
  try {
    outcome = await restoreAndCompare(ctx, file, manifest, tempDatabase, tool, toc, rights, notes);
  } finally {
    try {
      await dropScratchDatabase(ctx, tempDatabase, DDL_TIMEOUT_MS);
    } catch (err) {
      notes.push(
        `the temporary database ${tempDatabase} could not be dropped (${
          err instanceof Error ? lastLines(err.message, 1).join('') : 'unknown error'
        }); drop it by hand: DROP DATABASE ${tempDatabase} WITH (FORCE)`,
      );
    }
  }
  return { ...outcome, tempDatabase };
}

async function restoreAndCompare(
  ctx: OperationContext<unknown>,
  file: BackupFile,
  manifest: Manifest,
  tempDatabase: string,
  tool: PgTool,
  toc: string | undefined,
  rights: ExtensionRights,
  notes: string[],
): Promise<Outcome> {
  let leftOut: LeftOut;
  try {
    await prepareDatabase(ctx, tempDatabase, manifest);
    leftOut = await restoreInto(ctx, file, manifest, tempDatabase, tool, toc, rights);
  } catch (err) {
    if (!(err instanceof UserError) || err.code !== 'tool_failed') throw err;
    return { ok: false, summary: `restoring into a temporary database failed: ${err.message}`, notes };
  }
  notes.push(...leftOutNotes(leftOut));
  const skipped = new Set(leftOut.tables.map((t) => tableLabel(t)));
  const expected = manifest.tables.filter((t) => !skipped.has(tableLabel(t)));
  const restored = await countInDatabase(ctx, tempDatabase);
  const comparison = compareCounts(expected, restored);
  const ok = comparison.differences.length === 0;
  const n = expected.length;
  const except =
    skipped.size === 0
      ? ''
      : ` (${formatCount(skipped.size)} ${skipped.size === 1 ? 'table' : 'tables'} not restored: ` +
        `${skipped.size === 1 ? 'it needs' : 'they need'} a left-out extension, see below)`;
  return {
    ok,
    comparison,
    notes,
    leftOut,
    summary: ok
      ? `restored into a temporary database: all ${formatCount(n)} ${n === 1 ? 'table' : 'tables'} present with ` +
        `exactly the row counts of the manifest${except}`
      : `restored, but ${comparison.differences.length} ${
          comparison.differences.length === 1 ? 'table differs' : 'tables differ'
        } from the manifest: ${comparison.differences.slice(0, 5).join('; ')}${
          comparison.differences.length > 5 ? '; …' : ''
        }`,
  };
}

export default defineOperation({
  name: 'verify-backup',
  summary:
    'Prove a backup restores: checksum, pg_restore --list, restore into a temporary database, row counts',
  usage: 'verify-backup <target> <name>',
  description:
    "Checks the dump's sha256 against its manifest, reads the archive with pg_restore --list (plain dumps: " +
    'their pg_dump banners), then creates a temporary database dbops_verify_<random> on the same server, ' +
    'restores the dump into it (pg_restore --no-owner --no-privileges, or psql with ON_ERROR_STOP on a copy ' +
    'without ownership and privileges), leaving out extensions the bot role cannot create and what needs ' +
    'them (said in the answer), compares ' +
    'every table and its exact row count with the manifest, and drops the temporary database whatever ' +
    'happened. The result is recorded in the manifest (shown by `backups`). Needs CREATEDB for the bot role.',
  positionals: ['name'],
  args: z.object({ name: z.string().min(1).max(255) }),
  risk: 'write',
  async run(ctx) {
    const started = performance.now();
    const file = await resolveBackup(ctx.backupsDir, ctx.target.name, ctx.args.name);
    const manifest = await requireManifest(file, 'verify-backup');
    const outcome = await verify(ctx, file, manifest);
    const durationSeconds = Math.round(performance.now() - started) / 1000;
    const comparison = outcome.comparison;
    const verification: Verification = {
      ok: outcome.ok,
      at: ctx.now.toISOString(),
      summary: outcome.summary,
      tablesChecked: manifest.tables.length - (outcome.leftOut?.tables.length ?? 0),
      tablesMatched: comparison?.matched ?? 0,
      differences: comparison?.differences ?? [],
      durationSeconds,
    };
    const notes = [...outcome.notes];
    try {
      await writeManifest(file.path, { ...manifest, verification });
    } catch (err) {
      notes.push(
        `the result could not be recorded in ${file.name}.json (${err instanceof Error ? err.message : 'unknown error'})`,
      );
    }
    // Differences first, so a capped table still shows every problem it can.
    const rows = [...(comparison?.rows ?? [])].sort((a, b) => Number(a.match) - Number(b.match));
    const cap = ctx.limits.row_cap;
    if (rows.length > cap) notes.push(`showing ${cap} of ${rows.length} tables, differences first`);
    return {
      headline: outcome.ok
        ? `backup ${file.name} verified: ${outcome.summary}`
        : `backup ${file.name} FAILED verification: ${outcome.summary}`,
      columns: COLUMNS,
      rows: rows.slice(0, cap),
      truncated: rows.length > cap,
      notes,
      data: {
        verified: outcome.ok,
        file: file.name,
        sha256: manifest.sha256,
        tablesChecked: verification.tablesChecked,
        tablesMatched: verification.tablesMatched,
        differences: verification.differences,
        durationSeconds,
        temporaryDatabase: outcome.tempDatabase ?? null,
        leftOut: outcome.leftOut ?? null,
      },
    };
  },
});
