// Reply references in the state database (migration 10): the audit searchable by reference, and the
// paged reads that "Next page" buttons name, so a button carries a reference and never a command.
import type { Queryable } from './rows.js';
import type { PagedRead } from './types.js';

/** Migration 10: references on audit records, and the reads a page button may repeat. */
export const REFS_MIGRATION: { version: number; name: string; sql: string } = {
  version: 10,
  name: 'reply references and paged reads',
  sql: `
-- Every invocation's reference (r7f3kq): replies that are not approval requests are named by it.
ALTER TABLE dbops_audit ADD COLUMN ref text;
CREATE INDEX dbops_audit_ref ON dbops_audit (ref) WHERE ref IS NOT NULL;

-- A read answered in pages: the canonical command without --page, and who first asked for it. A page
-- button carries only the reference; pressing it runs the command again as the person who pressed.
CREATE TABLE dbops_paged_reads (
  ref text PRIMARY KEY,
  command text NOT NULL,
  operation text NOT NULL,
  target text NOT NULL,
  identity text NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE INDEX dbops_paged_reads_created ON dbops_paged_reads (created_at);
`,
};

/** How long a page button keeps working. */
export const PAGED_READ_DAYS = 7;

interface PagedReadRow {
  ref: string;
  command: string;
  operation: string;
  target: string;
  identity: string;
  created_at: Date;
}

/** The paged read of a reference, unless there is none or it is older than PAGED_READ_DAYS. */
export async function loadPagedRead(c: Queryable, ref: string, now: Date): Promise<PagedRead | undefined> {
  const { rows } = await c.query<PagedReadRow>(
    `SELECT * FROM dbops_paged_reads
     WHERE ref = $1 AND created_at >= $2::timestamptz - make_interval(days => $3)`,
    [ref, now, PAGED_READ_DAYS],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    ref: row.ref,
    command: row.command,
    operation: row.operation,
    target: row.target,
    identity: row.identity,
    createdAt: row.created_at,
  };
}
