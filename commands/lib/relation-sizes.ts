// SQL shared by the reads that measure relations: never wait behind DDL, and split a table's bytes.
import { formatCount } from '../../src/core/render.js';

/*
 * Size functions take AccessShareLock on the relation they measure (pg_total_relation_size also on the
 * TOAST table and every index), so they would queue behind DDL. Relations with an AccessExclusiveLock held
 * or awaited in this database are skipped and named instead, the way `sizes` does; lock_timeout still
 * bounds a lock taken between the check and the call.
 */

/** CTE `ddl_locked(relation)`: relations of this database with an AccessExclusiveLock held or awaited. */
export const DDL_LOCKED_CTE = `ddl_locked AS (
  SELECT l.relation
  FROM pg_locks l
  WHERE l.locktype = 'relation'
    AND l.mode = 'AccessExclusiveLock'
    AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
)`;

/** SQL condition: the relation with this oid expression is in `ddl_locked`. */
export function ddlLocked(oid: string): string {
  return `${oid} IN (SELECT relation FROM ddl_locked)`;
}

/** SQL condition for a pg_class alias: the table, its TOAST table or one of its indexes is in `ddl_locked`. */
export function tableDdlLocked(pgClass: string): string {
  return `(${ddlLocked(`${pgClass}.oid`)}
          OR ${ddlLocked(`${pgClass}.reltoastrelid`)}
          OR EXISTS (SELECT 1 FROM pg_index li
                     WHERE li.indrelid = ${pgClass}.oid AND ${ddlLocked('li.indexrelid')}))`;
}

/** SQL condition for a pg_namespace alias: a schema people created (not pg_catalog, pg_toast, temp, information_schema). */
export function userSchema(pgNamespace: string): string {
  return `${pgNamespace}.nspname NOT LIKE 'pg\\_%' AND ${pgNamespace}.nspname <> 'information_schema'`;
}

/**
 * Byte columns of a table from its pg_class row (`oid`, `reltoastrelid`): total = table (heap, all forks)
 * + indexes + TOAST (table and its index), so the split always adds up to pg_total_relation_size.
 */
export function tableSizeColumns(pgClass: string): string {
  return `pg_table_size(${pgClass}.oid) + pg_indexes_size(${pgClass}.oid) AS total_bytes,
          pg_table_size(${pgClass}.oid) - ${toastBytes(pgClass)} AS table_bytes,
          pg_indexes_size(${pgClass}.oid) AS index_bytes,
          ${toastBytes(pgClass)} AS toast_bytes`;
}

/** TOAST bytes (the TOAST table and its index) of a pg_class alias's table; 0 without one. */
export function toastBytes(pgClass: string): string {
  return `CASE WHEN ${pgClass}.reltoastrelid = 0 THEN 0 ELSE pg_total_relation_size(${pgClass}.reltoastrelid) END`;
}

/** Relations whose name is listed when they are skipped for a DDL lock. */
export const LOCKED_LISTED = 20;

/** "skipped 2 indexes locked by DDL: a, b" (with "and N more" past the listed names). */
export function skippedNote(names: readonly string[], count: number, noun: [string, string]): string {
  const more = count > names.length ? ` and ${formatCount(count - names.length)} more` : '';
  return `skipped ${formatCount(count)} ${count === 1 ? noun[0] : noun[1]} locked by DDL: ${names.join(', ')}${more}`;
}
