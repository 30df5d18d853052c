// Storing a new approval request: with a number given, or — what intake does — taking the next number,
// writing the request's `pending` audit record and the request itself in one statement (both or neither).
import { auditValues } from './audit-query.js';
import { json, type Queryable, type RequestRow, single, toRequest } from './rows.js';
import type { ApprovalRequest, AuditEvent, NewRequest } from './types.js';

const REQUEST_COLUMNS = `id, status, operation, target, environment, args, command, risk,
  requester_person, requester_identity, requester_surface, channel, thread, preview,
  approvals_required, created_at, expires_at, updated_at, request_reason`;

/** The request's values after its id and status: $n … $n+15, created_at used twice (also updated_at). */
function requestValues(first: number): string {
  const p = (i: number) => `$${first + i}`;
  const list = Array.from({ length: 15 }, (_, i) => p(i));
  return `'pending', ${list.join(', ')}, ${p(13)}, ${p(15)}`;
}

function requestParams(input: Omit<NewRequest, 'id'>): unknown[] {
  return [
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
  ];
}

export async function insertRequest(q: Queryable, input: NewRequest): Promise<ApprovalRequest> {
  const { rows } = await q.query<RequestRow>(
    `INSERT INTO dbops_requests (${REQUEST_COLUMNS}) VALUES ($1, ${requestValues(2)}) RETURNING *`,
    [input.id, ...requestParams(input)],
  );
  return toRequest(single(rows), []);
}

/** The audit columns (audit-query.ts' order) with request_id taken from the CTE `next`. */
const AUDIT_COLUMNS = `at, request_id, event, person, identity, surface, channel, thread, operation,
  target, args, risk, approvers, outcome, duration_ms, error, detail, ref`;

const AUDITED_REQUEST_SQL = `
WITH next AS (SELECT nextval('dbops_request_id_seq') AS id),
audited AS (
  INSERT INTO dbops_audit (${AUDIT_COLUMNS})
  VALUES ($17, (SELECT id FROM next), ${Array.from({ length: 16 }, (_, i) => `$${18 + i}`).join(', ')})
  RETURNING id
)
INSERT INTO dbops_requests (${REQUEST_COLUMNS})
VALUES ((SELECT id FROM next), ${requestValues(1)})
RETURNING *`;

/**
 * Takes the next request number and writes `record` (as that request's) and the pending request in one
 * statement: a request never exists without its record (a failed write may still use up a number).
 */
export async function insertAuditedRequest(
  q: Queryable,
  input: Omit<NewRequest, 'id'>,
  record: AuditEvent,
  now: Date,
): Promise<ApprovalRequest> {
  const audit = auditValues(record, now);
  // Without request_id (the second value): the statement takes it from `next`.
  const { rows } = await q.query<RequestRow>(AUDITED_REQUEST_SQL, [
    ...requestParams(input),
    audit[0],
    ...audit.slice(2),
  ]);
  return toRequest(single(rows), []);
}
