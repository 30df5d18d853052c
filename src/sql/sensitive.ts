// Sensitive columns in ad-hoc SQL: shown masked, and refused where a value could leak another way.
import type { ResolvedTarget } from '../config/schema.js';
import type { Row } from '../core/types.js';
import type { Session } from '../engine/types.js';
import { type Fields, type ParsedStatement, SqlRefusal, walk } from './parse.js';
import { MASK, SensitiveColumns, seesSensitive } from './sensitive-columns.js';

export { MASK, matchesPattern, seesSensitive } from './sensitive-columns.js';

/** What a statement may show of the sensitive columns of the relations it reads. */
export interface SensitivePlan {
  /** Output column names whose values are masked. */
  masked: Set<string>;
  /** True when the statement references any sensitive column (writes then show no sample rows). */
  touches: boolean;
}

const NONE: SensitivePlan = { masked: new Set(), touches: false };

function lastName(fields: Fields): { name?: string; star: boolean; parts: number } {
  const list = Array.isArray(fields.fields) ? fields.fields : [];
  const last = list.at(-1) as { String?: { sval?: string }; A_Star?: unknown } | undefined;
  if (last?.A_Star !== undefined) return { star: true, parts: list.length };
  const name = last?.String?.sval;
  return name === undefined ? { star: false, parts: list.length } : { name, star: false, parts: list.length };
}

function refuse(what: string): never {
  throw new SqlRefusal(
    `${what}: sensitive columns are shown only masked, as plain output columns, to people without a role ` +
      'allowed to see them; select the column itself (it comes back masked) or ask someone who may see it',
  );
}

/**
 * Decides how a statement shows the sensitive columns of the relations it names. For a person who may
 * not see them: a sensitive column (or `*`) directly in the top-level select list is masked by output
 * name; any other use — in WHERE, ORDER BY, expressions, function arguments, sub-queries, column renames,
 * whole-row references, JOIN USING — is refused, since it could reveal values without showing them.
 */
export async function sensitivePlan(
  session: Session,
  target: ResolvedTarget,
  person: { roles: readonly string[] } | undefined,
  parsed: ParsedStatement,
): Promise<SensitivePlan> {
  const patterns = target.sensitive?.columns ?? [];
  if (patterns.length === 0 || seesSensitive(target, person)) return NONE;
  const named = parsed.relations.filter((r) => r.schema !== undefined || !parsed.cteNames.has(r.name));
  // Views count too: a view's column derived from a sensitive column is sensitive (sensitive-columns.ts).
  const relations = await new SensitiveColumns(session, patterns).resolve(named);
  const sensitive = new Set<string>();
  const allColumns = new Set<string>();
  for (const r of relations) {
    for (const column of r.columns) {
      allColumns.add(column.name);
      if (r.sensitive.has(column.attnum)) sensitive.add(column.name);
    }
  }
  if (sensitive.size === 0) return NONE;

  const masked = new Set<string>();
  const allowed = new Set<Fields>();
  // Only the outermost select list shows values; its plain column references and stars are masked.
  const top = parsed.type === 'SelectStmt' ? parsed.node : undefined;
  for (const item of Array.isArray(top?.targetList) ? top.targetList : []) {
    const target = (item as { ResTarget?: Fields }).ResTarget;
    const ref = (target?.val as { ColumnRef?: Fields } | undefined)?.ColumnRef;
    if (!target || !ref) continue;
    const { name, star } = lastName(ref);
    if (star) {
      for (const column of sensitive) masked.add(column);
      allowed.add(ref);
    } else if (name !== undefined && sensitive.has(name)) {
      masked.add(typeof target.name === 'string' ? target.name : name);
      allowed.add(ref);
    }
  }
  const aliases = new Set<string>([...parsed.cteNames, ...relations.map((r) => r.name)]);
  let touches = masked.size > 0;
  walk(parsed.node, (kind, fields) => {
    // Aliases are plain fields of RangeVar, RangeSubselect, RangeFunction and JoinExpr (not wrapped nodes).
    const alias = fields.alias as Fields | undefined;
    if (alias && typeof alias === 'object') {
      if (typeof alias.aliasname === 'string') aliases.add(alias.aliasname);
      if (Array.isArray(alias.colnames) && alias.colnames.length > 0) refuse('renaming columns in an alias');
    }
    if (kind === 'CommonTableExpr' && Array.isArray(fields.aliascolnames)) {
      refuse('renaming columns of a WITH query');
    } else if (kind === 'JoinExpr' && (fields.isNatural === true || Array.isArray(fields.usingClause))) {
      refuse('NATURAL JOIN or JOIN … USING');
    }
  });
  walk(parsed.node, (kind, fields) => {
    if (kind === 'ResTarget' && parsed.type !== 'SelectStmt') {
      // SET targets and INSERT column lists of a write name columns without reading them.
      if (typeof fields.name === 'string' && sensitive.has(fields.name)) touches = true;
    }
    if (kind !== 'ColumnRef' || allowed.has(fields)) return;
    const { name, star, parts } = lastName(fields);
    if (star) {
      touches = true;
      if (parsed.type === 'SelectStmt') refuse('`*` inside an expression or sub-query');
      return;
    }
    if (name === undefined) return;
    if (sensitive.has(name)) {
      touches = true;
      if (parsed.type === 'SelectStmt' || parsed.type === 'ExplainStmt')
        refuse(`using column ${name} this way`);
    } else if (parts === 1 && aliases.has(name) && !allColumns.has(name)) {
      touches = true;
      if (parsed.type === 'SelectStmt') refuse(`the whole-row reference ${name}`);
    }
  });
  // A write's sample rows come from RETURNING * and the table itself: every sensitive column is masked.
  return { masked: parsed.type === 'SelectStmt' ? masked : sensitive, touches };
}

/** The rows with every masked column's value replaced (NULL stays NULL: it shows no value). */
export function maskRows(rows: readonly Row[], plan: SensitivePlan): Row[] {
  if (plan.masked.size === 0) return [...rows];
  return rows.map((row) => {
    const out: Row = { ...row };
    for (const key of Object.keys(out)) if (plan.masked.has(key) && out[key] !== null) out[key] = MASK;
    return out;
  });
}
