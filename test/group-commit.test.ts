// The state store's group commit on real PostgreSQL: concurrent writes share one statement, each caller
// learns its own claim, order and hostile text are kept, one bad record fails only its caller, a
// connection dropped mid-group fails every caller of that group (nothing half-written), close() drains.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_GROUP_WRITES } from '../src/state/group-commit.js';
import { groupSql } from '../src/state/group-sql.js';
import { PgStateStore } from '../src/state/pg-store.js';
import type { AuditEvent } from '../src/state/types.js';
import { adminQuery, createDatabase, openClient } from './helpers/db.js';

let db: { name: string; url: string };
let store: PgStateStore;

beforeAll(async () => {
  db = await createDatabase('group_commit');
  store = await PgStateStore.open(db.url);
  await store.migrate();
});

afterAll(async () => {
  await store?.close();
});

const record = (ref: string, extra: Partial<AuditEvent> = {}): AuditEvent => ({
  requestId: null,
  ref,
  event: 'executed',
  person: 'alice',
  identity: 'slack:T1/UALICE',
  surface: 'slack',
  operation: 'sizes',
  target: 'app',
  args: { limit: 10 },
  outcome: 'ok',
  durationMs: 3.4,
  ...extra,
});

/** The statements this process sends to the state database while `work` runs. */
async function statements<T>(
  work: () => Promise<T>,
): Promise<{ value: T; count: number; texts: Set<string> }> {
  let count = 0;
  const texts = new Set<string>();
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  proto.query = function (this: { database?: string }, ...args: unknown[]) {
    if (this.database === db.name) {
      count += 1;
      const [first] = args;
      texts.add(String(typeof first === 'string' ? first : (first as { text?: string } | undefined)?.text));
    }
    return original.apply(this, args);
  };
  try {
    return { value: await work(), count, texts };
  } finally {
    proto.query = original;
  }
}

async function stored(prefix: string) {
  return await adminQuery<{
    id: string;
    ref: string;
    error: string | null;
    detail: Record<string, unknown> | null;
    at: Date;
    duration_ms: number;
    args: unknown;
  }>("SELECT * FROM dbops_audit WHERE ref LIKE $1 || '%' ORDER BY id", [prefix], db.name);
}

