// Lays rows out within a width: a table whose columns are kept by importance, or cards of wrapped
// `label: value` lines when the columns that must stay do not fit. Ids and names are never clipped.
import { columnWords, importanceBy, isWholeColumn } from './column-roles.js';
import type { Column, ColumnKind, Row } from './types.js';

export { importanceOf, isWhole, wholeColumns } from './column-roles.js';

/** The console and `dbops exec`: a classic terminal. */
export const CONSOLE_WIDTH = 80;
/**
 * Code blocks in Slack and Discord on a phone in portrait. Neither platform documents how many monospace
 * characters a phone shows before a code line wraps or scrolls; at their code font sizes (12–13 px) on
 * 375–430 pt wide screens it is about 45–60, so answers are laid out for 56 (a 63-character table name
 * still gets a line of its own, whole).
 */
export const PHONE_WIDTH = 56;

/** Where an answer is read decides its width. */
export function widthFor(surface: string | undefined): number {
  return surface === 'slack' || surface === 'discord' ? PHONE_WIDTH : CONSOLE_WIDTH;
}

/** A time in the one format ("2026-12-06 02:46 UTC") is one word to wrapping: never split over two lines. */
const TIME_WORDS = /(\d{4}-\d\d-\d\d) (\d\d:\d\d(?::\d\d)?) ([A-Z][A-Za-z0-9+-]*)/g;
/** Nor is a number with its unit ("6.8 MB", "1,497 rows" stays free): the unit is what the number means. */
const UNIT_WORDS = /(\d[\d,.]*) (bytes|kB|MB|GB|TB|ms|s|%)(?=[\s,;:)/.]|$)/g;
const GLUE = '\u0001';

/** A finished line of wrapText: its indent (but the first), trailing spaces gone, glued words apart again. */
function wrappedLine(lines: string[], line: string, indent: string): void {
  const text = lines.length === 0 ? line : indent + line;
  lines.push(text.trimEnd().replaceAll(GLUE, ' '));
}

/**
 * `text` as lines of at most `width` characters, broken at spaces. A word longer than a line keeps a line
 * of its own, whole, unless `breakWords` (free text); continuation lines start with `indent`.
 */
export function wrapText(text: string, width: number, indent = '', breakWords = false): string[] {
  const lines: string[] = [];
  const later = width - indent.length;
  const glued = text.trimEnd().replace(TIME_WORDS, `$1${GLUE}$2${GLUE}$3`).replace(UNIT_WORDS, `$1${GLUE}$2`);
  let line = '';
  for (let word of glued.split(' ')) {
    if (line !== '' && line.length + 1 + word.length <= (lines.length === 0 ? width : later)) {
      line += ` ${word}`;
      continue;
    }
    if (line !== '') wrappedLine(lines, line, indent);
    let room = lines.length === 0 ? width : later;
    while (breakWords && word.length > room && room > 0) {
      wrappedLine(lines, word.slice(0, room), indent);
      word = word.slice(room);
      room = later;
    }
    line = word;
  }
  if (line !== '' || lines.length === 0) wrappedLine(lines, line, indent);
  return lines;
}

/** Every line of a block wrapped to `width` (continuations indented two more than the line itself). */
export function wrapLines(text: string, width: number): string {
  // Most blocks fit as they are: nothing to split, wrap or join again.
  let start = 0;
  for (;;) {
    const end = text.indexOf('\n', start);
    if (!((end === -1 ? text.length : end) - start <= width)) break;
    if (end === -1) return text;
    start = end + 1;
  }
  let out = '';
  for (const [n, line] of text.split('\n').entries()) {
    if (n > 0) out += '\n';
    if (line.length <= width) {
      out += line;
      continue;
    }
    const lead = /^ */.exec(line)?.[0] ?? '';
    const wrapped = wrapText(line.slice(lead.length), width - lead.length, '  ');
    for (const [k, part] of wrapped.entries()) out += k === 0 ? lead + part : `\n${lead}${part}`;
  }
  return out;
}

function clip(text: string, width: number): string {
  if (text.length <= width) return text;
  return width <= 1 ? text.slice(0, width) : `${text.slice(0, width - 1)}…`;
}

const RIGHT_ALIGNED: ReadonlySet<ColumnKind> = new Set([
  'id',
  'bytes',
  'seconds',
  'count',
  'number',
  'percent',
]);

