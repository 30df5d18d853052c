// Which columns of a target hold sensitive values: config patterns on tables, followed through views, and the result columns a query derives from them.
import type { ResolvedTarget } from '../config/schema.js';
import type { ResultField, Session } from '../engine/types.js';
import { type Fields, loadSqlParser, parseSync, walk } from './parse.js';

/** What a masked value shows instead (NULL stays NULL: it shows no value). */
export const MASK = '••••••';

/** Views of views of … are followed this deep; past it every column of the view counts as sensitive. */
const MAX_VIEW_DEPTH = 12;

export interface RelationColumns {
  oid: number;
  schema: string;
  name: string;
  /** User columns in attnum order. */
  columns: { attnum: number; name: string }[];
  /** attnums whose values are sensitive (named by a pattern, or derived from one through a view). */
  sensitive: Set<number>;
}

const RELATIONS_SQL = `
SELECT c.oid::text AS oid, n.nspname AS schema, c.relname AS name,
       ARRAY(SELECT a.attnum::int FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS attnums,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS columns,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS definition,
       up.schemas AS ancestor_schemas, up.names AS ancestor_names
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
-- Partitions and inheritance children hold their parents' columns: the parents' patterns cover them.
CROSS JOIN LATERAL (
  WITH RECURSIVE up(oid) AS (
    SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = c.oid
    UNION SELECT i.inhparent FROM pg_inherits i JOIN up ON i.inhrelid = up.oid
  )
  SELECT array_agg(pn.nspname::text) AS schemas, array_agg(p.relname::text) AS names
  FROM up JOIN pg_class p ON p.oid = up.oid JOIN pg_namespace pn ON pn.oid = p.relnamespace
) up
WHERE c.oid = ANY($1::oid[])`;

const RESOLVE_SQL = `
SELECT to_regclass(CASE WHEN r.schema = '' THEN quote_ident(r.name)
                        ELSE format('%I.%I', r.schema, r.name) END)::oid::text AS oid
FROM unnest($1::text[], $2::text[]) AS r(schema, name)`;

/** Whether `pattern` (`table.column`, `schema.table.column`, `*` for any part) names this column. */
export function matchesPattern(pattern: string, schema: string, table: string, column: string): boolean {
  const parts = pattern.split('.');
  const [s, t, c] = parts.length === 3 ? parts : ['*', parts[0], parts[1]];
  const is = (want: string | undefined, have: string) => want === '*' || want === have;
  return is(s, schema) && is(t, table) && is(c, column);
}

/** True when the person sees sensitive values of this target unmasked. */
export function seesSensitive(
  target: ResolvedTarget,
  person: { roles: readonly string[] } | undefined,
): boolean {
  const visibleTo = target.sensitive?.visibleTo ?? [];
  return person?.roles.some((role) => visibleTo.includes(role)) === true;
}

function strings(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((item) => {
    const value = (item as { String?: { sval?: unknown } }).String?.sval;
    return typeof value === 'string' ? [value] : [];
  });
}

function columnRef(fields: Fields): { name?: string; star: boolean; parts: number } {
  const list = Array.isArray(fields.fields) ? fields.fields : [];
  const last = list.at(-1) as { String?: { sval?: string }; A_Star?: unknown } | undefined;
  const name = last?.String?.sval;
  return { ...(name !== undefined ? { name } : {}), star: last?.A_Star !== undefined, parts: list.length };
}

interface OutputColumn {
  name?: string;
  star: boolean;
  tainted: boolean;
}

/** What a query shows of sensitive values: per output column, as far as the text tells. */
export interface QueryTaint {
  /** The output columns of each branch (one unless UNION/INTERSECT/EXCEPT), in order. */
  branches: OutputColumn[][];
  /** True when the query reads any sensitive column at all (the fallback when an output is not found). */
  any: boolean;
}

/**
 * The sensitive columns of one target's relations, read from its catalog once per instance (one
 * operation's run: views may change between runs).
 */
export class SensitiveColumns {
  readonly #cache = new Map<number, Promise<RelationColumns | undefined>>();

  constructor(
    private readonly session: Session,
    private readonly patterns: readonly string[],
  ) {}

  /** The relation with its sensitive attnums; undefined when the oid names no relation. */
  relation(oid: number, depth = 0): Promise<RelationColumns | undefined> {
    let found = this.#cache.get(oid);
    if (!found) {
      found = this.#load(oid, depth);
      this.#cache.set(oid, found);
    }
    return found;
  }

