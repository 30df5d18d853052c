// Replies and results as Block Kit within Slack's limits, with every database value escaped.
import type { types } from '@slack/bolt';
import { resultToCsv } from '../../core/csv.js';
import { hiddenNote, PHONE_WIDTH } from '../../core/layout.js';
import { countLines } from '../../core/paging.js';
import { formatCount, layoutResult, renderCard, textLines } from '../../core/render.js';
import { type Reply, replyTag } from '../../core/reply.js';
import type { OperationResult } from '../../core/types.js';
import { showInvisible } from '../../core/visible.js';
import { CSV_BUTTON_NOTE, csvButton, offersCsvButton } from './csv-button.js';
import { pageButton } from './paging.js';

export type Block = types.KnownBlock;

/** Slack's documented limits (docs.slack.dev block reference); a message over them is refused outright. */
export const SLACK_LIMITS = {
  /** Characters in one text object (section text, context element). */
  text: 3000,
  blocksPerMessage: 50,
  headerText: 150,
  fields: 10,
  fieldText: 2000,
  contextElements: 10,
} as const;

/** Code blocks are laid out for a phone (see PHONE_WIDTH): columns by importance, else cards. */
export const TABLE_WIDTH = PHONE_WIDTH;

/** A file that goes to the thread with the message (the full result as CSV, an operation's export). */
export interface UploadFile {
  filename: string;
  title: string;
  /** Text (CSV) or bytes (a PNG chart). */
  content: string | Uint8Array;
}

export interface RenderedMessage {
  /** Notification and screen-reader text; short, escaped. */
  text: string;
  blocks: Block[];
  files: UploadFile[];
}

/** Escapes the three characters Slack reads as markup, so text can neither ping, link nor break a block. */
export function escapeText(text: string): string {
  return showInvisible(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Cuts text to a length, marking the cut. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/** Inline code for what a person typed: escaped, and a backtick in it cannot close the span. */
export function inlineCode(text: string): string {
  return `\`${escapeText(text.replace(/`/g, "'"))}\``;
}

/** A preformatted block: escaped, and a ``` inside cannot end it early. */
export function codeBlock(text: string): string {
  return `\`\`\`\n${escapeText(text.replace(/```/g, 'ˋˋˋ'))}\n\`\`\``;
}

/** mrkdwn that Slack shows as given: no automatic links, channel names or @here parsing (verbatim). */
export function mrkdwn(text: string): types.MrkdwnElement {
  return { type: 'mrkdwn', text: clip(showInvisible(text), SLACK_LIMITS.text), verbatim: true };
}

export function section(text: string): types.SectionBlock {
  return { type: 'section', text: mrkdwn(text) };
}

export function context(text: string): types.ContextBlock {
  return { type: 'context', elements: [mrkdwn(text)] };
}

/** The longest start of `raw` whose escaped form fits `budget` characters (marked with … when cut). */
export function clipEscaped(raw: string, budget: number): string {
  if (escapeText(raw).length <= budget) return raw;
  let used = 1;
  let end = 0;
  for (const ch of raw) {
    const cost = escapeText(ch).length;
    if (used + cost > budget) break;
    used += cost;
    end += ch.length;
  }
  return `${raw.slice(0, end)}…`;
}

const CODE_OVERHEAD = codeBlock('').length;

/** How many of `lines`, from `start`, fit together in one code-block section (at least one, clipped). */
function linesThatFit(lines: string[], start = 0): number {
  let used = CODE_OVERHEAD;
  for (let i = start; i < lines.length; i++) {
    used += escapeText(lines[i] ?? '').length + (i > start ? 1 : 0);
    if (used > SLACK_LIMITS.text) {
      if (i > start) return i - start;
      lines[i] = clipEscaped(lines[i] ?? '', SLACK_LIMITS.text - CODE_OVERHEAD);
      return 1;
    }
  }
  return lines.length - start;
}

/** The last lines that fit one code-block section (progress: the newest lines matter). */
export function tailCodeBlock(lines: readonly string[]): string {
  let used = CODE_OVERHEAD;
  let start = lines.length;
  while (start > 0) {
    const cost = escapeText(lines[start - 1] ?? '').length + (start < lines.length ? 1 : 0);
    if (used + cost > SLACK_LIMITS.text) break;
    used += cost;
    start -= 1;
  }
  if (start === lines.length && lines.length > 0) {
    return codeBlock(clipEscaped(lines[lines.length - 1] ?? '', SLACK_LIMITS.text - CODE_OVERHEAD));
  }
  return codeBlock(lines.slice(start).join('\n'));
}

