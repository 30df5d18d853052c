// `dbops audit export`: the audit log as JSON lines for a SIEM, oldest first, in the schema of docs/audit.md.
import { parseWhen } from '../core/audit-filter.js';
import { redactSecrets } from '../core/log.js';
import { PgStateStore } from '../state/pg-store.js';
import type { AuditFilter, AuditRecord } from '../state/types.js';
import type { AUDIT_EXPORT_OPTIONS, parseCommand } from './args.js';
import { UsageError } from './args.js';
import { configPath, loadConfigOrExit } from './shared.js';

export type AuditExportArgs = ReturnType<typeof parseCommand<typeof AUDIT_EXPORT_OPTIONS>>;

/** Bumped on any change a consumer could notice (a field renamed, removed or retyped); additions keep it. */
export const AUDIT_SCHEMA_VERSION = 1;

const PAGE = 1000;

/** One exported line: every field always present (null when unknown), snake_case, times in UTC ISO 8601. */
export function auditLine(record: AuditRecord): string {
  const detail = record.detail ?? {};
  const reason = typeof detail.reason === 'string' ? detail.reason : null;
  return JSON.stringify({
    schema_version: AUDIT_SCHEMA_VERSION,
    id: record.id,
    at: record.at.toISOString(),
    request_id: record.requestId,
    ref: record.ref ?? null,
    event: record.event,
    outcome: record.outcome,
    person: record.person,
    identity: record.identity,
    surface: record.surface,
    channel: record.channel ?? null,
    thread: record.thread ?? null,
    operation: record.operation ?? null,
    target: record.target ?? null,
    risk: record.risk ?? null,
    args: record.args ?? null,
    approvers: record.approvers ?? [],
    reason,
    duration_ms: record.durationMs ?? null,
    error: record.error !== undefined ? redactSecrets(record.error) : null,
    detail,
  });
}

/** Writes every matching record; `write` resolves once the line is taken (stdout back-pressure). */
export async function exportAudit(
  store: Pick<PgStateStore, 'listAudit'>,
  filter: AuditFilter,
  write: (line: string) => Promise<void>,
): Promise<number> {
  let afterId = 0;
  let written = 0;
  for (;;) {
    const page = await store.listAudit({ ...filter, afterId, limit: PAGE });
    for (const record of page) {
      await write(`${auditLine(record)}\n`);
      written++;
    }
    const last = page.at(-1);
    if (!last || page.length < PAGE) return written;
    afterId = last.id;
  }
}

function writeOut(line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(line, (err) => (err ? reject(err) : resolve()));
  });
}

export async function auditExport({ values }: AuditExportArgs): Promise<number> {
  const format = values.format ?? 'jsonl';
  if (format !== 'jsonl')
    throw new UsageError('audit export', `--format: only jsonl is supported, got "${format}"`);
  if (values.since === undefined) {
    throw new UsageError('audit export', 'which records? give --since (24h, 7d or a date like 2026-12-01)');
  }
  const now = new Date();
  let filter: AuditFilter;
  try {
    filter = {
      since: parseWhen(values.since, now, '--since'),
      ...(values.until !== undefined ? { until: parseWhen(values.until, now, '--until') } : {}),
      ...(values.person !== undefined ? { person: values.person } : {}),
      ...(values.operation !== undefined ? { operation: values.operation } : {}),
      ...(values.outcome !== undefined ? { outcome: values.outcome } : {}),
    };
  } catch (err) {
    throw new UsageError('audit export', err instanceof Error ? err.message : String(err));
  }
  const config = loadConfigOrExit(configPath(values.config));
  const store = await PgStateStore.open(config.state.url, { poolMax: 1 });
  try {
    const count = await exportAudit(store, filter, writeOut);
    process.stderr.write(`dbops: exported ${count} audit records (schema_version ${AUDIT_SCHEMA_VERSION})\n`);
    return 0;
  } finally {
    await store.close();
  }
}
