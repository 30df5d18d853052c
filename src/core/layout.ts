// Lays rows out within a width: a table whose columns are kept by importance, or cards of wrapped
// `label: value` lines when the columns that must stay do not fit. Ids and names are never clipped.
import type { Column, ColumnKind, Importance, Row } from './types.js';
import { showInvisible } from './visible.js';

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

function words(col: Column): string[] {
  return `${col.key} ${col.label}`
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w !== '');
}

/**
 * Whether a column holds values someone types back (`terminate <pid>`, a table or host name): ids, UUIDs
 * and columns named like a name. They are never clipped or wrapped, wherever they are shown.
 */
export function isWhole(col: Column, cells: readonly string[]): boolean {
  if (col.importance === 'key' || col.kind === 'id') return true;
  const present = cells.filter((v) => v !== '');
  if (present.length > 0 && present.every((v) => UUID.test(v))) return true;
  const ws = words(col);
  // `application_name`, `client_hostname`: connection details, not names anyone types back.
  if (ws.some((w) => FREE_TEXT.has(w) || MINOR.has(w))) return false;
  return col.kind === 'text' && ws.some((w) => NAME_LIKE.has(w));
}

/**
 * How much a column matters: declared, or read from its kind, values and name. `key` columns are never
 * hidden (ids, pids, UUIDs, names); `low` ones are hidden first when a table is too wide. A name column
 * declared `normal` or `low` may be hidden, but is still never clipped (isWhole).
 */
export function importanceOf(col: Column, cells: readonly string[]): Importance {
  if (col.importance) return col.importance;
  if (isWhole(col, cells)) return 'key';
  if (words(col).some((w) => MINOR.has(w))) return 'low';
  return 'normal';
}

/** Which columns must show whole values (see isWhole). */
export function wholeColumns(columns: readonly Column[], cells: readonly (readonly string[])[]): boolean[] {
  return columns.map((col, i) =>
    isWhole(
      col,
      cells.map((r) => r[i] ?? ''),
    ),
  );
}

/**
 * `text` as lines of at most `width` characters, broken at spaces. A word longer than a line keeps a line
 * of its own, whole, unless `breakWords` (free text); continuation lines start with `indent`.
 */
/** A time in the one format ("2026-12-06 02:46 UTC") is one word to wrapping: never split over two lines. */
const TIME_WORDS = /(\d{4}-\d\d-\d\d) (\d\d:\d\d(?::\d\d)?) ([A-Z][A-Za-z0-9+-]*)/g;
/** Nor is a number with its unit ("6.8 MB", "1,497 rows" stays free): the unit is what the number means. */
const UNIT_WORDS = /(\d[\d,.]*) (bytes|kB|MB|GB|TB|ms|s|%)(?=[\s,;:)/.]|$)/g;
const GLUE = '\u0001';

export function wrapText(text: string, width: number, indent = '', breakWords = false): string[] {
  const lines: string[] = [];
  let line = '';
  const room = () => width - (lines.length === 0 ? 0 : indent.length);
  const push = () => {
    lines.push((lines.length === 0 ? line : `${indent}${line}`).trimEnd().replaceAll(GLUE, ' '));
    line = '';
  };
  const glued = text.trimEnd().replace(TIME_WORDS, `$1${GLUE}$2${GLUE}$3`).replace(UNIT_WORDS, `$1${GLUE}$2`);
  for (let word of glued.split(' ')) {
    if (line !== '' && line.length + 1 + word.length <= room()) {
      line += ` ${word}`;
      continue;
    }
    if (line !== '') push();
    while (breakWords && word.length > room() && room() > 0) {
      line = word.slice(0, room());
      word = word.slice(room());
      push();
    }
    line = word;
  }
  if (line !== '' || lines.length === 0) push();
  return lines;
}

