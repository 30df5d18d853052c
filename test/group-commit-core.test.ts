// Group commit through the whole core on real PostgreSQL: 100 concurrent Slack reads share a handful
// of state statements, a retried delivery in the same burst runs once, a state database dropped in the
// middle of a group loses nothing and doubles nothing, and stopping writes what was still queued.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { silentLogger } from '../src/core/log.js';
import type { Reply } from '../src/core/reply.js';
import { type Fixture, makeFixture } from './helpers/app.js';
import { adminQuery, openClient } from './helpers/db.js';

/*
 * A gate on the audit table: records of the event named in gate(event) wait for advisory lock 4343
 * (which the test may hold), and fail while gate(refuse) is true.
 */
const GATE_SQL = `
CREATE TABLE gate (event text, refuse boolean NOT NULL DEFAULT false);
INSERT INTO gate VALUES (NULL, false);
CREATE FUNCTION audit_gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.event = (SELECT event FROM gate) THEN
    PERFORM pg_advisory_xact_lock_shared(4343);
    IF (SELECT refuse FROM gate) THEN RAISE EXCEPTION 'audit refused (test)'; END IF;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER audit_gate BEFORE INSERT ON dbops_audit FOR EACH ROW EXECUTE FUNCTION audit_gate();
`;

let fx: Fixture;
let app: App;
let backups: string;

async function open(): Promise<App> {
  const yaml = fx.yaml.replace('targets:\n', `backups:\n  dir: ${backups}\ntargets:\n`);
  return await createApp({
    config: loadConfigText(yaml, 'group-commit.yaml', fx.env),
    log: silentLogger(),
    outcomeRetryDelaysMs: [20, 20],
  });
}

beforeAll(async () => {
  fx = await makeFixture();
  backups = mkdtempSync(join(tmpdir(), 'dbops-group-'));
  app = await open();
  await adminQuery(GATE_SQL, [], fx.state.name);
});

afterAll(async () => {
  await app?.close().catch(() => {});
  rmSync(backups, { recursive: true, force: true });
});

let serial = 0;
const sizes = (key = `slack:command:G${serial++}`) =>
  app.core.dispatch({ surface: 'slack', identity: 'T1/UALICE', text: '/db sizes staging', delivery: key });

async function records(ref: string): Promise<string[]> {
  const rows = await adminQuery<{ event: string; outcome: string }>(
    'SELECT event, outcome FROM dbops_audit WHERE ref = $1 ORDER BY id',
    [ref],
    fx.state.name,
  );
  return rows.map((r) => `${r.event}:${r.outcome}`);
}

/** Every ref's records, in one query. */
async function recordsOf(replies: readonly Reply[]): Promise<string[][]> {
  const rows = await adminQuery<{ ref: string; events: string[] }>(
    `SELECT ref, array_agg(event || ':' || outcome ORDER BY id) AS events FROM dbops_audit
     WHERE ref = ANY($1::text[]) GROUP BY ref`,
    [replies.map((r) => r.ref)],
    fx.state.name,
  );
  const byRef = new Map(rows.map((r) => [r.ref, r.events]));
  return replies.map((r) => byRef.get(r.ref ?? '') ?? []);
}

/** The statements sent to the state database while `work` runs. */
async function stateStatements<T>(work: () => Promise<T>): Promise<{ value: T; count: number }> {
  let count = 0;
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  proto.query = function (this: { database?: string }, ...args: unknown[]) {
    if (this.database === fx.state.name) count += 1;
    return original.apply(this, args);
  };
  try {
    return { value: await work(), count };
  } finally {
    proto.query = original;
  }
}

async function setGate(event: string | null, refuse = false): Promise<void> {
  await adminQuery('UPDATE gate SET event = $1, refuse = $2', [event, refuse], fx.state.name);
}

