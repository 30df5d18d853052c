// Lint of an ad-hoc write or DDL before anything runs: missing WHERE, the tables it changes and the locks it takes.
import { formatBytes, formatCount } from '../core/render.js';
import type { Session } from '../engine/types.js';
import type { Classified } from './classify.js';
import { type Fields, SqlRefusal } from './parse.js';

/** A table at least this large is called big when a statement locks it out. */
export const BIG_TABLE_BYTES = 100 * 1024 * 1024;

type LockLevel = 'ACCESS EXCLUSIVE' | 'SHARE' | 'SHARE ROW EXCLUSIVE' | 'SHARE UPDATE EXCLUSIVE';

interface Touched {
  schema?: string;
  name: string;
  verb: string;
  lock?: LockLevel;
}

/** ALTER TABLE sub-commands that do not lock readers out (PostgreSQL docs, ALTER TABLE "Notes"). */
const WEAK_ALTER = new Set([
  'AT_SetStatistics',
  'AT_ValidateConstraint',
  'AT_ClusterOn',
  'AT_DropCluster',
  'AT_SetRelOptions',
  'AT_ResetRelOptions',
]);

function rangeVar(value: unknown): { schema?: string; name: string } | undefined {
  const rv = (value as { RangeVar?: Fields } | undefined)?.RangeVar ?? (value as Fields | undefined);
  if (!rv || typeof rv.relname !== 'string') return undefined;
  return typeof rv.schemaname === 'string'
    ? { schema: rv.schemaname, name: rv.relname }
    : { name: rv.relname };
}

function nameList(value: unknown): { schema?: string; name: string } | undefined {
  const items = (value as { List?: { items?: unknown[] } }).List?.items ?? [];
  const parts = items.flatMap((i) => {
    const s = (i as { String?: { sval?: unknown } }).String?.sval;
    return typeof s === 'string' ? [s] : [];
  });
  const name = parts.at(-1);
  if (name === undefined) return undefined;
  return parts.length > 1 ? { schema: parts.at(-2) ?? '', name } : { name };
}

const DROPPED_KINDS: Record<string, string> = {
  OBJECT_TABLE: 'drops table',
  OBJECT_VIEW: 'drops view',
  OBJECT_MATVIEW: 'drops materialized view',
  OBJECT_INDEX: 'drops index',
  OBJECT_SEQUENCE: 'drops sequence',
};

/** The relations a DDL statement changes, with the lock each takes. */
export function touchedRelations(classified: Classified): Touched[] {
  const { type, node } = classified.parsed;
  const out: Touched[] = [];
  if (type === 'DropStmt') {
    const verb = DROPPED_KINDS[String(node.removeType)];
    if (verb) {
      for (const obj of Array.isArray(node.objects) ? node.objects : []) {
        const ref = nameList(obj);
        if (ref) out.push({ ...ref, verb, lock: 'ACCESS EXCLUSIVE' });
      }
    }
  } else if (type === 'TruncateStmt') {
    for (const rel of Array.isArray(node.relations) ? node.relations : []) {
      const ref = rangeVar(rel);
      if (ref) out.push({ ...ref, verb: 'empties table', lock: 'ACCESS EXCLUSIVE' });
    }
  } else if (type === 'AlterTableStmt') {
    const ref = rangeVar(node.relation);
    const cmds = (Array.isArray(node.cmds) ? node.cmds : []).map(
      (c) => (c as { AlterTableCmd?: Fields }).AlterTableCmd?.subtype,
    );
    const weak = cmds.length > 0 && cmds.every((s) => typeof s === 'string' && WEAK_ALTER.has(s));
    if (ref) out.push({ ...ref, verb: 'alters', lock: weak ? 'SHARE UPDATE EXCLUSIVE' : 'ACCESS EXCLUSIVE' });
  } else if (type === 'RenameStmt') {
    const ref = rangeVar(node.relation);
    if (ref) out.push({ ...ref, verb: 'renames (in)', lock: 'ACCESS EXCLUSIVE' });
  } else if (type === 'IndexStmt') {
    const ref = rangeVar(node.relation);
    if (ref) out.push({ ...ref, verb: 'builds an index on', lock: 'SHARE' });
  } else if (type === 'RefreshMatViewStmt') {
    const ref = rangeVar(node.relation);
    if (ref) out.push({ ...ref, verb: 'refreshes', lock: 'ACCESS EXCLUSIVE' });
  } else if (type === 'CreateTrigStmt') {
    const ref = rangeVar(node.relation);
    if (ref) out.push({ ...ref, verb: 'adds a trigger to', lock: 'SHARE ROW EXCLUSIVE' });
  }
  return out;
}

