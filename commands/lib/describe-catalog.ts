// The catalog queries behind `describe`, and the rows they return: one table as psql's \d+ reads it.
import { DDL_LOCKED_CTE, tableDdlLocked, tableSizeColumns } from './relation-sizes.js';

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
       CASE WHEN c.relkind = 'p' AND NOT c.locked THEN pg_get_partkeydef(c.oid) END AS partition_key,
       CASE WHEN c.relispartition AND NOT c.locked THEN pg_get_expr(c.relpartbound, c.oid) END AS partition_bound,
       CASE WHEN c.relkind IN ('v', 'm') AND NOT c.locked THEN pg_get_viewdef(c.oid, true) END AS view_definition,
       c.locked,
       s.total_bytes, s.table_bytes, s.index_bytes, s.toast_bytes
FROM rel c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_am am ON am.oid = c.relam
LEFT JOIN LATERAL (SELECT ${tableSizeColumns('c')} WHERE NOT c.locked AND c.relkind <> 'v') s ON true`;

/**
 * Columns in order; `hasCompression`: pg_attribute has attcompression (PostgreSQL 14+). Deparsing a
 * default waits for a lock on the table, so with $2 (DDL holds or awaits one) defaults are left out.
 */
export function columnsSql(hasCompression: boolean): string {
  return `
SELECT a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null,
       CASE WHEN $2::boolean THEN NULL ELSE pg_get_expr(d.adbin, d.adrelid) END AS default_expr,
       d.adbin IS NOT NULL AS has_default,
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

/**
 * Indexes with the constraint each backs. pg_get_indexdef waits for a lock on the table, so while DDL holds
 * or awaits one (a migration) the definitions are left out instead of waiting.
 */
export const INDEXES_SQL = `
WITH ${DDL_LOCKED_CTE}
SELECT quote_ident(ic.relname) AS name, am.amname AS method,
       i.indisprimary AS is_primary, i.indisunique AS is_unique, i.indisvalid AS is_valid,
       i.indisclustered AS is_clustered, i.indisreplident AS is_replica_identity,
       con.contype::text AS constraint_type,
       CASE WHEN ${tableDdlLocked('tc')} THEN NULL ELSE pg_get_indexdef(i.indexrelid) END AS definition,
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
       CASE WHEN $2::boolean THEN NULL ELSE pg_get_constraintdef(con.oid, true) END AS definition,
       con.convalidated AS validated
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
SELECT quote_ident(t.tgname) AS name, t.tgenabled::text AS enabled,
       CASE WHEN $2::boolean THEN NULL ELSE pg_get_triggerdef(t.oid, true) END AS definition
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

export interface RelationRow {
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
export interface ColumnRow {
  name: string;
  type: string;
  not_null: boolean;
  default_expr: string | null;
  has_default: boolean;
  identity: string;
  generated: string;
  collation: string | null;
  storage: string | null;
  compression: string | null;
  comment: string | null;
}
export interface IndexRow {
  name: string;
  method: string;
  is_primary: boolean;
  is_unique: boolean;
  is_valid: boolean;
  is_clustered: boolean;
  is_replica_identity: boolean;
  constraint_type: string | null;
  definition: string | null;
  table_name: string;
}
export interface ConstraintRow {
  name: string;
  type: string;
  definition: string | null;
  validated: boolean;
}
export interface ForeignKeyRow extends ConstraintRow {
  direction: 'in' | 'out';
  table_name: string;
}
export interface TriggerRow {
  name: string;
  enabled: string;
  definition: string | null;
}
export interface InheritanceRow {
  role: 'parent' | 'child';
  table_name: string;
  is_partition: boolean;
  bound: string | null;
}
