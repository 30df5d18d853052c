// `/db connections <target>`: client connections by database, user, application and client, and the headroom left.

import { z } from 'zod';
import { defineOperation } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';
import {
  CLIENT_ADDRESS,
  IDLE_IN_TRANSACTION_STATES,
  notDbops,
  plural,
  READ_ALL_STATS_FIX,
} from './lib/activity.js';
import { headroomText, readHeadroom } from './lib/headroom.js';

/*
 * Server-wide, like max_connections: one row per (database, user, application, client) with counts by
 * state. Sessions the bot may not inspect keep their database, user and application but no state or
 * address; they count in `total` only. Other databases are counted by database only: who connects to
 * them, from where and with what application is theirs to show, not this target's.
 */
const GROUPS_SQL = `
SELECT a.datname AS database,
       CASE WHEN a.datname = current_database() THEN a.usename END AS "user",
       CASE WHEN a.datname = current_database() THEN a.application_name END AS application,
       CASE WHEN a.datname = current_database() THEN ${CLIENT_ADDRESS} END AS client_address,
       count(*)::int AS total,
       count(*) FILTER (WHERE a.state = 'active')::int AS active,
       count(*) FILTER (WHERE a.state = 'idle')::int AS idle,
       count(*) FILTER (WHERE a.state IN ${IDLE_IN_TRANSACTION_STATES})::int AS idle_in_transaction,
       count(*) FILTER (WHERE a.state IS NULL)::int AS hidden
FROM pg_stat_activity a
WHERE (a.backend_type = 'client backend'
       OR (a.backend_type IS NULL AND a.datid IS NOT NULL AND a.usesysid IS NOT NULL))
  AND ${notDbops('$1')}
GROUP BY 1, 2, 3, 4
ORDER BY total DESC, 1, 2, 3, 4
`;

interface GroupRow {
  database: string | null;
  user: string | null;
  application: string | null;
  client_address: string | null;
  total: number;
  active: number;
  idle: number;
  idle_in_transaction: number;
  hidden: number;
}

const COLUMNS: Column[] = [
  { key: 'database', label: 'database', kind: 'text' },
  { key: 'user', label: 'user', kind: 'text' },
  { key: 'application', label: 'application', kind: 'text' },
  { key: 'client_address', label: 'client', kind: 'text' },
  { key: 'total', label: 'total', kind: 'count' },
  { key: 'active', label: 'active', kind: 'count' },
  { key: 'idle', label: 'idle', kind: 'count' },
  { key: 'idle_in_transaction', label: 'idle in txn', kind: 'count' },
];

export default defineOperation({
  name: 'connections',
  summary:
    'Client connections by database, user, application and client, and headroom against max_connections',
  usage: 'connections <target>',
  description:
    'Counts client backends on the whole server (max_connections is server-wide; background workers, ' +
    'autovacuum and walsenders have slots of their own and are not counted) against the slots an ordinary ' +
    'role may use: max_connections minus superuser_reserved_connections (and reserved_connections on ' +
    'PostgreSQL 16+). Then one row per user, application and client address of the target database, and ' +
    "one per other database (its users and clients are not shown), with counts by state. dbops' own " +
    'connections count in the headroom but are not listed.',
  args: z.object({}),
  risk: 'read',
  async run(ctx) {
    const version = await ctx.db.serverVersion();
    const own = ctx.db.ownPids();
    const { headroom, groups } = await ctx.db.read(async (session) => ({
      headroom: await readHeadroom(session, version, own),
      groups: await session.cursor<GroupRow>(GROUPS_SQL, [own]),
    }));
    const { rows, truncated } = groups;

    const reservedParts = [`${formatCount(headroom.superuserReserved)} reserved for superusers`];
    if (headroom.reserved > 0) reservedParts.push(`${formatCount(headroom.reserved)} reserved_connections`);
    const notes = [
      `usable = max_connections ${formatCount(headroom.maxConnections)} − ${reservedParts.join(' − ')}`,
      `in use includes ${plural(headroom.dbops, 'connection')} of dbops itself (not listed)`,
    ];
    if (truncated) notes.push(`only the ${formatCount(rows.length)} largest groups are listed`);
    if (headroom.hidden > 0) {
      notes.push(
        `${plural(headroom.hidden, 'session')} of other roles could not be inspected and ` +
          `${headroom.hidden === 1 ? 'is' : 'are'} counted as client connections with no state: ${READ_ALL_STATS_FIX}`,
      );
    }

    const byState = { active: 0, idle: 0, idleInTransaction: 0, other: 0, hidden: 0 };
    for (const g of rows) {
      byState.active += g.active;
      byState.idle += g.idle;
      byState.idleInTransaction += g.idle_in_transaction;
      byState.hidden += g.hidden;
      byState.other += g.total - g.active - g.idle - g.idle_in_transaction - g.hidden;
    }

    return {
      headline: headroomText(headroom),
      columns: COLUMNS,
      rows: rows.map(
        (g): Row => ({
          database: g.database,
          user: g.user,
          application: g.application,
          client_address: g.client_address,
          total: g.total,
          active: g.active,
          idle: g.idle,
          idle_in_transaction: g.idle_in_transaction,
        }),
      ),
      truncated,
      notes,
      data: {
        inUse: headroom.inUse,
        usable: headroom.usable,
        percent: headroom.percent,
        free: Math.max(0, headroom.usable - headroom.inUse),
        maxConnections: headroom.maxConnections,
        superuserReservedConnections: headroom.superuserReserved,
        reservedConnections: headroom.reserved,
        dbopsConnections: headroom.dbops,
        hiddenSessions: headroom.hidden,
        listedByState: byState,
      },
    };
  },
});
