// `/db describe <target> <table>`: what psql's `\d+ table` shows — columns, indexes, constraints, keys both ways, triggers, size — readable in chat.
import { z } from 'zod';
import { textArg } from '../src/core/args.js';
import { defineOperation } from '../src/core/operation.js';
import { formatBytes, formatCount } from '../src/core/render.js';
import type { Relation } from '../src/engine/relations.js';
import type { Session } from '../src/engine/types.js';
import { DDL_LOCKED_CTE, tableDdlLocked, tableSizeColumns } from './lib/relation-sizes.js';
import { resolveTable } from './lib/table-name.js';
import { columns, nameList, textResult, wrap } from './lib/text-lines.js';

/** The relation itself: owner, persistence, partitioning, comment and sizes (none while DDL holds it). */
export const RELATION_SQL = `
WITH ${DDL_LOCKED_CTE},
rel AS (SELECT c.*, ${tableDdlLocked('c')} AS locked FROM pg_class c WHERE c.oid = $1::oid)
SELECT format('%I.%I', n.nspname, c.relname) AS qualified,
       pg_get_userbyid(c.relowner) AS owner,
       c.relpersistence::text AS persistence,
       c.relrowsecurity AS rls, c.relforcerowsecurity AS rls_forced,
       CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END AS rows,
       am.amname AS access_method,
       array_to_string(c.reloptions, ', ') AS options,
       obj_description(c.oid, 'pg_class') AS comment,
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key,
       CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS partition_bound,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid, true) END AS view_definition,
       c.locked,
       s.total_bytes, s.table_bytes, s.index_bytes, s.toast_bytes
FROM rel c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_am am ON am.oid = c.relam
LEFT JOIN LATERAL (SELECT ${tableSizeColumns('c')} WHERE NOT c.locked AND c.relkind <> 'v') s ON true`;

/** Columns in order; `$2` says whether pg_attribute has attcompression (PostgreSQL 14+). */
function columnsSql(hasCompression: boolean): string {
  return `
SELECT a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null,
       pg_get_expr(d.adbin, d.adrelid) AS default_expr,
       a.attidentity::text AS identity,
       a.attgenerated::text AS generated,
       CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
            THEN (SELECT CASE WHEN cn.nspname = 'pg_catalog' THEN quote_ident(co.collname)
                              ELSE format('%I.%I', cn.nspname, co.collname) END
                  FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
                  WHERE co.oid = a.attcollation) END AS collation,
       CASE WHEN a.attstorage <> t.typstorage THEN a.attstorage::text END AS storage,
       ${hasCompression ? `NULLIF(a.attcompression::text, '')` : 'NULL::text'} AS compression,
       col_description(a.attrelid, a.attnum) AS comment
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`;
}

/** Indexes with the constraint each backs; `prefix_*` are the two ways pg_get_indexdef starts. */
export const INDEXES_SQL = `
SELECT quote_ident(ic.relname) AS name, am.amname AS method,
       i.indisprimary AS is_primary, i.indisunique AS is_unique, i.indisvalid AS is_valid,
       i.indisclustered AS is_clustered, i.indisreplident AS is_replica_identity,
       con.contype::text AS constraint_type,
       pg_get_indexdef(i.indexrelid) AS definition,
       format('%I.%I', tn.nspname, tc.relname) AS table_name
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_am am ON am.oid = ic.relam
JOIN pg_class tc ON tc.oid = i.indrelid
JOIN pg_namespace tn ON tn.oid = tc.relnamespace
LEFT JOIN pg_constraint con
  ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')
WHERE i.indrelid = $1::oid
ORDER BY i.indisprimary DESC, i.indisunique DESC, ic.relname`;

/** Primary key, unique, exclusion and check constraints (NOT NULL is shown on its column). */
export const CONSTRAINTS_SQL = `
SELECT quote_ident(con.conname) AS name, con.contype::text AS type,
       pg_get_constraintdef(con.oid, true) AS definition, con.convalidated AS validated
FROM pg_constraint con
WHERE con.conrelid = $1::oid AND con.contype IN ('p', 'u', 'x', 'c')
ORDER BY array_position(ARRAY['p', 'u', 'x', 'c']::"char"[], con.contype), con.conname`;

