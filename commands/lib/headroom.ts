// Connections headroom shared by connections and health: client connections in use against the usable slots.
import { formatCount } from '../../src/core/render.js';
import type { Session } from '../../src/engine/types.js';
import { isDbops } from './activity.js';

const SETTINGS_RESERVED_PG16 = "current_setting('reserved_connections')::int";

/**
 * Client connections in use on the whole server (max_connections is server-wide) against the slots an
 * ordinary role may use. Since PostgreSQL 10 pg_stat_activity also lists background processes, and since
 * 12 walsenders have their own slots, so only client backends count. A session the bot may not inspect
 * (no backend_type) counts when it has a database and a role, as client backends do; autovacuum workers
 * have no role, so they never count.
 */
function headroomSql(reservedExpr: string): string {
  return `
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       ${reservedExpr} AS reserved,
       count(*) FILTER (WHERE a.backend_type = 'client backend')::int AS clients,
       count(*) FILTER (WHERE a.backend_type IS NULL AND a.datid IS NOT NULL AND a.usesysid IS NOT NULL)::int AS hidden,
       count(*) FILTER (WHERE a.backend_type = 'client backend' AND ${isDbops('$1')})::int AS dbops
FROM pg_stat_activity a
`;
}

export interface Headroom {
  maxConnections: number;
  superuserReserved: number;
  /** reserved_connections (PostgreSQL 16+), else 0. */
  reserved: number;
  /** Slots an ordinary role may use. */
  usable: number;
  /** Client backends (including dbops' own and any the bot cannot inspect). */
  inUse: number;
  dbops: number;
  hidden: number;
  /** inUse / usable × 100, to 0.1. */
  percent: number;
}

/** `version` is server_version_num: reserved_connections exists from PostgreSQL 16. */
export async function readHeadroom(
  session: Session,
  version: number,
  ownPids: readonly number[],
): Promise<Headroom> {
  const sql = headroomSql(version >= 160000 ? SETTINGS_RESERVED_PG16 : '0');
  const [row] = await session.query<{
    max_connections: number;
    superuser_reserved: number;
    reserved: number;
    clients: number;
    hidden: number;
    dbops: number;
  }>(sql, [ownPids]);
  if (!row) throw new Error('the connections query returned no row');
  const usable = Math.max(0, row.max_connections - row.superuser_reserved - row.reserved);
  const inUse = row.clients + row.hidden;
  return {
    maxConnections: row.max_connections,
    superuserReserved: row.superuser_reserved,
    reserved: row.reserved,
    usable,
    inUse,
    dbops: row.dbops,
    hidden: row.hidden,
    percent: usable === 0 ? 100 : Math.round((inUse / usable) * 1000) / 10,
  };
}

/** "43 of 97 usable connections in use (44%)" */
export function headroomText(h: Headroom): string {
  const percent = h.usable === 0 ? 100 : Math.round((h.inUse / h.usable) * 100);
  return `${formatCount(h.inUse)} of ${formatCount(h.usable)} usable connections in use (${percent}%)`;
}