describe('group commit', () => {
  it('writes 100 concurrent records in one statement, in the order they were asked for', async () => {
    const base = Date.parse('2030-01-01T00:00:00Z');
    const { count } = await statements(() =>
      Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          store.audit(record(`order-${String(i).padStart(3, '0')}`), new Date(base + i)),
        ),
      ),
    );
    expect(count).toBe(1);
    const rows = await stored('order-');
    expect(rows.map((r) => r.ref)).toEqual(
      Array.from({ length: 100 }, (_, i) => `order-${String(i).padStart(3, '0')}`),
    );
    expect(rows.map((r) => r.at.getTime())).toEqual(Array.from({ length: 100 }, (_, i) => base + i));
    expect(rows[0]?.duration_ms).toBe(3);
    expect(rows[0]?.args).toEqual({ limit: 10 });
  });

  it('groups writes that arrive in later turns while a statement is in flight', async () => {
    const { count } = await statements(async () => {
      const writes: Promise<void>[] = [];
      for (let i = 0; i < 40; i++) {
        writes.push(store.audit(record(`turns-${i}`), new Date()));
        await new Promise((resolve) => setImmediate(resolve));
      }
      await Promise.all(writes);
    });
    expect(count).toBeLessThanOrEqual(20);
    expect(await stored('turns-')).toHaveLength(40);
  });

  it('lets records that follow their reply wait for company: they ride with the next group', async () => {
    const { count } = await statements(async () => {
      const later: Promise<void>[] = [];
      for (let i = 0; i < 5; i++) {
        later.push(store.auditLater(record(`linger-${i}`), new Date()));
        await new Promise((resolve) => setImmediate(resolve));
      }
      await Promise.all([...later, store.audit(record('linger-now'), new Date())]);
      // Alone, one goes after LINGER_MS all the same.
      await store.auditLater(record('linger-alone'), new Date());
    });
    expect(count).toBe(2);
    expect((await stored('linger-')).map((r) => r.ref)).toEqual([
      'linger-now',
      'linger-0',
      'linger-1',
      'linger-2',
      'linger-3',
      'linger-4',
      'linger-alone',
    ]);
  });

  it('finds a paged read still waiting for company when its button is pressed at once', async () => {
    const saving = store.savePagedRead({
      ref: 'rquick',
      command: 'sizes app',
      operation: 'sizes',
      target: 'app',
      identity: 'slack:T1/UALICE',
      createdAt: new Date(),
    });
    expect(await store.getPagedRead('rquick', new Date())).toMatchObject({ command: 'sizes app' });
    await saving;
  });

  it('writes a record that follows its reply once, when it is sent again after an unclear failure', async () => {
    const at = new Date('2030-02-02T02:02:02.345Z');
    await store.auditLater(record('once-0'), at);
    // The same record again (a retry, or a journal replay, after its first statement did commit).
    await Promise.all([store.auditLater(record('once-0'), at), store.auditLater(record('once-1'), at)]);
    // Records before a run are never sent twice: they are not checked.
    await store.audit(record('once-2'), at);
    await store.audit(record('once-2'), at);
    expect((await stored('once-')).map((r) => r.ref)).toEqual(['once-0', 'once-1', 'once-2', 'once-2']);
  });

  it('checks a closing record against the audit table by index, in a generic plan too', async () => {
    const client = await openClient(db.url, 'plan');
    try {
      await client.query('SET plan_cache_mode = force_generic_plan');
      for (const claims of [false, true]) {
        const text = groupSql({ claims, audit: true, paged: false });
        await client.query(`PREPARE g${claims}(jsonb) AS ${text.replace('$1::jsonb', '$1')}`);
        const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN EXECUTE g${claims}('[]')`);
        const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
        expect(plan).toContain('dbops_audit d');
        expect(plan).not.toMatch(/Seq Scan on dbops_audit/);
      }
    } finally {
      await client.end();
    }
  });

  it('caps a group at MAX_GROUP_WRITES writes, with one statement text whatever the size', async () => {
    const { count, texts } = await statements(() =>
      Promise.all(Array.from({ length: 250 }, (_, i) => store.audit(record(`cap-${i}`), new Date()))),
    );
    expect(MAX_GROUP_WRITES).toBe(100);
    expect(count).toBe(3);
    // Groups of 100, 100 and 50: one prepared statement per connection, not one per size.
    expect(texts.size).toBe(1);
    expect(await stored('cap-')).toHaveLength(250);
  });

  it('tells each caller its own claim: a repeat in the same group or later is not claimed, writes nothing', async () => {
    expect(await store.claimDelivery('slack:command:old', new Date())).toBe(true);
    const { value, count } = await statements(() =>
      Promise.all([
        store.auditClaiming('slack:command:A', record('claim-a1'), new Date()),
        store.auditClaiming('slack:command:B', record('claim-b'), new Date()),
        store.auditClaiming('slack:command:A', record('claim-a2'), new Date()),
        store.claimDelivery('slack:command:C', new Date()),
        store.claimDelivery('slack:command:C', new Date()),
        store.auditClaiming('slack:command:old', record('claim-old'), new Date()),
        store.audit(record('claim-plain'), new Date()),
      ]),
    );
    // Claims alone go in a statement of their own (it names no audit table), the rest in one.
    expect(count).toBe(2);
    expect(value).toEqual([true, true, false, true, false, false, undefined]);
    expect((await stored('claim-')).map((r) => r.ref)).toEqual(['claim-a1', 'claim-b', 'claim-plain']);
  });

  it('stores a 100 KB hostile reason exactly, beside others in its group', async () => {
    const hostile =
      `'); DROP TABLE dbops_audit; -- $1 \\ " \u2028 ${'é😀\t\n{"a":[1]}'.repeat(10_000)}`.slice(0, 100_000);
    await Promise.all([
      store.audit(record('hostile-0'), new Date()),
      store.audit(record('hostile-1', { error: hostile, detail: { reason: hostile } }), new Date()),
      store.auditAll([record('hostile-2'), record('hostile-3')], new Date()),
    ]);
    const rows = await stored('hostile-');
    expect(rows.map((r) => r.ref)).toEqual(['hostile-0', 'hostile-1', 'hostile-2', 'hostile-3']);
    expect(rows[1]?.error).toBe(hostile);
    expect(rows[1]?.detail).toEqual({ reason: hostile });
  });

  it('splits groups by bytes: twenty 100 KB records take more than one statement', async () => {
    const big = 'x'.repeat(100_000);
    const { count } = await statements(() =>
      Promise.all(
        Array.from({ length: 20 }, (_, i) => store.audit(record(`big-${i}`, { error: big }), new Date())),
      ),
    );
    expect(count).toBeGreaterThanOrEqual(2);
    expect(count).toBeLessThan(20);
    expect(await stored('big-')).toHaveLength(20);
  });

  it('fails only the caller whose record the database refuses; the rest of its group is written', async () => {
    const results = await Promise.allSettled([
      store.audit(record('nul-0'), new Date()),
      store.audit(record('nul-1', { error: 'a NUL \u0000 byte' }), new Date()),
      store.auditClaiming('slack:command:nul', record('nul-2'), new Date()),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((await stored('nul-')).map((r) => r.ref)).toEqual(['nul-0', 'nul-2']);
  });

  it('fails every caller of a group whose connection is dropped mid-write, writing none of it', async () => {
    // A trigger holds the group's insert until the test lets go of an advisory lock.
    await adminQuery(
      `CREATE FUNCTION hold_group() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.ref LIKE 'drop-%' THEN PERFORM pg_advisory_xact_lock_shared(77); END IF;
         RETURN NEW;
       END $$;
       CREATE TRIGGER hold_group BEFORE INSERT ON dbops_audit FOR EACH ROW EXECUTE FUNCTION hold_group();`,
      [],
      db.name,
    );
    const holder = await openClient(db.url, 'holder');
    try {
      await holder.query('SELECT pg_advisory_lock(77)');
      const writes = Promise.allSettled([
        store.audit(record('drop-0'), new Date()),
        store.auditClaiming('slack:command:drop', record('drop-1'), new Date()),
        store.audit(record('drop-2'), new Date()),
      ]);
      await expect
        .poll(async () => {
          const [row] = await adminQuery<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = $1",
            [db.name],
          );
          return row?.n;
        })
        .toBe(1);
      await adminQuery(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'dbops-state'",
        [db.name],
      );
      const results = await writes;
      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
      expect(await stored('drop-')).toEqual([]);
      await holder.query('SELECT pg_advisory_unlock(77)');
      // The claim was not taken either: the command may be delivered again and run.
      expect(await store.auditClaiming('slack:command:drop', record('drop-again'), new Date())).toBe(true);
      expect((await stored('drop-')).map((r) => r.ref)).toEqual(['drop-again']);
    } finally {
      await holder.end();
      await adminQuery('DROP TRIGGER hold_group ON dbops_audit', [], db.name);
    }
  });

  it('claims a delivery while records wait on a lock held on the audit table', async () => {
    const lock = await openClient(db.url, 'audit-lock');
    try {
      await lock.query('BEGIN');
      await lock.query('LOCK TABLE dbops_audit IN ACCESS EXCLUSIVE MODE');
      // Two groups of records stuck behind the lock: the statements allowed in flight are taken.
      const first = store.audit(record('locked-0'), new Date());
      await new Promise((resolve) => setImmediate(resolve));
      const second = store.audit(record('locked-1'), new Date());
      await new Promise((resolve) => setImmediate(resolve));
      // Stalled statements stop counting, and a claim alone names no audit table: it is answered.
      expect(await store.claimDelivery('slack:event:while-locked', new Date())).toBe(true);
      await lock.query('COMMIT');
      await Promise.all([first, second]);
      // Two statements of two commands: which the lock lets go first is not ordered (as before groups).
      expect((await stored('locked-')).map((r) => r.ref).sort()).toEqual(['locked-0', 'locked-1']);
    } finally {
      await lock.query('ROLLBACK').catch(() => {});
      await lock.end();
    }
  });

  it('writes what is queued before close() ends the pool', async () => {
    const other = await PgStateStore.open(db.url);
    const writes = Array.from({ length: 30 }, (_, i) => other.audit(record(`close-${i}`), new Date()));
    writes.push(
      other.savePagedRead({
        ref: 'close-paged',
        command: 'sizes app',
        operation: 'sizes',
        target: 'app',
        identity: 'slack:T1/UALICE',
        createdAt: new Date(),
      }),
    );
    expect(other.pendingWrites).toBe(31);
    await other.close();
    await Promise.all(writes);
    expect(await stored('close-')).toHaveLength(30);
    expect(await store.getPagedRead('close-paged', new Date())).toMatchObject({ command: 'sizes app' });
  });
});
