// The PostgreSQL state store against a real server: lifecycle, refusals, races between replicas, restart, audit.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REQUEST_STATUSES } from '../src/core/types.js';
import { MIGRATION_LOCK_KEY, MIGRATIONS, migrate } from '../src/state/migrations.js';
import { PgStateStore } from '../src/state/pg-store.js';
import type { Actor, ApprovalRequest, AuditEvent, NewRequest, Transition } from '../src/state/types.js';
import { adminQuery, adminUrl, createDatabase } from './helpers/db.js';

const alice = { person: 'alice', identity: 'T01/U01ALICE', surface: 'slack' } satisfies Actor;
const aliceOnDiscord = { person: 'alice', identity: '80351110224678912', surface: 'discord' } satisfies Actor;
const aliceOnCli = { person: 'alice', identity: 'alice', surface: 'cli' } satisfies Actor;
const bob = { person: 'bob', identity: 'T01/U02BOB', surface: 'slack' } satisfies Actor;
const bobOnCli = { person: 'bob', identity: 'bob', surface: 'cli' } satisfies Actor;
const carol = { person: 'carol', identity: '90000000000000001', surface: 'discord' } satisfies Actor;

// Every test except the expiry sweep lives in 2030; the sweep lives in 2020, so it can only expire its own requests.
const T0 = new Date('2030-01-01T00:00:00.000Z');
const SWEEP_T0 = new Date('2020-01-01T00:00:00.000Z');
const minutes = (base: Date, n: number): Date => new Date(base.getTime() + n * 60_000);

const preview: NewRequest['preview'] = {
  result: {
    headline: '2 idle sessions would be terminated',
    columns: [
      { key: 'pid', label: 'PID', kind: 'count' },
      { key: 'user', label: 'User', kind: 'text' },
    ],
    rows: [
      { pid: 101, user: 'app' },
      { pid: 102, user: 'report' },
    ],
    truncated: false,
  },
  state: { pids: [101, 102] },
};

let dbName: string;
let url: string;
let storeA: PgStateStore;
let storeB: PgStateStore;

beforeAll(async () => {
  ({ name: dbName, url } = await createDatabase('state'));
  storeA = await PgStateStore.open(url);
  storeB = await PgStateStore.open(url, { applicationName: 'dbops-state-b' });
  await storeA.migrate();
});

afterAll(async () => {
  await storeA?.close();
  await storeB?.close();
});

async function createPending(
  store: PgStateStore,
  overrides: Partial<Omit<NewRequest, 'id'>> = {},
): Promise<ApprovalRequest> {
  const now = overrides.now ?? T0;
  return await store.createRequest({
    id: await store.nextRequestId(),
    operation: 'kill-idle',
    target: 'staging',
    environment: 'staging',
    args: { olderThanSeconds: 600, users: ['app', 'report'] },
    command: 'kill-idle staging --older-than 10m',
    risk: 'destructive',
    requester: alice,
    channel: 'C0INCIDENT',
    thread: '1700000000.000100',
    preview,
    approvalsRequired: 1,
    expiresAt: minutes(now, 15),
    now,
    ...overrides,
  });
}

/** The request of an ok transition; fails the test with the refusal code otherwise. */
function accepted(t: Transition): ApprovalRequest {
  if (!t.ok) throw new Error(`expected the transition to succeed, got ${t.code}`);
  return t.request;
}

/** The refusal code and the request's status as the refusal reported it. */
function refusal(t: Transition): { code: string; status: string | undefined } {
  if (t.ok) throw new Error(`expected a refusal, got ok with status ${t.request.status}`);
  return { code: t.code, status: 'request' in t ? t.request.status : undefined };
}

async function voteRows(id: number): Promise<{ person: string; vote: string }[]> {
  return await adminQuery<{ person: string; vote: string }>(
    'SELECT person, vote FROM dbops_votes WHERE request_id = $1 ORDER BY person',
    [id],
    dbName,
  );
}

