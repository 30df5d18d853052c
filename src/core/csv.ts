// CSV as spreadsheets read it safely: RFC 4180 quoting, and no cell that runs as a formula.
import { formatValue } from './render.js';
import type { OperationResult } from './types.js';

const PLAIN_NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const FORMULA_START = /^[=+\-@\t\r]/;

/**
 * One CSV field (RFC 4180): NULL is an empty field, an empty string is `""` (as COPY … CSV writes them);
 * a field holding a comma, a quote, CR or LF is quoted with its quotes doubled. A text a spreadsheet would
 * run as a formula (starting with = + - @, tab or CR) gets a leading single quote — plain numbers such as
 * -42 or +1.5 excepted, since they cannot be formulas.
 */
export function csvField(value: string | null): string {
  if (value === null) return '';
  if (value === '') return '""';
  const text = FORMULA_START.test(value) && !PLAIN_NUMBER.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csvLine(values: readonly (string | null)[]): string {
  return `${values.map(csvField).join(',')}\r\n`;
}

/** A whole result as CSV: a header of column labels, then machine values (durations in seconds). */
export function resultToCsv(result: Pick<OperationResult, 'columns' | 'rows'>): string {
  const header = csvLine(result.columns.map((c) => c.key));
  const lines = result.rows.map((row) =>
    csvLine(
      result.columns.map((c) => {
        const value = row[c.key];
        if (value === null || value === undefined) return null;
        return typeof value === 'boolean' ? formatValue(value, 'bool') : String(value);
      }),
    ),
  );
  return header + lines.join('');
}
