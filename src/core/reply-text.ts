// Plain-text wording of replies and requests, in one place.
import type { ApprovalRequest } from '../state/types.js';
import { formatDuration } from './duration.js';
import { CONSOLE_WIDTH, wrapLines } from './layout.js';
import { renderResult } from './render.js';
import { formatAge, formatRunning, formatTime } from './time-format.js';

export function approvers(request: ApprovalRequest): string[] {
  return request.votes.filter((v) => v.vote === 'approve').map((v) => v.person);
}

/** One line: "#7 kill-idle staging --older-than 5m · pending · by alice · expires in 12m". */
export function requestLine(request: ApprovalRequest, now: Date): string {
  // A running request started when it last changed state (its lease renewals leave updatedAt alone).
  const state =
    request.status === 'running'
      ? formatRunning((now.getTime() - request.updatedAt.getTime()) / 1000)
      : request.status;
  const parts = [
    `#${request.id} ${request.command}`,
    state,
    `by ${request.requester.person} ${formatAge(request.createdAt, now)}`,
  ];
  const yes = approvers(request);
  if (yes.length > 0) parts.push(`approved by ${yes.join(', ')}`);
  if (request.status === 'pending' || request.status === 'approved') {
    const left = (request.expiresAt.getTime() - now.getTime()) / 1000;
    if (request.status === 'approved') parts.push('waits for its target');
    parts.push(left > 0 ? `expires in ${formatDuration(left)}` : 'expiring');
  }
  if (request.status === 'running' && request.cancelRequest)
    parts.push(`stop asked by ${request.cancelRequest.by.person}`);
  if (request.status === 'cancelled' && request.reason) parts.push('void');
  if (request.status === 'denied') {
    const deny = request.votes.find((v) => v.vote === 'deny');
    if (deny) parts.push(`denied by ${deny.person}${request.reason ? `: ${request.reason}` : ''}`);
  }
  return parts.join(' · ');
}

/** The full card of a request: what it does, the preview, who must approve, how; within `width`. */
export function requestCard(
  request: ApprovalRequest,
  now: Date,
  approverRoles: readonly string[],
  width = CONSOLE_WIDTH,
): string {
  const lines = [requestLine(request, now), ''];
  if (request.requestReason !== undefined) lines.push(`Reason: ${request.requestReason}`, '');
  lines.push(renderResult(request.preview.result, { maxWidth: width }));
  if (request.status === 'pending') {
    const have = approvers(request).length;
    const need = request.approvalsRequired - have;
    lines.push('');
    lines.push(
      `Needs ${need} more approval${need === 1 ? '' : 's'} from ${approverRoles.join(' or ') || 'nobody (no approver role)'} — not ${request.requester.person}. Expires at ${formatTime(request.expiresAt)}.`,
    );
    const how = [
      `approve: /db approve ${request.id}`,
      `deny: /db deny ${request.id} <reason>`,
      `cancel: /db cancel ${request.id}`,
    ];
    // One line where it fits; on a phone, one command a line (a command is never split).
    const oneLine = `  ${how.join('   ')}`;
    lines.push(...(oneLine.length <= width ? [oneLine] : how.map((h) => `  ${h}`)));
  }
  if (request.result && (request.status === 'succeeded' || request.status === 'failed')) {
    lines.push('', 'Outcome:', renderResult(request.result, { maxWidth: width }));
  }
  if (request.status === 'cancelled' && request.reason) lines.push('', `Void: ${request.reason}`);
  if (request.status === 'running')
    lines.push('', `  stop it: /db cancel ${request.id} (the requester or an approver)`);
  if (request.error)
    lines.push('', `${request.status === 'cancelled' ? 'Stopped' : 'Error'}: ${request.error}`);
  return wrapLines(lines.join('\n'), width);
}