describe('migrations', () => {
  it('an up-to-date schema costs one read: a start does not wait on the migration lock; a missing version still runs', async () => {
    const fresh = await createDatabase('state_migrate_fast');
    const pool = new pg.Pool({ connectionString: fresh.url, max: 1 });
    const holder = new pg.Client({ connectionString: fresh.url });
    try {
      expect(await migrate(pool)).toEqual(MIGRATIONS.map((m) => m.version));
      // Another replica in the middle of migrating holds the lock.
      await holder.connect();
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
      const waited = new Promise((resolve) => setTimeout(() => resolve('waited for the lock'), 10_000));
      expect(await Promise.race([migrate(pool), waited])).toEqual([]);
      await holder.query('COMMIT');
      // A version the table lacks goes through the locked transaction, once.
      const extra = { version: 9_999, name: 'test only', sql: 'CREATE TABLE fast_path_probe (id int)' };
      expect(await migrate(pool, [...MIGRATIONS, extra])).toEqual([9_999]);
      expect(await migrate(pool, [...MIGRATIONS, extra])).toEqual([]);
    } finally {
      await holder.end();
      await pool.end();
    }
  });

  it('two replicas migrating a fresh database at once apply each version exactly once, and again is a no-op', async () => {
    const fresh = await createDatabase('state_migrate');
    const poolA = new pg.Pool({ connectionString: fresh.url, max: 1 });
    const poolB = new pg.Pool({ connectionString: fresh.url, max: 1 });
    try {
      const [ranA, ranB] = await Promise.all([migrate(poolA), migrate(poolB)]);
      expect([...ranA, ...ranB]).toEqual(MIGRATIONS.map((m) => m.version));
      const first = await adminQuery<{ version: number; name: string; applied_at: Date }>(
        'SELECT version, name, applied_at FROM dbops_schema_migrations ORDER BY version',
        [],
        fresh.name,
      );
      expect(first.map((r) => [r.version, r.name])).toEqual(MIGRATIONS.map((m) => [m.version, m.name]));

      expect(await migrate(poolA)).toEqual([]);
      expect(await migrate(poolB)).toEqual([]);
      const second = await adminQuery(
        'SELECT version, name, applied_at FROM dbops_schema_migrations ORDER BY version',
        [],
        fresh.name,
      );
      expect(second).toEqual(first);

      const tables = await adminQuery<{ relname: string }>(
        "SELECT relname FROM pg_class WHERE relname LIKE 'dbops_%' AND relkind IN ('r', 'S') ORDER BY relname",
        [],
        fresh.name,
      );
      expect(tables.map((t) => t.relname)).toEqual([
        'dbops_alerts',
        'dbops_alerts_id_seq',
        'dbops_audit',
        'dbops_audit_id_seq',
        'dbops_backends',
        'dbops_channel_bindings',
        'dbops_check_states',
        'dbops_deliveries',
        'dbops_digest_snapshots',
        'dbops_member_roles',
        'dbops_paged_reads',
        'dbops_request_id_seq',
        'dbops_requests',
        'dbops_samples',
        'dbops_schedule_runs',
        'dbops_schedule_runs_id_seq',
        'dbops_schedules',
        'dbops_schema_migrations',
        'dbops_votes',
      ]);
    } finally {
      await poolA.end();
      await poolB.end();
    }
  });

  it('the store migrates through the same path and stays idempotent', async () => {
    await storeB.migrate();
    await storeA.migrate();
    const rows = await adminQuery('SELECT version FROM dbops_schema_migrations', [], dbName);
    expect(rows).toHaveLength(MIGRATIONS.length);
  });

  it('the status CHECK admits exactly REQUEST_STATUSES', async () => {
    const r = await createPending(storeA, { target: 'check-statuses' });
    for (const status of REQUEST_STATUSES) {
      await adminQuery('UPDATE dbops_requests SET status = $2 WHERE id = $1', [r.id, status], dbName);
      expect((await storeA.getRequest(r.id))?.status).toBe(status);
    }
    await expect(
      adminQuery("UPDATE dbops_requests SET status = 'paused' WHERE id = $1", [r.id], dbName),
    ).rejects.toMatchObject({ code: '23514' });
  });
});

