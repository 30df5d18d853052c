// Reading the audit log with filters: `/db audit` (newest first) and `dbops audit export` (oldest first, by pages).

import { type AuditRow, type Queryable, toAuditRecord } from './rows.js';
import type { AuditFilter, AuditRecord } from './types.js';

const MAX_PAGE = 5000;

/** The records matching `filter`: newest first, or — with `afterId` — oldest first after that id. */
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
  const { rows } = await q.query<AuditRow>(
    `SELECT * FROM dbops_audit ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
     ORDER BY ${ascending ? 'id ASC' : 'at DESC, id DESC'} LIMIT $${params.length}`,
    params,
  );
  return rows.map(toAuditRecord);
}
