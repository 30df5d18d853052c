// The inside of a result's code block on Discord, laid out for a phone: headline, table or cards, row
// count, hidden columns and notes, every line within PHONE_WIDTH.
import { hiddenNote, PHONE_WIDTH, wrapLines } from '../../core/layout.js';
import { countLines } from '../../core/paging.js';
import { layoutResult, textLines } from '../../core/render.js';
import type { OperationResult } from '../../core/types.js';

/** Code blocks are laid out for a phone (see PHONE_WIDTH): columns by importance, else cards. */
const TABLE_WIDTH = PHONE_WIDTH;

export function plural(n: number, word: string): string {
  return `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * The inside of the code block for the first `shown` rows: headline, table or cards, count, notes, each
 * line within the phone width; and how many columns the table had to leave out.
 */
export function resultBody(result: OperationResult, shown: number): { text: string; hidden: number } {
  const parts: string[] = [];
  if (result.headline) parts.push(wrapLines(result.headline, TABLE_WIDTH));
  const total = result.rows.length;
  let hidden: string[] = [];
  if (result.columns.length > 0) {
    const rows = result.rows.slice(0, shown);
    if (total === 0) parts.push('(no rows)');
    else if (result.display === 'text') {
      if (rows.length > 0) parts.push(textLines({ ...result, rows }, TABLE_WIDTH));
    } else if (rows.length > 0) {
      const layout = layoutResult(result, rows, TABLE_WIDTH);
      parts.push(layout.text);
      hidden = layout.hidden;
    }
    if (total > 0 && shown >= total && result.display !== 'text') {
      parts.push(...countLines(result, plural(total, 'row')));
    } else if (total > 0 && shown >= total && (result.truncated || result.page)) {
      parts.push(...(result.page ? countLines(result, plural(total, 'line')) : ['… more lines (capped)']));
    } else if (total === 0 && result.page) {
      parts.push(...countLines(result, ''));
    }
    if (hidden.length > 0) parts.push(hiddenNote(hidden, 'all columns in the CSV'));
  }
  for (const note of result.notes ?? []) parts.push(note);
  return { text: wrapLines(parts.join('\n'), TABLE_WIDTH), hidden: hidden.length };
}
