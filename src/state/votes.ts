// Votes inside one state-database transaction: the request locked together with its votes, the refusals
// approve and deny share, then the vote stored and the request changed — each a single statement.
import {
  type Queryable,
  type RequestVotesRow,
  single,
  toId,
  toRequest,
  toRequestWithVotes,
  toVote,
  votesJson,
  votesOf,
  withVotesOf,
} from './rows.js';
import type { Actor, ApprovalRequest, Transition, TransitionRefusal, Vote } from './types.js';

/** The request row locked for this transaction, with its votes (no vote is added without this lock). */
export async function lockRequest(c: Queryable, id: number): Promise<RequestVotesRow | undefined> {
  const { rows } = await c.query<RequestVotesRow>(
    `SELECT r.*, ${votesJson('r')} FROM dbops_requests r WHERE r.id = $1 FOR UPDATE OF r`,
    [id],
  );
  return rows[0];
}

/** The refusals shared by approve and deny, checked with the row locked. Marks an overdue request expired. */
export async function refuseVote(
  c: Queryable,
  row: RequestVotesRow,
  voter: Actor,
  now: Date,
): Promise<TransitionRefusal | undefined> {
  const id = toId(row.id);
  // Same person whatever identity or surface: people, not accounts, are the four eyes.
  if (row.requester_person === voter.person) {
    return { ok: false, code: 'self_approval', request: toRequestWithVotes(row) };
  }
  if (row.status !== 'pending') return { ok: false, code: 'not_pending', request: toRequestWithVotes(row) };
  if (now.getTime() >= row.expires_at.getTime()) return await expireLocked(c, id, now);
  // The votes were read under the lock every vote is cast under: they are all there are.
  if (votesOf(row).some((v) => v.person === voter.person)) {
    return { ok: false, code: 'already_voted', request: toRequestWithVotes(row) };
  }
  return undefined;
}

export async function expireLocked(c: Queryable, id: number, now: Date): Promise<TransitionRefusal> {
  const { rows } = await c.query<RequestVotesRow>(
    withVotesOf("UPDATE dbops_requests SET status = 'expired', updated_at = $2 WHERE id = $1 RETURNING *"),
    [id, now],
  );
  return { ok: false, code: 'expired', request: toRequestWithVotes(single(rows)) };
}

async function insertVote(
  c: Queryable,
  id: number,
  voter: Actor,
  vote: 'approve' | 'deny',
  reason: string | undefined,
  now: Date,
): Promise<Vote> {
  await c.query(
    `INSERT INTO dbops_votes (request_id, person, identity, surface, vote, reason, at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [id, voter.person, voter.identity, voter.surface, vote, reason ?? null, now],
  );
  return toVote({
    request_id: String(id),
    person: voter.person,
    identity: voter.identity,
    surface: voter.surface,
    vote,
    reason: reason ?? null,
    at: now,
  });
}

/**
 * An approve vote on the locked, pending request: stored, then the request approved when the approvals
 * it needs are reached (`judge`, or the count of approve votes) or left pending.
 */
export async function approveLocked(
  c: Queryable,
  row: RequestVotesRow,
  voter: Actor,
  now: Date,
  judge?: (request: ApprovalRequest) => boolean,
): Promise<Transition & { reached?: boolean }> {
  const id = toId(row.id);
  const cast = await insertVote(c, id, voter, 'approve', undefined, now);
  // What a fresh read would give now, without reading: the votes under the lock and this one.
  const votes = [...votesOf(row), cast].sort(
    (a, b) => a.at.getTime() - b.at.getTime() || (a.person < b.person ? -1 : a.person > b.person ? 1 : 0),
  );
  const reached = judge
    ? judge(toRequest(row, votes))
    : votes.filter((v) => v.vote === 'approve').length >= row.approvals_required;
  const { rows } = await c.query<RequestVotesRow>(
    withVotesOf('UPDATE dbops_requests SET status = $2, updated_at = $3 WHERE id = $1 RETURNING *'),
    [id, reached ? 'approved' : 'pending', now],
  );
  return { ok: true, request: toRequestWithVotes(single(rows)), reached };
}

/** A deny vote on the locked, pending request: stored, and the request denied with the reason. */
export async function denyLocked(
  c: Queryable,
  row: RequestVotesRow,
  voter: Actor,
  reason: string | undefined,
  now: Date,
): Promise<Transition> {
  const id = toId(row.id);
  await insertVote(c, id, voter, 'deny', reason, now);
  const { rows } = await c.query<RequestVotesRow>(
    withVotesOf(
      "UPDATE dbops_requests SET status = 'denied', reason = $2, updated_at = $3 WHERE id = $1 RETURNING *",
    ),
    [id, reason ?? null, now],
  );
  return { ok: true, request: toRequestWithVotes(single(rows)) };
}
