// What dispatch() answers: structured for adapters, with the text a terminal user sees.
import type { ApprovalRequest } from '../state/types.js';
import type { UserErrorCode } from './errors.js';
import type { OperationResult, Risk } from './types.js';

export const REPLY_STATUSES = ['ok', 'pending', 'refused', 'invalid', 'failed'] as const;
export type ReplyStatus = (typeof REPLY_STATUSES)[number];

export interface Reply {
  status: ReplyStatus;
  /** The approval request this reply is about, if any: only approval requests have numbers. */
  requestId: number | null;
  /**
   * Every invocation that reached the core has a reference (`r7f3kq`, see refs.ts): in the audit, in
   * "internal error, ref r7f3kq", and on replies that are not about an approval request.
   */
  ref?: string | undefined;
  operation?: string;
  target?: string;
  risk?: Risk;
  /** The operation's result, or the preview of a pending request. */
  result?: OperationResult;
  /** The approval request this reply is about (pending, approve, deny, status, ...). */
  request?: ApprovalRequest;
  /** Several requests (`pending`). */
  requests?: ApprovalRequest[];
  code?: UserErrorCode | 'internal';
  /** One line: what happened. */
  message: string;
  /** Everything a terminal or chat user sees, as plain text. */
  text: string;
  /** Refusals and usage errors are shown only to the person who typed the command. */
  ephemeral: boolean;
  /** A repeated delivery (Invocation.delivery claimed before): nothing ran; surfaces post nothing. */
  duplicate?: true;
}

/** Which reply status a user-facing error code answers with. */
export function statusOfCode(code: UserErrorCode): ReplyStatus {
  switch (code) {
    case 'invalid_command':
    case 'unknown_operation':
    case 'unknown_target':
    case 'missing_target':
    case 'invalid_argument':
      return 'invalid';
    case 'unknown_person':
    case 'denied':
    case 'not_found':
    case 'self_approval':
    case 'already_voted':
    case 'not_pending':
    case 'expired':
    case 'not_requester':
    case 'target_busy':
    case 'stale_preview':
    case 'unavailable':
    case 'cannot_succeed':
      return 'refused';
    default:
      return 'failed';
  }
}

/** Builds a Reply; text defaults to a marked message for refusals and errors. */
export function reply(r: Omit<Reply, 'text' | 'ephemeral'> & { text?: string; ephemeral?: boolean }): Reply {
  const ephemeral = r.ephemeral ?? (r.status === 'refused' || r.status === 'invalid');
  const mark: Record<ReplyStatus, string> = {
    ok: '',
    pending: '',
    refused: 'Refused: ',
    invalid: 'Invalid: ',
    failed: 'Failed: ',
  };
  // The invocation's reference, never a request number: "#52" on a refusal would look approvable.
  const suffix =
    r.status === 'ok'
      ? ''
      : r.ref !== undefined
        ? ` (ref ${r.ref})`
        : r.requestId !== null && !r.message.includes(`#${r.requestId}`)
          ? ` (#${r.requestId})`
          : '';
  const text = r.text ?? `${mark[r.status]}${r.message}${suffix}`;
  return { ...r, text, ephemeral };
}

/** How a reply names itself to people: `#7` when it is about an approval request, else `ref r7f3kq`. */
export function replyTag(r: Pick<Reply, 'requestId' | 'ref'>): string | undefined {
  if (r.requestId !== null) return `#${r.requestId}`;
  return r.ref !== undefined ? `ref ${r.ref}` : undefined;
}