/** Foreign keys of this table (`out`) and of other tables that point at it (`in`), each once. */
export const FOREIGN_KEYS_SQL = `
SELECT CASE WHEN con.conrelid = $1::oid THEN 'out' ELSE 'in' END AS direction,
       quote_ident(con.conname) AS name,
       format('%I.%I', n.nspname, c.relname) AS table_name,
       pg_get_constraintdef(con.oid, true) AS definition, con.convalidated AS validated
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype = 'f'
  AND (con.conrelid = $1::oid OR (con.confrelid = $1::oid AND con.conparentid = 0))
ORDER BY 1 DESC, 3, 2`;

export const TRIGGERS_SQL = `
SELECT quote_ident(t.tgname) AS name, t.tgenabled::text AS enabled, pg_get_triggerdef(t.oid, true) AS definition
FROM pg_trigger t
WHERE t.tgrelid = $1::oid AND NOT t.tgisinternal
ORDER BY t.tgname`;

/** Parents (inheritance or the partitioned table) and children (partitions with their bounds). */
export const INHERITANCE_SQL = `
SELECT CASE WHEN i.inhrelid = $1::oid THEN 'parent' ELSE 'child' END AS role,
       format('%I.%I', n.nspname, c.relname) AS table_name,
       c.relispartition AS is_partition,
       CASE WHEN i.inhparent = $1::oid AND c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS bound
FROM pg_inherits i
JOIN pg_class c ON c.oid = CASE WHEN i.inhrelid = $1::oid THEN i.inhparent ELSE i.inhrelid END
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.inhrelid = $1::oid OR i.inhparent = $1::oid
ORDER BY 1 DESC, 2`;

interface RelationRow {
  qualified: string;
  owner: string;
  persistence: string;
  rls: boolean;
  rls_forced: boolean;
  rows: number | null;
  access_method: string | null;
  options: string | null;
  comment: string | null;
  partition_key: string | null;
  partition_bound: string | null;
  view_definition: string | null;
  locked: boolean;
  total_bytes: number | null;
  table_bytes: number | null;
  index_bytes: number | null;
  toast_bytes: number | null;
}
interface ColumnRow {
  name: string;
  type: string;
  not_null: boolean;
  default_expr: string | null;
  identity: string;
  generated: string;
  collation: string | null;
  storage: string | null;
  compression: string | null;
  comment: string | null;
}
interface IndexRow {
  name: string;
  method: string;
  is_primary: boolean;
  is_unique: boolean;
  is_valid: boolean;
  is_clustered: boolean;
  is_replica_identity: boolean;
  constraint_type: string | null;
  definition: string;
  table_name: string;
}
interface ConstraintRow {
  name: string;
  type: string;
  definition: string;
  validated: boolean;
}
interface ForeignKeyRow extends ConstraintRow {
  direction: 'in' | 'out';
  table_name: string;
}
interface TriggerRow {
  name: string;
  enabled: string;
  definition: string;
}
interface InheritanceRow {
  role: 'parent' | 'child';
  table_name: string;
  is_partition: boolean;
  bound: string | null;
}

const STORAGE = { p: 'plain', e: 'external', m: 'main', x: 'extended' } as const;
const TRIGGER_STATE: Record<string, string> = {
  O: 'enabled',
  D: 'disabled',
  R: 'replica only',
  A: 'always',
};
const KIND_WORDS: Record<string, string> = {
  r: 'table',
  p: 'partitioned table',
  m: 'materialized view',
  v: 'view',
  f: 'foreign table',
};
/** Partitions and children listed by name before "and N more". */
const CHILDREN_LISTED = 30;

