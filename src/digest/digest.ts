// `/db digest <target> [--since 7d]` and the digest schedule: per target, the biggest growers, new slow
// queries, unused indexes that appeared, and the forecasts, with charts — what a weekly review reads.
import { type ChartSeries, renderChartPng } from '../charts/chart.js';
import { rateOf } from '../charts/forecast.js';
import type { ResolvedTarget } from '../config/schema.js';
import type { Handler } from '../core/builtins/common.js';
import { ok, words } from '../core/builtins/common.js';
import type { CoreServices, InvocationContext } from '../core/context.js';
import { UserError } from '../core/errors.js';
import { wrapWords } from '../core/operation.js';
import { formatBytes } from '../core/render.js';
import { clipInput } from '../core/suggest.js';
import { displayTimeZone, formatTime } from '../core/time-format.js';
import type { Attachment, Row } from '../core/types.js';
import { visible } from '../core/visible.js';
import { sinceOf } from '../history/args.js';
import { targetForecasts } from '../history/forecasts.js';
import type { DigestSnapshot } from '../history/store.js';
import { seriesOf, tableGrowth } from '../history/trend.js';

const USAGE = 'usage: /db digest <target> [--since 7d]';
const WIDTH = 80;
const LISTED = 5;
const MAX_POINTS = 5_000;

export interface Digest {
  headline: string;
  text: string;
  attachments: Attachment[];
  data: Record<string, unknown>;
}

/** Runs a read operation of the catalog as the asking person (policy and audit as always); rows or why not. */
async function readRows(
  core: CoreServices,
  ctx: InvocationContext,
  target: ResolvedTarget,
  operation: string,
): Promise<{ rows: Row[] } | { why: string }> {
  const spec = core.catalog.get(operation);
  if (!spec) return { why: `${operation} is not available` };
  const reply = await core.runOperation(ctx, spec, target, []);
  if (reply.status !== 'ok' || !reply.result)
    return { why: (reply.message.split('\n')[0] ?? '').slice(0, 200) };
  return { rows: reply.result.rows };
}