/**
 * Splits preformatted text into code blocks that each fit one section. Returns the blocks and how many
 * lines did not fit within `maxBlocks`.
 */
export function codeSections(text: string, maxBlocks: number): { blocks: Block[]; omittedLines: number } {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  let start = 0;
  while (start < lines.length && blocks.length < maxBlocks) {
    const n = linesThatFit(lines, start);
    blocks.push(section(codeBlock(lines.slice(start, start + n).join('\n'))));
    start += n;
  }
  return { blocks, omittedLines: lines.length - start };
}

export interface RenderedResult {
  blocks: Block[];
  /** Rows (or cards, or lines) that did not fit the message. */
  omittedRows: number;
  /** Columns the phone-width table left out (then the CSV carries them). */
  hiddenColumns: number;
  /**
   * Only columns were left out and the note points at the "All columns (CSV)" button (`csvButton`): no
   * CSV goes with the message.
   */
  csvOnDemand: boolean;
}

function plural(n: number, word: string): string {
  return `${formatCount(n)} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * A result as blocks: headline, the rows in one code block sized to fit a section, a row count that says
 * how many rows did not fit ("N more rows — full result attached as CSV"), and the notes. Columns hidden
 * for a phone's width are in the attached CSV, or (`csvButton`, when every row fits) behind the button.
 */
export function resultBlocks(
  result: OperationResult,
  options: { attach?: boolean; csvButton?: boolean } = {},
): RenderedResult {
  const attach = options.attach ?? true;
  let csvOnDemand = false;
  const blocks: Block[] = [];
  if (result.headline) blocks.push(section(escapeText(result.headline)));
  let omittedRows = 0;
  let hiddenColumns = 0;
  if (result.columns.length > 0) {
    if (result.rows.length === 0) {
      blocks.push(context(result.page ? (countLines(result, '')[0] ?? '(no rows)') : '(no rows)'));
    } else {
      const total = result.rows.length;
      let shown: number;
      let unit = 'row';
      let hidden: string[] = [];
      if (result.display === 'text') {
        const lines = textLines(result, TABLE_WIDTH).split('\n');
        shown = linesThatFit(lines);
        blocks.push(section(codeBlock(lines.slice(0, shown).join('\n'))));
        unit = 'line';
      } else {
        const layout = layoutResult(result, result.rows, TABLE_WIDTH);
        hidden = layout.hidden;
        if (layout.kind === 'cards') {
          const cards = result.rows.map((row) => renderCard(result.columns, [row], TABLE_WIDTH));
          shown = 0;
          let used = CODE_OVERHEAD;
          for (const card of cards) {
            const cost = escapeText(card).length + (shown > 0 ? 2 : 0);
            if (used + cost > SLACK_LIMITS.text) break;
            used += cost;
            shown += 1;
          }
          if (shown === 0) {
            cards[0] = clipEscaped(cards[0] ?? '', SLACK_LIMITS.text - CODE_OVERHEAD);
            shown = 1;
          }
          blocks.push(section(codeBlock(cards.slice(0, shown).join('\n\n'))));
        } else {
          const lines = layout.text.split('\n');
          const header = lines.slice(0, 2);
          const body = lines.slice(2);
          shown = Math.max(0, linesThatFit(lines) - header.length);
          blocks.push(section(codeBlock([...header, ...body.slice(0, shown)].join('\n'))));
        }
      }
      omittedRows = total - shown;
      const parts = [
        omittedRows > 0
          ? `${formatCount(shown)} of ${plural(total, unit)} shown · ${formatCount(omittedRows)} more ${unit}${omittedRows === 1 ? '' : 's'} — ${attach ? 'full result attached as CSV' : 'not shown (Slack message limit)'}`
          : plural(total, unit),
      ];
      if (result.page) {
        const [which, next] = countLines(result, plural(total, unit));
        // The next page's exact command, whole (a button under the answer does the same).
        parts[0] = omittedRows > 0 ? `${parts[0]} · ${which ?? ''}` : (which ?? '');
        if (next) parts.push(inlineCode(next));
      } else if (result.truncated) parts.push('more rows exist in the database (row cap; narrow it)');
      csvOnDemand = attach && options.csvButton === true && omittedRows === 0 && hidden.length > 0;
      if (hidden.length > 0)
        parts.push(
          escapeText(
            hiddenNote(
              hidden,
              csvOnDemand ? CSV_BUTTON_NOTE : attach ? 'all columns in the CSV' : 'use dbops exec --json',
            ),
          ),
        );
      hiddenColumns = hidden.length;
      blocks.push(context(parts.join(' · ')));
    }
  }
  const notes = result.notes ?? [];
  if (notes.length > 0) blocks.push(context(escapeText(notes.join('\n'))));
  return { blocks, omittedRows, hiddenColumns, csvOnDemand };
}

/**
 * The files a result brings: the operation's own attachments, and the full result when rows (or columns)
 * were left out — `omittedRows` counts both.
 */
export function resultFiles(
  result: OperationResult,
  omittedRows: number,
  name: {
    operation?: string | undefined;
    target?: string | undefined;
    requestId: number | null;
    ref?: string | undefined;
  },
): UploadFile[] {
  const files: UploadFile[] = (result.attachments ?? []).map((a) => ({
    filename: a.filename,
    title: a.filename,
    content: a.bytes ?? a.content,
  }));
  if (omittedRows > 0 && !files.some((f) => f.filename.endsWith('.csv'))) {
    const base = [
      name.operation ?? 'result',
      name.target,
      name.requestId !== null ? `${name.requestId}` : name.ref,
    ]
      .filter((part) => part)
      .join('-')
      .replace(/[^A-Za-z0-9._-]/g, '_');
    files.push({
      filename: `${base}.csv`,
      title: `${name.operation ?? 'result'}${name.target ? ` ${name.target}` : ''} — full result (${plural(result.rows.length, 'row')})`,
      content: resultToCsv(result),
    });
  }
  return files;
}

/** Keeps a message within the block limit, saying what was cut. */
export function withinBlockLimit(blocks: Block[]): Block[] {
  if (blocks.length <= SLACK_LIMITS.blocksPerMessage) return blocks;
  const kept = blocks.slice(0, SLACK_LIMITS.blocksPerMessage - 1);
  kept.push(context(`… ${blocks.length - kept.length} more blocks cut (Slack allows 50 per message)`));
  return kept;
}

/** Plain text of a reply (refusals, errors, built-ins): preformatted text as code, a single line as is. */
export function textBlocks(text: string): Block[] {
  if (!text.includes('\n')) return [section(escapeText(text))];
  const { blocks, omittedLines } = codeSections(text, SLACK_LIMITS.blocksPerMessage - 1);
  if (omittedLines > 0) blocks.push(context(`… ${plural(omittedLines, 'more line')} cut`));
  return blocks;
}

/**
 * Any reply that is not an approval card: a result (with its headline, rows, count and notes, and the
 * request line for approved runs) or the reply's text. Reply text comes from the core and may quote
 * database values and user input, so it is escaped like everything else.
 */
export function renderReply(
  reply: Reply,
  options: { requestLine?: string; attach?: boolean } = {},
): RenderedMessage {
  const attach = options.attach ?? true;
  const blocks: Block[] = [];
  let files: UploadFile[] = [];
  if (options.requestLine) blocks.push(section(options.requestLine));
  if (reply.result && (reply.status === 'ok' || reply.status === 'pending')) {
    const rendered = resultBlocks(reply.result, { attach, csvButton: offersCsvButton(reply) });
    blocks.push(...rendered.blocks);
    // `#7` or `ref r7f3kq`, for the audit log — unless the message names it already.
    const tag = replyTag(reply);
    const id = tag !== undefined && !reply.message.includes(tag) ? ` · ${tag}` : '';
    blocks.push(context(`${escapeText(reply.message)}${id}`));
    const next = pageButton(reply);
    if (next) blocks.push(next);
    if (rendered.csvOnDemand && reply.ref !== undefined) {
      // Beside "Next page" when there is one: one row of buttons.
      const button = csvButton(reply.ref);
      if (next?.type === 'actions') next.elements.push(button);
      else blocks.push({ type: 'actions', block_id: `dbops_csv_${reply.ref}`, elements: [button] });
    }
    if (attach) {
      const left = rendered.omittedRows + (rendered.csvOnDemand ? 0 : rendered.hiddenColumns);
      files = resultFiles(reply.result, left, reply);
    }
  } else {
    blocks.push(...textBlocks(reply.text));
  }
  return {
    text: clip(escapeText(reply.status === 'ok' ? reply.message : reply.text), SLACK_LIMITS.text),
    blocks: withinBlockLimit(blocks),
    files,
  };
}
