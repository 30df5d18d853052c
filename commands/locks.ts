// `/db locks <target>`: lock requests of the target database that are waiting, with what they wait for and since when.

import { z } from 'zod';
import { formatDuration } from '../src/core/duration.js';
import { defineOperation } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';
import { clippedQuery, notDbops, plural, READ_ALL_STATS_FIX, secondsSince } from './lib/activity.js';

/** What a lock request names besides a relation: a row, a transaction, an advisory key. */
const LOCKED_OBJECT = `CASE l.locktype
    WHEN 'tuple' THEN format('row (%s,%s)', l.page, l.tuple)
    WHEN 'page' THEN format('page %s', l.page)
    WHEN 'transactionid' THEN format('transaction %s', l.transactionid)
    WHEN 'virtualxid' THEN format('virtual transaction %s', l.virtualxid)
    WHEN 'advisory' THEN CASE WHEN l.objsubid = 1
                              THEN format('key %s', (l.classid::bigint << 32) | l.objid::bigint)
                              ELSE format('keys %s, %s', l.classid::int4, l.objid::int4) END
    WHEN 'object' THEN format('%s %s', l.classid::regclass, l.objid)
  END`;

/** PostgreSQL 14+ records when each wait began; before, the waiting query's start is the best bound. */
const WAITED_PG14 = secondsSince('COALESCE(l.waitstart, a.state_change)');
const WAITED_BEFORE_14 = secondsSince('a.state_change');

/** One row per waiting backend (a backend waits for one lock at a time) of this database. */
function locksSql(waited: string): string {
  return `
SELECT l.pid,
       a.usename AS "user",
       a.application_name AS application,
       l.locktype,
       CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text END AS relation,
       ${LOCKED_OBJECT} AS object,
       l.mode,
       ${waited} AS waited_seconds,
       array_to_string(pg_blocking_pids(l.pid), ', ') AS blocked_by,
       ${clippedQuery()} AS query,
       a.backend_type IS NULL AS hidden
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted
  AND a.datname = current_database()
  AND ${notDbops('$1')}
ORDER BY waited_seconds DESC NULLS LAST, l.pid
`;
}

interface LockRow {
  pid: number;
  user: string | null;
  application: string | null;
  locktype: string;
  relation: string | null;
  object: string | null;
  mode: string;
  waited_seconds: number | null;
  blocked_by: string;
  query: string | null;
  hidden: boolean;
}

const COLUMNS: Column[] = [
  { key: 'pid', label: 'pid', kind: 'id' },
  { key: 'user', label: 'user', kind: 'text' },
  { key: 'locktype', label: 'lock type', kind: 'text' },
  { key: 'relation', label: 'relation', kind: 'text' },
  { key: 'object', label: 'object', kind: 'text' },
  { key: 'mode', label: 'mode', kind: 'text' },
  { key: 'waited_seconds', label: 'waiting', kind: 'seconds' },
  { key: 'blocked_by', label: 'blocked by', kind: 'text' },
  { key: 'query', label: 'query', kind: 'text' },
];

export default defineOperation({
  name: 'locks',
  summary: 'Lock requests of the target database that are not granted, with mode, relation and wait time',
  usage: 'locks <target>',
  description:
    'Lists every lock request of a session of the target database that is waiting (pg_locks.granted is ' +
    'false): pid, user, lock type, relation, the row / transaction / advisory key waited for, mode, how ' +
    'long it has waited (pg_locks.waitstart on PostgreSQL 14+, else since its query started), the pids ' +
    "blocking it and its query. `blocking` shows the chains with the blockers' queries.",
  args: z.object({}),
  risk: 'read',
  async run(ctx) {
    const version = await ctx.db.serverVersion();
    const sql = locksSql(version >= 140000 ? WAITED_PG14 : WAITED_BEFORE_14);
    const { rows, truncated } = await ctx.db.read((session) =>
      session.cursor<LockRow>(sql, [ctx.db.ownPids()]),
    );

    const first = rows[0];
    const headline = first
      ? `${plural(rows.length, 'lock request')} waiting on ${ctx.target.name}` +
        (first.waited_seconds === null
          ? ''
          : `; longest ${formatDuration(first.waited_seconds)} (pid ${first.pid})`)
      : `no lock requests waiting on ${ctx.target.name}`;
    const notes: string[] = [];
    if (truncated) notes.push(`only the ${formatCount(rows.length)} longest waits are listed`);
    if (version < 140000 && rows.length > 0) {
      notes.push(
        'PostgreSQL before 14 does not record when a wait began: "waiting" counts from the query start',
      );
    }
    const hidden = rows.filter((r) => r.hidden).length;
    if (hidden > 0) {
      notes.push(
        `the query of ${plural(hidden, 'waiting session')} of other roles is hidden: ${READ_ALL_STATS_FIX}`,
      );
    }
    return {
      headline,
      columns: COLUMNS,
      rows: rows.map(
        (r): Row => ({
          pid: r.pid,
          user: r.user,
          locktype: r.locktype,
          relation: r.relation,
          object: r.object,
          mode: r.mode,
          waited_seconds: r.waited_seconds,
          blocked_by: r.blocked_by,
          query: r.hidden ? null : r.query,
        }),
      ),
      truncated,
      notes,
      data: { waiting: rows.length, pids: rows.map((r) => r.pid) },
    };
  },
});
