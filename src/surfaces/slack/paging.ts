// The "Next page" button under a paged answer in Slack: its value is the answer's reference and the page
// number only (never a command), and a press is dispatched as `/db page <ref> <n>` by whoever pressed.
import type { types } from '@slack/bolt';
import type { Reply } from '../../core/reply.js';

export const ACTION_PAGE = 'dbops_page';

/** The button for the page after this reply's, when there is one (not on private answers). */
export function pageButton(reply: Reply): types.KnownBlock | undefined {
  const page = reply.result?.page;
  if (reply.status !== 'ok' || reply.ephemeral || !page?.next || reply.ref === undefined) return undefined;
  return {
    type: 'actions',
    block_id: `dbops_page_${reply.ref}`,
    elements: [
      {
        type: 'button',
        action_id: ACTION_PAGE,
        text: { type: 'plain_text', text: `Next page (${page.number + 1})` },
        value: `${reply.ref}:${page.number + 1}`,
      },
    ],
  };
}

/** The reference and page a button's value names, or undefined for anything else (a forged value). */
export function parsePageValue(value: unknown): { ref: string; page: number } | undefined {
  if (typeof value !== 'string') return undefined;
  const match = /^(r[a-hjkmnp-z2-9]{5}):([1-9]\d{0,6})$/.exec(value);
  if (!match?.[1] || !match[2]) return undefined;
  return { ref: match[1], page: Number(match[2]) };
}
