// The StateStore on PostgreSQL: every transition is a compare-and-set, so replicas can share one database.

import pg from 'pg';
import type { Logger } from '../core/log.js';
import { redactSecrets } from '../core/log.js';
import type { OperationResult, RequestStatus } from '../core/types.js';
import { queryAudit } from './audit-query.js';
import { loadMemberRoles, membersWithRoles, type ObservedRoles, saveMemberRoles } from './member-roles.js';
import { migrate } from './migrations.js';
import { NamedStatementClient } from './named-client.js';
import { loadPagedRead, savePagedRead } from './paged-reads.js';
import {
  isUniqueViolation,
  json,
  listLimit,
  loadRequest,
  loadVotes,
  mustLoad,
  type Queryable,
  type RequestRow,
  single,
  toId,
  toRequest,
  withVotes,
} from './rows.js';
import { inTransaction } from './transaction.js';
import type {
  Actor,
  ApprovalRequest,
  AuditEvent,
  AuditFilter,
  AuditRecord,
  ChannelBinding,
  NewRequest,
  PagedRead,
  RunLease,
  StateStore,
  Transition,
  TransitionRefusal,
} from './types.js';

export interface PgStateStoreOptions {
  /** Pool size; the state queries are short, a handful of connections is plenty. */
  poolMax?: number;
  applicationName?: string;
  /** Where a dropped idle connection is reported; without it the error is ignored (never thrown). */
  log?: Logger;
}

const ONE_RUNNING_PER_TARGET = 'dbops_requests_one_running_per_target';
/** How the error of a run reported interrupted begins; its own runner may still correct it (finishRun). */
const INTERRUPTED = 'interrupted:';
/** The lease of a run started without one (ten minutes). */
const DEFAULT_LEASE_MS = 10 * 60 * 1000;

export class PgStateStore implements StateStore {
  private constructor(private readonly pool: pg.Pool) {}

  /** Opens the pool and checks that the database answers; does not migrate (call `migrate()`). */
  static async open(url: string, opts: PgStateStoreOptions = {}): Promise<PgStateStore> {
    const pool = new pg.Pool({
      // Statements prepared by name per connection: parsed and planned once (named-client.ts).
      Client: NamedStatementClient,
      connectionString: url,
      max: opts.poolMax ?? 5,
      application_name: opts.applicationName ?? 'dbops-state',
      connectionTimeoutMillis: 5_000,
      statement_timeout: 10_000,
      // Client-side too: a state server that goes silent after login (frozen, partitioned) fails the call
      // after 15 s instead of hanging it, and the connection is destroyed (pool.query and transaction()
      // release it with the error). Keepalive notices a vanished peer between calls.
      query_timeout: 15_000,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      // A transaction left open (e.g. a process frozen mid-approval) must not hold a request row locked forever.
      idle_in_transaction_session_timeout: 60_000,
      idleTimeoutMillis: 30_000,
    });
    // An idle connection dropped by the server emits 'error' on the pool; unhandled, it would kill the process.
    pool.on('error', (err) => {
      opts.log?.warn({ error: redactSecrets(err.message) }, 'state database connection lost');
    });
    try {
      await pool.query('SELECT 1');
    } catch (err) {
      await pool.end().catch(() => {});
      throw err;
    }
    return new PgStateStore(pool);
  }

  async migrate(): Promise<void> {
    await migrate(this.pool);
  }

  async nextRequestId(): Promise<number> {
    const { rows } = await this.pool.query<{ id: string }>("SELECT nextval('dbops_request_id_seq') AS id");
    return toId(rows[0]?.id);
  }

  async createRequest(input: NewRequest): Promise<ApprovalRequest> {
    const { rows } = await this.pool.query<RequestRow>(
      `INSERT INTO dbops_requests (id, status, operation, target, environment, args, command, risk,
         requester_person, requester_identity, requester_surface, channel, thread, preview,
         approvals_required, created_at, expires_at, updated_at, request_reason)
       VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $15, $17)
       RETURNING *`,
      [
        input.id,
        input.operation,
        input.target,
        input.environment,
        json(input.args),
        input.command,
        input.risk,
        input.requester.person,
        input.requester.identity,
        input.requester.surface,
        input.channel ?? null,
        input.thread ?? null,
        json(input.preview),
        input.approvalsRequired,
        input.now,
        input.expiresAt,
        input.requestReason ?? null,
      ],
    );
    return toRequest(single(rows), []);
  }