describe('request lifecycle', () => {
  it('nextRequestId hands out increasing ids from the sequence', async () => {
    const a = await storeA.nextRequestId();
    const b = await storeB.nextRequestId();
    expect(Number.isInteger(a)).toBe(true);
    expect(b).toBeGreaterThan(a);
  });

  it('pending → approved → running → succeeded, with the vote recorded and every field round-tripped', async () => {
    const created = await createPending(storeA);
    expect(created).toStrictEqual({
      id: created.id,
      status: 'pending',
      operation: 'kill-idle',
      target: 'staging',
      environment: 'staging',
      args: { olderThanSeconds: 600, users: ['app', 'report'] },
      command: 'kill-idle staging --older-than 10m',
      risk: 'destructive',
      requester: alice,
      channel: 'C0INCIDENT',
      thread: '1700000000.000100',
      preview,
      approvalsRequired: 1,
      votes: [],
      createdAt: T0,
      expiresAt: minutes(T0, 15),
      updatedAt: T0,
      refs: {},
    });
    expect(await storeB.getRequest(created.id)).toStrictEqual(created);

    const approved = await storeB.approve(created.id, bob, minutes(T0, 1));
    expect(approved.ok).toBe(true);
    expect(approved.reached).toBe(true);
    const afterVote = accepted(approved);
    expect(afterVote.status).toBe('approved');
    expect(afterVote.updatedAt).toEqual(minutes(T0, 1));
    expect(afterVote.votes).toStrictEqual([{ ...bob, vote: 'approve', at: minutes(T0, 1) }]);

    const running = accepted(await storeA.startRun(created.id, minutes(T0, 2)));
    expect(running.status).toBe('running');
    expect(running.votes).toHaveLength(1);

    const result = { ...preview.result, headline: 'terminated 2 sessions', notes: ['both still idle'] };
    const done = accepted(
      await storeA.finishRun(created.id, { status: 'succeeded', result }, minutes(T0, 3)),
    );
    expect(done.status).toBe('succeeded');
    expect(done.result).toStrictEqual(result);
    expect(done).not.toHaveProperty('error');
    expect(done.updatedAt).toEqual(minutes(T0, 3));

    expect(
      refusal(await storeA.finishRun(created.id, { status: 'failed', error: 'x' }, minutes(T0, 4))),
    ).toEqual({
      code: 'not_pending',
      status: 'succeeded',
    });
    expect(refusal(await storeA.startRun(created.id, minutes(T0, 4)))).toEqual({
      code: 'not_pending',
      status: 'succeeded',
    });
    expect(refusal(await storeB.approve(created.id, carol, minutes(T0, 4)))).toEqual({
      code: 'not_pending',
      status: 'succeeded',
    });
    expect(await voteRows(created.id)).toEqual([{ person: 'bob', vote: 'approve' }]);
  });

  it('a request without channel or thread reads back without those keys', async () => {
    const r = await storeA.createRequest({
      id: await storeA.nextRequestId(),
      operation: 'kill-idle',
      target: 'bare',
      environment: 'staging',
      args: {},
      command: 'kill-idle bare',
      risk: 'destructive',
      requester: aliceOnCli,
      preview,
      approvalsRequired: 1,
      expiresAt: minutes(T0, 15),
      now: T0,
    });
    const read = await storeA.getRequest(r.id);
    expect(read).toBeDefined();
    expect(read).not.toHaveProperty('channel');
    expect(read).not.toHaveProperty('thread');
    expect(read?.requester).toStrictEqual(aliceOnCli);
  });

  it('transitions on a missing request are refused with not_found', async () => {
    expect(await storeA.getRequest(987_654_321)).toBeUndefined();
    expect(await storeA.approve(987_654_321, bob, T0)).toEqual({ ok: false, code: 'not_found' });
    expect(await storeA.deny(987_654_321, bob, 'no', T0)).toEqual({ ok: false, code: 'not_found' });
    expect(await storeA.cancel(987_654_321, alice, T0)).toEqual({ ok: false, code: 'not_found' });
    expect(await storeA.startRun(987_654_321, T0)).toEqual({ ok: false, code: 'not_found' });
    expect(await storeA.finishRun(987_654_321, { status: 'failed' }, T0)).toEqual({
      ok: false,
      code: 'not_found',
    });
    await expect(storeA.setRefs(987_654_321, { a: 1 })).rejects.toThrow(/does not exist/);
  });
});

