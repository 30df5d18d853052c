// The backup store the backup operations share: where dumps live, their names, manifests, checksums,
// and the exact row counts a manifest records.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { quoteInput } from '../../src/core/args.js';
import { UserError } from '../../src/core/errors.js';
import type { OperationContext } from '../../src/core/operation.js';
import { closest } from '../../src/core/suggest.js';
import type { Relation } from '../../src/engine/relations.js';
import type { Session } from '../../src/engine/types.js';
// ---------------------------------------------------------------------------------------------------
// The manifest written beside every dump

export const BACKUP_FORMATS = ['custom', 'plain'] as const;
export type BackupFormat = (typeof BACKUP_FORMATS)[number];

export const DUMP_EXTENSION: Record<BackupFormat, string> = { custom: 'dump', plain: 'sql' };

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

export async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

/** `20240131T235959Z` */
export function utcStamp(date: Date): string {
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

export function errnoOf(err: unknown): string | undefined {
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
    `argument <name>: no backup matching ${quoteInput(typed)} on ${target}${hint}`,
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
