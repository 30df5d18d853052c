// An ad-hoc write or DDL run inside a transaction that is rolled back: rows affected, sample rows and the plan.
import type { Column, Row } from '../core/types.js';
import { quoteIdent } from '../engine/relations.js';
import type { Session } from '../engine/types.js';
import type { Classified } from './classify.js';
import type { Fields } from './parse.js';

/** Rows shown before/after in a preview. */
export const SAMPLE_ROWS = 5;
const SAVEPOINT = 'dbops_dry_run';
const COUNT = 'dbops_rows';
const KEY = 'dbops_key';

export interface DryRun {
  /** Rows the statement affected (null for DDL, which reports none). */
  rows: number | null;
  columns: Column[];
  sample: Row[];
  notes: string[];
}

/** A value of any type as it reads in a cell: dates as ISO text, JSON and arrays as JSON, bytes as hex. */
export function toCell(value: unknown): string | number | boolean | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? String(value) : value.toISOString();
  if (Buffer.isBuffer(value)) return `\\x${value.toString('hex')}`;
  return JSON.stringify(value);
}

/** Column list of result rows (keys of the first row, in order), minus dbops' own helper columns. */
export function columnsOf(rows: readonly Record<string, unknown>[], lead: Column[] = []): Column[] {
  const first = rows[0];
  const keys = first ? Object.keys(first).filter((k) => k !== COUNT && k !== KEY) : [];
  return [...lead, ...keys.map((key): Column => ({ key, label: key, kind: 'text' }))];
}

function cells(row: Record<string, unknown>, extra: Row = {}): Row {
  const out: Row = { ...extra };
  for (const [key, value] of Object.entries(row)) {
    if (key !== COUNT && key !== KEY) out[key] = toCell(value);
  }
  return out;
}

const PRIMARY_KEY = `
SELECT n.nspname AS schema, c.relname AS name,
       ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.ord) AS columns
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE c.oid = to_regclass(CASE WHEN $1 = '' THEN quote_ident($2) ELSE format('%I.%I', $1, $2) END)
`;

/** The updated table and its primary key, to read the rows as they were before the UPDATE. */
async function primaryKeyOf(
  session: Session,
  node: Fields,
): Promise<{ qualified: string; columns: string[] } | undefined> {
  const relation = node.relation as Fields | undefined;
  if (!relation || typeof relation.relname !== 'string') return undefined;
  const schema = typeof relation.schemaname === 'string' ? relation.schemaname : '';
  const found = (
    await session.query<{ schema: string; name: string; columns: string[] }>(PRIMARY_KEY, [
      schema,
      relation.relname,
    ])
  )[0];
  if (!found || found.columns.length === 0) return undefined;
  return { qualified: `${quoteIdent(found.schema)}.${quoteIdent(found.name)}`, columns: found.columns };
}

/**
 * Runs the statement inside a savepoint of `session`'s transaction and rolls back to it, whatever happens
 * (the caller's transaction then ends; nothing the statement did is kept). For INSERT/UPDATE/DELETE the
 * statement runs inside a CTE with RETURNING, which counts every affected row and keeps a sample; for an
 * UPDATE with a primary key, the same rows are then read as they were before.
 */
export async function dryRun(session: Session, classified: Classified): Promise<DryRun> {
  const { type, node, text } = classified.parsed;
  await session.query(`SAVEPOINT ${SAVEPOINT}`);
  try {
    if (classified.kind === 'ddl' || type === 'MergeStmt') {
      const { rowCount } = await session.execute(`${text}\n`);
      return {
        rows: classified.kind === 'ddl' ? null : rowCount,
        columns: [],
        sample: [],
        notes: [],
      };
    }
    // The changed table's own columns only: with FROM/USING, RETURNING * would repeat names (id, id).
    const relation = node.relation as Fields | undefined;
    const alias = (relation?.alias as Fields | undefined)?.aliasname ?? relation?.relname;
    const returning = Array.isArray(node.returningList)
      ? ''
      : `\nRETURNING ${typeof alias === 'string' ? `${quoteIdent(alias)}.*` : '*'}`;
    const key = type === 'UpdateStmt' && returning !== '' ? await primaryKeyOf(session, node) : undefined;
    const keyExpr = key
      ? `ROW(${key.columns.map((c) => `d.${quoteIdent(c)}`).join(', ')})::text`
      : 'NULL::text';
    const sql =
      `WITH d AS (\n${text}${returning}\n)\n` +
      `SELECT count(*) OVER () AS ${COUNT}, ${keyExpr} AS ${KEY}, d.* FROM d LIMIT ${SAMPLE_ROWS}`;
    const changed = await session.query<Record<string, unknown>>(sql);
    const rows = Number(changed[0]?.[COUNT] ?? 0);
    const lead: Column[] = [{ key: 'row', label: 'row', kind: 'text' }];
    const notes: string[] = [];
    if (type === 'InsertStmt' || type === 'DeleteStmt') {
      const word = type === 'InsertStmt' ? 'inserted' : 'deleted';
      return {
        rows,
        columns: columnsOf(changed, lead),
        sample: changed.map((r) => cells(r, { row: word })),
        notes,
      };
    }
    // UPDATE: the sample after, then (rolled back) the same rows before, paired by primary key.
    const keys = changed.map((r) => r[KEY]).filter((k): k is string => typeof k === 'string');
    await session.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
    let before: Record<string, unknown>[] = [];
    if (key && keys.length > 0) {
      const cols = key.columns.map((c) => `t.${quoteIdent(c)}`).join(', ');
      before = await session.query<Record<string, unknown>>(
        `SELECT ROW(${cols})::text AS ${KEY}, t.* FROM ${key.qualified} t WHERE ROW(${cols})::text = ANY ($1::text[])`,
        [keys],
      );
    } else if (changed.length > 0) {
      notes.push(
        'rows before the change are not shown: the table has no primary key (or RETURNING is custom)',
      );
    }
    const sample: Row[] = [];
    for (const after of changed) {
      const was = before.find((b) => b[KEY] === after[KEY]);
      if (was) sample.push(cells(was, { row: 'before' }));
      sample.push(cells(after, { row: 'after' }));
    }
    return { rows, columns: columnsOf(changed, lead), sample, notes };
  } finally {
    // Also after an error: the savepoint undoes the statement, the caller's transaction ends cleanly.
    await session.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`).catch(() => {});
  }
}