describe('approval rules', () => {
  it('refuses self-approval by the same person on another identity and surface, writing no vote', async () => {
    const r = await createPending(storeA, { target: 'self' });
    expect(refusal(await storeA.approve(r.id, aliceOnDiscord, minutes(T0, 1)))).toEqual({
      code: 'self_approval',
      status: 'pending',
    });
    expect(refusal(await storeB.approve(r.id, aliceOnCli, minutes(T0, 1)))).toEqual({
      code: 'self_approval',
      status: 'pending',
    });
    expect(refusal(await storeA.approve(r.id, alice, minutes(T0, 1)))).toEqual({
      code: 'self_approval',
      status: 'pending',
    });
    expect(refusal(await storeA.deny(r.id, aliceOnDiscord, 'changed my mind', minutes(T0, 1)))).toEqual({
      code: 'self_approval',
      status: 'pending',
    });
    expect(await voteRows(r.id)).toEqual([]);
    expect((await storeA.getRequest(r.id))?.status).toBe('pending');
  });

  it('approvals_required = 2 needs two distinct people; a second vote by the same person is refused', async () => {
    const r = await createPending(storeA, { target: 'two-approvals', approvalsRequired: 2 });

    const first = await storeA.approve(r.id, bob, minutes(T0, 1));
    expect(first.ok).toBe(true);
    expect(first.reached).toBe(false);
    expect(accepted(first).status).toBe('pending');
    expect(accepted(first).votes.map((v) => v.person)).toEqual(['bob']);

    // Same person, another identity: still one person.
    expect(refusal(await storeB.approve(r.id, bobOnCli, minutes(T0, 2)))).toEqual({
      code: 'already_voted',
      status: 'pending',
    });
    expect(refusal(await storeA.approve(r.id, bob, minutes(T0, 2)))).toEqual({
      code: 'already_voted',
      status: 'pending',
    });
    expect(refusal(await storeA.deny(r.id, bob, 'second thoughts', minutes(T0, 2)))).toEqual({
      code: 'already_voted',
      status: 'pending',
    });
    expect(await voteRows(r.id)).toEqual([{ person: 'bob', vote: 'approve' }]);
    expect(refusal(await storeA.startRun(r.id, minutes(T0, 2)))).toEqual({
      code: 'not_pending',
      status: 'pending',
    });

    const second = await storeB.approve(r.id, carol, minutes(T0, 3));
    expect(second.reached).toBe(true);
    const approved = accepted(second);
    expect(approved.status).toBe('approved');
    expect(approved.votes.map((v) => [v.person, v.identity, v.vote])).toEqual([
      ['bob', bob.identity, 'approve'],
      ['carol', carol.identity, 'approve'],
    ]);
  });

  it('deny records the reason and decides the request', async () => {
    const r = await createPending(storeA, { target: 'deny' });
    const denied = accepted(await storeB.deny(r.id, bob, 'not during peak hours', minutes(T0, 2)));
    expect(denied.status).toBe('denied');
    expect(denied.reason).toBe('not during peak hours');
    expect(denied.votes).toStrictEqual([
      { ...bob, vote: 'deny', reason: 'not during peak hours', at: minutes(T0, 2) },
    ]);
    expect(refusal(await storeA.approve(r.id, carol, minutes(T0, 3)))).toEqual({
      code: 'not_pending',
      status: 'denied',
    });
    expect(await voteRows(r.id)).toEqual([{ person: 'bob', vote: 'deny' }]);

    const noReason = await createPending(storeA, { target: 'deny' });
    const deniedBare = accepted(await storeA.deny(noReason.id, carol, undefined, minutes(T0, 2)));
    expect(deniedBare.status).toBe('denied');
    expect(deniedBare).not.toHaveProperty('reason');
    expect(deniedBare.votes[0]).not.toHaveProperty('reason');
  });

  it('only the requester (same person, any identity) may cancel', async () => {
    const r = await createPending(storeA, { target: 'cancel' });
    expect(refusal(await storeA.cancel(r.id, bob, minutes(T0, 1)))).toEqual({
      code: 'not_requester',
      status: 'pending',
    });
    expect((await storeA.getRequest(r.id))?.status).toBe('pending');

    const cancelled = accepted(await storeB.cancel(r.id, aliceOnDiscord, minutes(T0, 2)));
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.updatedAt).toEqual(minutes(T0, 2));

    expect(refusal(await storeA.cancel(r.id, alice, minutes(T0, 3)))).toEqual({
      code: 'not_pending',
      status: 'cancelled',
    });
    expect(refusal(await storeA.approve(r.id, bob, minutes(T0, 3)))).toEqual({
      code: 'not_pending',
      status: 'cancelled',
    });
  });

  it('approving at or after the expiry marks the request expired and refuses; it cannot be approved later', async () => {
    const r = await createPending(storeA, { target: 'expiry' });
    const t = await storeA.approve(r.id, bob, r.expiresAt);
    expect(refusal(t)).toEqual({ code: 'expired', status: 'expired' });
    const stored = await storeB.getRequest(r.id);
    expect(stored?.status).toBe('expired');
    expect(stored?.updatedAt).toEqual(r.expiresAt);
    expect(await voteRows(r.id)).toEqual([]);

    expect(refusal(await storeB.approve(r.id, carol, minutes(T0, 1)))).toEqual({
      code: 'not_pending',
      status: 'expired',
    });

    // One millisecond before the expiry is still in time.
    const inTime = await createPending(storeA, { target: 'expiry' });
    const justBefore = new Date(inTime.expiresAt.getTime() - 1);
    expect(accepted(await storeA.approve(inTime.id, bob, justBefore)).status).toBe('approved');

    const lateDeny = await createPending(storeA, { target: 'expiry' });
    expect(refusal(await storeA.deny(lateDeny.id, bob, 'late', minutes(T0, 16)))).toEqual({
      code: 'expired',
      status: 'expired',
    });
    const lateCancel = await createPending(storeA, { target: 'expiry' });
    expect(refusal(await storeA.cancel(lateCancel.id, alice, minutes(T0, 16)))).toEqual({
      code: 'expired',
      status: 'expired',
    });
  });
});

