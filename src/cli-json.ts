// What `dbops exec --json` prints: one object per run, from a reply or from a failure before the core.
import { jsonRows } from './core/json-rows.js';
import { redactSecrets } from './core/log.js';
import type { Reply } from './core/reply.js';
import type { SavedAttachment } from './surfaces/attachments.js';

/** Why a command could not get as far as the core: its exit code and a message without secrets. */
export class CliFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** What `exec --json` prints when no reply came from the core: the same keys, status failed, the reason. */
export function failureJson(code: string, message: string): Record<string, unknown> {
  const clean = redactSecrets(message);
  return {
    status: 'failed',
    request: null,
    ref: null,
    operation: null,
    target: null,
    risk: null,
    columns: [],
    rows: [],
    truncated: false,
    text: clean,
    message: clean,
    code,
  };
}

export function replyJson(reply: Reply, saved: readonly SavedAttachment[]): Record<string, unknown> {
  return {
    status: reply.status,
    request: reply.requestId,
    ref: reply.ref ?? null,
    operation: reply.operation ?? null,
    target: reply.target ?? null,
    risk: reply.risk ?? null,
    columns: reply.result?.columns.map((c) => c.key) ?? [],
    rows: jsonRows(reply.result?.rows ?? []),
    truncated: reply.result?.truncated ?? false,
    text: reply.text,
    message: reply.message,
    ...(reply.code ? { code: reply.code } : {}),
    ...(reply.result?.data ? { data: reply.result.data } : {}),
    ...(reply.request ? { approval: { id: reply.request.id, status: reply.request.status } } : {}),
    ...(saved.length > 0 ? { attachments: saved } : {}),
  };
}
