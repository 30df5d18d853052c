// The table an `import` writes to: its columns from the catalog, and the CSV header mapped onto them.
import { UserError } from '../../src/core/errors.js';
import { didYouMean } from '../../src/core/suggest.js';
import { quoteIdent, type Relation } from '../../src/engine/relations.js';
import type { Session } from '../../src/engine/types.js';
import { visible } from './csv-file.js';

export interface TableColumn {
  name: string;
  /** As `\d` shows it, e.g. `character varying(20)`. */
  type: string;
  /** The type without its modifier, for casts (the modifier is then applied on assignment, as COPY does). */
  castType: string;
  notNull: boolean;
  /** The default expression, when there is one. */
  defaultExpr: string | null;
  /** `a` (ALWAYS) or `d` (BY DEFAULT) for identity columns, else ''. */
  identity: string;
  /** `s` for a stored generated column, else ''. */
  generated: string;
  /** The sequence owned by this column (serial or identity), quoted and qualified. */
  sequence: string | null;
}

export interface ImportTable {
  relation: Relation;
  columns: TableColumn[];
}

/** One header field and the table column it fills. */
export interface MappedColumn {
  /** The header field as written in the CSV. */
  header: string;
  column: TableColumn;
}

const COLUMNS_SQL = `
SELECT a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS type,
       format_type(a.atttypid, NULL) AS cast_type,
       a.attnotnull AS not_null,
       pg_get_expr(d.adbin, d.adrelid) AS default_expr,
       a.attidentity::text AS identity,
       a.attgenerated::text AS generated,
       s.sequence
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN LATERAL (
  SELECT quote_ident(sn.nspname) || '.' || quote_ident(sc.relname) AS sequence
  FROM pg_depend dep
  JOIN pg_class sc ON sc.oid = dep.objid AND sc.relkind = 'S'
  JOIN pg_namespace sn ON sn.oid = sc.relnamespace
  WHERE dep.classid = 'pg_class'::regclass AND dep.refclassid = 'pg_class'::regclass
    AND dep.refobjid = a.attrelid AND dep.refobjsubid = a.attnum AND dep.deptype IN ('a', 'i')
  ORDER BY sc.oid
  LIMIT 1
) s ON true
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`;

const PRIVILEGES_SQL = `
SELECT has_table_privilege($1::oid, 'INSERT') AS can_insert,
       has_database_privilege(current_database(), 'TEMPORARY') AS can_temp,
       current_user AS role`;

export async function loadImportTable(session: Session, relation: Relation): Promise<ImportTable> {
  const rows = await session.query<{
    name: string;
    type: string;
    cast_type: string;
    not_null: boolean;
    default_expr: string | null;
    identity: string;
    generated: string;
    sequence: string | null;
  }>(COLUMNS_SQL, [relation.oid]);
  return {
    relation,
    columns: rows.map((r) => ({
      name: r.name,
      type: r.type,
      castType: r.cast_type,
      notNull: r.not_null,
      defaultExpr: r.default_expr,
      identity: r.identity,
      generated: r.generated,
      sequence: r.sequence,
    })),
  };
}

/** Refuses early, with the GRANT to ask for, when the bot's role cannot insert or stage the dry run. */
export async function requireImportPrivileges(session: Session, table: ImportTable): Promise<void> {
  const [row] = await session.query<{ can_insert: boolean; can_temp: boolean; role: string }>(
    PRIVILEGES_SQL,
    [table.relation.oid],
  );
  if (!row) throw new Error('privilege check returned no row');
  const label = `${table.relation.schema}.${table.relation.name}`;
  if (!row.can_insert) {
    throw new UserError(
      'permission',
      `dbops' role ${row.role} may not INSERT into ${label}; an admin can run ` +
        `GRANT INSERT ON ${table.relation.qualified} TO ${quoteIdent(row.role)}`,
    );
  }
  if (!row.can_temp) {
    throw new UserError(
      'permission',
      `dbops' role ${row.role} may not create temporary tables, which the dry run stages the CSV in; ` +
        `an admin can run GRANT TEMPORARY ON DATABASE <this database> TO ${quoteIdent(row.role)}`,
    );
  }
}

/** What a column of the table not in the CSV gets, for the preview. */
export function unmappedNote(column: TableColumn): string {
  if (column.generated) return 'generated';
  if (column.identity) return 'identity: next value';
  if (column.defaultExpr !== null) {
    const expr = column.defaultExpr;
    return `default ${expr.length > 40 ? `${expr.slice(0, 39)}…` : expr}`;
  }
  return column.notNull ? 'NOT NULL, no default: every row fails' : 'NULL';
}

function unmappedFails(column: TableColumn): boolean {
  return column.notNull && column.defaultExpr === null && !column.identity && !column.generated;
}

/**
 * Maps each header field to a column: the exact name, else the one column equal ignoring case and
 * surrounding spaces. Unknown, empty, repeated and generated columns are refused, as are table columns
 * the CSV leaves out that are NOT NULL without a default (every row would be rejected).
 */
export function mapHeader(header: readonly string[], table: ImportTable): MappedColumn[] {
  const label = `${table.relation.schema}.${table.relation.name}`;
  const names = table.columns.map((c) => c.name);
  const problems: string[] = [];
  const mapped: MappedColumn[] = [];
  const used = new Map<string, string>();
  header.forEach((field, i) => {
    const exact = table.columns.find((c) => c.name === field);
    const loose = table.columns.filter((c) => c.name.toLowerCase() === field.trim().toLowerCase());
    const column = exact ?? (loose.length === 1 ? loose[0] : undefined);
    const shown = visible(field);
    if (field.trim() === '') {
      problems.push(`header field ${i + 1} is empty: name the column it holds`);
    } else if (!column) {
      const hint = didYouMean(field.trim(), names);
      problems.push(`${label} has no column "${shown}"${hint ? ` — ${hint}` : ''}`);
    } else if (column.generated) {
      problems.push(`${column.name} is a generated column (computed from others): leave it out of the CSV`);
    } else if (used.has(column.name)) {
      problems.push(
        `"${shown}" and "${visible(used.get(column.name) ?? '')}" both name column ${column.name}`,
      );
    } else {
      used.set(column.name, field);
      mapped.push({ header: field, column });
    }
  });
  for (const column of table.columns) {
    if (!used.has(column.name) && unmappedFails(column) && problems.length === 0) {
      problems.push(
        `the CSV has no column ${column.name}, which is NOT NULL without a default: every row would be rejected`,
      );
    }
  }
  if (problems.length > 0) {
    const looksLikeData = mapped.length === 0 && header.some((f) => /^[\d.:/+-]+$/.test(f.trim()));
    throw new UserError(
      'invalid_argument',
      `the CSV's header (line 1) does not fit ${label}:\n${problems
        .slice(0, 10)
        .map((p) => `- ${p}`)
        .join('\n')}` +
        (problems.length > 10 ? `\n- … ${problems.length - 10} more` : '') +
        (looksLikeData
          ? '\nLine 1 looks like data: the first line must be a header naming the columns.'
          : `\nColumns of ${label}: ${names.join(', ')}`),
    );
  }
  return mapped;
}

/** What a table's shape was at the preview: the approved load refuses if any of it changed. */
export function tableSignature(table: ImportTable): string[] {
  return table.columns.map((c) =>
    [c.name, c.type, c.notNull ? 'not null' : '', c.defaultExpr ?? '', c.identity, c.generated].join('|'),
  );
}
