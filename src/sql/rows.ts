// Rows of an ad-hoc SELECT with every output column kept: duplicate names (a join's two `id`s) and their order.
import type { Column, Row } from '../core/types.js';

/**
 * Wraps a SELECT so each row comes back as its column names and JSON values, in order: node-postgres
 * builds one object per row, where a second `id` would silently overwrite the first.
 */
export function namedRowsSql(select: string): string {
  return (
    'SELECT ARRAY(SELECT e.key FROM json_each(row_to_json(dbops_q)) AS e) AS k,\n' +
    '       ARRAY(SELECT e.value::text FROM json_each(row_to_json(dbops_q)) AS e) AS v\n' +
    `FROM (\n${select}\n) AS dbops_q`
  );
}

export interface NamedRow {
  k: string[];
  v: (string | null)[];
}

/** A JSON value as a cell: numbers stay numbers unless too large to be exact, objects become JSON text. */
function cell(json: string | null | undefined): Row[string] {
  if (json === null || json === undefined) return null;
  if (/^-?\d{16,}$/.test(json)) return json;
  const value: unknown = JSON.parse(json);
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
    return value;
  return JSON.stringify(value);
}

/** Columns (unique keys, the names as labels) and rows from `namedRowsSql` results. */
export function decodeNamedRows(rows: readonly NamedRow[]): { columns: Column[]; rows: Row[] } {
  const names = rows[0]?.k ?? [];
  const seen = new Map<string, number>();
  const columns: Column[] = names.map((name) => {
    const n = (seen.get(name) ?? 0) + 1;
    seen.set(name, n);
    return { key: n === 1 ? name : `${name} (${n})`, label: name, kind: 'text' };
  });
  return {
    columns,
    rows: rows.map((r) => Object.fromEntries(columns.map((c, i) => [c.key, cell(r.v[i])]))),
  };
}