/** The digest of one target over a window ending now; saves what it saw for the next one. */
export async function buildDigest(
  core: CoreServices,
  ctx: InvocationContext,
  target: ResolvedTarget,
  since: Date,
): Promise<Digest> {
  const store = core.history;
  if (!store)
    throw new UserError('invalid_argument', 'history is not kept by this dbops (no state database for it)');
  const now = core.now();
  const lines: string[] = [];
  /** A wrapped entry: every line indented alike (2 under a heading, 4 under a sub-heading). */
  const add = (text: string, indent = '  ') => lines.push(...wrapWords(text, WIDTH, indent));
  const headline = `digest of ${target.name}: ${formatTime(since)} → ${formatTime(now)}`;

  // Size and the biggest growers.
  const size = await store.series({
    target: target.name,
    metric: 'database_bytes',
    since,
    limit: MAX_POINTS,
  });
  const sizeSeries = seriesOf('database_bytes', target.name, size.points);
  const sizePoints = sizeSeries[0]?.points ?? [];
  const top = (await tableGrowth(store, target.name, since)).slice(0, LISTED);
  lines.push('', 'size');
  if (sizePoints.length >= 2) {
    const first = sizePoints[0]?.value ?? 0;
    const last = sizePoints.at(-1)?.value ?? 0;
    const rate = rateOf(sizePoints);
    const delta = last - first;
    add(
      `${formatBytes(first)} → ${formatBytes(last)} (${delta >= 0 ? '+' : '−'}${formatBytes(Math.abs(delta))}${rate ? `, ${rate.perDay >= 0 ? '+' : '−'}${formatBytes(Math.abs(rate.perDay))}/day` : ''})`,
      '  ',
    );
  } else add('not enough samples yet (a schedule of kind sample keeps them)', '  ');
  if (top.length > 0) {
    lines.push('  biggest growers:');
    for (const g of top)
      add(`${visible(g.table, 63)}: +${formatBytes(g.grewBytes)} (now ${formatBytes(g.nowBytes)})`, '    ');
  }

  // Forecasts.
  const forecasts = await targetForecasts(store, target, now, undefined);
  lines.push('', 'forecasts');
  if (forecasts.length === 0) add('none yet: they need samples of xid age, size or sequences', '  ');
  for (const f of forecasts) add(`${f.text}`, '  ');

  // What is new since the last digest.
  const previous = await store.lastDigest(target.name);
  const slow = await readRows(core, ctx, target, 'slow-queries');
  const unused = await readRows(core, ctx, target, 'unused-indexes');
  const slowIds =
    'rows' in slow ? slow.rows.flatMap((r) => (typeof r.queryid === 'string' ? [r.queryid] : [])) : [];
  const unusedNames =
    'rows' in unused ? unused.rows.flatMap((r) => (typeof r.index === 'string' ? [r.index] : [])) : [];
  const seenSlow = new Set(previous?.slowQueries ?? []);
  const seenUnused = new Set(previous?.unusedIndexes ?? []);
  const newSlow =
    'rows' in slow ? slow.rows.filter((r) => typeof r.queryid === 'string' && !seenSlow.has(r.queryid)) : [];
  const newUnused =
    'rows' in unused
      ? unused.rows.filter((r) => typeof r.index === 'string' && !seenUnused.has(r.index))
      : [];
  const since0 = previous ? 'since the last digest' : '(first digest: everything is new)';
  lines.push('', `new slow queries ${since0}`);
  if ('why' in slow) add(`not available: ${slow.why}`, '  ');
  else if (newSlow.length === 0) lines.push('  none');
  for (const r of newSlow.slice(0, LISTED)) {
    add(
      `${r.queryid}: ${visible(
        String(r.query ?? '')
          .replace(/\s+/g, ' ')
          .trim(),
        56,
      )}`,
      '  ',
    );
  }
  if (newSlow.length > LISTED)
    lines.push(`  and ${newSlow.length - LISTED} more: /db slow-queries ${target.name}`);
  lines.push('', `unused indexes that appeared ${since0}`);
  if ('why' in unused) add(`not available: ${unused.why}`, '  ');
  else if (newUnused.length === 0) lines.push('  none');
  for (const r of newUnused.slice(0, LISTED)) {
    add(
      `${visible(String(r.index), 63)} on ${visible(String(r.table ?? ''), 63)} (${formatBytes(Number(r.bytes ?? 0))})`,
      '  ',
    );
  }
  if (newUnused.length > LISTED)
    lines.push(`  and ${newUnused.length - LISTED} more: /db unused-indexes ${target.name}`);

  // Charts: the database size (with its budget) and the biggest growers.
  const attachments: Attachment[] = [];
  if (sizePoints.length >= 2) {
    const budget = target.forecast?.diskBudgetBytes;
    const png = await renderChartPng({
      title: `${target.name}: database size`,
      unit: 'bytes',
      series: sizeSeries,
      timeZone: displayTimeZone(),
      ...(budget ? { limit: { value: budget, label: `disk budget ${formatBytes(budget)}` } } : {}),
    });
    attachments.push({
      filename: `digest-${target.name}-size.png`,
      contentType: 'image/png',
      content: '',
      bytes: png,
    });
  }
  if (top.length > 0) {
    const tables = await store.series({
      target: target.name,
      metric: 'table_bytes',
      since,
      limit: MAX_POINTS,
    });
    const wanted = new Set(top.map((g) => g.table));
    const series: ChartSeries[] = seriesOf('table_bytes', target.name, tables.points).filter((s) =>
      wanted.has(s.name),
    );
    const png = await renderChartPng({
      title: `${target.name}: biggest growers`,
      unit: 'bytes',
      series,
      timeZone: displayTimeZone(),
    });
    attachments.push({
      filename: `digest-${target.name}-growers.png`,
      contentType: 'image/png',
      content: '',
      bytes: png,
    });
  }

  if ('rows' in slow || 'rows' in unused) {
    const snapshot: DigestSnapshot = {
      slowQueries: 'rows' in slow ? slowIds : (previous?.slowQueries ?? []),
      unusedIndexes: 'rows' in unused ? unusedNames : (previous?.unusedIndexes ?? []),
    };
    await store.saveDigest(target.name, now, snapshot);
  }
  const text = [...wrapWords(headline, WIDTH, ''), ...lines].join('\n');
  return {
    headline,
    text,
    attachments,
    data: {
      target: target.name,
      since: since.toISOString(),
      until: now.toISOString(),
      growers: top,
      forecasts: forecasts.map((f) => ({
        metric: f.metric,
        ...(f.subject ? { subject: f.subject } : {}),
        kind: f.forecast.kind,
        text: f.text,
      })),
      newSlowQueries: newSlow.map((r) => ({ queryid: r.queryid, query: r.query })),
      newUnusedIndexes: newUnused.map((r) => ({ index: r.index, table: r.table, bytes: r.bytes })),
    },
  };
}

export const digest: Handler = async (core, ctx, tokens) => {
  const [name] = words(tokens);
  const visibleTargets = core.visibleTargets(ctx.person);
  const target =
    name === undefined
      ? await core.boundTarget(ctx.inv)
      : visibleTargets.find((t) => t.name.toLowerCase() === name.toLowerCase());
  if (!target) {
    throw new UserError(
      name ? 'unknown_target' : 'missing_target',
      `${name ? `unknown target \`${clipInput(name)}\`` : 'which target?'} ${USAGE}`,
    );
  }
  const since = sinceOf(core, tokens, USAGE);
  const built = await buildDigest(core, ctx, target, since);
  return ok(ctx, built.headline, built.text, {
    target: target.name,
    ephemeral: false,
    result: {
      headline: built.headline,
      // Preformatted lines (display text): every surface shows them as the digest reads.
      columns: [{ key: 'line', label: 'digest', kind: 'text' }],
      rows: built.text
        .split('\n')
        .slice(1)
        .map((line) => ({ line })),
      truncated: false,
      attachments: built.attachments,
      data: built.data,
      display: 'text',
    },
  });
};