/** Free text keeps at least this much of its column before columns are hidden. */
const MIN_FREE = 16;
/** Tables of at most this many rows wrap free text within its column instead of shortening it. */
const WRAP_ROWS = 10;
const SEPARATOR = 2;
const GAP = ' '.repeat(SEPARATOR);

export interface Layout {
  kind: 'table' | 'cards';
  /** The lines, each at most the width (but for an id or name longer than the width, on a line of its own). */
  text: string;
  /** Labels of the columns left out of the table (cards never leave any out). */
  hidden: string[];
  /** Whether some free text was shortened with "…". */
  clipped: boolean;
}

export interface LayoutOptions {
  /** Widest line (default 80). */
  width?: number;
  /** No free-text column wider than this in a table (default: the width). */
  maxColumnWidth?: number;
  /** Cards instead of a table as soon as anything would be clipped or hidden (a handful of rows). */
  preferCards?: boolean;
}

/** The length of the longest line. */
function widest(lines: readonly string[]): number {
  let most = 0;
  for (const line of lines) most = Math.max(most, line.length);
  return most;
}

/** The lines of one card field: `label: value`, the value wrapped beside or under the label if long. */
function cardField(head: string, value: string, width: number, keep: boolean): string {
  const line = `${head} ${value}`.trimEnd();
  if (line.length <= width) return line;
  const room = width - head.length - 1;
  // The value continues under itself when every word fits there (names inside a query stay whole)…
  const beside = room < 24 ? undefined : keep ? [value] : wrapText(value, room);
  if (beside !== undefined && widest(beside) <= room) {
    const indent = ' '.repeat(head.length + 1);
    let out = `${head} ${beside[0] ?? ''}`;
    for (let k = 1; k < beside.length; k++) out += `\n${indent}${beside[k]}`;
    return out;
  }
  // …else under the label with the whole width. An id or name stays one line, even if wider than
  // the screen (it is copied whole); free text wraps, breaking only a word longer than a line.
  if (keep) return `${head.trimEnd()}\n  ${value}`;
  let out = head.trimEnd();
  for (const l of wrapText(value, width - 2, '', true)) out += `\n  ${l}`;
  return out;
}

/** Rows as cards of `label: value` lines; long values wrap onto indented lines, ids and names stay whole. */
export function renderCards(
  columns: readonly Column[],
  cells: readonly (readonly string[])[],
  width: number,
  whole: readonly boolean[],
): string {
  const heads: string[] = [];
  // Labels line up, but a long one does not push every value off a narrow screen.
  let longest = Number.NEGATIVE_INFINITY;
  for (const col of columns) longest = Math.max(longest, columnWords(col).shown.length);
  const pad = Math.min(longest + 1, Math.floor(width / 3));
  for (const col of columns) heads.push(`${columnWords(col).shown}:`.padEnd(pad));
  let text = '';
  for (let r = 0; r < cells.length; r++) {
    const row = cells[r] as readonly string[];
    if (r > 0) text += '\n\n';
    for (let i = 0; i < heads.length; i++) {
      if (i > 0) text += '\n';
      text += cardField(heads[i] as string, row[i] ?? '', width, whole[i] === true);
    }
  }
  return text;
}

/** Each row's values as text, one format call per cell. */
function formatCells(
  columns: readonly Column[],
  rows: readonly Row[],
  format: (value: Row[string] | undefined, kind: ColumnKind) => string,
): string[][] {
  const keys: string[] = [];
  const kinds: ColumnKind[] = [];
  for (const col of columns) {
    keys.push(col.key);
    kinds.push(col.kind);
  }
  const cells: string[][] = [];
  for (const row of rows) {
    const values: string[] = [];
    for (let i = 0; i < keys.length; i++) values.push(format(row[keys[i] as string], kinds[i] as ColumnKind));
    cells.push(values);
  }
  return cells;
}

/** What the layout needs of each column, read once per call. */
interface ColumnFacts {
  labels: string[];
  whole: boolean[];
  /** 0 low, 1 normal, 2 high or key: the lower goes first. */
  rank: number[];
  /** Free text: may be shortened with "…" or wrapped. */
  free: boolean[];
  /** The widest value, or the label if wider. */
  natural: number[];
  /** The widest value (0 without rows). */
  longest: number[];
  right: boolean[];
  /** Wraps within its column instead of being shortened. */
  wraps: boolean[];
}

