// `/db unused-indexes <target> [--min-size 1MB] [--max-scans N]`: indexes (almost) never scanned that no constraint needs.
import { z } from 'zod';
import { intArg } from '../src/core/args.js';
import { defineOperation } from '../src/core/operation.js';
import { formatBytes, formatCount } from '../src/core/render.js';
import { parseSize, SIZE_HINT } from '../src/core/size.js';
import type { Column, Row } from '../src/core/types.js';
import { DDL_LOCKED_CTE, ddlLocked, userSchema } from './lib/relation-sizes.js';
import { statsDisclaimer, statsWindow } from './lib/stats-window.js';

/*
 * Scanned at most $2 times (0: never) since the counters started, and droppable on their own: not unique
 * (so not primary), not an exclusion index, backing no constraint. The size is not measured for an
 * index that it or its table is locked by DDL: it is listed with no size, last. $1 = minimum bytes.
 * writes = rows inserted, updated and deleted in the table, each of which also had to update the index.
 */
const UNUSED_INDEXES_SQL = `
WITH ${DDL_LOCKED_CTE},
unused AS (
  SELECT i.indexrelid, i.indisvalid, s.idx_scan AS scans,
         format('%I.%I', n.nspname, ci.relname) AS index,
         format('%I.%I', tn.nspname, ct.relname) AS "table",
         t.n_tup_ins + t.n_tup_upd + t.n_tup_del AS table_writes,
         (SELECT format('%I.%I', pn.nspname, pc.relname)
            FROM pg_inherits h
            JOIN pg_class pc ON pc.oid = h.inhparent
            JOIN pg_namespace pn ON pn.oid = pc.relnamespace
           WHERE h.inhrelid = i.indexrelid
           LIMIT 1) AS parent_index,
         (${ddlLocked('i.indexrelid')} OR ${ddlLocked('i.indrelid')}) AS locked
  FROM pg_index i
  JOIN pg_class ci ON ci.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = ci.relnamespace
  JOIN pg_class ct ON ct.oid = i.indrelid
  JOIN pg_namespace tn ON tn.oid = ct.relnamespace
  JOIN pg_stat_all_indexes s ON s.indexrelid = i.indexrelid
  LEFT JOIN pg_stat_all_tables t ON t.relid = i.indrelid
  WHERE ci.relkind = 'i'
    AND ${userSchema('tn')}
    AND s.idx_scan <= $2
    AND NOT i.indisunique
    AND NOT i.indisprimary
    AND NOT i.indisexclusion
    AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x'))
),
sized AS (
  SELECT u.*, CASE WHEN u.locked THEN NULL ELSE pg_total_relation_size(u.indexrelid) END AS bytes
  FROM unused u
)
SELECT s.index, s."table", s.bytes, s.scans, s.table_writes, s.indisvalid AS valid, s.parent_index, s.locked,
       count(*) OVER () AS matching,
       COALESCE(sum(s.bytes) OVER (), 0) AS all_bytes
FROM sized s
WHERE s.locked OR s.bytes >= $1
ORDER BY s.bytes DESC NULLS LAST, s.index
`;

interface UnusedRow {
  index: string;
  table: string;
  bytes: number | null;
  scans: number;
  table_writes: number | null;
  valid: boolean;
  parent_index: string | null;
  locked: boolean;
  matching: number;
  all_bytes: number;
}

const COLUMNS: Column[] = [
  { key: 'index', label: 'index', kind: 'text' },
  { key: 'table', label: 'table', kind: 'text' },
  { key: 'bytes', label: 'size', kind: 'bytes' },
  { key: 'table_writes', label: 'table writes', kind: 'count' },
  { key: 'note', label: 'note', kind: 'text' },
];

/** With --max-scans, how often each was scanned tells "never" from "almost never". */
const COLUMNS_WITH_SCANS: Column[] = [
  ...COLUMNS.slice(0, 3),
  { key: 'scans', label: 'scans', kind: 'count' },
  ...COLUMNS.slice(3),
];

/** The largest --max-scans: beyond it an index is in use by any measure (PgHero's default is 50). */
const MAX_SCANS_LIMIT = 1_000_000;

