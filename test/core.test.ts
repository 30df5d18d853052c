// The pipeline end to end: invocation → parsing → policy → approvals → real PostgreSQL → audit.
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { as, type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery, openClient } from './helpers/db.js';

let fx: Fixture;
let app: App;
const held: pg.Client[] = [];

beforeAll(async () => {
  fx = await makeFixture();
  app = await startApp(fx.config);
});

afterAll(async () => {
  await app?.close();
  await Promise.all(held.map((c) => c.end().catch(() => {})));
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens `n` sessions on the database that sit idle (one idle in transaction when asked). */
async function idleSessions(url: string, n: number, inTransaction = false): Promise<number[]> {
  const pids: number[] = [];
  for (let i = 0; i < n; i++) {
    const client = await openClient(url, `idle-worker-${i}`);
    held.push(client);
    const [row] = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows;
    if (inTransaction && i === 0) await client.query('BEGIN; SELECT 1');
    if (row) pids.push(row.pid);
  }
  return pids;
}

async function alive(pids: number[]): Promise<number[]> {
  const rows = await adminQuery<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])',
    [pids],
  );
  return rows.map((r) => r.pid).sort();
}

/** The audit records of a reply: its approval request's, or its reference's when it made none. */
async function auditEvents(of: { requestId: number | null; ref?: string | undefined }): Promise<string[]> {
  const rows = await adminQuery<{ event: string; outcome: string }>(
    'SELECT event, outcome FROM dbops_audit WHERE request_id = $1 OR ref = $2 ORDER BY id',
    [of.requestId, of.ref ?? null],
    fx.state.name,
  );
  return rows.map((r) => `${r.event}:${r.outcome}`);
}

describe('reads', () => {
  it('answers sizes from the real database', async () => {
    const reply = await as(app, 'carol')('/db sizes staging');
    expect(reply.status).toBe('ok');
    const [truth] = await adminQuery<{ bytes: string }>(
      'SELECT pg_database_size(current_database())::text AS bytes',
      [],
      fx.staging.name,
    );
    expect(reply.result?.data?.databaseBytes).toBe(Number(truth?.bytes));
    expect(reply.result?.rows.some((r) => String(Object.values(r)).includes('exams'))).toBe(true);
    expect(reply.text).toContain('exams');
    expect(await auditEvents(reply)).toEqual(['requested:running', 'executed:ok']);
  });

  it('uses the target bound to the channel when none is named', async () => {
    const reply = await as(app, 'T1/UALICE', 'slack', 'CINCIDENT')('/db sizes');
    expect(reply.status).toBe('ok');
    expect(reply.target).toBe('kasm');
  });

  it('suggests the closest operation and target', async () => {
    const op = await as(app, 'carol')('/db sizse staging');
    expect(op).toMatchObject({ status: 'invalid', code: 'unknown_operation', ephemeral: true });
    expect(op.message).toContain('did you mean `sizes`');
    // Without a guess the sentence still ends before the hint.
    expect((await as(app, 'carol')('/db frobnicate staging')).message).toContain(
      'unknown operation `frobnicate`. Try `/db help`.',
    );
    const target = await as(app, 'carol')('/db sizes stagin');
    expect(target).toMatchObject({ status: 'invalid', code: 'unknown_target' });
    expect(target.message).toContain('did you mean `staging`');
    // carol may not read production: kasm is not among the targets offered to her
    expect(target.message).not.toContain('kasm');
  });

  it('refuses by policy and audits the refusal', async () => {
    const reply = await as(app, 'carol')('/db sizes kasm');
    expect(reply).toMatchObject({ status: 'refused', code: 'denied' });
    expect(reply.message).toContain('carol may not run read operations on production');
    expect(await auditEvents(reply)).toEqual(['refused:denied']);
  });

  it('refuses people it does not know', async () => {
    const reply = await as(app, 'mallory')('/db sizes staging');
    expect(reply).toMatchObject({ status: 'refused', code: 'unknown_person' });
    expect(reply.message).toContain('cli:mallory');
    expect(await auditEvents(reply)).toEqual(['refused:unknown_person']);
  });

  it('rejects SQL in arguments at validation and changes nothing', async () => {
    const injected = [
      `/db sizes staging --limit "10; DROP TABLE exams"`,
      `/db kill-idle staging --older-than "5m'; DROP TABLE exams; --"`,
      `/db sizes staging --limit=1)--`,
    ];
    for (const text of injected) {
      const reply = await as(app, 'alice')(text);
      expect(reply.status, text).toBe('invalid');
      expect(reply.code).toBe('invalid_argument');
      expect(reply.message).toMatch(/--limit|--older-than/);
      expect(reply.message).toContain('usage:');
    }
    const [count] = await adminQuery<{ n: string }>(
      'SELECT count(*)::text AS n FROM exams',
      [],
      fx.staging.name,
    );
    expect(count?.n).toBe('2000');
    expect((await app.state.listRequests({ statuses: ['pending'] })).length).toBe(0);
  });

  it('answers an unreachable target clearly while other targets keep working', async () => {
    const [down, up] = await Promise.all([
      as(app, 'carol')('/db sizes down'),
      as(app, 'carol')('/db sizes staging'),
    ]);
    expect(down).toMatchObject({ status: 'failed', code: 'target_down' });
    expect(down.message).toContain('down');
    expect(down.message).not.toContain('secret');
    expect(up.status).toBe('ok');
    expect(await auditEvents(down)).toEqual(['requested:running', 'failed:target_down']);
  });
});