function columnFacts(columns: readonly Column[], cells: readonly (readonly string[])[]): ColumnFacts {
  const facts: ColumnFacts = {
    labels: [],
    whole: [],
    rank: [],
    free: [],
    natural: [],
    longest: [],
    right: [],
    wraps: [],
  };
  const short = cells.length <= WRAP_ROWS;
  for (let i = 0; i < columns.length; i++) {
    const col = columns[i] as Column;
    const ws = columnWords(col);
    const label = ws.shown;
    let longest = 0;
    for (const row of cells) longest = Math.max(longest, (row[i] ?? '').length);
    const whole = isWholeColumn(col, ws, cells, i);
    const importance = importanceBy(col, ws, whole);
    // Free text may be shortened with "…" or wrapped; `high` columns are kept whole like names.
    const free = col.kind === 'text' && !whole && importance !== 'high';
    facts.labels.push(label);
    facts.whole.push(whole);
    facts.rank.push(importance === 'low' ? 0 : importance === 'normal' ? 1 : 2);
    facts.free.push(free);
    facts.natural.push(Math.max(label.length, longest));
    facts.longest.push(longest);
    facts.right.push(RIGHT_ALIGNED.has(col.kind));
    // A short table wraps its free text rather than shortening it: every word of a health check stays.
    facts.wraps.push(col.wrap === true || (free && short));
  }
  return facts;
}

/** The widths of the shown columns and the separators between them. */
function total(widths: readonly number[], shown: readonly number[]): number {
  let sum = 0;
  for (const i of shown) sum += widths[i] ?? 0;
  return sum + SEPARATOR * Math.max(0, shown.length - 1);
}

/** The column of `shown` to hide next (low first, then normal, rightmost first), or -1: none may go. */
function victimOf(facts: ColumnFacts, shown: readonly number[], spareFree: boolean): number {
  let worst = 2;
  let victim = -1;
  for (let at = 0; at < shown.length; at++) {
    const i = shown[at] as number;
    const rank = facts.rank[i] as number;
    if (rank >= 2 || (spareFree && facts.free[i])) continue;
    if (rank <= worst) {
      worst = rank;
      victim = at;
    }
  }
  return victim;
}

/** The columns shown and their widths, or undefined when only cards fit. */
function fitColumns(
  facts: ColumnFacts,
  width: number,
  maxColumn: number,
  preferCards: boolean,
): { shown: number[]; widths: number[] } | undefined {
  const { natural, free } = facts;
  // A free column shows its whole label only when its values are that wide.
  const least: number[] = [];
  const widths: number[] = [];
  let capped = false;
  for (let i = 0; i < natural.length; i++) {
    const n = natural[i] as number;
    least.push(free[i] ? Math.min(n, MIN_FREE) : n);
    widths.push(free[i] ? Math.min(n, maxColumn) : n);
    if ((widths[i] as number) < n) capped = true;
  }
  let shown: number[] = [];
  for (let i = 0; i < natural.length; i++) shown.push(i);
  if (capped || total(widths, shown) > width) {
    if (preferCards) return undefined;
    // Connection details and the like go first, so free text keeps its room.
    shown = [];
    for (let i = 0; i < natural.length; i++) if (facts.rank[i] !== 0) shown.push(i);
    while (total(least, shown) > width) {
      // Free text (a query) is the last normal column to go: shortened, it still says what runs.
      let victim = victimOf(facts, shown, true);
      if (victim === -1) victim = victimOf(facts, shown, false);
      if (victim === -1) return undefined;
      shown.splice(victim, 1);
    }
    if (shown.length === 0) return undefined;
  }
  // Shrink the widest free columns until the visible ones fit.
  while (total(widths, shown) > width) {
    let widest = -1;
    for (const i of shown) {
      if (!free[i] || !((widths[i] as number) > (least[i] as number))) continue;
      if (widest === -1 || (widths[i] as number) > (widths[widest] as number)) widest = i;
    }
    if (widest === -1) return undefined;
    widths[widest] = (widths[widest] as number) - 1;
  }
  return { shown, widths };
}

/** Whether trimEnd would leave `text` as it is: below U+1680 the only blanks are tab to CR, space, U+00A0. */
function endsVisible(text: string): boolean {
  const last = text.charCodeAt(text.length - 1);
  return last > 32 && last !== 160 && last < 0x1680;
}

