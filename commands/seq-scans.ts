// `/db seq-scans <target> [--limit 20]`: the tables most often read by sequential scans.
import { z } from 'zod';
import { intArg } from '../src/core/args.js';
import { defineOperation } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';
import { statsDisclaimer, statsWindow } from './lib/stats-window.js';

const MAX_LIMIT = 1000;

/** pg_stat_all_tables.last_seq_scan exists from PostgreSQL 16 on. */
const LAST_SEQ_SCAN_SINCE = 160000;

/** User tables with at least one sequential scan, most scanned first. $1 = how many. */
function seqScansSql(lastSeqScan: boolean): string {
  return `
SELECT format('%I.%I', t.schemaname, t.relname) AS "table",
       t.seq_scan,
       t.seq_tup_read,
       t.idx_scan,
       t.n_live_tup AS live_rows,
       ${lastSeqScan ? 't.last_seq_scan' : 'NULL::timestamptz'} AS last_seq_scan,
       count(*) OVER () AS matching,
       sum(t.seq_scan) OVER () AS all_scans
FROM pg_stat_user_tables t
WHERE t.seq_scan > 0
ORDER BY t.seq_scan DESC, t.seq_tup_read DESC, "table"
LIMIT $1
`;
}

interface ScanRow {
  table: string;
  seq_scan: number;
  seq_tup_read: number;
  idx_scan: number | null;
  live_rows: number;
  last_seq_scan: Date | null;
  matching: number;
  all_scans: number;
}

const COLUMNS: Column[] = [
  { key: 'table', label: 'table', kind: 'text' },
  { key: 'seq_scans', label: 'seq scans', kind: 'count' },
  { key: 'seq_rows_read', label: 'rows read by them', kind: 'count' },
  { key: 'index_scans', label: 'index scans', kind: 'count' },
  { key: 'live_rows', label: 'live rows', kind: 'count' },
];

const LAST_SEQ_SCAN_COLUMN: Column = { key: 'last_seq_scan', label: 'last seq scan', kind: 'timestamp' };

function scansText(n: number): string {
  return `${formatCount(n)} sequential ${n === 1 ? 'scan' : 'scans'}`;
}

export default defineOperation({
  name: 'seq-scans',
  summary: 'Tables most often read by sequential scans, with the rows those scans read',
  usage: 'seq-scans <target> [--limit 20]',
  description:
    'Lists user tables by number of sequential scans since statistics were reset, with the rows those ' +
    'scans read, the index scans and live rows (PostgreSQL 16+ also shows when the last one was). ' +
    'Many sequential scans of a big table usually mean a missing index; on small tables they are normal.',
  args: z.object({ limit: intArg({ min: 1, max: MAX_LIMIT, default: 20 }) }),
  risk: 'read',
  async run(ctx) {
    const lastSeqScan = (await ctx.db.serverVersion()) >= LAST_SEQ_SCAN_SINCE;
    return await ctx.db.read(async (session) => {
      const window = await statsWindow(session);
      const { rows: found, truncated } = await session.cursor<ScanRow>(seqScansSql(lastSeqScan), [
        ctx.args.limit,
      ]);
      const matching = found[0]?.matching ?? 0;

      const rows: Row[] = found.map((r) => ({
        table: r.table,
        seq_scans: r.seq_scan,
        seq_rows_read: r.seq_tup_read,
        index_scans: r.idx_scan,
        live_rows: r.live_rows,
        ...(lastSeqScan
          ? { last_seq_scan: r.last_seq_scan instanceof Date ? r.last_seq_scan.toISOString() : null }
          : {}),
      }));

      const notes: string[] = [];
      if (matching > found.length) {
        notes.push(
          `showing the ${formatCount(found.length)} most scanned of ${formatCount(matching)} tables` +
            (!truncated && ctx.args.limit < MAX_LIMIT ? `; --limit (up to ${MAX_LIMIT}) shows more` : ''),
        );
      }
      notes.push(statsDisclaimer(window, ctx.now));

      return {
        headline:
          matching === 0
            ? 'no sequential scans of user tables counted'
            : `${scansText(Number(found[0]?.all_scans ?? 0))} on ` +
              `${matching === 1 ? '1 table' : `${formatCount(matching)} tables`}`,
        columns: lastSeqScan ? [...COLUMNS, LAST_SEQ_SCAN_COLUMN] : COLUMNS,
        rows,
        truncated,
        notes,
        data: {
          tables: matching,
          seqScans: Number(found[0]?.all_scans ?? 0),
          statsReset: window.statsReset,
          inRecovery: window.inRecovery,
        },
      };
    });
  },
});