/** Waits until a state backend waits on the gate's lock, then terminates dbops' state connections. */
async function dropStateMidGroup(): Promise<void> {
  await expect
    .poll(async () => {
      const [row] = await adminQuery<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = $1 AND application_name = 'dbops-state' AND wait_event_type = 'Lock'`,
        [fx.state.name],
      );
      return row?.n ?? 0;
    })
    .toBeGreaterThan(0);
  await adminQuery(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'dbops-state'",
    [fx.state.name],
  );
}

describe('group commit through the core', () => {
  it('100 concurrent Slack reads share a few state statements; a retried delivery among them runs once', async () => {
    await sizes();
    await app.core.settled();
    const { value: replies, count } = await stateStatements(async () => {
      // Slack's retry of one delivery arrives beside the original, in the same group.
      const burst = Array.from({ length: 100 }, (_, i) =>
        sizes(i === 57 || i === 58 ? 'slack:command:G-twice' : undefined),
      );
      const answered = await Promise.all(burst);
      await app.core.settled();
      return answered;
    });
    const ran = replies.filter((r) => !r.duplicate);
    expect(ran).toHaveLength(99);
    expect(ran.every((r) => r.status === 'ok')).toBe(true);
    expect(replies.filter((r) => r.duplicate)).toHaveLength(1);
    // A claim with its record before each run, a closing record after: 199 writes (one statement each
    // without the group commit), here about a dozen statements (the pid registry's included).
    expect(count).toBeLessThanOrEqual(20);
    const all = await recordsOf(replies);
    expect(all.filter((events) => events.join() === 'requested:running,executed:ok')).toHaveLength(99);
    expect(all.filter((events) => events.length === 0)).toHaveLength(1);
  });

  it('a state database dropped in the middle of a group of closing records: each is written once', async () => {
    await setGate('executed');
    const holder = await openClient(fx.state.url, 'gate-holder');
    try {
      await holder.query('SELECT pg_advisory_lock(4343)');
      const replies = await Promise.all(Array.from({ length: 20 }, () => sizes()));
      expect(replies.every((r) => r.status === 'ok')).toBe(true);
      await dropStateMidGroup();
      await holder.query('SELECT pg_advisory_unlock(4343)');
      await app.core.settled();
      expect((await recordsOf(replies)).map((e) => e.join())).toEqual(
        replies.map(() => 'requested:running,executed:ok'),
      );
    } finally {
      await holder.end();
      await setGate(null);
    }
  });

  it('closing records the database keeps refusing are journaled, then recorded once each', async () => {
    await setGate('executed', true);
    const replies = await Promise.all(Array.from({ length: 20 }, () => sizes()));
    expect(replies.every((r) => r.status === 'ok')).toBe(true);
    await app.core.settled();
    expect((await recordsOf(replies)).map((e) => e.join())).toEqual(replies.map(() => 'requested:running'));
    await setGate(null);
    await app.core.replayJournal();
    await expect
      .poll(async () => (await recordsOf(replies)).map((e) => e.join()))
      .toEqual(replies.map(() => 'requested:running,executed:ok'));
  });

  it('a group of records before runs dropped mid-write: each command is refused, nothing ran, the next one runs', async () => {
    await setGate('requested');
    const holder = await openClient(fx.state.url, 'gate-holder');
    try {
      await holder.query('SELECT pg_advisory_lock(4343)');
      const pending = Promise.all(Array.from({ length: 10 }, () => sizes()));
      await dropStateMidGroup();
      await holder.query('SELECT pg_advisory_unlock(4343)');
      const replies = await pending;
      expect(replies.map((r) => r.code)).toEqual(replies.map(() => 'state_unavailable'));
      await app.core.settled();
      // Nothing ran (no record of a start); each refusal is audited once the database answers again.
      expect((await recordsOf(replies)).map((e) => e.join())).toEqual(
        replies.map(() => 'failed:state_unavailable'),
      );
    } finally {
      await holder.end();
      await setGate(null);
    }
    const next = await sizes();
    expect(next.status).toBe('ok');
    await app.core.settled();
    expect(await records(next.ref ?? '')).toEqual(['requested:running', 'executed:ok']);
  });

  it('stopping writes the closing records still queued', async () => {
    const replies = await Promise.all(Array.from({ length: 30 }, () => sizes()));
    await app.close();
    expect((await recordsOf(replies)).map((e) => e.join())).toEqual(
      replies.map(() => 'requested:running,executed:ok'),
    );
    app = await open();
  });
});
