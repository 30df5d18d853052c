// The "All columns (CSV)" button under a Slack answer whose table hid columns for a phone's width: its value
// is the answer's reference only (never a command), and a press is dispatched as `/db csv <ref>` by whoever
// pressed, so the CSV is made on demand instead of uploaded with every answer.
import type { types } from '@slack/bolt';
import { REF_PATTERN } from '../../core/refs.js';
import type { Reply } from '../../core/reply.js';

export const ACTION_CSV = 'dbops_csv';

export const CSV_BUTTON_TEXT = 'All columns (CSV)';

/** What the count line says of the hidden columns when the button offers them. */
export const CSV_BUTTON_NOTE = `the ${CSV_BUTTON_TEXT} button has them`;

/**
 * Whether this reply's hidden columns may be offered by the button: a read that ran at once and is posted
 * in the thread (a request's result or preview cannot be run again; a private answer has no thread file).
 */
export function offersCsvButton(reply: Reply): boolean {
  return (
    reply.status === 'ok' &&
    !reply.ephemeral &&
    reply.requestId === null &&
    reply.request === undefined &&
    reply.risk === 'read' &&
    reply.operation !== undefined &&
    reply.ref !== undefined &&
    REF_PATTERN.test(reply.ref) &&
    !(reply.result?.attachments ?? []).some((a) => a.filename.endsWith('.csv'))
  );
}

export function csvButton(ref: string): types.Button {
  return {
    type: 'button',
    action_id: ACTION_CSV,
    text: { type: 'plain_text', text: CSV_BUTTON_TEXT },
    value: ref,
  };
}

/** The reference a button's value names, or undefined for anything else (a forged value). */
export function parseCsvValue(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length !== 6 || !REF_PATTERN.test(value)) return undefined;
  return value;
}