describe('replicas racing', () => {
  it('expireDue from two stores at once expires each due request exactly once', async () => {
    for (let round = 0; round < 5; round++) {
      const base = minutes(SWEEP_T0, round * 60);
      const due: number[] = [];
      for (let i = 0; i < 8; i++) {
        due.push(
          (await createPending(storeA, { target: `sweep-${i}`, now: base, expiresAt: minutes(base, 1) })).id,
        );
      }
      const notDue = await createPending(storeA, {
        target: 'sweep-late',
        now: base,
        // Past every round's sweep, still years before the other tests' requests.
        expiresAt: minutes(SWEEP_T0, 10 * 24 * 60),
      });
      const decided = await createPending(storeB, {
        target: 'sweep-decided',
        now: base,
        expiresAt: minutes(base, 1),
      });
      // Denied: decided for good. (An approved request that never started expires like a pending one.)
      accepted(await storeB.deny(decided.id, bob, 'no', base));

      const sweepAt = minutes(base, 5);
      const [a, b] = await Promise.all([storeA.expireDue(sweepAt), storeB.expireDue(sweepAt)]);
      const ids = [...a, ...b].map((r) => r.id);
      expect(ids).toHaveLength(due.length);
      expect(new Set(ids)).toEqual(new Set(due));
      for (const r of [...a, ...b]) {
        expect(r.status).toBe('expired');
        expect(r.updatedAt).toEqual(sweepAt);
      }
      expect((await storeA.getRequest(notDue.id))?.status).toBe('pending');
      expect((await storeA.getRequest(decided.id))?.status).toBe('denied');
      expect(await storeA.expireDue(sweepAt)).toEqual([]);
    }
  });

  it('two approvers on two replicas: each request is approved once and started once', async () => {
    const requests = await Promise.all(
      Array.from({ length: 20 }, (_, i) => createPending(storeA, { target: `race-${i}` })),
    );
    const outcomes = await Promise.all(
      requests.map(async (r) => {
        const votes = await Promise.all([
          storeA.approve(r.id, bob, minutes(T0, 1)),
          storeB.approve(r.id, carol, minutes(T0, 1)),
        ]);
        // The winner starts the run; the loser behaves like a retried delivery and tries too.
        const starts = await Promise.all([
          storeA.startRun(r.id, minutes(T0, 2)),
          storeB.startRun(r.id, minutes(T0, 2)),
        ]);
        return { id: r.id, votes, starts };
      }),
    );
    for (const { id, votes, starts } of outcomes) {
      expect(votes.filter((v) => v.ok)).toHaveLength(1);
      const lost = votes.find((v) => !v.ok);
      expect(lost && refusal(lost)).toEqual({ code: 'not_pending', status: 'approved' });
      expect(votes.find((v) => v.ok)?.reached).toBe(true);

      expect(starts.filter((s) => s.ok)).toHaveLength(1);
      const second = starts.find((s) => !s.ok);
      expect(second && refusal(second)).toEqual({ code: 'not_pending', status: 'running' });

      expect(await voteRows(id)).toHaveLength(1);
      expect((await storeA.getRequest(id))?.status).toBe('running');
    }
  });

  it('one running request per target: a second start is target_busy until the first finishes', async () => {
    const first = await createPending(storeA, { target: 'busy' });
    const second = await createPending(storeA, { target: 'busy' });
    const elsewhere = await createPending(storeA, { target: 'not-busy' });
    for (const r of [first, second, elsewhere]) accepted(await storeA.approve(r.id, bob, minutes(T0, 1)));

    expect(accepted(await storeA.startRun(first.id, minutes(T0, 2))).status).toBe('running');
    expect(refusal(await storeB.startRun(second.id, minutes(T0, 2)))).toEqual({
      code: 'target_busy',
      status: 'approved',
    });
    expect((await storeA.getRequest(second.id))?.status).toBe('approved');
    expect(accepted(await storeB.startRun(elsewhere.id, minutes(T0, 2))).status).toBe('running');

    const failed = accepted(
      await storeA.finishRun(first.id, { status: 'failed', error: 'lock timeout' }, minutes(T0, 3)),
    );
    expect(failed.status).toBe('failed');
    expect(failed.error).toBe('lock timeout');
    expect(failed).not.toHaveProperty('result');

    expect(accepted(await storeB.startRun(second.id, minutes(T0, 4))).status).toBe('running');
  });

  it('two approved requests on one target started at the same moment: exactly one runs', async () => {
    for (let round = 0; round < 5; round++) {
      const target = `busy-race-${round}`;
      const r1 = await createPending(storeA, { target });
      const r2 = await createPending(storeA, { target });
      accepted(await storeA.approve(r1.id, bob, minutes(T0, 1)));
      accepted(await storeA.approve(r2.id, bob, minutes(T0, 1)));
      const starts = await Promise.all([
        storeA.startRun(r1.id, minutes(T0, 2)),
        storeB.startRun(r2.id, minutes(T0, 2)),
      ]);
      expect(starts.filter((s) => s.ok)).toHaveLength(1);
      const busy = starts.find((s) => !s.ok);
      expect(busy && refusal(busy)).toEqual({ code: 'target_busy', status: 'approved' });
      const running = await storeA.listRequests({ target, statuses: ['running'] });
      expect(running).toHaveLength(1);
    }
  });
});