  async getRequest(id: number): Promise<ApprovalRequest | undefined> {
    return await loadRequest(this.pool, id);
  }

  async listRequests(filter: {
    statuses?: RequestStatus[];
    target?: string;
    limit?: number;
  }): Promise<ApprovalRequest[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.statuses !== undefined) {
      params.push(filter.statuses);
      where.push(`status = ANY($${params.length}::text[])`);
    }
    if (filter.target !== undefined) {
      params.push(filter.target);
      where.push(`target = $${params.length}`);
    }
    params.push(listLimit(filter.limit));
    const { rows } = await this.pool.query<RequestRow>(
      `SELECT * FROM dbops_requests ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return await withVotes(this.pool, rows);
  }

  async approve(
    id: number,
    voter: Actor,
    now: Date,
    judge?: (request: ApprovalRequest) => boolean,
  ): Promise<Transition & { reached?: boolean }> {
    return await this.transaction(async (c): Promise<Transition & { reached?: boolean }> => {
      const row = await lockRequest(c, id);
      if (row === undefined) return { ok: false, code: 'not_found' };
      const refusal = await refuseVote(c, row, voter, now);
      if (refusal !== undefined) return refusal;
      await insertVote(c, id, voter, 'approve', undefined, now);
      const counted = await c.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM dbops_votes WHERE request_id = $1 AND vote = 'approve'",
        [id],
      );
      const reached = judge
        ? judge(await mustLoad(c, id))
        : (counted.rows[0]?.n ?? 0) >= row.approvals_required;
      await c.query('UPDATE dbops_requests SET status = $2, updated_at = $3 WHERE id = $1', [
        id,
        reached ? 'approved' : 'pending',
        now,
      ]);
      return { ok: true, request: await mustLoad(c, id), reached };
    });
  }

  async deny(id: number, voter: Actor, reason: string | undefined, now: Date): Promise<Transition> {
    return await this.transaction(async (c): Promise<Transition> => {
      const row = await lockRequest(c, id);
      if (row === undefined) return { ok: false, code: 'not_found' };
      const refusal = await refuseVote(c, row, voter, now);
      if (refusal !== undefined) return refusal;
      await insertVote(c, id, voter, 'deny', reason, now);
      await c.query(
        "UPDATE dbops_requests SET status = 'denied', reason = $2, updated_at = $3 WHERE id = $1",
        [id, reason ?? null, now],
      );
      return { ok: true, request: await mustLoad(c, id) };
    });
  }

  async cancel(id: number, actor: Actor, now: Date): Promise<Transition> {
    return await this.transaction(async (c): Promise<Transition> => {
      const row = await lockRequest(c, id);
      if (row === undefined) return { ok: false, code: 'not_found' };
      if (row.requester_person !== actor.person) {
        return { ok: false, code: 'not_requester', request: await mustLoad(c, id) };
      }
      if (row.status !== 'pending' && row.status !== 'approved')
        return { ok: false, code: 'not_pending', request: await mustLoad(c, id) };
      if (now.getTime() >= row.expires_at.getTime()) return await expireLocked(c, id, now);
      await c.query("UPDATE dbops_requests SET status = 'cancelled', updated_at = $2 WHERE id = $1", [
        id,
        now,
      ]);
      return { ok: true, request: await mustLoad(c, id) };
    });
  }

  async voidRequest(id: number, reason: string, now: Date): Promise<Transition> {
    const { rows } = await this.pool.query<RequestRow>(
      `UPDATE dbops_requests SET status = 'cancelled', reason = $2, updated_at = $3
       WHERE id = $1 AND status IN ('pending', 'approved') RETURNING *`,
      [id, reason, now],
    );
    return await this.afterCompareAndSet(id, rows);
  }

  async reopen(id: number, now: Date): Promise<Transition> {
    const { rows } = await this.pool.query<RequestRow>(
      `UPDATE dbops_requests SET status = 'pending', updated_at = $2
       WHERE id = $1 AND status = 'approved' RETURNING *`,
      [id, now],
    );
    return await this.afterCompareAndSet(id, rows);
  }

  async requestCancel(id: number, by: Actor, now: Date): Promise<Transition> {
    const { rows } = await this.pool.query<RequestRow>(
      `UPDATE dbops_requests SET cancel_requested_by = coalesce(cancel_requested_by, $2::jsonb),
         cancel_requested_at = coalesce(cancel_requested_at, $3)
       WHERE id = $1 AND status = 'running' RETURNING *`,
      [id, json(by), now],
    );
    return await this.afterCompareAndSet(id, rows);
  }

  async cancelRequested(id: number): Promise<Actor | undefined> {
    const { rows } = await this.pool.query<{ by: Actor | null }>(
      "SELECT cancel_requested_by AS by FROM dbops_requests WHERE id = $1 AND status = 'running'",
      [id],
    );
    return rows[0]?.by ?? undefined;
  }

  async startRun(id: number, now: Date, lease?: RunLease): Promise<Transition> {
    const { runner, until } = lease ?? {
      runner: 'unnamed',
      until: new Date(now.getTime() + DEFAULT_LEASE_MS),
    };
    let rows: RequestRow[];
    try {
      ({ rows } = await this.pool.query<RequestRow>(
        `UPDATE dbops_requests SET status = 'running', updated_at = $2, runner = $3, lease_until = $4
         WHERE id = $1 AND status = 'approved' AND expires_at > $2 RETURNING *`,
        [id, now, runner, until],
      ));
      if (rows.length === 0) {
        const overdue = await this.pool.query<RequestRow>(
          `UPDATE dbops_requests SET status = 'expired', updated_at = $2
           WHERE id = $1 AND status = 'approved' AND expires_at <= $2 RETURNING *`,
          [id, now],
        );
        const row = overdue.rows[0];
        if (row !== undefined)
          return { ok: false, code: 'expired', request: toRequest(row, await loadVotes(this.pool, id)) };
      }
    } catch (err) {
      if (isUniqueViolation(err, ONE_RUNNING_PER_TARGET)) {
        const current = await loadRequest(this.pool, id);
        return current === undefined
          ? { ok: false, code: 'not_found' }
          : { ok: false, code: 'target_busy', request: current };
      }
      throw err;
    }
    return await this.afterCompareAndSet(id, rows);
  }

  async finishRun(
    id: number,
    outcome: { status: 'succeeded' | 'failed' | 'cancelled'; result?: OperationResult; error?: string },
    now: Date,
    runner?: string,
  ): Promise<Transition> {
    const { rows } = await this.pool.query<RequestRow>(
      `UPDATE dbops_requests SET status = $2, result = $3, error = $4, updated_at = $5
       WHERE id = $1 AND (status = 'running'
         OR (status = 'failed' AND runner = $6 AND starts_with(error, $7))) RETURNING *`,
      [
        id,
        outcome.status,
        outcome.result === undefined ? null : json(outcome.result),
        outcome.error ?? null,
        now,
        runner ?? null,
        INTERRUPTED,
      ],
    );
    return await this.afterCompareAndSet(id, rows);
  }

  async renewLease(id: number, lease: RunLease): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `UPDATE dbops_requests SET lease_until = greatest(lease_until, $3)
       WHERE id = $1 AND status = 'running' AND runner = $2`,
      [id, lease.runner, lease.until],
    );
    return rowCount === 1;
  }

  async interruptAbandoned(now: Date): Promise<ApprovalRequest[]> {
    // One statement, like expireDue: a row another replica changes at the same moment is re-checked after
    // its commit and skipped, because it is no longer running (or its lease was renewed).
    const { rows } = await this.pool.query<RequestRow>(
      `UPDATE dbops_requests SET status = 'failed', updated_at = $1,
         error = $2 || ' the dbops replica running it (' || coalesce(runner, 'unknown') ||
           ') stopped answering before it finished; whether the operation took effect is unknown, so check the target before trying again'
       WHERE status = 'running' AND lease_until < $1 RETURNING *`,
      [now, INTERRUPTED],
    );
    return await withVotes(this.pool, rows);
  }

  async expireDue(now: Date): Promise<ApprovalRequest[]> {
    // One statement: a row another replica is expiring at the same moment is re-checked after its commit
    // and skipped, because its status is no longer pending.
    const { rows } = await this.pool.query<RequestRow>(
      `UPDATE dbops_requests SET status = 'expired', updated_at = $1
       WHERE status IN ('pending', 'approved') AND expires_at <= $1 RETURNING *`,
      [now],
    );
    return await withVotes(this.pool, rows);
  }

  /** Marks a pending request escalated; true for exactly one caller across replicas (migration 9). */
  async markEscalated(id: number, now: Date): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      "UPDATE dbops_requests SET escalated_at = $2 WHERE id = $1 AND status = 'pending' AND escalated_at IS NULL",
      [id, now],
    );
    return rowCount === 1;
  }

  async setRefs(id: number, refs: Record<string, unknown>): Promise<void> {
    const { rowCount } = await this.pool.query(
      'UPDATE dbops_requests SET refs = refs || $2::jsonb WHERE id = $1',
      [id, json(refs)],
    );
    if (rowCount !== 1) throw new Error(`setRefs: request ${id} does not exist`);
  }

  async getBinding(channel: string): Promise<ChannelBinding | undefined> {
    const { rows } = await this.pool.query<{
      channel: string;
      target: string;
      bound_by: string;
      bound_at: Date;
    }>('SELECT channel, target, bound_by, bound_at FROM dbops_channel_bindings WHERE channel = $1', [
      channel,
    ]);
    const row = rows[0];
    return row
      ? { channel: row.channel, target: row.target, boundBy: row.bound_by, boundAt: row.bound_at }
      : undefined;
  }

  async listBindings(): Promise<ChannelBinding[]> {
    const { rows } = await this.pool.query<{
      channel: string;
      target: string;
      bound_by: string;
      bound_at: Date;
    }>('SELECT channel, target, bound_by, bound_at FROM dbops_channel_bindings ORDER BY channel');
    return rows.map((row) => ({
      channel: row.channel,
      target: row.target,
      boundBy: row.bound_by,
      boundAt: row.bound_at,
    }));
  }

  async setBinding(binding: ChannelBinding): Promise<void> {
    await this.pool.query(
      `INSERT INTO dbops_channel_bindings (channel, target, bound_by, bound_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (channel) DO UPDATE SET target = EXCLUDED.target, bound_by = EXCLUDED.bound_by,
         bound_at = EXCLUDED.bound_at`,
      [binding.channel, binding.target, binding.boundBy, binding.boundAt],
    );
  }

  async removeBinding(channel: string): Promise<boolean> {
    const { rowCount } = await this.pool.query('DELETE FROM dbops_channel_bindings WHERE channel = $1', [
      channel,
    ]);
    return (rowCount ?? 0) > 0;
  }

  async claimDelivery(key: string, now: Date): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      'INSERT INTO dbops_deliveries (key, seen_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING',
      [key, now],
    );
    // Old claims go now and then (Slack and Discord retry within minutes, not days).
    if (Math.random() < 0.01) {
      await this.pool.query(
        "DELETE FROM dbops_deliveries WHERE seen_at < $1::timestamptz - interval '1 day'",
        [now],
      );
    }
    return (rowCount ?? 0) === 1;
  }

  async audit(event: AuditEvent, now: Date): Promise<void> {
    await this.pool.query(
      `INSERT INTO dbops_audit (at, request_id, event, person, identity, surface, channel, thread, operation,
         target, args, risk, approvers, outcome, duration_ms, error, detail, ref)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
      [
        now,
        event.requestId,
        event.event,
        event.person,
        event.identity,
        event.surface,
        event.channel ?? null,
        event.thread ?? null,
        event.operation ?? null,
        event.target ?? null,
        event.args === undefined ? null : json(event.args),
        event.risk ?? null,
        event.approvers ?? null,
        event.outcome,
        event.durationMs === undefined ? null : Math.round(event.durationMs),
        event.error ?? null,
        event.detail === undefined ? null : json(event.detail),
        event.ref ?? null,
      ],
    );
  }

