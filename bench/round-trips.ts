// Counts the statements dbops sends per command, by database (the state database and the target), by
// watching every pg client of this process: what one read and one approved destructive command cost.
import pg from 'pg';
import type { App } from '../src/app.js';
import type { Reply } from '../src/core/reply.js';

type Counts = Record<string, number>;

/** Counts pg queries by database while `work` runs (every client of this process; run nothing else). */
async function counting<T>(work: () => Promise<T>): Promise<{ value: T; counts: Counts }> {
  const counts: Counts = {};
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  proto.query = function (this: { database?: string }, ...args: unknown[]) {
    const db = this.database ?? '?';
    counts[db] = (counts[db] ?? 0) + 1;
    return original.apply(this, args);
  };
  try {
    return { value: await work(), counts };
  } finally {
    proto.query = original;
  }
}

export interface RoundTrips {
  state: number;
  target: number;
}

function split(counts: Counts, stateDb: string, targetDb: string): RoundTrips {
  return { state: counts[stateDb] ?? 0, target: counts[targetDb] ?? 0 };
}

function ok(reply: Reply, want: Reply['status'], what: string): Reply {
  if (reply.status !== want) throw new Error(`${what}: ${reply.status}: ${reply.message}`);
  return reply;
}

/**
 * Statements per `/db sizes app` (after warm-up, so pools are open), and per approved destructive
 * command: `/db terminate app <pid>` of an idle session, requested by one person and approved by another.
 */
export async function roundTrips(
  app: App,
  options: { stateDb: string; targetDb: string; targetUrl: string; requester: string; approver: string },
): Promise<{ read: RoundTrips; destructiveRequest: RoundTrips; destructiveApprove: RoundTrips }> {
  const dispatch = (identity: string, text: string) => app.core.dispatch({ surface: 'cli', identity, text });
  const settled = async (reply: Promise<Reply>) => {
    const answer = await reply;
    await app.core.settled();
    return answer;
  };
  for (let i = 0; i < 3; i++) ok(await dispatch(options.requester, '/db sizes app'), 'ok', 'warm-up');
  // Writes made after a reply (closing audit records) count with their command, not the next one.
  await app.core.settled();
  const read = await counting(() => settled(dispatch(options.requester, '/db sizes app')));
  ok(read.value, 'ok', '/db sizes app');
  const idle = new pg.Client({ connectionString: options.targetUrl, application_name: 'bench-idle' });
  // Terminating it is the point: its end must not crash the benchmark.
  idle.on('error', () => {});
  await idle.connect();
  try {
    const pid = Number((await idle.query('SELECT pg_backend_pid() AS pid')).rows[0]?.pid);
    const requested = await counting(() => settled(dispatch(options.requester, `/db terminate app ${pid}`)));
    const id = ok(requested.value, 'pending', 'terminate').requestId;
    const approved = await counting(() => settled(dispatch(options.approver, `/db approve ${id}`)));
    ok(approved.value, 'ok', 'approve');
    return {
      read: split(read.counts, options.stateDb, options.targetDb),
      destructiveRequest: split(requested.counts, options.stateDb, options.targetDb),
      destructiveApprove: split(approved.counts, options.stateDb, options.targetDb),
    };
  } finally {
    await idle.end().catch(() => {});
  }
}