/** A size typed as bytes or with a 1024-based unit like pg_size_pretty's (500kB, 10MB, 1.5GB); the value is bytes. */
const sizeArg = z
  .union([z.string(), z.number()])
  .transform((value, ctx) => {
    const bytes = parseSize(value);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: `${SIZE_HINT}, got "${String(value).slice(0, 40)}"` });
      return z.NEVER;
    }
    return bytes;
  })
  .default(0);

function noteOf(r: UnusedRow): string | null {
  const notes: string[] = [];
  if (r.locked) notes.push('locked by DDL: size not measured');
  if (!r.valid) notes.push('invalid: being built, or left by a failed CREATE INDEX CONCURRENTLY / REINDEX');
  if (r.parent_index)
    notes.push(`attached to partitioned index ${r.parent_index}: cannot be dropped on its own`);
  return notes.length > 0 ? notes.join('; ') : null;
}

export default defineOperation({
  name: 'unused-indexes',
  summary: 'Indexes never scanned since statistics started, that no constraint needs, with their size',
  usage: 'unused-indexes <target> [--min-size 1MB] [--max-scans 0]',
  description:
    'Lists indexes of user schemas with idx_scan = 0 that are not unique, primary or exclusion indexes ' +
    'and back no constraint, largest first, with the writes their table took (each also updated the ' +
    'index). Says since when the counters count: after a stats reset, a crash or a restore every index ' +
    'starts unused, and an index unused here may be used on a replica. --min-size hides smaller ones. ' +
    '--max-scans N also lists "almost unused" indexes, scanned at most N times (PgHero uses 50), with ' +
    'their scan counts.',
  args: z.object({ min_size: sizeArg, max_scans: intArg({ min: 0, max: MAX_SCANS_LIMIT, default: 0 }) }),
  risk: 'read',
  async run(ctx) {
    return await ctx.db.read(async (session) => {
      const window = await statsWindow(session);
      const { rows: found, truncated } = await session.cursor<UnusedRow>(UNUSED_INDEXES_SQL, [
        ctx.args.min_size,
        ctx.args.max_scans,
      ]);
      const matching = found[0]?.matching ?? 0;
      const allBytes = Number(found[0]?.all_bytes ?? 0);

      const rows: Row[] = found.map((r) => ({
        index: r.index,
        table: r.table,
        bytes: r.bytes,
        ...(ctx.args.max_scans > 0 ? { scans: r.scans } : {}),
        table_writes: r.table_writes,
        note: noteOf(r),
      }));

      const maxScans = ctx.args.max_scans;
      const larger = ctx.args.min_size > 0 ? ` of at least ${formatBytes(ctx.args.min_size)}` : '';
      const what = maxScans > 0 ? 'almost unused' : 'unused';
      const scanned = maxScans > 0 ? ` (at most ${formatCount(maxScans)} scans)` : '';
      const notes: string[] = [];
      if (truncated)
        notes.push(
          `showing ${formatCount(found.length)} of ${formatCount(matching)} ${what} indexes (row cap)`,
        );
      notes.push(statsDisclaimer(window, ctx.now));
      if (matching > 0) {
        notes.push(
          'before dropping one: check the replicas, and that no rare job (month-end report, batch) needs it; ' +
            'DROP INDEX CONCURRENTLY avoids blocking writes',
        );
      }

      return {
        headline:
          matching === 0
            ? `no ${what} indexes${larger}${scanned}`
            : `${matching === 1 ? `1 ${what} index` : `${formatCount(matching)} ${what} indexes`}${larger}${scanned}: ${formatBytes(allBytes)} in all`,
        columns: maxScans > 0 ? COLUMNS_WITH_SCANS : COLUMNS,
        rows,
        truncated,
        notes,
        data: {
          unusedIndexes: matching,
          totalBytes: allBytes,
          minSizeBytes: ctx.args.min_size,
          maxScans,
          statsReset: window.statsReset,
          serverStart: window.serverStart,
          inRecovery: window.inRecovery,
          skippedLocked: found.filter((r) => r.locked).map((r) => r.index),
        },
      };
    });
  },
});
