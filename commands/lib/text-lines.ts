// Preformatted answers that fit 80 columns: long values wrap onto indented lines instead of being clipped.
import { formatCount } from '../../src/core/render.js';
import type { Column, OperationResult, Row } from '../../src/core/types.js';

/** Widest line of a preformatted answer. */
export const TEXT_WIDTH = 80;

/**
 * `text` cut into lines of at most `width` characters, breaking at spaces where it can and inside a word
 * only when one word is longer than a line; lines after the first start with `indent` spaces.
 */
export function wrap(text: string, indent = 4, width = TEXT_WIDTH): string[] {
  // Runs of spaces stay (they align columns); line breaks and tabs inside a value become one space.
  const flat = text.replace(/[\r\n\t\v\f]+/g, ' ').trimEnd();
  const lines: string[] = [];
  let rest = flat;
  let prefix = '';
  while (rest.length > 0) {
    const room = Math.max(8, width - prefix.length);
    if (rest.length <= room) {
      lines.push(prefix + rest);
      break;
    }
    let cut = rest.lastIndexOf(' ', room);
    if (cut <= 0) cut = room;
    lines.push(prefix + rest.slice(0, cut).trimEnd());
    rest = rest.slice(cut).trimStart();
    prefix = ' '.repeat(indent);
  }
  return lines.length === 0 ? [prefix] : lines;
}

/**
 * Cells laid out in columns of the given widths, the last one free; a cell longer than its column is never
 * clipped: it takes its room and the cells after it move right (wrapping when the line gets too long).
 */
export function columns(cells: readonly string[], widths: readonly number[], indent = 4): string[] {
  let line = '';
  cells.forEach((cell, i) => {
    const width = widths[i];
    const last = i === cells.length - 1;
    const text = last || width === undefined ? cell : cell.padEnd(width);
    line += i === 0 ? text : `  ${text}`;
  });
  return wrap(line, indent);
}

const LINE_COLUMN: Column[] = [{ key: 'line', label: 'line', kind: 'text' }];

/** An answer shown as preformatted lines; machine values go in `data` for `--json`. */
export function textResult(
  lines: readonly string[],
  rest: Omit<OperationResult, 'columns' | 'rows' | 'display' | 'truncated'> & { truncated?: boolean },
): OperationResult {
  const rows: Row[] = lines.map((line) => ({ line }));
  return { ...rest, columns: LINE_COLUMN, rows, display: 'text', truncated: rest.truncated ?? false };
}

/** "a, b, c and 4 more": whole names (never clipped), at most `max` of them. */
export function nameList(names: readonly string[], max = 5): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown} and ${formatCount(names.length - max)} more` : shown;
}
