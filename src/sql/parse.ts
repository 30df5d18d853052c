// Ad-hoc SQL through the real PostgreSQL parser (libpg-query): exactly one statement, and its whole tree walked.
import type * as LibPgQuery from 'libpg-query';
import { UserError } from '../core/errors.js';
import { formatBytes } from '../core/render.js';

let parser: typeof LibPgQuery | undefined;
let loading: Promise<void> | undefined;

/**
 * Loads the WASM parser, once per process (tens of ms of CPU compiling it): only what reads SQL text
 * awaits it (ad-hoc SQL, explain, sensitive-column checks), so `dbops exec … /db sizes` never pays it.
 * Every parse after it is synchronous.
 */
export function loadSqlParser(): Promise<void> {
  loading ??= (async () => {
    const loaded = await import('libpg-query');
    await loaded.loadModule();
    parser = loaded;
  })();
  return loading;
}

/** The loaded parser; a caller that did not await loadSqlParser() is a bug, said as such (not a refusal). */
function loadedParser(): typeof LibPgQuery {
  if (!parser) throw new Error('internal error: the SQL parser was used before loadSqlParser()');
  return parser;
}

/** libpg-query's parseSync, once loadSqlParser() has finished. */
export function parseSync(text: string): ReturnType<typeof LibPgQuery.parseSync> {
  return loadedParser().parseSync(text);
}

/** Larger statements are refused before the parser sees them (a statement typed in chat is far smaller). */
export const MAX_STATEMENT_BYTES = 100 * 1024;

/** Why a statement is refused: said to the person as is, whatever their role (audited as a refusal). */
export class SqlRefusal extends UserError {
  constructor(reason: string) {
    super('denied', reason, { sqlRefused: true });
  }
}

/** A parse-tree node: `{ SelectStmt: {...} }` unwrapped to its type and fields. */
export type Fields = Record<string, unknown>;

export interface FunctionRef {
  schema?: string;
  name: string;
}

export interface RelationRef {
  database?: string;
  schema?: string;
  name: string;
}

/** Everything the classifier and the target checks need from one statement. */
export interface ParsedStatement {
  /** The statement text without a trailing semicolon or comment. */
  text: string;
  /** Top-level node type, e.g. `SelectStmt`. */
  type: string;
  node: Fields;
  /** Every statement node anywhere in the tree (CTEs, EXPLAIN, sub-queries), top level first. */
  statementTypes: string[];
  functions: FunctionRef[];
  /** Operator names used in expressions (`=`, `@@`, a schema-qualified custom one). */
  operators: string[];
  relations: RelationRef[];
  /** Names of CTEs: a relation of that name refers to the CTE, not a table. */
  cteNames: Set<string>;
  /** `$1`-style placeholders used. */
  hasParams: boolean;
  /** The highest placeholder number (`$3` → 3). */
  paramCount: number;
  /** A column reference with four parts (`db.schema.table.column`). */
  crossDatabaseColumn?: string;
}

function strings(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((item) => {
    const value = (item as { String?: { sval?: unknown } }).String?.sval;
    return typeof value === 'string' ? [value] : [];
  });
}