describe('leases on running requests', () => {
  it('a run whose replica stopped renewing is interrupted exactly once, and its target is free again', async () => {
    const left = await createPending(storeA, { target: 'lease' });
    const next = await createPending(storeA, { target: 'lease' });
    for (const r of [left, next]) accepted(await storeA.approve(r.id, bob, minutes(T0, 1)));
    const lease = { runner: 'host-a:41:dead', until: minutes(T0, 3) };
    const running = accepted(await storeA.startRun(left.id, minutes(T0, 2), lease));
    expect(running).toMatchObject({
      status: 'running',
      runner: 'host-a:41:dead',
      leaseUntil: minutes(T0, 3),
    });

    // Renewed by its runner only, and never shortened.
    expect(await storeB.renewLease(left.id, { runner: 'host-b:7:other', until: minutes(T0, 9) })).toBe(false);
    expect(await storeA.renewLease(left.id, { runner: lease.runner, until: minutes(T0, 4) })).toBe(true);
    expect(await storeA.renewLease(left.id, { runner: lease.runner, until: minutes(T0, 3) })).toBe(true);
    expect((await storeA.getRequest(left.id))?.leaseUntil).toEqual(minutes(T0, 4));

    // Before the lease runs out nothing is interrupted.
    expect((await storeA.interruptAbandoned(minutes(T0, 4))).map((r) => r.id)).not.toContain(left.id);
    expect(refusal(await storeB.startRun(next.id, minutes(T0, 4)))).toEqual({
      code: 'target_busy',
      status: 'approved',
    });

    // Two replicas sweep at the same moment: one reports it.
    const [a, b] = await Promise.all([
      storeA.interruptAbandoned(minutes(T0, 5)),
      storeB.interruptAbandoned(minutes(T0, 5)),
    ]);
    const changed = [...a, ...b].filter((r) => r.id === left.id);
    expect(changed).toHaveLength(1);
    expect(changed[0]).toMatchObject({ status: 'failed', runner: 'host-a:41:dead' });
    expect(changed[0]?.error).toMatch(
      /^interrupted: the dbops replica running it \(host-a:41:dead\) stopped answering/,
    );
    expect(changed[0]?.error).toContain('whether the operation took effect is unknown');
    // The target takes the next request; the lease cannot be renewed any more.
    expect(accepted(await storeB.startRun(next.id, minutes(T0, 6))).status).toBe('running');
    expect(await storeA.renewLease(left.id, { runner: lease.runner, until: minutes(T0, 9) })).toBe(false);
    // Only its own runner, still going after all, can correct it to the real outcome (once).
    const result = { headline: 'vacuumed', columns: [], rows: [], truncated: false };
    expect(refusal(await storeA.finishRun(left.id, { status: 'succeeded', result }, minutes(T0, 7)))).toEqual(
      {
        code: 'not_pending',
        status: 'failed',
      },
    );
    expect(
      refusal(
        await storeB.finishRun(left.id, { status: 'succeeded', result }, minutes(T0, 7), 'host-b:7:other'),
      ),
    ).toEqual({ code: 'not_pending', status: 'failed' });
    const corrected = accepted(
      await storeA.finishRun(left.id, { status: 'succeeded', result }, minutes(T0, 7), lease.runner),
    );
    expect(corrected).toMatchObject({ status: 'succeeded', result });
    expect(corrected).not.toHaveProperty('error');
    expect(
      refusal(
        await storeA.finishRun(left.id, { status: 'failed', error: 'x' }, minutes(T0, 8), lease.runner),
      ),
    ).toEqual({ code: 'not_pending', status: 'succeeded' });
  });
});