/** One row of the table: one line, or more where a wrapping column needs them. */
function tableRow(
  facts: ColumnFacts,
  shown: readonly number[],
  widths: readonly number[],
  values: readonly string[],
): string {
  let line = '';
  for (let at = 0; at < shown.length; at++) {
    const i = shown[at] as number;
    const w = widths[i] as number;
    let value = values[i] ?? '';
    // (written so that a NaN width clips as clip() does)
    if (!(value.length <= w)) {
      if (facts.wraps[i]) return wrappedRow(facts, shown, widths, values);
      value = clip(value, w);
    }
    if (at > 0) line += GAP;
    // The last cell ends the line: when it ends in a visible character, it needs no padding to trim.
    if (at === shown.length - 1 && endsVisible(value))
      return facts.right[i] ? line + value.padStart(w) : line + value;
    line += facts.right[i] ? value.padStart(w) : value.padEnd(w);
  }
  return line.trimEnd();
}

/** A row whose wrapping column gives it as many lines as it needs; the other cells sit on the first. */
function wrappedRow(
  facts: ColumnFacts,
  shown: readonly number[],
  widths: readonly number[],
  values: readonly string[],
): string {
  const parts: string[][] = [];
  let height = 0;
  for (const i of shown) {
    const w = widths[i] as number;
    const value = values[i] ?? '';
    const part = facts.wraps[i] && value.length > w ? wrapText(value, w, '', true) : [clip(value, w)];
    parts.push(part);
    height = Math.max(height, part.length);
  }
  let text = '';
  for (let row = 0; row < height; row++) {
    let line = '';
    for (let at = 0; at < shown.length; at++) {
      const i = shown[at] as number;
      const cell = parts[at]?.[row] ?? '';
      if (at > 0) line += GAP;
      line += facts.right[i] ? cell.padStart(widths[i] as number) : cell.padEnd(widths[i] as number);
    }
    text += row === 0 ? line.trimEnd() : `\n${line.trimEnd()}`;
  }
  return text;
}

/** Header, rule and rows of the table. */
function tableText(
  facts: ColumnFacts,
  shown: readonly number[],
  widths: readonly number[],
  cells: readonly (readonly string[])[],
): string {
  // Without a column there is no line at all, only the (empty) rule.
  if (shown.length === 0) return '';
  const header: string[] = [];
  for (let i = 0; i < facts.labels.length; i++)
    header.push(clip(facts.labels[i] as string, widths[i] as number));
  let rule = '';
  for (let at = 0; at < shown.length; at++) {
    if (at > 0) rule += GAP;
    rule += '-'.repeat(widths[shown[at] as number] as number);
  }
  let text = `${tableRow(facts, shown, widths, header)}\n${rule}`;
  for (const values of cells) text += `\n${tableRow(facts, shown, widths, values)}`;
  return text;
}

/** Whether a shown column that does not wrap holds a value wider than its width. */
function anyClipped(facts: ColumnFacts, shown: readonly number[], widths: readonly number[]): boolean {
  for (const i of shown)
    if (!facts.wraps[i] && (facts.longest[i] as number) > (widths[i] as number)) return true;
  return false;
}

/**
 * The layout of rows within a width: the whole table when it fits; else the least important columns
 * hidden (low first, then normal, rightmost first) and free text shortened; cards when even the columns
 * that must stay do not fit side by side.
 */
export function layoutRows(
  columns: readonly Column[],
  rows: readonly Row[],
  format: (value: Row[string] | undefined, kind: ColumnKind) => string,
  options: LayoutOptions = {},
): Layout {
  const width = options.width ?? CONSOLE_WIDTH;
  const cells = formatCells(columns, rows, format);
  const facts = columnFacts(columns, cells);
  const fit = fitColumns(facts, width, options.maxColumnWidth ?? width, Boolean(options.preferCards));
  if (fit !== undefined) {
    const { shown, widths } = fit;
    const hidden: string[] = [];
    for (let i = 0; i < facts.labels.length; i++)
      if (!shown.includes(i)) hidden.push(facts.labels[i] as string);
    // A shortened label is not a shortened value.
    const clipped = cells.length > 0 && anyClipped(facts, shown, widths);
    if (!options.preferCards || (!clipped && hidden.length === 0)) {
      return { kind: 'table', text: tableText(facts, shown, widths, cells), hidden, clipped };
    }
  }
  return { kind: 'cards', text: renderCards(columns, cells, width, facts.whole), hidden: [], clipped: false };
}

/** The one line that says which columns a narrow table left out. */
export function hiddenNote(hidden: readonly string[], where = 'dbops exec --json shows all'): string {
  return `(hidden: ${hidden.join(', ')} — ${where})`;
}