  async #load(oid: number, depth: number): Promise<RelationColumns | undefined> {
    const [row] = await this.session.query<{
      oid: string;
      schema: string;
      name: string;
      attnums: number[];
      columns: string[];
      definition: string | null;
      ancestor_schemas: string[] | null;
      ancestor_names: string[] | null;
    }>(RELATIONS_SQL, [[oid]]);
    if (!row) return undefined;
    const columns = row.attnums.map((attnum, i) => ({ attnum, name: row.columns[i] ?? '' }));
    const owners = [
      { schema: row.schema, name: row.name },
      ...(row.ancestor_names ?? []).map((name, i) => ({ schema: row.ancestor_schemas?.[i] ?? '', name })),
    ];
    const sensitive = new Set(
      columns
        .filter((c) =>
          owners.some((o) => this.patterns.some((p) => matchesPattern(p, o.schema, o.name, c.name))),
        )
        .map((c) => c.attnum),
    );
    if (row.definition !== null) {
      // A view shows what its query shows: its i-th column is the query's i-th output.
      if (depth >= MAX_VIEW_DEPTH) {
        for (const c of columns) sensitive.add(c.attnum);
      } else {
        const taint = await this.taint(row.definition, depth + 1);
        columns.forEach((c, i) => {
          if (outputTainted(taint, i, c.name)) sensitive.add(c.attnum);
        });
      }
    }
    return { oid: Number(row.oid), schema: row.schema, name: row.name, columns, sensitive };
  }

  /** Relations a query names (CTE names left out), resolved on the session's search_path. */
  async #relationsOf(tree: unknown, depth: number): Promise<RelationColumns[]> {
    const ctes = new Set<string>();
    const refs: { schema: string; name: string }[] = [];
    walk(tree, (kind, fields) => {
      if (kind === 'CommonTableExpr' && typeof fields.ctename === 'string') ctes.add(fields.ctename);
      const rel = kind === 'RangeVar' ? fields : (fields.relation as Fields | undefined);
      if (rel && typeof rel.relname === 'string') {
        refs.push({ schema: typeof rel.schemaname === 'string' ? rel.schemaname : '', name: rel.relname });
      }
    });
    return await this.resolve(
      refs.filter((r) => r.schema !== '' || !ctes.has(r.name)),
      depth,
    );
  }

  /** Relations by name (schema '' or absent: the search_path), with their sensitive columns. */
  async resolve(refs: readonly { schema?: string; name: string }[], depth = 0): Promise<RelationColumns[]> {
    if (refs.length === 0) return [];
    const oids = await this.session.query<{ oid: string | null }>(RESOLVE_SQL, [
      refs.map((r) => r.schema ?? ''),
      refs.map((r) => r.name),
    ]);
    const unique = [...new Set(oids.flatMap((o) => (o.oid === null ? [] : [Number(o.oid)])))];
    const relations: RelationColumns[] = [];
    // One after another: a session runs one statement at a time.
    for (const oid of unique) {
      const found = await this.relation(oid, depth);
      if (found) relations.push(found);
    }
    return relations;
  }

  /**
   * Follows sensitive values through a query's text: a column, sub-query output, CTE column or alias
   * derived from a sensitive column (by name, conservatively: any column of that name in the relations
   * read) is sensitive too, and so is any output whose expression uses one, a whole row or `*`.
   */
  async taint(sql: string, depth = 0): Promise<QueryTaint> {
    await loadSqlParser();
    let tree: unknown;
    try {
      tree = parseSync(sql).stmts?.[0]?.stmt;
    } catch {
      // Unreadable here (it ran, so PostgreSQL read it): every derived output counts as sensitive.
      return { branches: [], any: true };
    }
    const relations = await this.#relationsOf(tree, depth);
    const sensitive = new Set<string>();
    const columns = new Set<string>();
    const relationNames = new Set<string>();
    for (const r of relations) {
      relationNames.add(r.name);
      for (const c of r.columns) {
        columns.add(c.name);
        if (r.sensitive.has(c.attnum)) sensitive.add(c.name);
      }
    }
    const any = sensitive.size > 0;
    walk(tree, (_kind, fields) => {
      const alias = fields.alias as Fields | undefined;
      if (alias && typeof alias.aliasname === 'string') relationNames.add(alias.aliasname);
    });
    const tainted = (node: unknown): boolean => {
      if (!any) return false;
      let hit = false;
      walk(node, (kind, fields) => {
        if (hit || kind !== 'ColumnRef') return;
        const { name, star, parts } = columnRef(fields);
        if (star || (name !== undefined && sensitive.has(name))) hit = true;
        // A bare relation name in an expression is its whole row (`row_to_json(u)`).
        else if (parts === 1 && name !== undefined && relationNames.has(name) && !columns.has(name))
          hit = true;
      });
      return hit;
    };
    // Names given to derived values (sub-query outputs, CTE columns, aliases) carry the taint on.
    for (let changed = any, round = 0; changed && round < 20; round++) {
      changed = false;
      const taintName = (name: unknown) => {
        if (typeof name === 'string' && !sensitive.has(name)) {
          sensitive.add(name);
          changed = true;
        }
      };
      walk(tree, (kind, fields) => {
        if (kind === 'ResTarget' && fields.val !== undefined && tainted(fields.val)) {
          const ref = (fields.val as { ColumnRef?: Fields }).ColumnRef;
          taintName(typeof fields.name === 'string' ? fields.name : ref ? columnRef(ref).name : undefined);
        }
        const alias = fields.alias as Fields | undefined;
        const renamed = kind === 'CommonTableExpr' ? fields.aliascolnames : alias?.colnames;
        if (Array.isArray(renamed) && tainted(fields)) for (const n of strings(renamed)) taintName(n);
      });
    }
    return { branches: outputsOf(tree, tainted), any };
  }
}