/** Every line of a block wrapped to `width` (continuations indented two more than the line itself). */
export function wrapLines(text: string, width: number): string {
  return text
    .split('\n')
    .flatMap((line) => {
      if (line.length <= width) return [line];
      const lead = /^ */.exec(line)?.[0] ?? '';
      const wrapped = wrapText(line.slice(lead.length), width - lead.length, '  ');
      return wrapped.map((l) => `${lead}${l}`);
    })
    .join('\n');
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

/** Rows as cards of `label: value` lines; long values wrap onto indented lines, ids and names stay whole. */
export function renderCards(
  columns: readonly Column[],
  cells: readonly (readonly string[])[],
  width: number,
  whole: readonly boolean[],
): string {
  const labels = columns.map((c) => showInvisible(c.label, { newlines: false }));
  // Labels line up, but a long one does not push every value off a narrow screen.
  const pad = Math.min(Math.max(...labels.map((l) => l.length)) + 1, Math.floor(width / 3));
  return cells
    .map((row) =>
      columns
        .flatMap((_, i) => {
          const head = `${labels[i] ?? ''}:`.padEnd(pad);
          const value = row[i] ?? '';
          const line = `${head} ${value}`.trimEnd();
          if (line.length <= width) return [line];
          const keep = whole[i] === true;
          const indent = ' '.repeat(head.length + 1);
          // The value continues under itself when every word fits there (names inside a query stay whole)…
          const beside = keep ? [value] : wrapText(value, width - indent.length);
          if (width - indent.length >= 24 && beside.every((l) => l.length <= width - indent.length)) {
            const [first = '', ...rest] = beside;
            return [`${head} ${first}`, ...rest.map((l) => `${indent}${l}`)];
          }
          // …else under the label with the whole width. An id or name stays one line, even if wider than
          // the screen (it is copied whole); free text wraps, breaking only a word longer than a line.
          if (keep) return [head.trimEnd(), `  ${value}`];
          return [head.trimEnd(), ...wrapText(value, width - 2, '', true).map((l) => `  ${l}`)];
        })
        .join('\n'),
    )
    .join('\n\n');
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
  const maxColumn = options.maxColumnWidth ?? width;
  const cells = rows.map((row) => columns.map((col) => format(row[col.key], col.kind)));
  const importance = columns.map((col, i) =>
    importanceOf(
      col,
      cells.map((r) => r[i] ?? ''),
    ),
  );
  const whole = wholeColumns(columns, cells);
  // Free text may be shortened with "…" or wrapped; `high` columns are kept whole like names.
  const free = columns.map((col, i) => col.kind === 'text' && !whole[i] && importance[i] !== 'high');
  const labels = columns.map((c) => showInvisible(c.label, { newlines: false }));
  const natural = columns.map((_, i) =>
    Math.max(labels[i]?.length ?? 0, ...cells.map((r) => (r[i] ?? '').length)),
  );
  // A free column shows its whole label only when its values are that wide.
  const least = natural.map((n, i) => (free[i] ? Math.min(n, MIN_FREE) : n));
  const cards = (): Layout => ({
    kind: 'cards',
    text: renderCards(columns, cells, width, whole),
    hidden: [],
    clipped: false,
  });
  const sum = (ws: readonly number[], shown: readonly number[]) =>
    shown.reduce((a, i) => a + (ws[i] ?? 0), 0) + SEPARATOR * Math.max(0, shown.length - 1);
  let shown = columns.map((_, i) => i);
  const capped = natural.map((n, i) => (free[i] ? Math.min(n, maxColumn) : n));
  if (sum(capped, shown) > width || capped.some((c, i) => c < (natural[i] ?? 0))) {
    if (options.preferCards) return cards();
    // Connection details and the like go first, so free text keeps its room.
    shown = shown.filter((i) => importance[i] !== 'low');
    const rank = (i: number) => (importance[i] === 'low' ? 0 : importance[i] === 'normal' ? 1 : 2);
    while (sum(least, shown) > width) {
      const droppable = shown.filter((i) => rank(i) < 2 && !free[i]);
      // Free text (a query) is the last normal column to go: shortened, it still says what runs.
      const pool = droppable.length > 0 ? droppable : shown.filter((i) => rank(i) < 2);
      if (pool.length === 0) return cards();
      const worst = Math.min(...pool.map(rank));
      const victim = pool.filter((i) => rank(i) === worst).at(-1);
      shown = shown.filter((i) => i !== victim);
    }
    if (shown.length === 0) return cards();
  }
  const widths = capped.slice();
  // Shrink the widest free columns until the visible ones fit.
  while (sum(widths, shown) > width) {
    const candidates = shown.filter((i) => free[i] && (widths[i] ?? 0) > (least[i] ?? 0));
    if (candidates.length === 0) return cards();
    const widest = candidates.reduce((a, b) => ((widths[b] ?? 0) > (widths[a] ?? 0) ? b : a));
    widths[widest] = (widths[widest] ?? 0) - 1;
  }
  // A short table wraps its free text rather than shortening it: every word of a health check stays.
  const wraps = (i: number) => columns[i]?.wrap === true || (free[i] === true && rows.length <= WRAP_ROWS);
  let clipped = false;
  const line = (values: readonly string[]): string[] => {
    // A wrapping column gives its row as many lines as it needs; the other cells sit on the first.
    const parts = shown.map((i) => {
      const w = widths[i] ?? 0;
      const value = values[i] ?? '';
      if (wraps(i) && value.length > w) return wrapText(value, w, '', true);
      if (value.length > w) clipped = true;
      return [clip(value, w)];
    });
    const height = Math.max(...parts.map((p) => p.length));
    return Array.from({ length: height }, (_, row) =>
      shown
        .map((i, at) => {
          const w = widths[i] ?? 0;
          const text = parts[at]?.[row] ?? '';
          return columns[i] && RIGHT_ALIGNED.has(columns[i].kind) ? text.padStart(w) : text.padEnd(w);
        })
        .join(' '.repeat(SEPARATOR))
        .trimEnd(),
    );
  };
  const header = line(labels.map((l, i) => clip(l, widths[i] ?? 0)));
  clipped = false; // a shortened label is not a shortened value
  const rule = shown.map((i) => '-'.repeat(widths[i] ?? 0)).join(' '.repeat(SEPARATOR));
  const body = cells.flatMap(line);
  const hidden = columns.flatMap((_, i) => (shown.includes(i) ? [] : [labels[i] ?? '']));
  if (options.preferCards && (clipped || hidden.length > 0)) return cards();
  return { kind: 'table', text: [...header, rule, ...body].join('\n'), hidden, clipped };
}

/** The one line that says which columns a narrow table left out. */
export function hiddenNote(hidden: readonly string[], where = 'dbops exec --json shows all'): string {
  return `(hidden: ${hidden.join(', ')} — ${where})`;
}
