// A direct run's closing audit record is written after its reply, durably: a reply never waits for it,
// a failed write is retried (then journaled and logged), and it ends up in the audit log all the same.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { createLogger } from '../src/core/log.js';
import type { Reply } from '../src/core/reply.js';
import { type Fixture, makeFixture } from './helpers/app.js';
import { adminQuery, openClient } from './helpers/db.js';

/*
 * The state database's audit table gets a trigger for closing records (`executed`): it waits for an
 * advisory lock the test may hold, and fails while fewer than `fail_budget` attempts were made.
 */
const TRIGGER_SQL = `
CREATE TABLE fail_budget (n int NOT NULL);
INSERT INTO fail_budget VALUES (0);
CREATE SEQUENCE attempts;
CREATE FUNCTION closing_record_gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.event = 'executed' THEN
    PERFORM pg_advisory_xact_lock_shared(4242);
    -- A sequence counts the attempts: it is not rolled back with the refused insert.
    IF nextval('attempts') <= (SELECT n FROM fail_budget) THEN
      RAISE EXCEPTION 'closing record refused (test)';
    END IF;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER closing_record_gate BEFORE INSERT ON dbops_audit
  FOR EACH ROW EXECUTE FUNCTION closing_record_gate();
`;

let fx: Fixture;
let app: App;
let backups: string;
const lines: Record<string, unknown>[] = [];
const held: pg.Client[] = [];

beforeAll(async () => {
  fx = await makeFixture();
  backups = mkdtempSync(join(tmpdir(), 'dbops-after-reply-'));
  const yaml = fx.yaml.replace('targets:\n', `backups:\n  dir: ${backups}\ntargets:\n`);
  const log = createLogger({
    level: 'info',
    destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  app = await createApp({
    config: loadConfigText(yaml, 'after-reply.yaml', fx.env),
    log,
    outcomeRetryDelaysMs: [10, 10],
  });
  await adminQuery(TRIGGER_SQL, [], fx.state.name);
});

afterAll(async () => {
  await Promise.all(held.map((c) => c.end().catch(() => {})));
  await app?.close().catch(() => {});
  rmSync(backups, { recursive: true, force: true });
});

async function events(reply: Reply): Promise<string[]> {
  const rows = await adminQuery<{ event: string; outcome: string }>(
    'SELECT event, outcome FROM dbops_audit WHERE ref = $1 ORDER BY id',
    [reply.ref],
    fx.state.name,
  );
  return rows.map((r) => `${r.event}:${r.outcome}`);
}

/** The next `n` closing records are refused. */
async function failNext(n: number): Promise<void> {
  await adminQuery(`SELECT setval('attempts', 1, false); UPDATE fail_budget SET n = ${n}`, [], fx.state.name);
}

const sizes = () => app.core.dispatch({ surface: 'cli', identity: 'carol', text: '/db sizes staging' });

function journaled(): { kind: string; event?: { ref?: string; event?: string } }[] {
  const dir = join(backups, '.dbops-journal');
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((n) => n.endsWith('.jsonl'));
  } catch {
    return [];
  }
  return files.flatMap((f) =>
    readFileSync(join(dir, f), 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { kind: string; event?: { ref?: string; event?: string } }),
  );
}

describe("a direct run's closing audit record", () => {
  it('is written after the reply, which does not wait for it, and is then in the audit log', async () => {
    // The test holds the lock the closing record's insert waits for: only a reply that does not wait
    // for that insert can arrive.
    const holder = await openClient(fx.state.url, 'gate-holder');
    held.push(holder);
    await holder.query('SELECT pg_advisory_lock(4242)');
    const reply = await sizes();
    expect(reply.status).toBe('ok');
    expect(reply.text).toContain('exams');
    // The start is recorded before the run; the end waits behind the lock.
    const waiting = `SELECT count(*)::int AS n FROM pg_locks
      WHERE locktype = 'advisory' AND NOT granted
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
    await expect
      .poll(async () => (await adminQuery<{ n: number }>(waiting, [], fx.state.name))[0]?.n)
      .toBe(1);
    expect(await events(reply)).toEqual(['requested:running']);
    expect(app.core.inFlight).toBeGreaterThan(0);
    await holder.query('SELECT pg_advisory_unlock(4242)');
    await app.core.settled();
    expect(await events(reply)).toEqual(['requested:running', 'executed:ok']);
    expect(app.core.inFlight).toBe(0);
  });

  it('is retried when a write fails, without touching the reply', async () => {
    await failNext(2);
    const reply = await sizes();
    expect(reply.status).toBe('ok');
    await app.core.settled();
    // Two attempts refused, the third written: once.
    expect(await events(reply)).toEqual(['requested:running', 'executed:ok']);
    const [made] = await adminQuery<{ n: string }>('SELECT last_value AS n FROM attempts', [], fx.state.name);
    expect(Number(made?.n)).toBe(3);
  });

  it('is journaled and logged when every attempt fails, and recorded from the journal later', async () => {
    await failNext(1000);
    const before = lines.length;
    const reply = await sizes();
    expect(reply.status).toBe('ok');
    await app.core.settled();
    expect(await events(reply)).toEqual(['requested:running']);
    expect(journaled()).toEqual([
      expect.objectContaining({
        kind: 'audit',
        event: expect.objectContaining({ ref: reply.ref, event: 'executed' }),
      }),
    ]);
    const logged = lines.slice(before);
    expect(logged.some((l) => l.msg === 'state database unreachable: outcome journaled locally')).toBe(true);

    await failNext(0);
    // Replayed now (or by the replay the failure scheduled, whichever comes first).
    await app.core.replayJournal();
    await expect.poll(() => events(reply)).toEqual(['requested:running', 'executed:ok']);
    await expect.poll(journaled).toEqual([]);
  });
});