/**
 * Names of a result's columns whose values may be sensitive: by origin when the server names one (the
 * column of a table or view the value comes straight from, whatever it is called in the result), else by
 * what the query's text derives the value from. A name is masked when any column of that name is.
 */
export async function sensitiveFields(
  catalog: SensitiveColumns,
  sql: string,
  fields: readonly ResultField[],
): Promise<Set<string>> {
  const masked = new Set<string>();
  let taint: QueryTaint | undefined;
  for (const [index, field] of fields.entries()) {
    if (field.tableID !== 0) {
      const origin = await catalog.relation(field.tableID);
      if (origin?.sensitive.has(field.columnID)) masked.add(field.name);
    } else {
      taint ??= await catalog.taint(sql);
      if (outputTainted(taint, index, field.name)) masked.add(field.name);
    }
  }
  return masked;
}

/** The rows with the values of the named columns replaced by the mask (NULL stays NULL). */
export function maskColumns<R extends Record<string, unknown>>(
  rows: readonly R[],
  masked: ReadonlySet<string>,
): R[] {
  if (masked.size === 0) return [...rows];
  return rows.map((row) => {
    const out: Record<string, unknown> = { ...row };
    for (const key of masked) if (key in out && out[key] !== null && out[key] !== undefined) out[key] = MASK;
    return out as R;
  });
}

/** The output columns of the top-level query: each set-operation branch, or a write's RETURNING. */
function outputsOf(tree: unknown, tainted: (node: unknown) => boolean): OutputColumn[][] {
  const top = tree as Record<string, Fields | undefined> | undefined;
  const branches: OutputColumn[][] = [];
  const list = (items: unknown) =>
    (Array.isArray(items) ? items : []).map((item): OutputColumn => {
      const target = (item as { ResTarget?: Fields }).ResTarget ?? {};
      const ref = (target.val as { ColumnRef?: Fields } | undefined)?.ColumnRef;
      const named = ref ? columnRef(ref) : undefined;
      const name = typeof target.name === 'string' ? target.name : named?.name;
      return {
        ...(name !== undefined ? { name } : {}),
        star: named?.star === true,
        tainted: tainted(target.val),
      };
    });
  const select = (node: Fields | undefined) => {
    if (!node) return;
    if (node.larg || node.rarg) {
      select(node.larg as Fields | undefined);
      select(node.rarg as Fields | undefined);
    } else {
      branches.push(list(node.targetList));
    }
  };
  if (top?.SelectStmt) select(top.SelectStmt);
  for (const kind of ['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']) {
    const stmt = top?.[kind];
    if (stmt) branches.push(list(stmt.returningList));
  }
  return branches;
}

/** Whether the `index`-th output column (named `name`) of a query may show a sensitive value. */
export function outputTainted(taint: QueryTaint, index: number, name: string): boolean {
  if (!taint.any) return false;
  const [first] = taint.branches;
  if (!first) return true;
  if (taint.branches.every((b) => !b.some((c) => c.star))) {
    // Positions are exact: a set operation's column is sensitive when any branch's is.
    return taint.branches.some((b) => b[index]?.tainted !== false);
  }
  const byName = first.find((c) => c.name === name && !c.star);
  if (byName && taint.branches.length === 1) return byName.tainted;
  return true;
}
