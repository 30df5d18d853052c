// The audit record of something dbops did by itself about a request (expired it, escalated or announced
// it, voided it): identity `dbops`, no person, the request's surface, operation, target, arguments and risk.
import type { ApprovalRequest, AuditEvent } from './types.js';

export function systemRecord(
  request: ApprovalRequest,
  what: Pick<AuditEvent, 'event' | 'outcome'> & Partial<Pick<AuditEvent, 'approvers' | 'error' | 'detail'>>,
): AuditEvent {
  return {
    requestId: request.id,
    person: null,
    identity: 'dbops',
    surface: request.requester.surface,
    operation: request.operation,
    target: request.target,
    args: request.args,
    risk: request.risk,
    ...what,
  };
}
