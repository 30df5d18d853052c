// Counts what dbops sends per command, by database (the state database and the target): the statements
// PostgreSQL runs and the round trips they take (a read's statement rides in one flight with its BEGIN
// READ ONLY, timeouts and ROLLBACK), by watching every pg connection of this process: what one read and
// one approved destructive command cost.
import pg from 'pg';
import type { App } from '../src/app.js';
import type { Reply } from '../src/core/reply.js';

type Counts = Record<string, { statements: number; trips: number }>;

type Method = (this: object, ...args: unknown[]) => unknown;

/**
 * Counts, by database, while `work` runs (every client of this process; run nothing else): statements =
 * Execute messages of the extended protocol plus the statements of a simple-protocol query (its text split
 * at semicolons: dbops' own texts, no semicolon in a literal); round trips = messages after which the
 * client waits for the server (Sync, Flush, a simple query). A cursor's Flush after its Parse and the one
 * after its first Execute go out before any answer: one wait, counted as two (no cursor in /db sizes).
 */
async function counting<T>(work: () => Promise<T>): Promise<{ value: T; counts: Counts }> {
  const counts: Counts = {};
  const databases = new WeakMap<object, string>();
  const add = (connection: object, statements: number, trips: number) => {
    const db = databases.get(connection) ?? '?';
    const c = counts[db] ?? { statements: 0, trips: 0 };
    counts[db] = c;
    c.statements += statements;
    c.trips += trips;
  };
  const client = pg.Client.prototype as unknown as { query: Method };
  const connection = (pg as unknown as { Connection: { prototype: Record<string, Method> } }).Connection
    .prototype;
  const originals = {
    query: client.query,
    execute: connection.execute as Method,
    sync: connection.sync as Method,
    flush: connection.flush as Method,
    simple: connection.query as Method,
  };
  client.query = function (this: { database?: string; connection?: object }, ...args: unknown[]) {
    if (this.connection) databases.set(this.connection, this.database ?? '?');
    return originals.query.apply(this, args);
  };
  connection.execute = function (this: object, ...args: unknown[]) {
    add(this, 1, 0);
    return originals.execute.apply(this, args);
  };
  connection.sync = function (this: object, ...args: unknown[]) {
    add(this, 0, 1);
    return originals.sync.apply(this, args);
  };
  connection.flush = function (this: object, ...args: unknown[]) {
    add(this, 0, 1);
    return originals.flush.apply(this, args);
  };
  connection.query = function (this: object, text: unknown, ...rest: unknown[]) {
    const statements = String(text)
      .split(';')
      .filter((part) => part.trim() !== '').length;
    add(this, statements, 1);
    return originals.simple.apply(this, [text, ...rest]);
  };
  try {
    return { value: await work(), counts };
  } finally {
    client.query = originals.query;
    connection.execute = originals.execute;
    connection.sync = originals.sync;
    connection.flush = originals.flush;
    connection.query = originals.simple;
  }
}

/** Statements by database (`state`, `target`), and the round trips they took (`trips`). */
export interface RoundTrips {
  state: number;
  target: number;
  trips: { state: number; target: number };
}

function split(counts: Counts, stateDb: string, targetDb: string): RoundTrips {
  return {
    state: counts[stateDb]?.statements ?? 0,
    target: counts[targetDb]?.statements ?? 0,
    trips: { state: counts[stateDb]?.trips ?? 0, target: counts[targetDb]?.trips ?? 0 },
  };
}

function ok(reply: Reply, want: Reply['status'], what: string): Reply {
  if (reply.status !== want) throw new Error(`${what}: ${reply.status}: ${reply.message}`);
  return reply;
}

/**
 * Statements and round trips per `/db sizes app` (after warm-up, so pools are open), and per approved destructive
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
