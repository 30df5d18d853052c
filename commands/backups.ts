// `/db backups <target>`: the target's backups, from its backup directory and their manifests.
import { z } from 'zod';
import { defineOperation } from '../src/core/operation.js';
import { formatBytes, formatCount } from '../src/core/render.js';
import { asDate, formatAge } from '../src/core/time-format.js';
import type { Column, Row } from '../src/core/types.js';
import { listBackupFiles, readManifest, tableLabel, targetBackupDir, totalRows } from './lib/backup-store.js';

const COLUMNS: Column[] = [
  { key: 'name', label: 'name', kind: 'text' },
  { key: 'created', label: 'created', kind: 'timestamp' },
  { key: 'bytes', label: 'size', kind: 'bytes' },
  { key: 'format', label: 'format', kind: 'text' },
  { key: 'table', label: 'table', kind: 'text' },
  { key: 'rows', label: 'rows', kind: 'count' },
  { key: 'sha256', label: 'sha256', kind: 'text' },
  { key: 'verified', label: 'verified', kind: 'bool' },
  { key: 'verified_at', label: 'verified at', kind: 'timestamp' },
];

/** Enough of the checksum to tell backups apart in chat; the full one is in the manifest and in --json. */
const SHA_SHORT = 12;

interface Listed {
  row: Row;
  created: string;
  problem?: string;
  sha256: string | null;
}

export default defineOperation({
  name: 'backups',
  summary: "List the target's backups: name, time, size, format, table, checksum, verification",
  usage: 'backups <target>',
  description:
    "Lists the dumps in the target's backup directory, newest first, with what their manifests record: " +
    'creation time, size, format, table filter, exact row count, sha256 (shortened) and the result of the ' +
    'last verify-backup (empty when never verified). Files without a readable manifest are listed and named.',
  args: z.object({}),
  risk: 'read',
  async run(ctx) {
    const dir = targetBackupDir(ctx.backupsDir, ctx.target.name);
    const files = await listBackupFiles(dir);
    const listed: Listed[] = [];
    for (const file of files) {
      const read = await readManifest(file.path);
      if ('manifest' in read) {
        const m = read.manifest;
        listed.push({
          created: m.createdAt,
          sha256: m.sha256,
          row: {
            name: file.name,
            created: m.createdAt,
            bytes: file.bytes,
            format: m.format,
            table: m.table ? tableLabel(m.table) : null,
            rows: totalRows(m.tables),
            sha256: m.sha256.slice(0, SHA_SHORT),
            verified: m.verification?.ok ?? null,
            verified_at: m.verification?.at ?? null,
          },
        });
      } else {
        const created = file.modifiedAt.toISOString();
        listed.push({
          created,
          sha256: null,
          problem: `${file.name}: ${read.problem}`,
          row: {
            name: file.name,
            created,
            bytes: file.bytes,
            format: file.name.endsWith('.sql') ? 'plain' : 'custom',
            table: null,
            rows: null,
            sha256: null,
            verified: null,
            verified_at: null,
          },
        });
      }
    }
    listed.sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0));
    const cap = ctx.limits.row_cap;
    const shown = listed.slice(0, cap);
    const notes: string[] = [];
    const problems = listed.filter((l) => l.problem !== undefined);
    if (problems.length > 0) {
      notes.push(
        `${formatCount(problems.length)} without a usable manifest (not made by dbops, or interrupted): ` +
          `${problems
            .slice(0, 5)
            .map((p) => p.problem)
            .join('; ')}${problems.length > 5 ? '; …' : ''}`,
      );
    }
    if (listed.length > cap)
      notes.push(`showing the newest ${formatCount(cap)} of ${formatCount(listed.length)} backups`);
    const total = files.reduce((sum, f) => sum + f.bytes, 0);
    const newest = asDate(listed[0]?.created);
    return {
      headline:
        files.length === 0
          ? `no backups of ${ctx.target.name} yet; \`backup ${ctx.target.name}\` makes one`
          : `${formatCount(files.length)} ${files.length === 1 ? 'backup' : 'backups'} of ${ctx.target.name}, ` +
            `${formatBytes(total)} in all${newest ? `; newest ${formatAge(newest, ctx.now)}` : ''}`,
      columns: COLUMNS,
      rows: shown.map((l) => l.row),
      truncated: listed.length > cap,
      notes,
      data: {
        directory: dir,
        totalBytes: total,
        count: files.length,
        sha256: Object.fromEntries(shown.map((l) => [String(l.row.name), l.sha256])),
      },
    };
  },
});
