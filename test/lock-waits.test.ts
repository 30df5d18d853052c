// Operations never wait for locks silently or forever: restore --table's TRUNCATE (run by psql) honours
// lock_timeout through PGOPTIONS, and REINDEX CONCURRENTLY reports who it waits for as progress.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import backup from '../commands/backup.js';
import reindex from '../commands/reindex.js';
import restore from '../commands/restore.js';
import { UserError } from '../src/core/errors.js';
import { describeWait } from '../src/engine/lock-watch.js';
import { createDatabase, openClient } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';

const SETUP = `
CREATE TABLE orders (id int PRIMARY KEY, amount numeric NOT NULL);
INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 500) g;
CREATE INDEX orders_amount ON orders (amount);
`;

let db: { name: string; url: string };
let harness: OpHarness;
const held: pg.Client[] = [];

beforeAll(async () => {
  db = await createDatabase('lockwait', SETUP);
  harness = new OpHarness([testTarget('t', db.url)], {
    backupsDir: mkdtempSync(join(tmpdir(), 'dbops-lockwait-')),
  });
});

afterAll(async () => {
  await Promise.all(held.map((c) => c.end().catch(() => {})));
  await harness?.pools.closeAll();
});

async function holder(name: string): Promise<{ client: pg.Client; pid: number }> {
  const client = await openClient(db.url, name);
  held.push(client);
  const [row] = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows;
  if (!row) throw new Error('no pid');
  return { client, pid: row.pid };
}

async function waitFor<T>(probe: () => T | undefined, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const found = probe();
    if (found !== undefined) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing within ${ms} ms; progress so far:\n${harness.progressLines.join('\n')}`);
}

describe('restore --table under a held lock', () => {
  it('ends with a clear lock-timeout answer instead of waiting on TRUNCATE', async () => {
    const made = await harness.run(backup, 't', '--table orders');
    const name = String(made.data?.file);
    const preview = await harness.preview(restore, 't', `${name} --table orders`);
    // A reader left idle in its transaction: its ACCESS SHARE lock blocks TRUNCATE, not pg_dump.
    const { client } = await holder('idle-reader');
    await client.query('BEGIN; SELECT count(*) FROM orders');
    const started = Date.now();
    const err = await harness.execute(restore, 't', `${name} --table orders`, preview.state).then(
      () => new Error('restore went through a held lock'),
      (e: unknown) => e,
    );
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/lock timeout/);
    await client.query('ROLLBACK');
  }, 120_000);
});

describe('reindex --concurrently waiting for an older transaction', () => {
  it('shows who it waits for as progress, then finishes once the blocker is gone', async () => {
    const preview = await harness.preview(reindex, 't', 'orders --concurrently');
    // A writer left idle in its transaction: REINDEX CONCURRENTLY must wait for it to end.
    const { client, pid } = await holder('sleepy-writer');
    await client.query('BEGIN; UPDATE orders SET amount = amount WHERE id = 1');
    harness.progressLines.length = 0;
    const run = harness.execute(reindex, 't', 'orders --concurrently', preview.state);
    run.catch(() => {});
    const line = await waitFor(() => harness.progressLines.find((l) => l.startsWith('waiting for')), 30_000);
    expect(line).toMatch(
      new RegExp(
        `^waiting for (older transactions to end|a lock on orders) held by pid ${pid} ` +
          '\\(postgres, sleepy-writer, idle in transaction for \\d+ s: BEGIN; UPDATE orders',
      ),
    );
    await client.query('COMMIT');
    const result = await run;
    expect(result.rows.length).toBeGreaterThan(0);
  }, 120_000);

  it('names every blocker, and a relation lock as such', () => {
    const rows = [1, 2].map((pid) => ({
      pid,
      usename: 'app',
      application_name: '',
      state: 'active',
      query: 'LOCK t',
      seconds: 7,
      relation: 'public.t',
      locktype: 'relation',
    }));
    expect(describeWait(rows)).toBe(
      'waiting for a lock on public.t held by pid 1 (app, no application_name, active for 7 s: LOCK t); ' +
        'pid 2 (app, no application_name, active for 7 s: LOCK t)',
    );
    expect(describeWait([])).toBeUndefined();
  });
});