describe('persistence and queries', () => {
  it('a pending request survives a restart and can be approved afterwards', async () => {
    const before = await PgStateStore.open(url);
    const r = await createPending(before, { target: 'restart' });
    await before.close();

    const after = await PgStateStore.open(url);
    try {
      await after.migrate();
      const reloaded = await after.getRequest(r.id);
      expect(reloaded).toStrictEqual(r);
      const approved = await after.approve(r.id, bob, minutes(T0, 5));
      expect(approved.reached).toBe(true);
      expect(accepted(approved).status).toBe('approved');
    } finally {
      await after.close();
    }
  });

  it('setRefs merges surface references', async () => {
    const r = await createPending(storeA, { target: 'refs' });
    await storeA.setRefs(r.id, { slack: { channel: 'C0INCIDENT', ts: '1700000000.000200' } });
    await storeB.setRefs(r.id, { discord: { messageId: '123' } });
    expect((await storeA.getRequest(r.id))?.refs).toStrictEqual({
      slack: { channel: 'C0INCIDENT', ts: '1700000000.000200' },
      discord: { messageId: '123' },
    });
    await storeA.setRefs(r.id, { slack: { ts: 'replaced' } });
    expect((await storeA.getRequest(r.id))?.refs).toStrictEqual({
      slack: { ts: 'replaced' },
      discord: { messageId: '123' },
    });
  });

  it('listRequests filters by status and target, newest first, 20 by default, with votes', async () => {
    const made: ApprovalRequest[] = [];
    for (let i = 0; i < 22; i++) {
      made.push(await createPending(storeA, { target: 'listing', now: minutes(T0, i) }));
    }
    const newest = made.at(-1);
    const secondNewest = made.at(-2);
    if (!newest || !secondNewest) throw new Error('requests were not created');
    accepted(await storeA.approve(newest.id, bob, minutes(T0, 30)));
    accepted(await storeA.cancel(secondNewest.id, alice, minutes(T0, 30)));

    const all = await storeB.listRequests({ target: 'listing' });
    expect(all.map((r) => r.id)).toEqual(
      made
        .map((r) => r.id)
        .reverse()
        .slice(0, 20),
    );
    expect(all[0]?.status).toBe('approved');
    expect(all[0]?.votes.map((v) => v.person)).toEqual(['bob']);

    expect((await storeB.listRequests({ target: 'listing', limit: 50 })).length).toBe(22);
    expect((await storeB.listRequests({ target: 'listing', limit: 3 })).map((r) => r.id)).toEqual(
      made
        .map((r) => r.id)
        .reverse()
        .slice(0, 3),
    );
    const pending = await storeB.listRequests({ target: 'listing', statuses: ['pending'], limit: 50 });
    expect(pending).toHaveLength(20);
    expect(pending.every((r) => r.status === 'pending')).toBe(true);
    const decided = await storeB.listRequests({ target: 'listing', statuses: ['approved', 'cancelled'] });
    expect(decided.map((r) => [r.id, r.status])).toEqual([
      [newest.id, 'approved'],
      [secondNewest.id, 'cancelled'],
    ]);
    expect(await storeB.listRequests({ target: 'listing', statuses: [] })).toEqual([]);
    expect(await storeB.listRequests({ target: 'no-such-target' })).toEqual([]);
  });
});

