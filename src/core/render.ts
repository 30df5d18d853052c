// Turns machine results into text people read: human units, tables and cards that fit a width.
import { formatDuration } from './duration.js';
import {
  CONSOLE_WIDTH,
  hiddenNote,
  type Layout,
  layoutRows,
  renderCards,
  wholeColumns,
  wrapLines,
} from './layout.js';
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

/** "1234567" → "1,234,567". */
function groupThousands(digits: string): string {
  let out = '';
  for (let end = digits.length; end > 0; end -= 3) {
    const piece = digits.slice(Math.max(0, end - 3), end);
    out = out === '' ? piece : `${piece},${out}`;
  }
  return out;
}

/** For NaN and ±Infinity only ("NaN", "∞"): made when first needed. */
let intlFormat: Intl.NumberFormat | undefined;

/**
 * A count as en-US writes it, at most two decimals ("9,000", "1,234.57"): what Intl.NumberFormat says,
 * without it — the first Intl number formatter costs ~50 ms of ICU set-up, a third of a `dbops exec`.
 * Like Intl, it rounds the shortest decimal form of the number half away from zero (1.005 → "1.01").
 */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) {
    intlFormat ??= new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
    return intlFormat.format(n);
  }
  const abs = Math.abs(n);
  let whole = '0';
  let decimals = '';
  if (Number.isInteger(abs) && abs < 1e21) {
    whole = String(abs);
  } else if (Number.isInteger(abs)) {
    // 1e21 and more are written with an exponent ("1.5e+300"): the digits, then zeros.
    const big = /^(\d)(?:\.(\d+))?e\+(\d+)$/.exec(String(abs));
    const digits = big ? `${big[1]}${big[2] ?? ''}` : String(abs);
    whole = big ? digits.padEnd(Number(big[3]) + 1, '0') : digits;
  } else if (!String(abs).includes('e')) {
    // (a fraction written with an exponent is below 1e-6: it rounds to 0)
    const [int = '0', fraction = ''] = String(abs).split('.');
    let cents = BigInt(int + fraction.slice(0, 2).padEnd(2, '0'));
    if ((fraction[2] ?? '0') >= '5') cents += 1n;
    const digits = cents.toString().padStart(3, '0');
    whole = digits.slice(0, -2);
    decimals = digits.slice(-2).replace(/0+$/, '');
  }
  const negative = n < 0 || Object.is(n, -0);
  return `${negative ? '-' : ''}${groupThousands(whole)}${decimals ? `.${decimals}` : ''}`;
}

/**
 * Whether a value reads as it is: printable ASCII, no space at either end nor two in a row. Nothing to
 * escape, collapse or trim — most names, states and queries — found by one pass without a pattern.
 */
function plainAscii(value: string): boolean {
  let before = 32;
  for (let at = 0; at < value.length; at++) {
    const code = value.charCodeAt(at);
    if (code < 32 || code > 126 || (code === 32 && before === 32)) return false;
    before = code;
  }
  return before !== 32;
}

/**
 * Whitespace that collapsing changes: any but a space, or two in a row. Most values have none, and the
 * test costs a quarter of the replace that would copy them unchanged.
 */
const UNCOLLAPSED = /[^\S ]|\s\s/;

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
  if ((kind === 'count' || kind === 'number') && /^-?\d{1,40}$/.test(value)) {
    const big = BigInt(value);
    return big < 0n ? `-${groupThousands((-big).toString())}` : groupThousands(big.toString());
  }
  if (kind === 'timestamp') {
    const date = asDate(value);
    if (date) return formatTime(date);
  }
  if (plainAscii(value)) return value;
  // Controls and invisible characters are shown escaped before whitespace collapses: a value can neither
  // drive a terminal nor hide a character from the person reading it.
  const shown = showInvisible(value);
  return (UNCOLLAPSED.test(shown) ? shown.replace(/\s+/g, ' ') : shown).trim();
}