describe('approvals', () => {
  it('previews, refuses self-approval on any identity, runs once on another approver, and audits it all', async () => {
    const pids = await idleSessions(fx.staging.url, 3, true);
    await sleep(1200);
    const request = await as(app, 'alice')('/db kill-idle staging --older-than 1s');
    expect(request.status).toBe('pending');
    const id = request.requestId ?? -1;
    const previewed = (request.result?.rows ?? []).map((r) => Number(r.pid)).sort();
    expect(previewed).toEqual([...pids].sort());
    expect(request.text).toContain(`/db approve ${id}`);

    const self = await as(app, 'alice')(`/db approve ${id}`);
    expect(self).toMatchObject({ status: 'refused', code: 'self_approval' });
    const selfViaSlack = await as(app, 'T1/UALICE', 'slack')(`/db approve ${id}`);
    expect(selfViaSlack).toMatchObject({ status: 'refused', code: 'self_approval' });
    const notApprover = await as(app, 'carol')(`/db approve ${id}`);
    expect(notApprover).toMatchObject({ status: 'refused', code: 'denied' });
    expect(await alive(pids)).toEqual([...pids].sort());

    const approved = await as(app, 'bob')(`/db approve ${id}`);
    expect(approved.status).toBe('ok');
    expect(approved.result?.headline).toBe('all 3 previewed sessions were still idle and were terminated');
    await sleep(100);
    expect(await alive(pids)).toEqual([]);

    const again = await as(app, 'dave')(`/db approve ${id}`);
    expect(again).toMatchObject({ status: 'refused', code: 'not_pending' });
    expect(again.message).toContain('approved by bob');

    const status = await as(app, 'carol')(`/db status ${id}`);
    expect(status.request?.status).toBe('succeeded');
    expect(await auditEvents({ requestId: id })).toEqual([
      'pending:awaiting approval',
      'refused:self_approval',
      'refused:self_approval',
      'refused:denied',
      'vote:approve',
      'approved:approved',
      'executed:ok',
      'refused:not_pending',
    ]);
  });

  it('needs two different approvers on production', async () => {
    const pids = await idleSessions(fx.kasm.url, 1);
    await sleep(1100);
    const request = await as(app, 'bob')('/db kill-idle kasm --older-than 1s');
    expect(request.status).toBe('pending');
    const id = request.requestId ?? -1;
    const first = await as(app, 'alice')(`/db approve ${id}`);
    expect(first.status).toBe('ok');
    expect(first.message).toContain('1 of 2');
    expect((await app.state.getRequest(id))?.status).toBe('pending');
    expect(await as(app, 'alice')(`/db approve ${id}`)).toMatchObject({ code: 'already_voted' });
    expect(await alive(pids)).toEqual(pids);
    const second = await as(app, 'dave')(`/db approve ${id}`);
    expect(second.status).toBe('ok');
    expect(second.request?.status).toBe('succeeded');
    await sleep(100);
    expect(await alive(pids)).toEqual([]);
  });

  it('denies with a reason, and cancels only for the requester', async () => {
    await idleSessions(fx.staging.url, 1);
    await sleep(1100);
    const a = await as(app, 'bob')('/db kill-idle staging --older-than 1s');
    const denied = await as(app, 'alice')(`/db deny ${a.requestId} not during the exam window`);
    expect(denied.status).toBe('ok');
    expect(denied.request?.status).toBe('denied');
    expect(denied.request?.reason).toBe('not during the exam window');
    expect(await as(app, 'dave')(`/db approve ${a.requestId}`)).toMatchObject({ code: 'not_pending' });

    const b = await as(app, 'bob')('/db kill-idle staging --older-than 1s');
    expect(await as(app, 'alice')(`/db cancel ${b.requestId}`)).toMatchObject({ code: 'not_requester' });
    const cancelled = await as(app, 'bob')(`/db cancel ${b.requestId}`);
    expect(cancelled.request?.status).toBe('cancelled');
  });

  it('says there is nothing to approve when nothing qualifies', async () => {
    const reply = await as(app, 'bob')('/db kill-idle staging --older-than 1d');
    expect(reply.status).toBe('ok');
    expect(reply.message).toContain('nothing to do');
    expect(reply.request).toBeUndefined();
  });

  it('runs an operation once when two replicas race to approve it', async () => {
    const replicaA = await startApp(fx.config);
    const replicaB = await startApp(fx.config);
    try {
      for (let round = 0; round < 5; round++) {
        const pids = await idleSessions(fx.staging.url, 2);
        await sleep(1100);
        const request = await as(replicaA, 'alice')('/db kill-idle staging --older-than 1s');
        expect(request.status).toBe('pending');
        const id = request.requestId ?? -1;
        // bob and dave click at the same moment on two replicas; bob's click is also delivered twice.
        const replies = await Promise.all([
          as(replicaA, 'bob')(`/db approve ${id}`),
          as(replicaB, 'dave')(`/db approve ${id}`),
          as(replicaB, 'bob')(`/db approve ${id}`),
        ]);
        const ran = replies.filter((r) => r.status === 'ok' && r.result?.headline);
        expect(ran.length, `round ${round}`).toBe(1);
        expect(replies.filter((r) => r.status === 'refused').length).toBe(2);
        const events = await auditEvents({ requestId: id });
        expect(events.filter((e) => e.startsWith('executed')).length).toBe(1);
        await sleep(100);
        expect(await alive(pids)).toEqual([]);
      }
    } finally {
      await replicaA.close();
      await replicaB.close();
    }
  });

  it('keeps a pending request across a restart and runs it after', async () => {
    const pids = await idleSessions(fx.staging.url, 1);
    await sleep(1100);
    const first = await startApp(fx.config);
    const request = await as(first, 'alice')('/db kill-idle staging --older-than 1s');
    expect(request.status).toBe('pending');
    await first.close();
    const second = await startApp(fx.config);
    try {
      const pending = await as(second, 'bob')('/db pending');
      expect(pending.requests?.map((r) => r.id)).toContain(request.requestId);
      const approved = await as(second, 'bob')(`/db approve ${request.requestId}`);
      expect(approved.status).toBe('ok');
      await sleep(100);
      expect(await alive(pids)).toEqual([]);
    } finally {
      await second.close();
    }
  });

  it('expires a request after its time, exactly once', async () => {
    let now = new Date();
    const clocked = await startApp(fx.config, () => now);
    const other = await startApp(fx.config, () => now);
    try {
      await idleSessions(fx.staging.url, 1);
      await sleep(1100);
      now = new Date();
      const request = await as(clocked, 'alice')('/db kill-idle staging --older-than 1s');
      const id = request.requestId ?? -1;
      expect(request.request?.expiresAt.getTime()).toBe(now.getTime() + 15 * 60 * 1000);
      now = new Date(now.getTime() + 16 * 60 * 1000);
      const [a, b] = await Promise.all([clocked.core.sweepExpired(), other.core.sweepExpired()]);
      expect([...a, ...b].filter((r) => r.id === id).length).toBe(1);
      const late = await as(clocked, 'bob')(`/db approve ${id}`);
      expect(late).toMatchObject({ status: 'refused', code: 'not_pending' });
      expect(late.message).toContain('expired');
      expect((await clocked.state.getRequest(id))?.status).toBe('expired');
      expect((await auditEvents({ requestId: id })).filter((e) => e === 'expired:expired').length).toBe(1);
    } finally {
      await clocked.close();
      await other.close();
    }
  });

  it('reports a run left behind by a replica that died as interrupted, once, and frees its target', async () => {
    let now = new Date();
    const a = await startApp(fx.config, () => now);
    const b = await startApp(fx.config, () => now);
    const changes: string[] = [];
    a.events.onRequestChange((r, change) => changes.push(`a:${r.id}:${change}`));
    b.events.onRequestChange((r, change) => changes.push(`b:${r.id}:${change}`));
    try {
      const pids = await idleSessions(fx.staging.url, 1);
      await sleep(1100);
      now = new Date();
      const request = await as(a, 'alice')('/db kill-idle staging --older-than 1s');
      const id = request.requestId ?? -1;
      // A replica approved it and started running it, then died: the row stays running under its lease.
      const voter = { person: 'bob', identity: 'cli:bob', surface: 'cli' as const };
      expect((await a.state.approve(id, voter, now)).ok).toBe(true);
      const lease = { runner: 'dead-host:1:0000', until: new Date(now.getTime() + 60_000) };
      expect((await a.state.startRun(id, now, lease)).ok).toBe(true);
      const blocked = await as(a, 'alice')('/db kill-idle staging --older-than 1s');
      const blockedId = blocked.requestId ?? -1;
      expect(blocked.status).toBe('pending');
      expect(await as(b, 'bob')(`/db approve ${blockedId}`)).toMatchObject({
        status: 'refused',
        code: 'target_busy',
      });

      now = new Date(now.getTime() + 61_000);
      changes.length = 0;
      await Promise.all([a.core.sweepExpired(), b.core.sweepExpired()]);
      const left = await a.state.getRequest(id);
      expect(left?.status).toBe('failed');
      expect(left?.error).toContain('interrupted: the dbops replica running it (dead-host:1:0000)');
      expect((await auditEvents({ requestId: id })).filter((e) => e.startsWith('interrupted'))).toEqual([
        'interrupted:unknown',
      ]);
      expect(changes.filter((c) => c.endsWith(`:${id}:failed`))).toHaveLength(1);
      const status = await as(a, 'alice')(`/db status ${id}`);
      expect(status.text).toContain('interrupted');

      // The target takes destructive operations again: the request that was refused runs now.
      const ran = await as(b, 'bob')(`/db approve ${blockedId}`);
      expect(ran.status).toBe('ok');
      await sleep(100);
      expect(await alive(pids)).toEqual([]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('keeps renewing the lease of a run that lasts longer than the lease', async () => {
    const lessee = await startApp(fx.config, undefined, { runLeaseMs: 300 });
    const sweeper = await startApp(fx.config, undefined, { runLeaseMs: 300 });
    const locker = await openClient(fx.staging.url, 'lease-locker');
    held.push(locker);
    try {
      // VACUUM FULL waits for the lock (lock_timeout 1 s in the fixture) while another session holds it.
      await locker.query('BEGIN; LOCK TABLE exams IN ACCESS SHARE MODE');
      const request = await as(lessee, 'alice')('/db vacuum staging exams --full');
      expect(request.status).toBe('pending');
      const id = request.requestId ?? -1;
      const run = as(lessee, 'bob')(`/db approve ${id}`);
      let sweeps = 0;
      const sweeping = (async () => {
        while ((await sweeper.state.getRequest(id))?.status !== 'failed') {
          await sweeper.core.sweepExpired();
          sweeps += 1;
          await sleep(50);
        }
      })();
      const reply = await run;
      await sweeping;
      expect(sweeps).toBeGreaterThan(5);
      // It failed on the lock after a second of waiting, three leases long, and was never interrupted.
      expect(reply.status).toBe('failed');
      const done = await lessee.state.getRequest(id);
      expect(done?.error).not.toContain('interrupted');
      expect(done?.runner).toBe(lessee.core.runner);
      expect((await auditEvents({ requestId: id })).some((e) => e.startsWith('interrupted'))).toBe(false);
    } finally {
      await locker.query('ROLLBACK').catch(() => {});
      await lessee.close();
      await sweeper.close();
    }
  });

  it('runs nothing when the audit log cannot be written', async () => {
    const pids = await idleSessions(fx.staging.url, 1);
    await sleep(1100);
    const request = await as(app, 'alice')('/db kill-idle staging --older-than 1s');
    await adminQuery('ALTER TABLE dbops_audit RENAME TO dbops_audit_away', [], fx.state.name);
    try {
      const approve = await as(app, 'bob')(`/db approve ${request.requestId}`);
      expect(approve.status).toBe('failed');
      expect(approve.code).toBe('state_unavailable');
      expect(await alive(pids)).toEqual(pids);
      const read = await as(app, 'carol')('/db sizes staging');
      expect(read).toMatchObject({ status: 'failed', code: 'state_unavailable' });
    } finally {
      await adminQuery('ALTER TABLE dbops_audit_away RENAME TO dbops_audit', [], fx.state.name);
    }
  });
});

describe('built-ins', () => {
  it('lists targets with what the person may do', async () => {
    const reply = await as(app, 'bob')('/db targets');
    expect(reply.result?.rows).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ target: 'staging', may: 'read, write, request, approve' }),
        expect.objectContaining({ target: 'kasm', may: 'read, request' }),
      ]),
    );
    const carol = await as(app, 'carol')('/db targets');
    expect(carol.result?.rows.map((r) => r.target)).not.toContain('kasm');
  });

  it('explains operations', async () => {
    const all = await as(app, 'carol')('/db help');
    expect(all.text).toContain('kill-idle');
    expect(all.text).toContain('approve <id>');
    const one = await as(app, 'bob')('/db help kill-idle');
    expect(one.text).toContain('/db kill-idle');
    expect(one.text).toContain('risk: destructive');
    expect(one.text).toContain('you may request it on: staging, kasm');
  });

  it('shows the audit trail of a target to its readers only', async () => {
    const reply = await as(app, 'bob')('/db audit staging --limit 5');
    expect(reply.status).toBe('ok');
    expect(reply.result?.rows.length).toBe(5);
    expect(reply.result?.rows.every((r) => r.target === 'staging')).toBe(true);
    const carol = await as(app, 'carol')('/db audit kasm');
    expect(carol).toMatchObject({ status: 'invalid', code: 'unknown_target' });
  });

  it('answers unknown request ids plainly', async () => {
    expect(await as(app, 'bob')('/db approve 999999')).toMatchObject({
      status: 'refused',
      code: 'not_found',
    });
    expect(await as(app, 'bob')('/db approve soon')).toMatchObject({
      status: 'invalid',
      code: 'invalid_argument',
    });
  });
});
