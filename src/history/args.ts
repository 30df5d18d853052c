// What `/db history` and `/db trend` share: the target and metric they name, --since and --table.

import type { ResolvedTarget } from '../config/schema.js';
import { option, words } from '../core/builtins/common.js';
import type { CoreServices, InvocationContext } from '../core/context.js';
import { parseDuration } from '../core/duration.js';
import { UserError } from '../core/errors.js';
import type { Token } from '../core/grammar.js';
import { clipInput, closest } from '../core/suggest.js';
import { METRIC_ALIASES, METRIC_NAMES, type Metric, metricNamed } from './metrics.js';
import type { HistoryStore, SeriesPoint } from './store.js';

export const DEFAULT_SINCE_SECONDS = 7 * 86_400;

function didYouMean(guesses: readonly string[]): string {
  return guesses.length > 0 ? ` — did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?` : '';
}

/** `<target> <metric>`, or just `<metric>` in a channel bound to a target. */
export async function targetAndMetric(
  core: CoreServices,
  ctx: InvocationContext,
  tokens: readonly Token[],
  usage: string,
): Promise<{ target: ResolvedTarget; metric: Metric }> {
  const given = words(tokens);
  const visible = core.visibleTargets(ctx.person);
  let [targetName, metricName] = given;
  if (targetName !== undefined && metricName === undefined && metricNamed(targetName)) {
    metricName = targetName;
    targetName = (await core.boundTarget(ctx.inv))?.name;
  }
  const target = visible.find((t) => t.name.toLowerCase() === targetName?.toLowerCase());
  if (!targetName || !target) {
    const guesses = targetName
      ? closest(
          targetName,
          visible.map((t) => t.name),
        )
      : [];
    throw new UserError(
      targetName ? 'unknown_target' : 'missing_target',
      `${targetName ? `unknown target \`${clipInput(targetName)}\`` : 'which target?'}${didYouMean(guesses)} ${usage}`,
    );
  }
  const metric = metricName === undefined ? undefined : metricNamed(metricName);
  if (!metric) {
    // Aliases are guessed too: `sizee` → `size`.
    const guesses = metricName ? closest(metricName, [...METRIC_NAMES, ...Object.keys(METRIC_ALIASES)]) : [];
    throw new UserError(
      'invalid_argument',
      `${metricName ? `unknown metric \`${clipInput(metricName)}\`` : 'which metric?'}${guesses.length > 0 ? didYouMean(guesses) : '.'} Metrics: ${METRIC_NAMES.join(', ')}. ${usage}`,
    );
  }
  return { target, metric };
}

/** --since as a time before now (default 7 days). */
export function sinceOf(core: CoreServices, tokens: readonly Token[], usage: string): Date {
  const sinceText = option(tokens, 'since');
  const seconds = sinceText === undefined ? DEFAULT_SINCE_SECONDS : parseDuration(sinceText);
  if (seconds === undefined || seconds <= 0) {
    throw new UserError(
      'invalid_argument',
      `argument --since: expected a duration like 12h or 7d, got \`${clipInput(sinceText ?? '')}\`. ${usage}`,
    );
  }
  return new Date(core.now().getTime() - seconds * 1000);
}

/** --table (table_bytes) or --sequence (sequence_used_percent) as the stored subject: `schema.name`. */
export function tableSubject(metric: Metric, tokens: readonly Token[], usage: string): string | undefined {
  const table = option(tokens, 'table');
  const sequence = option(tokens, 'sequence');
  if (table !== undefined && metric !== 'table_bytes') {
    throw new UserError('invalid_argument', `--table goes with table_bytes only. ${usage}`);
  }
  if (sequence !== undefined && metric !== 'sequence_used_percent') {
    throw new UserError('invalid_argument', `--sequence goes with sequence_used_percent only. ${usage}`);
  }
  const name = table ?? sequence;
  if (name === undefined) return undefined;
  return name.includes('.') ? name : `public.${name}`;
}

/**
 * What `/db history` and `/db trend` read: the named target, metric and subject since --since, at most
 * `limit` points (the newest when there are more).
 */
export async function readMetric(
  core: CoreServices,
  ctx: InvocationContext,
  tokens: readonly Token[],
  usage: string,
  limit: number,
): Promise<{
  store: HistoryStore;
  target: ResolvedTarget;
  metric: Metric;
  subject: string | undefined;
  since: Date;
  points: SeriesPoint[];
  more: boolean;
}> {
  const store = core.history;
  if (!store) {
    throw new UserError('invalid_argument', 'history is not kept by this dbops (no state database for it)');
  }
  const { target, metric } = await targetAndMetric(core, ctx, tokens, usage);
  const subject = tableSubject(metric, tokens, usage);
  const since = sinceOf(core, tokens, usage);
  const { points, more } = await store.series({ target: target.name, metric, since, subject, limit });
  return { store, target, metric, subject, since, points, more };
}
