// The statements of the state database's group commit (group-commit.ts): one text per shape of group,
// and each write's rows as JSON, so a group of any size is one statement with one or two parameters.
import { auditValues } from './audit-query.js';
import type { AuditEvent, PagedRead } from './types.js';

/**
 * Which tables a group writes: its statement names only those, so a claim alone never waits on a lock
 * held on the audit table.
 */
export interface GroupShape {
  claims: boolean;
  audit: boolean;
  paged: boolean;
}

const statements = new Map<string, string>();

/**
 * One statement for the whole group, the same text whatever its size (at most seven texts, one per
 * shape: named statements stay few on each connection): $1 the audit rows and claims in order, then
 * the paged reads, as JSON arrays. A claim is taken by the first write of its key (DISTINCT ON … ORDER
 * BY ord, its position in $1); the rows of a write with a claim are written only when that write took
 * it. Records are inserted in `ord` order, so their ids keep the order in which they were asked for.
 * Answers the keys this statement claimed (no result at all without claims).
 */
export function groupSql(shape: GroupShape): string {
  const key = `${shape.claims}${shape.audit}${shape.paged}`;
  let text = statements.get(key);
  if (text !== undefined) return text;
  const ctes: string[] = [];
  const writes: string[] = [];
  if (shape.claims || shape.audit) {
    ctes.push(`input AS (
  SELECT * FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (${INPUT_COLUMNS.map((c) => c.join(' ')).join(', ')}))
  WITH ORDINALITY AS r(${INPUT_COLUMNS.map((c) => c[0]).join(', ')}, ord)
)`);
  }
  if (shape.claims) {
    ctes.push(`first AS (
  SELECT DISTINCT ON (claim) claim, unit, at FROM input WHERE claim IS NOT NULL ORDER BY claim, ord
), claimed AS (
  INSERT INTO dbops_deliveries (key, seen_at) SELECT claim, at FROM first
  ON CONFLICT (key) DO NOTHING RETURNING key
)`);
  }
  if (shape.audit) {
    const taken = shape.claims
      ? ` AND (i.claim IS NULL OR EXISTS (
    SELECT 1 FROM claimed c JOIN first f ON f.claim = c.key WHERE c.key = i.claim AND f.unit = i.unit))`
      : '';
    writes.push(`INSERT INTO dbops_audit (${AUDIT_COLUMNS.join(', ')})
  SELECT ${AUDIT_COLUMNS.map((c) => `i.${c}`).join(', ')}
  FROM input i
  WHERE i.audited${taken}${ONCE}
  ORDER BY i.ord`);
  }
  if (shape.paged) {
    const n = shape.claims || shape.audit ? 2 : 1;
    writes.push(`INSERT INTO dbops_paged_reads (ref, command, operation, target, identity, created_at)
  SELECT p.ref, p.command, p.operation, p.target, p.identity, p.created_at
  FROM jsonb_to_recordset($${n}::jsonb) AS p(ref text, command text, operation text, target text,
    identity text, created_at timestamptz)
  ON CONFLICT (ref) DO NOTHING`);
  }
  // The last write is the statement itself unless claims are answered: no result to describe then.
  const main = shape.claims ? 'SELECT key FROM claimed' : (writes.pop() ?? '');
  ctes.push(...writes.map((w, i) => `w${i} AS (\n  ${w}\n)`));
  text = `${ctes.length > 0 ? `WITH ${ctes.join(', ')}\n` : ''}${main}`;
  statements.set(key, text);
  return text;
}

/**
 * A record that follows its reply is retried, and replayed from the journal, after a failure that may
 * have come after its statement committed (a connection lost mid-answer): it is written once, keyed
 * by its invocation's reference, event and time (dbops_audit_ref index). A scalar subquery, probed
 * per row: an EXISTS here may be planned as a hash of the whole audit table (generic plans do).
 */
const ONCE = `
    AND (SELECT d.id FROM dbops_audit d
      WHERE i.once AND d.ref = i.ref AND d.event = i.event AND d.at = i.at LIMIT 1) IS NULL`;

/** The columns of dbops_audit a group writes, in auditValues' order. */
const AUDIT_COLUMNS = [
  'at',
  'request_id',
  'event',
  'person',
  'identity',
  'surface',
  'channel',
  'thread',
  'operation',
  'target',
  'args',
  'risk',
  'approvers',
  'outcome',
  'duration_ms',
  'error',
  'detail',
  'ref',
] as const;

/** The audit recordset's columns: the write's number and claim, whether it is a record, the record. */
const INPUT_COLUMNS: readonly (readonly [string, string])[] = [
  ['unit', 'bigint'],
  ['claim', 'text'],
  ['once', 'boolean'],
  ['audited', 'boolean'],
  ['at', 'timestamptz'],
  ['request_id', 'bigint'],
  ['event', 'text'],
  ['person', 'text'],
  ['identity', 'text'],
  ['surface', 'text'],
  ['channel', 'text'],
  ['thread', 'text'],
  ['operation', 'text'],
  ['target', 'text'],
  ['args', 'jsonb'],
  ['risk', 'text'],
  ['approvers', 'text[]'],
  ['outcome', 'text'],
  ['duration_ms', 'int'],
  ['error', 'text'],
  ['detail', 'jsonb'],
  ['ref', 'text'],
];

/** A write's rows of the audit recordset: one per record, or one for a claim alone. */
export function unitRows(
  unit: { records: readonly AuditEvent[]; at: Date; claim?: string },
  id: number,
  once: boolean,
): string[] {
  const claim = unit.claim ?? null;
  if (unit.records.length === 0) {
    return claim === null
      ? []
      : [JSON.stringify({ unit: id, claim, audited: false, at: unit.at.toISOString() })];
  }
  return unit.records.map((record) =>
    JSON.stringify({ unit: id, claim, ...auditRow(record, unit.at), ...(once ? { once } : {}) }),
  );
}

/** An audit record as a row of groupSql's recordset (the columns of auditValues). */
function auditRow(event: AuditEvent, at: Date): Record<string, unknown> {
  const v = auditValues(event, at);
  return {
    audited: true,
    at: at.toISOString(),
    request_id: v[1],
    event: v[2],
    person: v[3],
    identity: v[4],
    surface: v[5],
    channel: v[6],
    thread: v[7],
    operation: v[8],
    target: v[9],
    args: event.args ?? null,
    risk: v[11],
    approvers: v[12],
    outcome: v[13],
    duration_ms: v[14],
    error: v[15],
    detail: event.detail ?? null,
    ref: v[17],
  };
}

/** A paged read as a row of groupSql's paged recordset. */
export function pagedRecord(read: PagedRead): Record<string, unknown> {
  return {
    ref: read.ref,
    command: read.command,
    operation: read.operation,
    target: read.target,
    identity: read.identity,
    created_at: read.createdAt.toISOString(),
  };
}
