// While a long statement runs (REINDEX CONCURRENTLY, VACUUM FULL), says as progress who it waits for:
// "waiting for a lock on public.t held by pid 4242 (alice, psql, idle in transaction for 95 s: …)".
import { redactSecrets } from '../core/log.js';
import type { TargetDb } from './types.js';

/** The lock a backend waits for and every session blocking it (pg_blocking_pids), from another connection. */
const BLOCKERS_SQL = `
SELECT b.pid, b.usename, b.application_name, b.state,
       left(regexp_replace(coalesce(b.query, ''), '\\s+', ' ', 'g'), 100) AS query,
       coalesce(extract(epoch FROM now() - coalesce(b.xact_start, b.query_start))::int, 0) AS seconds,
       (SELECT string_agg(DISTINCT l.relation::regclass::text, ', ')
          FROM pg_locks l WHERE l.pid = w.pid AND NOT l.granted AND l.relation IS NOT NULL) AS relation,
       (SELECT min(l.locktype) FROM pg_locks l WHERE l.pid = w.pid AND NOT l.granted) AS locktype
  FROM pg_stat_activity w
 CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocker(pid)
  JOIN pg_stat_activity b ON b.pid = blocker.pid
 WHERE w.pid = $1
 ORDER BY b.pid`;

interface BlockerRow {
  pid: number;
  usename: string | null;
  application_name: string | null;
  state: string | null;
  query: string;
  seconds: number;
  relation: string | null;
  locktype: string | null;
}

const DEFAULT_INTERVAL_MS = 2000;
/** An unchanged wait is repeated this often, so a thread shows the operation is alive. */
const REPEAT_MS = 30_000;

function what(row: BlockerRow): string {
  if (row.relation) return `a lock on ${row.relation}`;
  // REINDEX / CREATE INDEX CONCURRENTLY wait for older transactions through their virtual xids.
  if (row.locktype === 'virtualxid' || row.locktype === 'transactionid') return 'older transactions to end';
  return `a ${row.locktype ?? 'lock'} lock`;
}

/** One progress line for the current wait (every blocker named, with who, what app and what it does). */
export function describeWait(rows: readonly BlockerRow[]): string | undefined {
  const first = rows[0];
  if (!first) return undefined;
  const blockers = rows.map((row) => {
    const who = [row.usename ?? 'unknown user', row.application_name || 'no application_name'];
    const doing = `${row.state ?? 'unknown state'} for ${row.seconds} s${row.query ? `: ${row.query}` : ''}`;
    return `pid ${row.pid} (${who.join(', ')}, ${doing})`;
  });
  return redactSecrets(`waiting for ${what(first)} held by ${blockers.join('; ')}`);
}

export interface LockWatch {
  stop(): void;
}

/**
 * Polls, from a pooled connection, what backend `pid` is blocked by and reports it through `progress`
 * when it changes (and every 30 s while it lasts). Polling failures are ignored: this only informs.
 */
export function watchLockWaits(
  db: Pick<TargetDb, 'read'>,
  pid: number,
  progress: (line: string) => void,
  options: { intervalMs?: number } = {},
): LockWatch {
  const interval = options.intervalMs ?? DEFAULT_INTERVAL_MS;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let last: string | undefined;
  let lastAt = 0;
  const poll = async () => {
    try {
      const rows = await db.read((session) => session.query<BlockerRow>(BLOCKERS_SQL, [pid]), {
        statementTimeoutMs: Math.max(1000, interval),
      });
      const line = describeWait(rows);
      const now = performance.now();
      if (!stopped && line && (line.replace(/\d+ s\b/g, '') !== last || now - lastAt >= REPEAT_MS)) {
        progress(line);
        last = line.replace(/\d+ s\b/g, '');
        lastAt = now;
      }
      if (!line) last = undefined;
    } catch {
      // The target may be busy or down: the statement itself will say so.
    }
    if (!stopped) timer = setTimeout(() => void poll(), interval);
  };
  timer = setTimeout(() => void poll(), interval);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
