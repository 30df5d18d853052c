// A pack query's rows as the core wants them: cells, column kinds and labels, and their digest.
import { createHash } from 'node:crypto';
import type { Column, ColumnKind, Row } from '../core/types.js';
import type { LoadedPackOperation } from './load.js';

export function toCell(value: unknown): Row[string] {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return `\\x${value.toString('hex')}`;
  return JSON.stringify(value);
}

function kindOf(values: readonly unknown[]): ColumnKind {
  const sample = values.find((v) => v !== null && v !== undefined);
  if (typeof sample === 'boolean') return 'bool';
  if (sample instanceof Date) return 'timestamp';
  if (typeof sample === 'number') return 'number';
  return 'text';
}

/** Rows as the core wants them, with columns from the pack (labels, kinds) or inferred from the values. */
export function tabulate(
  raw: readonly Record<string, unknown>[],
  declared: LoadedPackOperation['def']['columns'],
): { columns: Column[]; rows: Row[] } {
  // An optional column is shown when the variant that ran returns it.
  const first = raw[0];
  const keys =
    declared?.filter((c) => !c.optional || (first !== undefined && c.key in first)).map((c) => c.key) ??
    Object.keys(first ?? {});
  const columns: Column[] = keys.map((key) => {
    const d = declared?.find((c) => c.key === key);
    const inferred = kindOf(raw.map((r) => r[key]));
    // A timestamptz in a column declared without a kind reads in the one time format, not as ISO text.
    const kind = d?.kind === undefined || (d.kind === 'text' && inferred === 'timestamp') ? inferred : d.kind;
    const column: Column = { key, label: d?.label ?? key, kind };
    return d?.importance ? { ...column, importance: d.importance } : column;
  });
  const rows = raw.map((r) => Object.fromEntries(keys.map((k) => [k, toCell(r[k])])) as Row);
  return { columns, rows };
}

export function digest(rows: readonly Row[]): string {
  return createHash('sha256').update(JSON.stringify(rows)).digest('hex');
}
