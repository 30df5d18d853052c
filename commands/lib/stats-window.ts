// Since when the cumulative statistics counters (scans, block hits) of the target database count.

import { formatTimeAndAge } from '../../src/core/time-format.js';
import type { Session } from '../../src/engine/types.js';

const STATS_WINDOW_SQL = `
SELECT d.stats_reset, pg_postmaster_start_time() AS server_start, pg_is_in_recovery() AS in_recovery
FROM pg_stat_database d
WHERE d.datname = current_database()
`;

export interface StatsWindow {
  /** When pg_stat_reset() last ran in this database (ISO), or null when never. */
  statsReset: string | null;
  /** When the server started (ISO). */
  serverStart: string | null;
  /** True on a standby: its counters count only the queries run on it. */
  inRecovery: boolean;
}

function iso(value: unknown): string | null {
  return value instanceof Date ? value.toISOString() : null;
}

export async function statsWindow(session: Session): Promise<StatsWindow> {
  const [row] = await session.query<{ stats_reset: unknown; server_start: unknown; in_recovery: boolean }>(
    STATS_WINDOW_SQL,
  );
  return {
    statsReset: iso(row?.stats_reset),
    serverStart: iso(row?.server_start),
    inRecovery: row?.in_recovery === true,
  };
}

/** When the counters started, as people read it: "2026-12-06 07:02 UTC (4m ago)". */
function since(isoText: string, now: Date): string {
  return formatTimeAndAge(new Date(isoText), now);
}

/**
 * The one statistics disclaimer of an answer: since when the counters count, and that they are this
 * server's own. An answer carries it once, however many sections or rows read the counters.
 */
export function statsDisclaimer(window: StatsWindow, now: Date): string {
  const where = window.inRecovery
    ? 'this replica only (not the primary or other replicas)'
    : 'this server only (replicas keep their own)';
  if (window.statsReset) return `statistics since ${since(window.statsReset, now)}, on ${where}`;
  const up = window.serverStart ? `; server up since ${since(window.serverStart, now)}` : '';
  return (
    'statistics never reset: they cover the database’s whole life, or since its last crash, immediate ' +
    `shutdown, failover or restore${up}; on ${where}`
  );
}
