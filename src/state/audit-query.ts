// The audit log's SQL: records written (one or several per statement, or with a delivery's claim), and
// read with filters — `/db audit` (newest first) and `dbops audit export` (oldest first, by pages).

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

const AUDIT_COLUMNS = 18;

/** INSERT of `count` audit records (auditValues gives each one's parameters), in order of their ids. */
export function auditInsertSql(count: number): string {
  const rows = Array.from(
    { length: count },
    (_, r) =>
      `(${Array.from({ length: AUDIT_COLUMNS }, (_, c) => `$${r * AUDIT_COLUMNS + c + 1}`).join(', ')})`,
  );
  return `INSERT INTO dbops_audit (at, request_id, event, person, identity, surface, channel, thread, operation,
     target, args, risk, approvers, outcome, duration_ms, error, detail, ref)
   VALUES ${rows.join(',\n     ')}`;
}

/** The parameters of one audit record, in auditInsertSql's column order. */
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
 * A delivery's claim ($19) and its first audit record (auditValues' $1–$18) in one statement: the record
 * is inserted only by the first claim. Answers `claimed` 1 (first) or 0 (a repeat).
 */
export const AUDIT_CLAIMING_SQL = `
WITH claim AS (
  INSERT INTO dbops_deliveries (key, seen_at) VALUES ($19, $1) ON CONFLICT (key) DO NOTHING RETURNING key
), audited AS (
  INSERT INTO dbops_audit (at, request_id, event, person, identity, surface, channel, thread, operation,
     target, args, risk, approvers, outcome, duration_ms, error, detail, ref)
  SELECT $1::timestamptz, $2::bigint, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text, $9::text,
     $10::text, $11::jsonb, $12::text, $13::text[], $14::text, $15::int, $16::text, $17::jsonb, $18::text
  WHERE EXISTS (SELECT 1 FROM claim)
  RETURNING id
)
SELECT (SELECT count(*) FROM claim)::int AS claimed, (SELECT count(*) FROM audited)::int AS audited`;

/** Writes audit records in one statement, in order (all or none). */
export async function writeAudit(q: Queryable, events: readonly AuditEvent[], now: Date): Promise<void> {
  if (events.length === 0) return;
  await q.query(
    auditInsertSql(events.length),
    events.flatMap((e) => auditValues(e, now)),
  );
}

/** The first claim of a delivery key across replicas: true for exactly one caller. */
export async function claimDelivery(q: Queryable, key: string, now: Date): Promise<boolean> {
  const { rowCount } = await q.query(
    'INSERT INTO dbops_deliveries (key, seen_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING',
    [key, now],
  );
  if (Math.random() < 0.01) await forgetOldDeliveries(q, now);
  return (rowCount ?? 0) === 1;
}

/** claimDelivery and the invocation's first audit record in one statement (AUDIT_CLAIMING_SQL). */
export async function auditClaiming(
  q: Queryable,
  key: string,
  event: AuditEvent,
  now: Date,
): Promise<boolean> {
  const { rows } = await q.query<{ claimed: number }>(AUDIT_CLAIMING_SQL, [...auditValues(event, now), key]);
  if (Math.random() < 0.01) await forgetOldDeliveries(q, now);
  return rows[0]?.claimed === 1;
}

/** Old claims go now and then (Slack and Discord retry within minutes, not days). */
async function forgetOldDeliveries(q: Queryable, now: Date): Promise<void> {
  await q.query("DELETE FROM dbops_deliveries WHERE seen_at < $1::timestamptz - interval '1 day'", [now]);
}
