// What a column is to a layout, read from its kind, its values and the words of its key and label:
// whether its values must stay whole (ids, UUIDs, names), how much it matters, and its label as shown.
import type { Column, Importance } from './types.js';
import { showInvisible } from './visible.js';

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** Words of a column's key or label that mark free text: readable shortened, never needed whole. */
const FREE_TEXT = new Set(
  'query queries statement definition description summary detail details comment message error sql command reason advice note notes outcome what hint finding'.split(
    ' ',
  ),
);
/** Words that mark a value someone types back into the next command (`terminate <pid>`, a table name). */
const NAME_LIKE = new Set(
  'pid pids id ids uuid name table relation index schema host hostname backup file filename target database db datname role user username usename email sequence extension queryid slot revision owner kasm workspace template constraint trigger parameter setting image zone manager server agent login token'.split(
    ' ',
  ),
);
/** Words of columns that matter least when room is short (connection details, raw timestamps). */
const MINOR = new Set(
  'client addr address port application app backend wait event xact since changed oid'.split(' '),
);

/** What a column's key and label say, read once per Column object (operations declare theirs once). */
export interface ColumnWords {
  key: string;
  label: string;
  /** The label as shown: invisible characters escaped, on one line. */
  shown: string;
  free: boolean;
  minor: boolean;
  name: boolean;
}

const columnWordsCache = new WeakMap<Column, ColumnWords>();
const ONE_LINE = { newlines: false } as const;

export function columnWords(col: Column): ColumnWords {
  const known = columnWordsCache.get(col);
  // A column whose key or label changed since is read again.
  if (known !== undefined && known.key === col.key && known.label === col.label) return known;
  return readColumnWords(col);
}

/** columnWords the first time (kept apart: the common path stays small where it is inlined). */
function readColumnWords(col: Column): ColumnWords {
  const key = col.key;
  const label = col.label;
  let free = false;
  let minor = false;
  let name = false;
  for (const word of `${key} ${label}`.toLowerCase().split(/[^a-z0-9]+/)) {
    if (FREE_TEXT.has(word)) free = true;
    if (MINOR.has(word)) minor = true;
    if (NAME_LIKE.has(word)) name = true;
  }
  const made = { key, label, shown: showInvisible(label, ONE_LINE), free, minor, name };
  columnWordsCache.set(col, made);
  return made;
}

/** Whether every value present (not empty) is a UUID, and at least one is present. */
function allUuids(values: readonly string[]): boolean {
  let present = false;
  for (const value of values) {
    if (value === '') continue;
    if (!UUID.test(value)) return false;
    present = true;
  }
  return present;
}

/** allUuids of the column `i` of cells (missing cells are empty). */
function columnAllUuids(cells: readonly (readonly string[])[], i: number): boolean {
  let present = false;
  for (const row of cells) {
    const value = row[i] ?? '';
    if (value === '') continue;
    // A UUID has 32 to 36 characters: most values are refused without the pattern.
    if (value.length < 32 || value.length > 36 || !UUID.test(value)) return false;
    present = true;
  }
  return present;
}

/** Whole whatever its values: declared `key`, or ids. */
function wholeByKind(col: Column): boolean {
  return col.importance === 'key' || col.kind === 'id';
}

/** Whole by its name: text named like a name (`relation`, `hostname`), not free text or a minor detail. */
function wholeByName(col: Column, ws: ColumnWords): boolean {
  // `application_name`, `client_hostname`: connection details, not names anyone types back.
  if (ws.free || ws.minor) return false;
  return col.kind === 'text' && ws.name;
}

/**
 * Whether a column holds values someone types back (`terminate <pid>`, a table or host name): ids, UUIDs
 * and columns named like a name. They are never clipped or wrapped, wherever they are shown.
 */
export function isWhole(col: Column, cells: readonly string[]): boolean {
  return wholeByKind(col) || allUuids(cells) || wholeByName(col, columnWords(col));
}

/** isWhole of the column `i` of cells, its words read already. */
export function isWholeColumn(
  col: Column,
  ws: ColumnWords,
  cells: readonly (readonly string[])[],
  i: number,
): boolean {
  return wholeByKind(col) || columnAllUuids(cells, i) || wholeByName(col, ws);
}

/** importanceOf once wholeness is known. */
export function importanceBy(col: Column, ws: ColumnWords, whole: boolean): Importance {
  if (col.importance) return col.importance;
  if (whole) return 'key';
  return ws.minor ? 'low' : 'normal';
}

/**
 * How much a column matters: declared, or read from its kind, values and name. `key` columns are never
 * hidden (ids, pids, UUIDs, names); `low` ones are hidden first when a table is too wide. A name column
 * declared `normal` or `low` may be hidden, but is still never clipped (isWhole).
 */
export function importanceOf(col: Column, cells: readonly string[]): Importance {
  if (col.importance) return col.importance;
  return importanceBy(col, columnWords(col), isWhole(col, cells));
}

/** Which columns must show whole values (see isWhole). */
export function wholeColumns(columns: readonly Column[], cells: readonly (readonly string[])[]): boolean[] {
  const whole: boolean[] = [];
  for (let i = 0; i < columns.length; i++) {
    const col = columns[i] as Column;
    whole.push(isWholeColumn(col, columnWords(col), cells, i));
  }
  return whole;
}
