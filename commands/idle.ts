// `/db idle <target> [--older-than 0s]`: idle client sessions, those holding a transaction open first.

import { z } from 'zod';
import { durationArg, durationText } from '../src/core/args.js';
import { formatDuration } from '../src/core/duration.js';
import { defineOperation } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';
import {
  CLIENT_ADDRESS,
  clippedQuery,
  hiddenNote,
  hiddenSessions,
  IDLE_IN_TRANSACTION_STATES,
  notDbops,
  plural,
  secondsSince,
} from './lib/activity.js';

/*
 * Idle in transaction (and its aborted variant) come first: such sessions keep their locks and hold
 * back vacuum's horizon for as long as they stay. Within each group, longest idle first.
 */
const IDLE_SQL = `
SELECT a.pid,
       a.usename AS "user",
       a.application_name AS application,
       ${CLIENT_ADDRESS} AS client_address,
       a.state,
       ${secondsSince('a.state_change')} AS idle_seconds,
       ${secondsSince('a.xact_start')} AS xact_seconds,
       ${clippedQuery()} AS last_query,
       count(*) OVER ()::int AS matching,
       (count(*) FILTER (WHERE a.state IN ${IDLE_IN_TRANSACTION_STATES}) OVER ())::int AS in_transaction
FROM pg_stat_activity a
WHERE a.backend_type = 'client backend'
  AND a.datname = current_database()
  AND a.state IN ('idle', 'idle in transaction', 'idle in transaction (aborted)')
  AND ${notDbops('$2')}
  AND ($1::float8 = 0 OR a.state_change <= clock_timestamp() - make_interval(secs => $1::float8))
ORDER BY a.state = 'idle', a.state_change, a.pid
`;

interface IdleRow {
  pid: number;
  user: string | null;
  application: string | null;
  client_address: string | null;
  state: string;
  idle_seconds: number | null;
  xact_seconds: number | null;
  last_query: string | null;
  matching: number;
  in_transaction: number;
}

const COLUMNS: Column[] = [
  { key: 'pid', label: 'pid', kind: 'id' },
  { key: 'user', label: 'user', kind: 'text' },
  { key: 'application', label: 'application', kind: 'text' },
  { key: 'client_address', label: 'client', kind: 'text' },
  { key: 'state', label: 'state', kind: 'text' },
  { key: 'idle_seconds', label: 'idle', kind: 'seconds' },
  { key: 'xact_seconds', label: 'transaction', kind: 'seconds' },
  { key: 'last_query', label: 'last query', kind: 'text' },
];

export default defineOperation({
  name: 'idle',
  summary: 'Idle and idle-in-transaction client sessions of the target database, with idle time',
  usage: 'idle <target> [--older-than 0s]',
  description:
    'Lists client sessions of the target database that are idle, idle in transaction or idle in ' +
    'transaction (aborted) since at least --older-than: idle in transaction first (they hold locks and ' +
    'block vacuum), then idle, each longest first, with the idle time, the age of the open transaction and ' +
    "the last query. dbops' own connections are never listed; kill-idle terminates such sessions.",
  args: z.object({ older_than: durationArg('0s') }),
  risk: 'read',
  async run(ctx) {
    const threshold = ctx.args.older_than;
    const own = ctx.db.ownPids();
    const { rows, truncated, hidden } = await ctx.db.read(async (session) => {
      const found = await session.cursor<IdleRow>(IDLE_SQL, [threshold, own]);
      return { ...found, hidden: await hiddenSessions(session, own) };
    });

    const total = rows[0]?.matching ?? 0;
    const inTransaction = rows[0]?.in_transaction ?? 0;
    const idle = total - inTransaction;
    const longer = threshold > 0 ? ` for more than ${durationText(threshold)}` : '';
    let headline: string;
    if (total === 0) headline = `no idle sessions${longer} on ${ctx.target.name}`;
    else {
      const parts: string[] = [];
      const first = rows[0];
      if (inTransaction > 0 && first) {
        const longest = first.idle_seconds === null ? '' : `, longest ${formatDuration(first.idle_seconds)}`;
        parts.push(`${plural(inTransaction, 'session')} idle in transaction (pid ${first.pid}${longest})`);
      }
      if (idle > 0) parts.push(`${plural(idle, 'session')} idle`);
      headline = `${parts.join(' and ')}${longer} on ${ctx.target.name}`;
    }

    const notes: string[] = [];
    if (truncated)
      notes.push(
        `only ${formatCount(rows.length)} of ${formatCount(total)} sessions are listed, idle in transaction first`,
      );
    if (inTransaction > 0) {
      notes.push('sessions idle in transaction keep their locks and hold back vacuum until they end');
    }
    if (hidden > 0) notes.push(hiddenNote(hidden));
    return {
      headline,
      columns: COLUMNS,
      rows: rows.map(
        (r): Row => ({
          pid: r.pid,
          user: r.user,
          application: r.application,
          client_address: r.client_address,
          state: r.state,
          idle_seconds: r.idle_seconds,
          xact_seconds: r.xact_seconds,
          last_query: r.last_query,
        }),
      ),
      truncated,
      notes,
      data: {
        olderThanSeconds: threshold,
        idleInTransaction: inTransaction,
        idle,
        hiddenSessions: hidden,
      },
    };
  },
});