describe('audit', () => {
  it('writes and lists records with every field, newest first, filtered by target', async () => {
    const full: AuditEvent = {
      requestId: 42,
      event: 'executed',
      person: 'alice',
      identity: 'T01/U01ALICE',
      surface: 'slack',
      channel: 'C0INCIDENT',
      thread: '1700000000.000100',
      operation: 'kill-idle',
      target: 'audited',
      args: { olderThanSeconds: 600, users: ['app'] },
      risk: 'destructive',
      approvers: ['bob', 'carol'],
      outcome: 'succeeded',
      durationMs: 1234,
      error: 'partial: 1 of 2 sessions had gone',
      detail: { terminated: [101], skipped: [102] },
    };
    const minimal: AuditEvent = {
      requestId: null,
      event: 'builtin',
      person: null,
      identity: 'unknown-user',
      surface: 'discord',
      target: 'audited',
      outcome: 'ok',
    };
    await storeA.audit(full, minutes(T0, 1));
    await storeB.audit(minimal, minutes(T0, 2));
    await storeB.audit({ ...minimal, target: 'other-target' }, minutes(T0, 3));

    const records = await storeA.listAudit({ target: 'audited' });
    expect(records).toHaveLength(2);
    const [newest, oldest] = records;
    expect(newest).toStrictEqual({ ...minimal, id: newest?.id, at: minutes(T0, 2) });
    expect(oldest).toStrictEqual({ ...full, id: oldest?.id, at: minutes(T0, 1) });
    expect(typeof newest?.id).toBe('number');
    expect(newest?.id).toBeGreaterThan(oldest?.id ?? Number.POSITIVE_INFINITY);

    expect((await storeA.listAudit({ target: 'audited', limit: 1 })).map((r) => r.event)).toEqual([
      'builtin',
    ]);
    const everywhere = await storeA.listAudit({ limit: 100 });
    expect(everywhere.map((r) => r.target).filter((t) => t === 'audited' || t === 'other-target')).toEqual([
      'other-target',
      'audited',
      'audited',
    ]);
  });

  it('throws when the write cannot happen: closed store, or a database without the schema', async () => {
    const closed = await PgStateStore.open(url);
    await closed.close();
    await expect(
      closed.audit(
        {
          requestId: 1,
          event: 'requested',
          person: 'alice',
          identity: 'alice',
          surface: 'cli',
          outcome: 'ok',
        },
        T0,
      ),
    ).rejects.toThrow();

    const empty = await createDatabase('state_unmigrated');
    const unmigrated = await PgStateStore.open(empty.url);
    try {
      await expect(
        unmigrated.audit(
          {
            requestId: null,
            event: 'invalid',
            person: null,
            identity: 'x',
            surface: 'cli',
            outcome: 'invalid',
          },
          T0,
        ),
      ).rejects.toMatchObject({ code: '42P01' });
    } finally {
      await unmigrated.close();
    }
  });
});

describe('opening', () => {
  it('open() rejects when the database cannot be reached', async () => {
    const unreachable = new URL(adminUrl(dbName));
    unreachable.port = '1';
    await expect(PgStateStore.open(unreachable.toString())).rejects.toThrow();
  });
});

describe('channel bindings', () => {
  it('binds, rebinds, lists and unbinds a channel, surviving a new store', async () => {
    const db = await createDatabase('state_bindings');
    const first = await PgStateStore.open(db.url);
    await first.migrate();
    const at = new Date('2030-01-01T00:00:00Z');
    await first.setBinding({ channel: 'slack:CINC', target: 'kasm', boundBy: 'alice', boundAt: at });
    await first.setBinding({ channel: 'slack:CINC', target: 'staging', boundBy: 'bob', boundAt: at });
    await first.close();
    const second = await PgStateStore.open(db.url);
    try {
      expect(await second.getBinding('slack:CINC')).toEqual({
        channel: 'slack:CINC',
        target: 'staging',
        boundBy: 'bob',
        boundAt: at,
      });
      expect((await second.listBindings()).map((b) => b.channel)).toEqual(['slack:CINC']);
      expect(await second.removeBinding('slack:CINC')).toBe(true);
      expect(await second.removeBinding('slack:CINC')).toBe(false);
      expect(await second.getBinding('slack:CINC')).toBeUndefined();
    } finally {
      await second.close();
    }
  });
});

describe('deliveries', () => {
  it('claims a delivery once across two stores, even when they race', async () => {
    const db = await createDatabase('state_deliveries');
    const a = await PgStateStore.open(db.url);
    await a.migrate();
    const b = await PgStateStore.open(db.url);
    try {
      const now = new Date();
      const claims = await Promise.all([
        a.claimDelivery('slack:event:Ev1', now),
        b.claimDelivery('slack:event:Ev1', now),
        a.claimDelivery('slack:event:Ev1', now),
      ]);
      expect(claims.filter(Boolean)).toHaveLength(1);
      expect(await b.claimDelivery('slack:event:Ev2', now)).toBe(true);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