/** The index's method and columns (`btree (id) WHERE …`): pg_get_indexdef without its CREATE … USING head. */
export function indexBody(index: IndexRow): string {
  for (const unique of ['UNIQUE ', '']) {
    for (const only of ['ONLY ', '']) {
      const head = `CREATE ${unique}INDEX ${index.name} ON ${only}${index.table_name} USING `;
      if (index.definition.startsWith(head)) return index.definition.slice(head.length);
    }
  }
  return index.definition;
}

function indexFlags(index: IndexRow): string {
  const flags: string[] = [];
  if (index.is_primary) flags.push('PRIMARY KEY');
  else if (index.constraint_type === 'u') flags.push('UNIQUE CONSTRAINT');
  else if (index.constraint_type === 'x') flags.push('EXCLUSION CONSTRAINT');
  else if (index.is_unique) flags.push('UNIQUE');
  flags.push(indexBody(index));
  const marks = [
    index.is_valid ? '' : 'INVALID',
    index.is_clustered ? 'CLUSTER' : '',
    index.is_replica_identity ? 'REPLICA IDENTITY' : '',
  ].filter((m) => m !== '');
  return flags.join(', ') + (marks.length > 0 ? ` ${marks.join(' ')}` : '');
}

function columnDetails(c: ColumnRow): string {
  const parts: string[] = [];
  if (c.not_null) parts.push('not null');
  if (c.identity === 'a') parts.push('generated always as identity');
  else if (c.identity === 'd') parts.push('generated by default as identity');
  else if (c.generated === 's') parts.push(`generated always as (${c.default_expr ?? ''}) stored`);
  else if (c.default_expr !== null) parts.push(`default ${c.default_expr}`);
  if (c.collation !== null) parts.push(`collate ${c.collation}`);
  if (c.storage !== null) parts.push(`storage ${STORAGE[c.storage as keyof typeof STORAGE] ?? c.storage}`);
  if (c.compression !== null) parts.push(`compression ${c.compression}`);
  if (c.comment !== null) parts.push(`comment: ${c.comment}`);
  return parts.join(', ');
}

function section(title: string, body: readonly string[]): string[] {
  return body.length === 0 ? [] : ['', title, ...body];
}

function sizeLine(r: RelationRow, kind: string): string {
  const rows = r.rows === null ? 'never analyzed' : `${formatCount(Number(r.rows))} rows (est.)`;
  if (kind === 'view') return '';
  if (r.locked) return `${rows}; size not read: a DDL lock is held or awaited on it`;
  const part = (label: string, bytes: number | null) => `${label} ${formatBytes(Number(bytes ?? 0))}`;
  return (
    `${rows}; ${part('total', r.total_bytes)} = ${part('table', r.table_bytes)} + ` +
    `${part('indexes', r.index_bytes)} + ${part('toast', r.toast_bytes)}`
  );
}

