// Turns machine results into text people read: human units, aligned tables that fit a width.

import { formatDuration } from './duration.js';
import { countLines } from './paging.js';
import { asDate, formatTime } from './time-format.js';
import type { Column, ColumnKind, OperationResult, Row } from './types.js';
import { showInvisible } from './visible.js';

const BYTE_UNITS = ['bytes', 'kB', 'MB', 'GB', 'TB', 'PB'];

/** 1536 → "1.5 kB" (1024-based like pg_size_pretty). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const sign = bytes < 0 ? '-' : '';
  if (unit === 0) return `${sign}${value} bytes`;
  return `${sign}${value < 10 ? value.toFixed(1) : Math.round(value)} ${BYTE_UNITS[unit]}`;
}

// Made once: toLocaleString builds a formatter on every call, which showed in the bench's profile.
const WHOLE = new Intl.NumberFormat('en-US');
const FRACTION = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

export function formatCount(n: number): string {
  return Number.isInteger(n) ? WHOLE.format(n) : FRACTION.format(n);
}

/** One cell as a person reads it. Newlines and runs of spaces collapse so rows stay on one line. */
export function formatValue(value: Row[string] | undefined, kind: ColumnKind): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') {
    switch (kind) {
      case 'bytes':
        return formatBytes(value);
      case 'seconds':
        return formatDuration(value);
      case 'count':
      case 'number':
        return formatCount(value);
      case 'percent':
        return `${(Math.round(value * 10) / 10).toFixed(1)}%`;
      default:
        return String(value);
    }
  }
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  // bigint values beyond 2^53 arrive as exact decimal text: grouped like the numbers of the same column
  if ((kind === 'count' || kind === 'number') && /^-?\d{1,40}$/.test(value))
    return WHOLE.format(BigInt(value));
  if (kind === 'timestamp') {
    const date = asDate(value);
    if (date) return formatTime(date);
  }
  // Controls and invisible characters are shown escaped before whitespace collapses: a value can neither
  // drive a terminal nor hide a character from the person reading it.
  return showInvisible(value).replace(/\s+/g, ' ').trim();
}

const RIGHT_ALIGNED: ReadonlySet<ColumnKind> = new Set([
  'id',
  'bytes',
  'seconds',
  'count',
  'number',
  'percent',
]);

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** A column whose every value is a UUID (or empty): an identifier someone will type back. */
function isIdColumn(values: readonly string[]): boolean {
  const present = values.filter((v) => v !== '');
  return present.length > 0 && present.every((v) => UUID.test(v));
}

function clip(text: string, width: number): string {
  if (text.length <= width) return text;
  return width <= 1 ? text.slice(0, width) : `${text.slice(0, width - 1)}…`;
}

export interface TableOptions {
  /** Total line width to fit (default 120). */
  maxWidth?: number;
  /** No single column wider than this (default 48). */
  maxColumnWidth?: number;
}

/** An aligned plain-text table; wide columns are clipped with "…" so every line fits maxWidth. */
export function renderTable(
  columns: readonly Column[],
  rows: readonly Row[],
  options: TableOptions = {},
): string {
  const maxWidth = options.maxWidth ?? 120;
  const maxColumnWidth = options.maxColumnWidth ?? 48;
  const cells = rows.map((row) => columns.map((col) => formatValue(row[col.key], col.kind)));
  // Ids and UUIDs are what the next command needs (`lookup kasm session <id>`): never clipped.
  const whole = columns.map((col, i) => col.kind === 'id' || isIdColumn(cells.map((r) => r[i] ?? '')));
  const widths = columns.map((col, i) => {
    const widest = Math.max(col.label.length, ...cells.map((r) => (r[i] ?? '').length));
    return whole[i] ? widest : Math.min(maxColumnWidth, widest);
  });
  // Shrink the widest clippable columns until the table fits.
  const separator = 2;
  const total = () => widths.reduce((a, b) => a + b, 0) + separator * (widths.length - 1);
  while (total() > maxWidth) {
    const clippable = widths.map((w, i) => (whole[i] ? 0 : w));
    const widest = clippable.indexOf(Math.max(...clippable));
    if ((clippable[widest] ?? 0) <= 6) break;
    widths[widest] = (widths[widest] ?? 0) - 1;
  }
  const line = (values: readonly string[]) =>
    values
      .map((value, i) => {
        const width = widths[i] ?? 0;
        const text = clip(value, width);
        const col = columns[i];
        return col && RIGHT_ALIGNED.has(col.kind) ? text.padStart(width) : text.padEnd(width);
      })
      .join(' '.repeat(separator))
      .trimEnd();
  const header = line(columns.map((c) => showInvisible(c.label, { newlines: false })));
  const rule = widths.map((w) => '-'.repeat(w)).join(' '.repeat(separator));
  return [header, rule, ...cells.map(line)].join('\n');
}

/** Rows as cards of aligned `label: value` lines — how a lookup reads best on a phone. */
export function renderCard(columns: readonly Column[], rows: readonly Row[]): string {
  const width = Math.max(...columns.map((c) => c.label.length));
  return rows
    .map((row) =>
      columns
        .map((col) =>
          `${`${showInvisible(col.label, { newlines: false })}:`.padEnd(width + 1)} ${formatValue(row[col.key], col.kind)}`.trimEnd(),
        )
        .join('\n'),
    )
    .join('\n\n');
}

/** Whether the table would have to clip values to fit: then a handful of rows reads better as cards. */
function tooWide(result: OperationResult, options: TableOptions): boolean {
  const maxWidth = options.maxWidth ?? 120;
  const widths = result.columns.map((col) =>
    Math.max(col.label.length, ...result.rows.map((row) => formatValue(row[col.key], col.kind).length)),
  );
  const clipped = widths.some((w) => w > (options.maxColumnWidth ?? 48));
  return clipped || widths.reduce((a, b) => a + b + 2, 0) > maxWidth;
}

/** A whole result: headline, table (or "no rows"), row count, truncation and notes. */
export function renderResult(result: OperationResult, options: TableOptions = {}): string {
  const parts: string[] = [];
  if (result.headline) parts.push(showInvisible(result.headline));
  if (result.columns.length > 0) {
    const count = `${result.rows.length} row${result.rows.length === 1 ? '' : 's'}`;
    if (result.rows.length === 0)
      parts.push(result.page ? countLines(result, count).join('\n') : '(no rows)');
    else if (result.display === 'text') {
      const key = result.columns[0]?.key ?? '';
      parts.push(result.rows.map((row) => showInvisible(String(row[key] ?? ''))).join('\n'));
      if (result.page) parts.push(...countLines(result, `${result.rows.length} lines`));
      else if (result.truncated) parts.push('… more lines (capped)');
    } else if (result.display === 'card') {
      parts.push(renderCard(result.columns, result.rows));
      if (result.page || result.truncated) parts.push(...countLines(result, count));
    } else if (result.display === undefined && result.rows.length <= 3 && tooWide(result, options)) {
      // A few rows with long values (queries, descriptions) read better as cards than clipped.
      parts.push(renderCard(result.columns, result.rows));
      if (result.page || result.truncated) parts.push(...countLines(result, count));
    } else {
      parts.push(renderTable(result.columns, result.rows, options));
      parts.push(...countLines(result, count));
    }
  }
  for (const note of result.notes ?? []) parts.push(showInvisible(note));
  return parts.join('\n');
}
