// State migration 13: which pending requests made outside chat were announced in an approvals channel.
import type { Migration } from '../state/migrations.js';

export const ANNOUNCE_MIGRATION: Migration = {
  version: 13,
  name: 'approval requests announced in an approvals channel',
  sql: `
-- Set once, when a replica's card for the request is in the approvals channel (its refs stored with it).
ALTER TABLE dbops_requests ADD COLUMN announced_at timestamptz;
-- The replica posting it, and until when no other replica may (a replica that died while posting
-- leaves the request to the others once this has passed).
ALTER TABLE dbops_requests ADD COLUMN announce_claim text;
ALTER TABLE dbops_requests ADD COLUMN announce_until timestamptz;
CREATE INDEX dbops_requests_unannounced ON dbops_requests (id)
  WHERE status = 'pending' AND announced_at IS NULL;
`,
};