/** Every section as lines of at most 80 columns. */
async function describeLines(session: Session, relation: Relation, version: number) {
  const oid = [relation.oid];
  const [rel] = await session.query<RelationRow>(RELATION_SQL, oid);
  if (!rel) throw new Error(`relation ${relation.oid} vanished while it was described`);
  const cols = await session.query<ColumnRow>(columnsSql(version >= 140000), oid);
  const indexes = await session.query<IndexRow>(INDEXES_SQL, oid);
  const constraints = await session.query<ConstraintRow>(CONSTRAINTS_SQL, oid);
  const keys = await session.query<ForeignKeyRow>(FOREIGN_KEYS_SQL, oid);
  const triggers = await session.query<TriggerRow>(TRIGGERS_SQL, oid);
  const family = await session.query<InheritanceRow>(INHERITANCE_SQL, oid);
  const kind = KIND_WORDS[relation.relkind] ?? relation.relkind;

  const lines: string[] = [];
  const traits = [
    kind,
    `owner ${rel.owner}`,
    rel.persistence === 'u' ? 'unlogged' : '',
    rel.persistence === 't' ? 'temporary' : '',
    rel.rls ? `row-level security${rel.rls_forced ? ' (forced)' : ''}` : '',
    rel.access_method !== null && rel.access_method !== 'heap' ? `access method ${rel.access_method}` : '',
  ].filter((t) => t !== '');
  lines.push(...wrap(`${rel.qualified}: ${traits.join(', ')}`));
  const size = sizeLine(rel, kind);
  if (size !== '') lines.push(...wrap(size));
  if (rel.options) lines.push(...wrap(`options: ${rel.options}`));
  if (rel.comment !== null) lines.push(...wrap(`comment: ${rel.comment}`));

  const nameWidth = Math.min(24, Math.max(0, ...cols.map((c) => c.name.length)));
  const typeWidth = Math.min(24, Math.max(0, ...cols.map((c) => c.type.length)));
  lines.push(
    ...section(
      `Columns (${cols.length})`,
      cols.flatMap((c) => columns([`  ${c.name}`, c.type, columnDetails(c)], [nameWidth + 2, typeWidth], 6)),
    ),
  );
  lines.push(
    ...section(
      `Indexes (${indexes.length})`,
      indexes.flatMap((i) => wrap(`  ${i.name}: ${indexFlags(i)}`, 6)),
    ),
  );
  const notValid = (c: ConstraintRow) => (c.validated ? '' : ' (NOT VALID: existing rows unchecked)');
  lines.push(
    ...section(
      'Constraints',
      constraints.flatMap((c) => wrap(`  ${c.name}: ${c.definition}${notValid(c)}`, 6)),
    ),
  );
  const out = keys.filter((k) => k.direction === 'out');
  const into = keys.filter((k) => k.direction === 'in');
  lines.push(
    ...section(
      'Foreign keys',
      out.flatMap((k) => wrap(`  ${k.name}: ${k.definition}${notValid(k)}`, 6)),
    ),
  );
  lines.push(
    ...section(
      'Referenced by',
      into.flatMap((k) => wrap(`  ${k.table_name} ${k.name}: ${k.definition}${notValid(k)}`, 6)),
    ),
  );
  lines.push(
    ...section(
      'Triggers',
      triggers.flatMap((t) => {
        const body = t.definition.replace(/^CREATE (CONSTRAINT )?TRIGGER /, '');
        const state = TRIGGER_STATE[t.enabled] ?? t.enabled;
        return wrap(`  [${state}] ${body}`, 6);
      }),
    ),
  );
  const parents = family.filter((f) => f.role === 'parent');
  const children = family.filter((f) => f.role === 'child');
  const tree: string[] = [];
  if (rel.partition_key !== null) tree.push(...wrap(`  partition key: ${rel.partition_key}`, 6));
  for (const p of parents) {
    const what = p.is_partition || rel.partition_bound !== null ? 'partition of' : 'inherits from';
    tree.push(...wrap(`  ${what} ${p.table_name}${rel.partition_bound ? ` ${rel.partition_bound}` : ''}`, 6));
  }
  if (children.length > 0) {
    const partitions = rel.partition_key !== null;
    tree.push(`  ${partitions ? 'partitions' : 'child tables'}: ${children.length}`);
    for (const c of children.slice(0, CHILDREN_LISTED)) {
      tree.push(...wrap(`    ${c.table_name}${c.bound ? ` ${c.bound}` : ''}`, 8));
    }
    if (children.length > CHILDREN_LISTED) tree.push(`    and ${children.length - CHILDREN_LISTED} more`);
  }
  lines.push(...section('Partitioning and inheritance', tree));
  if (rel.view_definition !== null) {
    lines.push(
      ...section(
        'Definition',
        rel.view_definition.split('\n').flatMap((l) => wrap(`  ${l}`, 6)),
      ),
    );
  }

  const data = {
    relation: rel.qualified,
    kind,
    owner: rel.owner,
    rows: rel.rows === null ? null : Number(rel.rows),
    sizes: rel.locked
      ? null
      : {
          totalBytes: Number(rel.total_bytes ?? 0),
          tableBytes: Number(rel.table_bytes ?? 0),
          indexBytes: Number(rel.index_bytes ?? 0),
          toastBytes: Number(rel.toast_bytes ?? 0),
        },
    comment: rel.comment,
    columns: cols.map((c) => ({
      name: c.name,
      type: c.type,
      nullable: !c.not_null,
      default: c.identity === '' && c.generated === '' ? c.default_expr : null,
      identity: c.identity === 'a' ? 'always' : c.identity === 'd' ? 'by default' : null,
      generated: c.generated === 's' ? c.default_expr : null,
      collation: c.collation,
      storage: c.storage === null ? null : (STORAGE[c.storage as keyof typeof STORAGE] ?? c.storage),
      compression: c.compression,
      comment: c.comment,
    })),
    indexes: indexes.map((i) => ({
      name: i.name,
      method: i.method,
      primary: i.is_primary,
      unique: i.is_unique,
      valid: i.is_valid,
      definition: i.definition,
    })),
    constraints: constraints.map((c) => ({ name: c.name, type: c.type, definition: c.definition })),
    foreignKeys: out.map((k) => ({ name: k.name, definition: k.definition })),
    referencedBy: into.map((k) => ({ table: k.table_name, name: k.name, definition: k.definition })),
    triggers: triggers.map((t) => ({
      name: t.name,
      state: TRIGGER_STATE[t.enabled] ?? t.enabled,
      definition: t.definition,
    })),
    partitionKey: rel.partition_key,
    parents: parents.map((p) => p.table_name),
    children: children.map((c) => ({ table: c.table_name, bound: c.bound })),
  };
  return { lines, data, rel, cols, indexes, children };
}

