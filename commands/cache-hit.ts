// `/db cache-hit <target>`: how often table and index blocks were found in shared buffers, with a verdict.
import { z } from 'zod';
import { defineOperation } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';
import { statsDisclaimer, statsWindow } from './lib/stats-window.js';

/** The runbooks' "cache hit ratio should be > 99%". */
const OK_PERCENT = 99;

/** Below this many block accesses a ratio says nothing yet (a freshly reset or idle database). */
const MIN_BLOCKS = 1000;

/*
 * Sums over the user tables' heap and the user indexes (temporary tables included, as in the views).
 * A "read" is a block not found in shared buffers: it may still have come from the OS page cache.
 */
const CACHE_HIT_SQL = `
SELECT 'tables' AS kind,
       COALESCE(sum(t.heap_blks_hit), 0) AS hit,
       COALESCE(sum(t.heap_blks_read), 0) AS read
FROM pg_statio_user_tables t
UNION ALL
SELECT 'indexes', COALESCE(sum(i.idx_blks_hit), 0), COALESCE(sum(i.idx_blks_read), 0)
FROM pg_statio_user_indexes i
`;

interface HitRow {
  kind: 'tables' | 'indexes';
  hit: number;
  read: number;
}

type Verdict = 'ok' | 'warn' | 'not enough reads yet';

const COLUMNS: Column[] = [
  { key: 'kind', label: 'blocks of', kind: 'text' },
  { key: 'hit_percent', label: 'hit ratio', kind: 'percent' },
  { key: 'verdict', label: 'verdict', kind: 'text' },
  { key: 'hit_blocks', label: 'hits', kind: 'count' },
  { key: 'read_blocks', label: 'reads', kind: 'count' },
  { key: 'why', label: 'why', kind: 'text' },
];

interface Measured {
  kind: HitRow['kind'];
  hit: number;
  read: number;
  percent: number | null;
  verdict: Verdict;
  why: string;
}

function measure(row: HitRow): Measured {
  const hit = Number(row.hit);
  const read = Number(row.read);
  const total = hit + read;
  const percent = total > 0 ? (100 * hit) / total : null;
  if (percent === null || total < MIN_BLOCKS) {
    return {
      kind: row.kind,
      hit,
      read,
      percent,
      verdict: 'not enough reads yet',
      why: `${formatCount(total)} block accesses counted; a ratio needs at least ${formatCount(MIN_BLOCKS)}`,
    };
  }
  const shown = percentText(percent);
  return percent > OK_PERCENT
    ? { kind: row.kind, hit, read, percent, verdict: 'ok', why: `${shown} > ${OK_PERCENT}%` }
    : {
        kind: row.kind,
        hit,
        read,
        percent,
        verdict: 'warn',
        why: `${shown} is not above ${OK_PERCENT}%: ${formatCount(read)} blocks were not in PostgreSQL's buffers`,
      };
}

/** Two decimals, never rounded up to the threshold: 98.996% reads 98.99%, not 99.00%. */
function percentText(percent: number): string {
  return `${(Math.floor(percent * 100) / 100).toFixed(2)}%`;
}

function headlineOf(ratios: readonly Measured[]): string {
  const parts = ratios.map(
    (r) => `${r.kind} ${r.percent === null ? 'n/a' : percentText(r.percent)} (${r.verdict})`,
  );
  const worst = ratios.some((r) => r.verdict === 'warn')
    ? 'warn'
    : ratios.every((r) => r.verdict === 'ok')
      ? 'ok'
      : 'not enough reads yet';
  return `cache hit ${worst}: ${parts.join(', ')}`;
}

export default defineOperation({
  name: 'cache-hit',
  summary: `Table and index cache hit ratios, with the runbook's "should be > ${OK_PERCENT}%" verdict`,
  usage: 'cache-hit <target>',
  description:
    'Sums heap block hits and reads over pg_statio_user_tables and index block hits and reads over ' +
    'pg_statio_user_indexes, and gives each ratio a verdict: ok above 99%, warn otherwise, and "not ' +
    `enough reads yet" under ${formatCount(MIN_BLOCKS)} block accesses. Reads may still come from the OS ` +
    'page cache; a warn means the working set does not fit shared_buffers.',
  args: z.object({}),
  risk: 'read',
  async run(ctx) {
    return await ctx.db.read(async (session) => {
      const window = await statsWindow(session);
      const found = await session.query<HitRow>(CACHE_HIT_SQL);
      const ratios = found.map(measure);
      const rows: Row[] = ratios.map((r) => ({
        kind: r.kind,
        hit_percent: r.percent,
        verdict: r.verdict,
        hit_blocks: r.hit,
        read_blocks: r.read,
        why: r.why,
      }));
      const byKind = Object.fromEntries(
        ratios.map((r) => [
          r.kind,
          { hitBlocks: r.hit, readBlocks: r.read, hitPercent: r.percent, verdict: r.verdict },
        ]),
      );
      return {
        headline: headlineOf(ratios),
        columns: COLUMNS,
        rows,
        truncated: false,
        notes: [statsDisclaimer(window, ctx.now)],
        data: { ...byKind, okAbovePercent: OK_PERCENT, minBlocks: MIN_BLOCKS, statsReset: window.statsReset },
      };
    });
  },
});