function isObject(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Calls `visit(type, fields)` for every node of the tree, depth first, parents before children. */
export function walk(value: unknown, visit: (type: string, fields: Fields) => void): void {
  if (Array.isArray(value)) {
    for (const item of value) walk(item, visit);
    return;
  }
  if (!isObject(value)) return;
  for (const [key, child] of Object.entries(value)) {
    // Node wrappers are the only keys that start with a capital letter.
    if (/^[A-Z]/.test(key) && isObject(child)) {
      visit(key, child);
      walk(child, visit);
    } else {
      walk(child, visit);
    }
  }
}

function refuseParseError(err: unknown, text: string): never {
  const details = (err as { sqlDetails?: { cursorPosition?: number } }).sqlDetails;
  const message = err instanceof Error ? err.message : String(err);
  const at = details?.cursorPosition;
  const where =
    typeof at === 'number' ? ` at character ${at + 1} (near ${JSON.stringify(text.slice(at, at + 20))})` : '';
  throw new SqlRefusal(`the statement does not parse: ${message}${where}; nothing was run`);
}

/**
 * Parses `text` as exactly one statement and collects what it refers to. Throws SqlRefusal for an empty,
 * oversized, unparsable or multi-statement text (a comment cannot hide a second statement: the parser
 * sees comments as comments and statements as statements).
 */
export function parseStatement(text: string): ParsedStatement {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_STATEMENT_BYTES) {
    throw new SqlRefusal(
      `the statement is ${formatBytes(bytes)}, over the ${formatBytes(MAX_STATEMENT_BYTES)} limit for ` +
        'ad-hoc SQL; it was not parsed or run',
    );
  }
  if (text.trim() === '') throw new SqlRefusal('there is no statement to run (the text is empty)');
  const loaded = loadedParser();
  let result: ReturnType<typeof parseSync>;
  try {
    result = loaded.parseSync(text);
  } catch (err) {
    refuseParseError(err, text);
  }
  const stmts = result.stmts ?? [];
  if (stmts.length === 0) throw new SqlRefusal('there is no statement to run (only comments or spaces)');
  if (stmts.length > 1) {
    throw new SqlRefusal(
      `the text holds ${stmts.length} statements; /db sql runs exactly one per request, so nothing was run`,
    );
  }
  const raw = stmts[0] as { stmt?: unknown; stmt_location?: number; stmt_len?: number };
  const top = raw.stmt;
  if (!isObject(top)) throw new SqlRefusal('there is no statement to run');
  const [type, node] = Object.entries(top)[0] ?? [];
  if (typeof type !== 'string' || !isObject(node)) throw new SqlRefusal('there is no statement to run');
  const start = raw.stmt_location ?? 0;
  const body = raw.stmt_len ? text.slice(start, start + raw.stmt_len) : text.slice(start);

  const parsed: ParsedStatement = {
    text: body.trim().replace(/;\s*$/, ''),
    type,
    node,
    statementTypes: [type],
    functions: [],
    operators: [],
    relations: [],
    cteNames: new Set(),
    hasParams: false,
    paramCount: 0,
  };
  const addRelation = (fields: Fields) => {
    const name = fields.relname;
    if (typeof name !== 'string') return;
    const ref: RelationRef = { name };
    if (typeof fields.schemaname === 'string') ref.schema = fields.schemaname;
    if (typeof fields.catalogname === 'string') ref.database = fields.catalogname;
    parsed.relations.push(ref);
  };
  const visit = (kind: string, fields: Fields) => {
    // The table a statement changes (`relation` of INSERT/UPDATE/DELETE/MERGE/ALTER …) is a bare RangeVar.
    if (isObject(fields.relation)) addRelation(fields.relation);
    if (kind.endsWith('Stmt')) parsed.statementTypes.push(kind);
    if (kind === 'FuncCall') {
      const parts = strings(fields.funcname);
      const name = parts.at(-1);
      if (name !== undefined) {
        parsed.functions.push(parts.length > 1 ? { schema: parts.at(-2) ?? '', name } : { name });
        if (parts.length > 2) parsed.crossDatabaseColumn ??= parts.join('.');
      }
    } else if (kind === 'A_Expr') {
      const parts = strings(fields.name);
      if (parts.length > 0) parsed.operators.push(parts.join('.'));
    } else if (kind === 'RangeVar') {
      addRelation(fields);
    } else if (kind === 'CommonTableExpr') {
      if (typeof fields.ctename === 'string') parsed.cteNames.add(fields.ctename);
    } else if (kind === 'ParamRef') {
      parsed.hasParams = true;
      if (typeof fields.number === 'number') parsed.paramCount = Math.max(parsed.paramCount, fields.number);
    } else if (kind === 'ColumnRef') {
      const parts = strings(fields.fields);
      if (parts.length > 3) parsed.crossDatabaseColumn ??= parts.join('.');
    }
  };
  if (isObject(node.relation)) addRelation(node.relation);
  walk(node, visit);
  return parsed;
}

/** Column names referenced by an expression as EXPLAIN prints it (a Filter), via the parser. */
export function columnsOfExpression(expression: string): string[] {
  const loaded = loadedParser();
  try {
    const result = loaded.parseSync(`SELECT 1 WHERE ${expression}`);
    const columns: string[] = [];
    walk(result.stmts?.[0]?.stmt, (kind, fields) => {
      if (kind !== 'ColumnRef') return;
      const name = strings(fields.fields).at(-1);
      if (name !== undefined && !columns.includes(name)) columns.push(name);
    });
    return columns;
  } catch {
    return [];
  }
}