const SIZES = `
SELECT t.ord, c.oid IS NOT NULL AS found, n.nspname AS schema, c.relname AS name,
       pg_total_relation_size(c.oid)::int8 AS bytes, GREATEST(c.reltuples, 0)::int8 AS rows
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(schema, name, ord)
LEFT JOIN pg_class c ON c.oid = to_regclass(CASE WHEN t.schema = '' THEN quote_ident(t.name)
                                                 ELSE format('%I.%I', t.schema, t.name) END)
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
ORDER BY t.ord
`;

interface SizeRow {
  found: boolean;
  schema: string | null;
  name: string | null;
  bytes: number | null;
  rows: number | null;
}

export interface LintResult {
  /** Lines for the preview: what is changed, how big it is, what it locks. */
  notes: string[];
  /** Per relation changed by DDL: its size now (bound into the approval). */
  relations: { name: string; bytes: number }[];
}

/**
 * Lints a write or DDL against the target. UPDATE/DELETE without WHERE are refused unless `allRows`;
 * DROP/TRUNCATE/ALTER name each table and its size; locks that shut readers out are said, louder for a
 * big table.
 */
export async function lintStatement(
  session: Session,
  classified: Classified,
  options: { allRows: boolean },
): Promise<LintResult> {
  const { type, node } = classified.parsed;
  const notes: string[] = [];
  if ((type === 'UpdateStmt' || type === 'DeleteStmt') && !node.whereClause) {
    const verb = type === 'UpdateStmt' ? 'UPDATE' : 'DELETE';
    if (!options.allRows) {
      throw new SqlRefusal(
        `${verb} without WHERE changes every row of the table: add a WHERE clause, or --all-rows if ` +
          'that is really meant',
      );
    }
    notes.push(`${verb} without WHERE: every row of the table (--all-rows)`);
  }
  const touched = touchedRelations(classified);
  if (touched.length === 0) return { notes, relations: [] };
  const sizes = await session.query<SizeRow>(SIZES, [
    touched.map((t) => t.schema ?? ''),
    touched.map((t) => t.name),
  ]);
  const relations: LintResult['relations'] = [];
  touched.forEach((t, i) => {
    const size = sizes[i];
    if (!size?.found || size.schema === null || size.name === null) {
      notes.push(`${t.verb} ${t.schema ? `${t.schema}.` : ''}${t.name}: not found on the target`);
      return;
    }
    const name = `${size.schema}.${size.name}`;
    const bytes = size.bytes ?? 0;
    relations.push({ name, bytes });
    notes.push(`${t.verb} ${name}: ${formatBytes(bytes)}, about ${formatCount(size.rows ?? 0)} rows`);
    if (t.lock === 'ACCESS EXCLUSIVE' || t.lock === 'SHARE' || t.lock === 'SHARE ROW EXCLUSIVE') {
      const blocks = t.lock === 'ACCESS EXCLUSIVE' ? 'every read and write of it' : 'every write to it';
      const big = bytes >= BIG_TABLE_BYTES ? `, a big table (${formatBytes(bytes)}),` : '';
      notes.push(`takes an ${t.lock} lock on ${name}${big} until it commits: ${blocks} waits meanwhile`);
    }
  });
  return { notes, relations };
}