  async savePagedRead(read: PagedRead): Promise<void> {
    await savePagedRead(this.pool, read);
  }

  async getPagedRead(ref: string, now: Date): Promise<PagedRead | undefined> {
    return await loadPagedRead(this.pool, ref, now);
  }

  async listAudit(filter: AuditFilter): Promise<AuditRecord[]> {
    return await queryAudit(this.pool, filter);
  }

  /** Member roles a platform payload showed (migration 12); see member-roles.ts. */
  async saveMemberRoles(platform: string, observed: ObservedRoles): Promise<void> {
    await saveMemberRoles(this.pool, platform, observed);
  }

  async loadMemberRoles(platform: string, userIds: readonly string[]): Promise<ObservedRoles[]> {
    return await loadMemberRoles(this.pool, platform, userIds);
  }

  async membersWithRoles(
    platform: string,
    roleIds: readonly string[],
    since: Date,
  ): Promise<ObservedRoles[]> {
    return await membersWithRoles(this.pool, platform, roleIds, since);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /** Turns the rows of a compare-and-set UPDATE into a transition: zero rows means not found or not allowed. */
  private async afterCompareAndSet(id: number, rows: RequestRow[]): Promise<Transition> {
    const row = rows[0];
    if (row !== undefined) return { ok: true, request: toRequest(row, await loadVotes(this.pool, id)) };
    const current = await loadRequest(this.pool, id);
    return current === undefined
      ? { ok: false, code: 'not_found' }
      : { ok: false, code: 'not_pending', request: current };
  }

  /** Runs `fn` in one transaction on one connection; commits when it resolves (refusals included). */
  private async transaction<R>(fn: (client: pg.PoolClient) => Promise<R>): Promise<R> {
    return await inTransaction(this.pool, fn);
  }
}

// ---- transitions inside a transaction ----

async function lockRequest(c: Queryable, id: number): Promise<RequestRow | undefined> {
  const { rows } = await c.query<RequestRow>('SELECT * FROM dbops_requests WHERE id = $1 FOR UPDATE', [id]);
  return rows[0];
}

/** The refusals shared by approve and deny, checked with the row locked. Marks an overdue request expired. */
async function refuseVote(
  c: Queryable,
  row: RequestRow,
  voter: Actor,
  now: Date,
): Promise<TransitionRefusal | undefined> {
  const id = toId(row.id);
  // Same person whatever identity or surface: people, not accounts, are the four eyes.
  if (row.requester_person === voter.person) {
    return { ok: false, code: 'self_approval', request: await mustLoad(c, id) };
  }
  if (row.status !== 'pending') return { ok: false, code: 'not_pending', request: await mustLoad(c, id) };
  if (now.getTime() >= row.expires_at.getTime()) return await expireLocked(c, id, now);
  const voted = await c.query('SELECT 1 FROM dbops_votes WHERE request_id = $1 AND person = $2', [
    id,
    voter.person,
  ]);
  if (voted.rows.length > 0) return { ok: false, code: 'already_voted', request: await mustLoad(c, id) };
  return undefined;
}

async function expireLocked(c: Queryable, id: number, now: Date): Promise<TransitionRefusal> {
  await c.query("UPDATE dbops_requests SET status = 'expired', updated_at = $2 WHERE id = $1", [id, now]);
  return { ok: false, code: 'expired', request: await mustLoad(c, id) };
}

async function insertVote(
  c: Queryable,
  id: number,
  voter: Actor,
  vote: 'approve' | 'deny',
  reason: string | undefined,
  now: Date,
): Promise<void> {
  await c.query(
    `INSERT INTO dbops_votes (request_id, person, identity, surface, vote, reason, at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [id, voter.person, voter.identity, voter.surface, vote, reason ?? null, now],
  );
}
