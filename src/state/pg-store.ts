// The StateStore on PostgreSQL: every transition is a compare-and-set, so replicas can share one database.

import pg from 'pg';
import type { Logger } from '../core/log.js';
import { redactSecrets } from '../core/log.js';
import type { OperationResult, RequestStatus } from '../core/types.js';
import { forgetOld, queryAudit } from './audit-query.js';
import { getBinding, listBindings, removeBinding, setBinding } from './bindings.js';
import { GroupCommit } from './group-commit.js';
import { loadMemberRoles, membersWithRoles, type ObservedRoles, saveMemberRoles } from './member-roles.js';
import { migrate } from './migrations.js';
import { NamedStatementClient } from './named-client.js';
import { insertAuditedRequest, insertRequest } from './new-request.js';
import { loadPagedRead } from './paged-reads.js';
import {
  isUniqueViolation,
  json,
  listLimit,
  loadRequest,
  type RequestRow,
  type RequestVotesRow,
  SWEEP_SQL,
  single,
  toId,
  toRequestWithVotes,
  withVotes,
  withVotesOf,
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
} from './types.js';
import { approveLocked, denyLocked, expireLocked, lockRequest, refuseVote } from './votes.js';

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
  /** Audit records, delivery claims and paged reads of concurrent commands, one statement per group. */
  readonly #group: GroupCommit;

  private constructor(
    private readonly pool: pg.Pool,
    log: Logger | undefined,
  ) {
    this.#group = new GroupCommit(pool, {
      housekeeping: forgetOld,
      onGroupFailed: (err, writes) =>
        log?.warn(
          { error: redactSecrets(err instanceof Error ? err.message : String(err)), writes },
          'a grouped state write failed',
        ),
    });
  }

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
    return new PgStateStore(pool, opts.log);
  }

  async migrate(): Promise<void> {
    await migrate(this.pool);
  }

  async nextRequestId(): Promise<number> {
    const { rows } = await this.pool.query<{ id: string }>("SELECT nextval('dbops_request_id_seq') AS id");
    return toId(rows[0]?.id);
  }

  async createRequest(input: NewRequest): Promise<ApprovalRequest> {
    return await insertRequest(this.pool, input);
  }

  async createRequestAudited(
    input: Omit<NewRequest, 'id'>,
    record: AuditEvent,
    now: Date,
  ): Promise<ApprovalRequest> {
    return await insertAuditedRequest(this.pool, input, record, now);
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
      return (await refuseVote(c, row, voter, now)) ?? (await approveLocked(c, row, voter, now, judge));
    });
  }

  async deny(id: number, voter: Actor, reason: string | undefined, now: Date): Promise<Transition> {
    return await this.transaction(async (c): Promise<Transition> => {
      const row = await lockRequest(c, id);
      if (row === undefined) return { ok: false, code: 'not_found' };
      return (await refuseVote(c, row, voter, now)) ?? (await denyLocked(c, row, voter, reason, now));
    });
  }

  async cancel(id: number, actor: Actor, now: Date): Promise<Transition> {
    return await this.transaction(async (c): Promise<Transition> => {
      const row = await lockRequest(c, id);
      if (row === undefined) return { ok: false, code: 'not_found' };
      if (row.requester_person !== actor.person) {
        return { ok: false, code: 'not_requester', request: toRequestWithVotes(row) };
      }
      if (row.status !== 'pending' && row.status !== 'approved')
        return { ok: false, code: 'not_pending', request: toRequestWithVotes(row) };
      if (now.getTime() >= row.expires_at.getTime()) return await expireLocked(c, id, now);
      const { rows } = await c.query<RequestVotesRow>(
        withVotesOf(
          "UPDATE dbops_requests SET status = 'cancelled', updated_at = $2 WHERE id = $1 RETURNING *",
        ),
        [id, now],
      );
      return { ok: true, request: toRequestWithVotes(single(rows)) };
    });
  }

  async voidRequest(id: number, reason: string, now: Date): Promise<Transition> {
    const { rows } = await this.pool.query<RequestVotesRow>(
      withVotesOf(
        `UPDATE dbops_requests SET status = 'cancelled', reason = $2, updated_at = $3
       WHERE id = $1 AND status IN ('pending', 'approved') RETURNING *`,
      ),
      [id, reason, now],
    );
    return await this.afterCompareAndSet(id, rows);
  }

  async reopen(id: number, now: Date): Promise<Transition> {
    const { rows } = await this.pool.query<RequestVotesRow>(
      withVotesOf(
        `UPDATE dbops_requests SET status = 'pending', updated_at = $2
       WHERE id = $1 AND status = 'approved' RETURNING *`,
      ),
      [id, now],
    );
    return await this.afterCompareAndSet(id, rows);
  }

  async requestCancel(id: number, by: Actor, now: Date): Promise<Transition> {
    const { rows } = await this.pool.query<RequestVotesRow>(
      withVotesOf(
        `UPDATE dbops_requests SET cancel_requested_by = coalesce(cancel_requested_by, $2::jsonb),
         cancel_requested_at = coalesce(cancel_requested_at, $3)
       WHERE id = $1 AND status = 'running' RETURNING *`,
      ),
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
    let rows: RequestVotesRow[];
    try {
      ({ rows } = await this.pool.query<RequestVotesRow>(
        withVotesOf(
          `UPDATE dbops_requests SET status = 'running', updated_at = $2, runner = $3, lease_until = $4
         WHERE id = $1 AND status = 'approved' AND expires_at > $2 RETURNING *`,
        ),
        [id, now, runner, until],
      ));
      if (rows.length === 0) {
        const overdue = await this.pool.query<RequestVotesRow>(
          withVotesOf(
            `UPDATE dbops_requests SET status = 'expired', updated_at = $2
           WHERE id = $1 AND status = 'approved' AND expires_at <= $2 RETURNING *`,
          ),
          [id, now],
        );
        const row = overdue.rows[0];
        if (row !== undefined) return { ok: false, code: 'expired', request: toRequestWithVotes(row) };
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
    const { rows } = await this.pool.query<RequestVotesRow>(
      withVotesOf(
        `UPDATE dbops_requests SET status = $2, result = $3, error = $4, updated_at = $5
       WHERE id = $1 AND (status = 'running'
         OR (status = 'failed' AND runner = $6 AND starts_with(error, $7))) RETURNING *`,
      ),
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
    return (await this.sweepDue(now, { expire: false })).interrupted;
  }

  async expireDue(now: Date): Promise<ApprovalRequest[]> {
    return (await this.sweepDue(now, { interrupt: false })).expired;
  }

  async sweepDue(
    now: Date,
    which: { interrupt?: boolean; expire?: boolean } = {},
  ): Promise<{ interrupted: ApprovalRequest[]; expired: ApprovalRequest[] }> {
    // One statement: a row another replica changes at the same moment is re-checked after its commit and
    // skipped, because it is no longer running (or its lease was renewed) or no longer pending.
    const { rows } = await this.pool.query<RequestVotesRow & { swept: 'interrupted' | 'expired' }>(
      SWEEP_SQL,
      [now, INTERRUPTED, which.interrupt ?? true, which.expire ?? true],
    );
    const interrupted = rows.filter((r) => r.swept === 'interrupted').map(toRequestWithVotes);
    const expired = rows.filter((r) => r.swept === 'expired').map(toRequestWithVotes);
    return { interrupted, expired };
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
    return await getBinding(this.pool, channel);
  }

  async listBindings(): Promise<ChannelBinding[]> {
    return await listBindings(this.pool);
  }

  async setBinding(binding: ChannelBinding): Promise<void> {
    await setBinding(this.pool, binding);
  }

  async removeBinding(channel: string): Promise<boolean> {
    return await removeBinding(this.pool, channel);
  }

  // The writes every command makes go through the group commit (group-commit.ts): concurrent commands
  // share a statement, and each learns its own result or failure as if it had sent its own.
  async claimDelivery(key: string, now: Date): Promise<boolean> {
    return await this.#group.claim(key, [], now);
  }

  async audit(event: AuditEvent, now: Date): Promise<void> {
    await this.#group.audit([event], now);
  }

  async auditLater(event: AuditEvent, now: Date): Promise<void> {
    await this.#group.audit([event], now, true);
  }

  hurry(): void {
    this.#group.hurry();
  }

  async auditClaiming(key: string, event: AuditEvent, now: Date): Promise<boolean> {
    return await this.#group.claim(key, [event], now);
  }

  async auditAll(events: readonly AuditEvent[], now: Date): Promise<void> {
    await this.#group.audit(events, now);
  }

  async savePagedRead(read: PagedRead): Promise<void> {
    await this.#group.pagedRead(read);
  }

  async getPagedRead(ref: string, now: Date): Promise<PagedRead | undefined> {
    await this.#group.pagedReadWritten(ref);
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

  /** Writes queued or in flight in the group commit (they are sent before close() ends the pool). */
  get pendingWrites(): number {
    return this.#group.pending;
  }

  async close(): Promise<void> {
    await this.#group.drained();
    await this.pool.end();
  }

  /** Turns the rows of a compare-and-set UPDATE into a transition: zero rows means not found or not allowed. */
  private async afterCompareAndSet(id: number, rows: RequestVotesRow[]): Promise<Transition> {
    const row = rows[0];
    if (row !== undefined) return { ok: true, request: toRequestWithVotes(row) };
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
