// Masks the sensitive columns in a pack operation's result rows before anything (chat, --json, logs, audit) sees them.
import type { ResolvedTarget } from '../config/schema.js';
import type { ResultField, Session } from '../engine/types.js';
import { maskColumns, SensitiveColumns, seesSensitive, sensitiveFields } from '../sql/sensitive-columns.js';

/** Who the rows are for: a person's own result, or a preview that approvers (other people) will see. */
export type Audience = { person: { roles: readonly string[] } | undefined } | 'everyone';

/**
 * The rows of `sql` with every column whose values come from a sensitive column masked, unless the
 * audience may see them; `masked` names the masked columns (result names). Costs nothing on a target
 * without sensitive columns.
 */
export async function maskPackRows<R extends Record<string, unknown>>(
  session: Session,
  target: ResolvedTarget,
  audience: Audience,
  sql: string,
  read: { rows: R[]; fields?: readonly ResultField[] | undefined },
): Promise<{ rows: R[]; masked: string[] }> {
  const patterns = target.sensitive?.columns ?? [];
  if (patterns.length === 0) return { rows: read.rows, masked: [] };
  if (audience !== 'everyone' && seesSensitive(target, audience.person))
    return { rows: read.rows, masked: [] };
  const fields = read.fields ?? [];
  if (fields.length === 0 && read.rows.length > 0) {
    // Rows without a description of where they come from: fail closed, every column masked.
    const all = new Set(read.rows.flatMap((r) => Object.keys(r)));
    return { rows: maskColumns(read.rows, all), masked: [...all] };
  }
  const masked = await sensitiveFields(new SensitiveColumns(session, patterns), sql, fields);
  return {
    rows: maskColumns(read.rows, masked),
    masked: fields.map((f) => f.name).filter((n) => masked.has(n)),
  };
}
