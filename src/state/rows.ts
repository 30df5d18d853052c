// Reading the state database's rows: loading requests with their votes, and mapping rows to domain values.
import pg from 'pg';
import { type OperationResult, REQUEST_STATUSES, RISKS, SURFACES, type Surface } from '../core/types.js';
import { type Actor, type ApprovalRequest, AUDIT_EVENTS, type AuditRecord, type Vote } from './types.js';

const DEFAULT_LIST_LIMIT = 20;
const MAX_LIST_LIMIT = 1000;
const UNIQUE_VIOLATION = '23505';

/** The part of pg.Pool and pg.PoolClient this file uses, so helpers run inside or outside a transaction. */
export interface Queryable {
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

export interface RequestRow {
  id: string;
  status: string;
  operation: string;
  target: string;
  environment: string;
  args: Record<string, unknown>;
  command: string;
  risk: string;
  requester_person: string;
  requester_identity: string;
  requester_surface: string;
  channel: string | null;
  thread: string | null;
  preview: ApprovalRequest['preview'];
  approvals_required: number;
  created_at: Date;
  expires_at: Date;
  updated_at: Date;
  result: OperationResult | null;
  error: string | null;
  reason: string | null;
  refs: Record<string, unknown>;
  runner: string | null;
  lease_until: Date | null;
  cancel_requested_by: Actor | null;
  cancel_requested_at: Date | null;
  /** Migration 9. */
  request_reason?: string | null;
  escalated_at?: Date | null;
}

export interface VoteRow {
  request_id: string;
  person: string;
  identity: string;
  surface: string;
  vote: string;
  reason: string | null;
  at: Date;
}

export interface AuditRow {
  id: string;
  at: Date;
  request_id: string | null;
  event: string;
  person: string | null;
  identity: string;
  surface: string;
  channel: string | null;
  thread: string | null;
  operation: string | null;
  target: string | null;
  args: Record<string, unknown> | null;
  risk: string | null;
  approvers: string[] | null;
  outcome: string;
  duration_ms: number | null;
  error: string | null;
  detail: Record<string, unknown> | null;
  /** Added by migration 10. */
  ref: string | null;
}

// ---- reading ----

/**
 * The votes of the request row `alias` as one JSON array, in loadVotes' order (at, person), so that one
 * statement reads a request — or changes it (withVotesOf) — together with its votes.
 */
export function votesJson(alias: string): string {
  return `(SELECT coalesce(json_agg(json_build_object('person', v.person, 'identity', v.identity,
      'surface', v.surface, 'vote', v.vote, 'reason', v.reason,
      'at_ms', floor(extract(epoch FROM v.at) * 1000)::bigint) ORDER BY v.at, v.person), '[]'::json)
    FROM dbops_votes v WHERE v.request_id = ${alias}.id) AS votes_json`;
}

/** A compare-and-set `UPDATE dbops_requests … RETURNING *` that returns the changed rows with their votes. */
export function withVotesOf(update: string): string {
  return `WITH changed AS (${update}) SELECT changed.*, ${votesJson('changed')} FROM changed`;
}

/** Runs left behind by a stopped replica ($3) and requests past their time ($4), with their votes. */
export const SWEEP_SQL = `
WITH interrupted AS (
  UPDATE dbops_requests SET status = 'failed', updated_at = $1,
    error = $2 || ' the dbops replica running it (' || coalesce(runner, 'unknown') ||
      ') stopped answering before it finished; whether the operation took effect is unknown, so check the target before trying again'
  WHERE $3::boolean AND status = 'running' AND lease_until < $1 RETURNING *
), expired AS (
  UPDATE dbops_requests SET status = 'expired', updated_at = $1
  WHERE $4::boolean AND status IN ('pending', 'approved') AND expires_at <= $1 RETURNING *
)
SELECT 'interrupted' AS swept, interrupted.*, ${votesJson('interrupted')} FROM interrupted
UNION ALL
SELECT 'expired', expired.*, ${votesJson('expired')} FROM expired`;

/** A vote as votesJson gives it. */
interface VoteJson {
  person: string;
  identity: string;
  surface: string;
  vote: string;
  reason: string | null;
  at_ms: number | string;
}

/** A request row read with votesJson. */
export interface RequestVotesRow extends RequestRow {
  votes_json: VoteJson[];
}

export function votesOf(row: RequestVotesRow): Vote[] {
  return row.votes_json.map((v) => toVote({ ...v, request_id: row.id, at: new Date(Number(v.at_ms)) }));
}

/** A request row read with votesJson, as the request with its votes. */
export function toRequestWithVotes(row: RequestVotesRow): ApprovalRequest {
  return toRequest(row, votesOf(row));
}

export async function loadRequest(c: Queryable, id: number): Promise<ApprovalRequest | undefined> {
  const { rows } = await c.query<RequestVotesRow>(
    `SELECT r.*, ${votesJson('r')} FROM dbops_requests r WHERE r.id = $1`,
    [id],
  );
  const row = rows[0];
  return row === undefined ? undefined : toRequestWithVotes(row);
}

/** For a request this transaction holds locked: it exists. */
export async function mustLoad(c: Queryable, id: number): Promise<ApprovalRequest> {
  const request = await loadRequest(c, id);
  if (request === undefined) throw new Error(`request ${id} vanished while locked`);
  return request;
}

export async function withVotes(c: Queryable, rows: RequestRow[]): Promise<ApprovalRequest[]> {
  if (rows.length === 0) return [];
  const votes = await c.query<VoteRow>(
    'SELECT * FROM dbops_votes WHERE request_id = ANY($1::bigint[]) ORDER BY at, person',
    [rows.map((r) => r.id)],
  );
  const byRequest = new Map<string, Vote[]>();
  for (const v of votes.rows) {
    const list = byRequest.get(v.request_id) ?? [];
    list.push(toVote(v));
    byRequest.set(v.request_id, list);
  }
  return rows.map((r) => toRequest(r, byRequest.get(r.id) ?? []));
}

// ---- row mapping (optional fields are omitted, never set to undefined) ----

export function toRequest(row: RequestRow, votes: Vote[]): ApprovalRequest {
  return {
    id: toId(row.id),
    status: oneOf(REQUEST_STATUSES, row.status, 'request status'),
    operation: row.operation,
    target: row.target,
    environment: row.environment,
    args: row.args,
    command: row.command,
    risk: oneOf(RISKS, row.risk, 'risk'),
    requester: {
      person: row.requester_person,
      identity: row.requester_identity,
      surface: toSurface(row.requester_surface),
    },
    ...(row.channel !== null ? { channel: row.channel } : {}),
    ...(row.thread !== null ? { thread: row.thread } : {}),
    preview: row.preview,
    approvalsRequired: row.approvals_required,
    votes,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    updatedAt: row.updated_at,
    ...(row.result !== null ? { result: row.result } : {}),
    ...(row.error !== null ? { error: row.error } : {}),
    ...(row.reason !== null ? { reason: row.reason } : {}),
    ...(typeof row.request_reason === 'string' ? { requestReason: row.request_reason } : {}),
    ...(row.escalated_at instanceof Date ? { escalatedAt: row.escalated_at } : {}),
    ...(row.runner !== null ? { runner: row.runner } : {}),
    ...(row.lease_until !== null ? { leaseUntil: row.lease_until } : {}),
    ...(row.cancel_requested_by !== null && row.cancel_requested_at !== null
      ? { cancelRequest: { by: row.cancel_requested_by, at: row.cancel_requested_at } }
      : {}),
    refs: row.refs,
  };
}

export function toVote(row: VoteRow): Vote {
  return {
    person: row.person,
    identity: row.identity,
    surface: toSurface(row.surface),
    vote: oneOf(['approve', 'deny'] as const, row.vote, 'vote'),
    ...(row.reason !== null ? { reason: row.reason } : {}),
    at: row.at,
  };
}

export function toAuditRecord(row: AuditRow): AuditRecord {
  return {
    id: toId(row.id),
    at: row.at,
    requestId: row.request_id === null ? null : toId(row.request_id),
    ...(row.ref !== null ? { ref: row.ref } : {}),
    event: oneOf(AUDIT_EVENTS, row.event, 'audit event'),
    person: row.person,
    identity: row.identity,
    surface: toSurface(row.surface),
    ...(row.channel !== null ? { channel: row.channel } : {}),
    ...(row.thread !== null ? { thread: row.thread } : {}),
    ...(row.operation !== null ? { operation: row.operation } : {}),
    ...(row.target !== null ? { target: row.target } : {}),
    ...(row.args !== null ? { args: row.args } : {}),
    ...(row.risk !== null ? { risk: oneOf(RISKS, row.risk, 'risk') } : {}),
    ...(row.approvers !== null ? { approvers: row.approvers } : {}),
    outcome: row.outcome,
    ...(row.duration_ms !== null ? { durationMs: row.duration_ms } : {}),
    ...(row.error !== null ? { error: row.error } : {}),
    ...(row.detail !== null ? { detail: row.detail } : {}),
  };
}

export function toSurface(value: string): Surface {
  return oneOf(SURFACES, value, 'surface');
}

/** Narrows a text column to its union; a value outside it means the database was written by something else. */
export function oneOf<T extends string>(allowed: readonly T[], value: string, what: string): T {
  const found = allowed.find((a) => a === value);
  if (found === undefined) {
    throw new Error(`state database holds an unknown ${what}: ${JSON.stringify(value)}`);
  }
  return found;
}

/** bigint columns arrive as strings; request and audit ids stay far below 2^53. */
export function toId(value: string | undefined): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new Error(`state database returned an invalid id: ${String(value)}`);
  return n;
}

export function single<T>(rows: T[]): T {
  const row = rows[0];
  if (row === undefined) throw new Error('expected one row, got none');
  return row;
}

/** jsonb parameters are passed as text: pg would turn a JS array into a PostgreSQL array literal. */
export function json(value: unknown): string {
  return JSON.stringify(value);
}

export function listLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return DEFAULT_LIST_LIMIT;
  return Math.min(Math.max(1, Math.floor(limit)), MAX_LIST_LIMIT);
}

export function isUniqueViolation(err: unknown, constraint: string): boolean {
  return err instanceof pg.DatabaseError && err.code === UNIQUE_VIOLATION && err.constraint === constraint;
}
