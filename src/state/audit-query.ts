// The audit log's SQL: a record's parameters (written by group-commit.ts and new-request.ts), old claims
// forgotten, and records read with filters — `/db audit` (newest first) and `dbops audit export`
// (oldest first, by pages).

import { PAGED_READ_DAYS } from './paged-reads.js';
import { type AuditRow, json, type Queryable, toAuditRecord } from './rows.js';
import type { AuditEvent, AuditFilter, AuditRecord } from './types.js';

const MAX_PAGE = 5000;

/** The records matching `filter`: newest first, or — with `afterId` — oldest first after that id. */
/**
 * True for the record of a run's start ('requested', outcome 'running') with no later record of the same
 * reference: its closing record was never written (the process stopped first) or the run is still going.
 */
const UNFINISHED = `CASE WHEN event = 'requested' AND outcome = 'running' AND ref IS NOT NULL
  THEN NOT EXISTS (SELECT 1 FROM dbops_audit later WHERE later.ref = dbops_audit.ref AND later.id > dbops_audit.id)
  ELSE false END`;

export async function queryAudit(q: Queryable, filter: AuditFilter): Promise<AuditRecord[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: (n: string) => string, value: unknown) => {
    params.push(value);
    where.push(sql(`$${params.length}`));
  };
  if (filter.target !== undefined) add((n) => `target = ${n}`, filter.target);
  if (filter.ref !== undefined) add((n) => `ref = ${n}`, filter.ref);
  if (filter.person !== undefined) add((n) => `(person = ${n} OR identity = ${n})`, filter.person);
  if (filter.operation !== undefined) add((n) => `operation = ${n}`, filter.operation);
  if (filter.outcome !== undefined) add((n) => `(event = ${n} OR outcome = ${n})`, filter.outcome);
  if (filter.since !== undefined) add((n) => `at >= ${n}`, filter.since);
  if (filter.until !== undefined) add((n) => `at < ${n}`, filter.until);
  const ascending = filter.afterId !== undefined;
  if (ascending) add((n) => `id > ${n}`, filter.afterId);
  params.push(Math.min(Math.max(1, Math.trunc(filter.limit ?? 20)), MAX_PAGE));
  const { rows } = await q.query<AuditRow & { unfinished: boolean | null }>(
    `SELECT *, ${UNFINISHED} AS unfinished FROM dbops_audit ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
     ORDER BY ${ascending ? 'id ASC' : 'at DESC, id DESC'} LIMIT $${params.length}`,
    params,
  );
  return rows.map((row) => ({ ...toAuditRecord(row), ...(row.unfinished ? { unfinished: true } : {}) }));
}

/** The parameters of one audit record, in dbops_audit's column order (at, request_id, … detail, ref). */
export function auditValues(event: AuditEvent, now: Date): unknown[] {
  return [
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
  ];
}

/**
 * Old claims go now and then (Slack and Discord retry within minutes, not days), and so do paged reads
 * older than PAGED_READ_DAYS (their buttons are answered as stale anyway). One statement.
 */
export async function forgetOld(q: Queryable, now: Date): Promise<void> {
  await q.query(
    `WITH deliveries AS (
       DELETE FROM dbops_deliveries WHERE seen_at < $1::timestamptz - interval '1 day'
     )
     DELETE FROM dbops_paged_reads WHERE created_at < $1::timestamptz - make_interval(days => $2)`,
    [now, PAGED_READ_DAYS],
  );
}
