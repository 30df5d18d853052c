// State migration 9: the reason a request was made with, and when it was escalated (once) to a second group.
import type { Migration } from './migrations.js';

export const REASONS_MIGRATION: Migration = {
  version: 9,
  name: 'request reasons and escalation',
  sql: `
-- The requester's --reason (the deny reason stays in "reason").
ALTER TABLE dbops_requests ADD COLUMN request_reason text;
-- Set once, by whichever replica escalated the pending request first.
ALTER TABLE dbops_requests ADD COLUMN escalated_at timestamptz;
CREATE INDEX dbops_requests_pending_created ON dbops_requests (created_at) WHERE status = 'pending';
-- /db audit and dbops audit export filter by person and time.
CREATE INDEX dbops_audit_at ON dbops_audit (at);
CREATE INDEX dbops_audit_person_at ON dbops_audit (person, at);
`,
};
