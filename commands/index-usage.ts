// `/db index-usage <target>`: per table, the share of scans that used an index; big tables that rarely do.
import { z } from 'zod';
import { defineOperation } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';
import { statsDisclaimer, statsWindow } from './lib/stats-window.js';

/** Below this share of index scans, a table with at least LOW_USAGE_ROWS live rows probably misses an index. */
const LOW_USAGE_PERCENT = 95;
const LOW_USAGE_ROWS = 10_000;
/**
 * Below this many scans (sequential + index) since the counters started, a table is not judged: three
 * sequential scans of a fresh table (a migration, a count) say nothing about its indexes, yet make 0%.
 * PgHero likewise allows an index 50 scans before it stops calling it unused; a hundred scans of a table
 * leave room for such startup reads.
 */
const MIN_SCANS = 100;

/*
 * idx_scan is NULL for a table without any index: it counts as 0 index scans. A table with no scan at all
 * has no ratio. The share is rounded down to a tenth (99.98% is 99.9%, never 100%), as cache-hit does.
 * Only tables scanned at least $3 times are judged. Tables flagged as low usage come first, each group by
 * live rows, biggest first.
 */
const INDEX_USAGE_SQL = `
WITH usage AS (
  SELECT format('%I.%I', t.schemaname, t.relname) AS "table",
         t.seq_scan,
         COALESCE(t.idx_scan, 0) AS idx_scan,
         t.idx_scan IS NOT NULL AS has_index,
         t.n_live_tup AS live_rows,
         CASE WHEN t.seq_scan + COALESCE(t.idx_scan, 0) > 0
              THEN floor(1000.0 * COALESCE(t.idx_scan, 0) / (t.seq_scan + COALESCE(t.idx_scan, 0))) / 10
         END AS index_percent,
         t.seq_scan + COALESCE(t.idx_scan, 0) >= $3 AS judged
  FROM pg_stat_user_tables t
  JOIN pg_class c ON c.oid = t.relid
  -- a partitioned table is never scanned itself: its partitions are
  WHERE c.relkind <> 'p'
)
SELECT u.*,
       (u.judged AND u.index_percent < $1 AND u.live_rows >= $2) AS low,
       count(*) FILTER (WHERE u.judged AND u.index_percent < $1 AND u.live_rows >= $2) OVER () AS low_count,
       count(*) FILTER (WHERE NOT u.judged) OVER () AS unjudged_count,
       count(*) OVER () AS matching
FROM usage u
ORDER BY (u.judged AND u.index_percent < $1 AND u.live_rows >= $2) DESC, u.live_rows DESC, u."table"
`;

interface UsageRow {
  table: string;
  seq_scan: number;
  idx_scan: number;
  has_index: boolean;
  live_rows: number;
  index_percent: number | null;
  judged: boolean;
  low: boolean | null;
  low_count: number;
  unjudged_count: number;
  matching: number;
}

const COLUMNS: Column[] = [
  { key: 'table', label: 'table', kind: 'text' },
  { key: 'index_percent', label: 'index use', kind: 'percent' },
  { key: 'seq_scans', label: 'seq scans', kind: 'count' },
  { key: 'index_scans', label: 'index scans', kind: 'count' },
  { key: 'live_rows', label: 'live rows', kind: 'count' },
  { key: 'verdict', label: 'verdict', kind: 'text' },
];

function verdictOf(r: UsageRow): string | null {
  if (!r.judged) {
    const scans = r.seq_scan + r.idx_scan;
    return `insufficient data (${formatCount(scans)} ${scans === 1 ? 'scan' : 'scans'})`;
  }
  if (r.low === true) return r.has_index ? 'low index usage' : 'low index usage (no index)';
  return null;
}

export default defineOperation({
  name: 'index-usage',
  summary: 'Per table, how many scans used an index; flags big tables that mostly scan sequentially',
  usage: 'index-usage <target>',
  description:
    'For every user table: the share of scans that used an index (idx_scan / (seq_scan + idx_scan)), ' +
    `the scan counts and live rows, the share rounded down. "insufficient data" below ${MIN_SCANS} scans; tables of ` +
    `at least ${formatCount(LOW_USAGE_ROWS)} live rows using an index for less than ${LOW_USAGE_PERCENT}% of ` +
    'their scans are flagged and listed first: they are the likely missing indexes.',
  args: z.object({}),
  risk: 'read',
  async run(ctx) {
    return await ctx.db.read(async (session) => {
      const window = await statsWindow(session);
      const { rows: found, truncated } = await session.cursor<UsageRow>(INDEX_USAGE_SQL, [
        LOW_USAGE_PERCENT,
        LOW_USAGE_ROWS,
        MIN_SCANS,
      ]);
      const low = found.filter((r) => r.low === true).map((r) => r.table);
      const lowCount = found[0]?.low_count ?? 0;
      const matching = found[0]?.matching ?? 0;
      const unjudged = found[0]?.unjudged_count ?? 0;

      const rows: Row[] = found.map((r) => ({
        table: r.table,
        index_percent: r.index_percent,
        seq_scans: r.seq_scan,
        index_scans: r.idx_scan,
        live_rows: r.live_rows,
        verdict: verdictOf(r),
      }));

      const notes = [
        `flagged: at least ${formatCount(LOW_USAGE_ROWS)} live rows and under ${LOW_USAGE_PERCENT}% of scans using an index`,
        // Said once: the headline already says it when no table could be judged.
        ...(unjudged > 0 && unjudged < matching
          ? [`insufficient data: scanned fewer than ${MIN_SCANS} times since the counters started`]
          : []),
        statsDisclaimer(window, ctx.now),
      ];
      if (truncated)
        notes.unshift(`showing ${formatCount(found.length)} of ${formatCount(matching)} tables (row cap)`);

      let headline: string;
      if (matching === 0) headline = 'no user tables';
      else if (lowCount === 0 && unjudged === matching)
        headline = `insufficient data: no table was scanned ${MIN_SCANS} times yet`;
      else if (lowCount === 0) headline = `no table of ${formatCount(matching)} has low index usage`;
      else {
        const names =
          low.slice(0, 5).join(', ') + (lowCount > 5 ? ` and ${formatCount(lowCount - 5)} more` : '');
        headline = `${lowCount === 1 ? '1 table has' : `${formatCount(lowCount)} tables have`} low index usage: ${names}`;
      }

      return {
        headline,
        columns: COLUMNS,
        rows,
        truncated,
        notes,
        data: {
          tables: matching,
          lowUsage: low,
          lowUsageCount: lowCount,
          lowUsagePercent: LOW_USAGE_PERCENT,
          lowUsageRows: LOW_USAGE_ROWS,
          minScans: MIN_SCANS,
          insufficientData: unjudged,
          statsReset: window.statsReset,
          inRecovery: window.inRecovery,
        },
      };
    });
  },
});
