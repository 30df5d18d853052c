// Since when the cumulative statistics counters (scans, block hits) of the target database count.
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

function shortTime(isoText: string): string {
  return `${isoText.slice(0, 19).replace('T', ' ')}Z`;
}

/** One line saying what period the counters cover, for `notes`. */
export function statsWindowNote(window: StatsWindow): string {
  if (window.statsReset)
    return `counters cover the time since statistics were reset at ${shortTime(window.statsReset)}`;
  const up = window.serverStart ? ` (server up since ${shortTime(window.serverStart)})` : '';
  return (
    'statistics were never reset in this database: counters cover its whole life, except that they restart ' +
    `from zero after a crash, an immediate shutdown, a failover or a restore${up}`
  );
}

/** Why a counter seen on one server says nothing about the others. */
export function replicaNote(window: StatsWindow): string {
  return window.inRecovery
    ? 'this target is a replica: its counters count only queries run on it, not those on the primary or other replicas'
    : 'counters count only queries run on this server: replicas keep their own, so check them too';
}