export default defineOperation({
  name: 'describe',
  summary: 'One table as psql’s \\d+ shows it: columns, indexes, constraints, keys, triggers, size',
  usage: 'describe <target> <table>',
  description:
    'Shows a table (or a partitioned table, view or materialized view): columns with their types, ' +
    'NOT NULL, defaults, identity/generated, collation, storage and compression where not the default, ' +
    'and comments; indexes with PRIMARY KEY / UNIQUE / INVALID marks; check, unique and exclusion ' +
    'constraints; foreign keys both ways (this table’s, and the tables that reference it); triggers with ' +
    'their enabled state; partitions or inheritance; row estimate and size split. The name is read as SQL ' +
    'would (search_path, `schema.table`, `"Quoted Name"` — put it in single quotes when it has spaces or ' +
    'double quotes), or else exactly as typed.',
  positionals: ['table'],
  args: z.object({
    table: textArg({ maxLength: 300, hint: 'a table name', example: 'public.users' }),
  }),
  risk: 'read',
  async run(ctx) {
    const version = await ctx.db.serverVersion();
    return await ctx.db.read(async (session) => {
      const relation = await resolveTable(session, ctx.args.table, ['r', 'p', 'v', 'm']);
      const { lines, data, rel, cols, indexes, children } = await describeLines(session, relation, version);
      const cap = Math.max(ctx.limits.row_cap, 50);
      const shown = lines.slice(0, cap);
      const counts = [
        `${cols.length} column${cols.length === 1 ? '' : 's'}`,
        `${indexes.length} index${indexes.length === 1 ? '' : 'es'}`,
        children.length > 0 ? `${children.length} partition${children.length === 1 ? '' : 's'}` : '',
      ].filter((c) => c !== '');
      const notes: string[] = [];
      if (lines.length > cap)
        notes.push(`first ${cap} of ${lines.length} lines (row cap); --json has it all`);
      const invalid = indexes.filter((i) => !i.is_valid);
      if (invalid.length > 0) {
        notes.push(
          `invalid index${invalid.length === 1 ? '' : 'es'} (a failed CREATE INDEX CONCURRENTLY?): ` +
            `${nameList(invalid.map((i) => i.name))} — not used by queries but still updated; ` +
            'drop and create again, or reindex',
        );
      }
      return textResult(shown, {
        headline: `${rel.qualified}: ${counts.join(', ')}`,
        truncated: lines.length > cap,
        notes,
        data,
      });
    });
  },
});
