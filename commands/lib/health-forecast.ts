// `health`'s forecast check: from the stored history, which limit is reached within the target's horizon
// (xid age → wraparound stop, database size → disk budget, connections → the connection limit).
import { DEFAULT_FORECAST_HORIZON_SECONDS } from '../../src/config/schema.js';
import type { OperationContext } from '../../src/core/operation.js';
import { type LimitForecast, targetForecasts, withinHorizon } from '../../src/history/forecasts.js';

export interface ForecastCheck {
  check: 'forecast';
  status: 'ok' | 'warn';
  detail: string;
  note?: string;
  values: Record<string, unknown>;
}

function days(seconds: number): string {
  const d = Math.round(seconds / 86_400);
  return `${d} day${d === 1 ? '' : 's'}`;
}

/**
 * The check, or undefined when this dbops keeps no history or has no samples of the target yet (health then
 * answers as before). A state database that cannot be read leaves the check out rather than failing health.
 */
export async function forecastCheck(
  ctx: Pick<OperationContext<unknown>, 'history' | 'target' | 'now'>,
  connectionLimit: number | undefined,
): Promise<ForecastCheck | undefined> {
  if (!ctx.history) return undefined;
  let forecasts: LimitForecast[];
  try {
    forecasts = await targetForecasts(ctx.history, ctx.target, ctx.now, connectionLimit);
  } catch {
    return undefined;
  }
  if (forecasts.length === 0) return undefined;
  const horizon = days(ctx.target.forecast?.horizonSeconds ?? DEFAULT_FORECAST_HORIZON_SECONDS);
  const soon = forecasts.filter((f) => withinHorizon(f, ctx.target));
  const values = {
    horizonDays: Math.round(
      (ctx.target.forecast?.horizonSeconds ?? DEFAULT_FORECAST_HORIZON_SECONDS) / 86_400,
    ),
    forecasts: forecasts.map((f) => ({
      metric: f.metric,
      limit: f.limit,
      kind: f.forecast.kind,
      ...(f.forecast.kind === 'reaches' ? { at: f.forecast.at.toISOString(), days: f.forecast.days } : {}),
    })),
  };
  if (soon.length === 0) {
    return { check: 'forecast', status: 'ok', detail: `no limit reached within ${horizon}`, values };
  }
  const target = ctx.target.name;
  return {
    check: 'forecast',
    status: 'warn',
    detail: `${soon.length} limit${soon.length === 1 ? '' : 's'} within ${horizon}`,
    note: `forecast: ${soon.map((f) => f.text).join('; ')}; \`/db trend ${target} ${soon[0]?.metric}${soon[0]?.subject ? ` --sequence ${soon[0].subject}` : ''}\` shows the curve`,
    values,
  };
}