export interface TableOptions {
  /** Total line width to fit (default 80, the console; chat surfaces pass PHONE_WIDTH). */
  maxWidth?: number;
  /** No free-text column wider than this (default: the width). */
  maxColumnWidth?: number;
  /** How the hidden-columns line says where the rest is (default "dbops exec --json shows all"). */
  hiddenHint?: string;
}

/**
 * An aligned plain-text table that fits maxWidth: the least important columns are hidden (and named in a
 * last line), free text is shortened with "…", and when even the ids and names do not fit side by side the
 * rows become cards. Ids, pids, UUIDs and names are never clipped.
 */
export function renderTable(
  columns: readonly Column[],
  rows: readonly Row[],
  options: TableOptions = {},
): string {
  const layout = layoutRows(columns, rows, formatValue, {
    width: options.maxWidth ?? CONSOLE_WIDTH,
    ...(options.maxColumnWidth !== undefined ? { maxColumnWidth: options.maxColumnWidth } : {}),
  });
  return layout.hidden.length > 0
    ? `${layout.text}\n${hiddenNote(layout.hidden, options.hiddenHint)}`
    : layout.text;
}

/** Rows as cards of aligned `label: value` lines — how a lookup reads best on a phone. */
export function renderCard(columns: readonly Column[], rows: readonly Row[], width = CONSOLE_WIDTH): string {
  const cells = rows.map((row) => columns.map((col) => formatValue(row[col.key], col.kind)));
  return renderCards(columns, cells, width, wholeColumns(columns, cells));
}

/** The preformatted lines of a `text` result, each within the width (long ones wrap, indented). */
export function textLines(result: OperationResult, width = CONSOLE_WIDTH): string {
  const key = result.columns[0]?.key ?? '';
  return wrapLines(result.rows.map((row) => showInvisible(String(row[key] ?? ''))).join('\n'), width);
}

/**
 * The rows of a table or card result laid out for a width: a few rows read as cards rather than clipped,
 * many as a table with columns chosen by importance.
 */
export function layoutResult(result: OperationResult, rows: readonly Row[], width: number): Layout {
  if (result.display === 'card') {
    return { kind: 'cards', text: renderCard(result.columns, rows, width), hidden: [], clipped: false };
  }
  return layoutRows(result.columns, rows, formatValue, {
    width,
    preferCards: result.display === undefined && rows.length <= 3,
  });
}

/** A whole result: headline, table (or "no rows"), row count, truncation and notes, within maxWidth. */
export function renderResult(result: OperationResult, options: TableOptions = {}): string {
  const width = options.maxWidth ?? CONSOLE_WIDTH;
  const parts: string[] = [];
  if (result.headline) parts.push(wrapLines(showInvisible(result.headline), width));
  if (result.columns.length > 0) {
    const count = `${result.rows.length} row${result.rows.length === 1 ? '' : 's'}`;
    if (result.rows.length === 0)
      parts.push(result.page ? countLines(result, count).join('\n') : '(no rows)');
    else if (result.display === 'text') {
      parts.push(textLines(result, width));
      if (result.page) parts.push(...countLines(result, `${formatCount(result.rows.length)} lines`));
      else if (result.truncated) parts.push('… more lines (capped)');
    } else {
      const layout = layoutResult(result, result.rows, width);
      parts.push(layout.text);
      const count = `${formatCount(result.rows.length)} row${result.rows.length === 1 ? '' : 's'}`;
      // The next page's command stays on a line of its own, whole (it is pasted as it is).
      const [countLine = count, ...next] = countLines(result, count);
      if (layout.kind === 'cards' && (result.display === 'card' || result.rows.length <= 3)) {
        if (result.page || result.truncated) parts.push(wrapLines(countLine, width), ...next);
      } else {
        parts.push(wrapLines(countLine, width), ...next);
      }
      if (layout.hidden.length > 0)
        parts.push(wrapLines(hiddenNote(layout.hidden, options.hiddenHint), width));
    }
  }
  for (const note of result.notes ?? []) parts.push(wrapLines(showInvisible(note), width));
  return parts.join('\n');
}
