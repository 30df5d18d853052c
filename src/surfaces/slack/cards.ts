// The approval card of a request (Approve / Deny buttons while pending, the outcome once decided) and the Deny modal.
import type { types } from '@slack/bolt';
import { approvers } from '../../core/reply-text.js';
import { formatTime } from '../../core/time-format.js';
import { showInvisible } from '../../core/visible.js';
import type { ApproverNotice } from '../../identity/approvers.js';
import type { ApprovalRequest } from '../../state/types.js';
import { actorMention } from './identity.js';
import {
  type Block,
  clip,
  context,
  escapeText,
  inlineCode,
  mrkdwn,
  resultBlocks,
  SLACK_LIMITS,
  section,
  withinBlockLimit,
} from './render.js';

/** Action and callback ids: the buttons carry only the request id, so they work after a restart. */
export const ACTION_APPROVE = 'dbops_approve';
export const ACTION_DENY = 'dbops_deny';
export const VIEW_DENY = 'dbops_deny_reason';
export const DENY_REASON_BLOCK = 'reason';
export const DENY_REASON_ACTION = 'reason';

/** Where a request's card lives, stored in request.refs.slack so any replica can update it. */
export interface CardRef {
  channel: string;
  /** The card message. */
  ts: string;
  /** The thread everything about the request goes to. */
  thread: string;
}

export function cardRef(refs: Record<string, unknown>): CardRef | undefined {
  const slack = refs.slack;
  if (typeof slack !== 'object' || slack === null) return undefined;
  const { channel, ts, thread } = slack as Record<string, unknown>;
  if (typeof channel !== 'string' || typeof ts !== 'string') return undefined;
  return { channel, ts, thread: typeof thread === 'string' ? thread : ts };
}

/** A request id from a button value or the modal's metadata; anything else is ignored. */
export function parseRequestId(value: unknown): number | undefined {
  if (typeof value !== 'string' || !/^\d{1,15}$/.test(value)) return undefined;
  return Number(value);
}

/** Slack shows `<!date^…>` in each reader's own time zone; the fallback is UTC. */
function slackDate(date: Date): string {
  const seconds = Math.floor(date.getTime() / 1000);
  return `<!date^${seconds}^{date_short_pretty} {time}|${formatTime(date)}>`;
}

/** The arguments part of the canonical command ("kill-idle staging --older-than 5m" → "--older-than 5m"). */
function argumentsOf(request: ApprovalRequest): string {
  const prefix = `${request.operation} ${request.target}`;
  if (request.command === prefix) return '';
  return request.command.startsWith(`${prefix} `)
    ? request.command.slice(prefix.length + 1)
    : request.command;
}

function field(label: string, value: string): types.MrkdwnElement {
  return mrkdwn(clip(`*${label}*\n${value}`, SLACK_LIMITS.fieldText));
}

function approvedBy(request: ApprovalRequest): string {
  return request.votes
    .filter((v) => v.vote === 'approve')
    .map((v) => actorMention(v))
    .join(', ');
}

/** One line about where the request stands, with who decided it. */
export function statusLine(request: ApprovalRequest): string {
  const by = approvedBy(request);
  const have = approvers(request).length;
  switch (request.status) {
    case 'pending':
      return have > 0
        ? `:hourglass_flowing_sand: approved by ${by} (${have} of ${request.approvalsRequired}) — waiting for another approver`
        : `:hourglass_flowing_sand: waiting for approval — expires ${slackDate(request.expiresAt)}`;
    case 'approved':
      return `:white_check_mark: approved by ${by} — starting`;
    case 'running':
      return `:white_check_mark: approved by ${by} — running…`;
    case 'succeeded':
      return `:white_check_mark: approved by ${by} — done; the result is in this thread`;
    case 'failed':
      return `:x: approved by ${by} — failed${request.error ? `: ${escapeText(clip(request.error, 500))}` : ''}`;
    case 'denied': {
      const deny = request.votes.find((v) => v.vote === 'deny');
      const reason = request.reason ? `: ${escapeText(clip(request.reason, 500))}` : '';
      return `:no_entry: denied by ${deny ? actorMention(deny) : 'an approver'}${reason}`;
    }
    case 'cancelled':
      return `:heavy_multiplication_x: cancelled by ${actorMention(request.requester)}`;
    case 'expired':
      return `:hourglass: expired ${slackDate(request.expiresAt)} without approval — ask again if it is still needed`;
  }
}

/** The first line of an approved run's result: which request, and who approved it. */
export function requestHeadline(request: ApprovalRequest): string {
  const by = approvedBy(request);
  return `*#${request.id}* ${inlineCode(request.command)}${by ? ` — approved by ${by}` : ''}`;
}

/** Slack user group ids as config and Slack give them; nothing else is ever put into a `<!subteam^…>`. */
export const GROUP_ID = /^S[A-Z0-9]{2,31}$/;

/**
 * Who is asked, on the card itself: "<!subteam^S0DBA> needs 1 of: dba — not @alice". The groups are
 * mentioned only when the environment says `notify: mention`; with `dm` or `none` the line names the roles
 * and pings nobody. Slack builds mobile notifications from the top-level `text` only, desktop ones from
 * the blocks first (docs.slack.dev changelog 2026/07/13 "notification changes"), so the line is in both:
 * this one in `text`, askBlock's in the blocks. An edit (chat.update) notifies nobody again: a card
 * redrawn after a vote keeps the line without a ping.
 */
export function askLine(request: ApprovalRequest, notice: ApproverNotice): string {
  const groups =
    notice.mode === 'mention'
      ? notice.slackGroups.filter((g) => GROUP_ID.test(g)).map((g) => `<!subteam^${g}>`)
      : [];
  const need = Math.max(1, request.approvalsRequired - approvers(request).length);
  const roles = notice.roles.length > 0 ? notice.roles.map(escapeText).join(', ') : 'nobody';
  const who = groups.length > 0 ? `${groups.join(' ')} ` : '';
  return `${who}needs ${need} of: ${roles} — not ${actorMention(request.requester)}`;
}

/**
 * The same line as a block: a rich_text block, whose `usergroup` element is the Block Kit form of a group
 * mention (docs.slack.dev block-elements/usergroup-element); its text elements are literal text, so no
 * role name or person can be markup.
 */
export function askBlock(request: ApprovalRequest, notice: ApproverNotice): types.RichTextBlock {
  const groups = notice.mode === 'mention' ? notice.slackGroups.filter((g) => GROUP_ID.test(g)) : [];
  const need = Math.max(1, request.approvalsRequired - approvers(request).length);
  const roles = notice.roles.length > 0 ? notice.roles.join(', ') : 'nobody';
  const requester = /^slack:[A-Z0-9]+\/([UW][A-Z0-9]+)$/.exec(request.requester.identity)?.[1];
  const elements: types.RichTextElement[] = [
    { type: 'emoji', name: 'bell' },
    { type: 'text', text: ' ' },
  ];
  for (const group of groups) {
    elements.push({ type: 'usergroup', usergroup_id: group }, { type: 'text', text: ' ' });
  }
  elements.push({ type: 'text', text: showInvisible(`needs ${need} of: ${roles} — not `) });
  elements.push(
    requester
      ? { type: 'user', user_id: requester }
      : { type: 'text', text: showInvisible(request.requester.person) },
  );
  return { type: 'rich_text', elements: [{ type: 'rich_text_section', elements }] };
}

export interface RenderedCard {
  text: string;
  blocks: Block[];
  /** Preview rows (or columns) left out of the card (the preview then goes to the thread as CSV). */
  omittedRows: number;
}

/**
 * The card: operation, target, environment, requester, arguments, expiry, the preview, and — while the
 * request is pending — Approve / Deny buttons whose value is the request id. Once decided the buttons are
 * replaced by the outcome, so a second click is not even offered (the core refuses it anyway).
 */
export function renderCard(
  request: ApprovalRequest,
  approverRoles: readonly string[],
  notice?: ApproverNotice,
): RenderedCard {
  const args = argumentsOf(request);
  // While pending, who is asked; once decided the mention is gone and the status line says who decided.
  const ask = request.status === 'pending' && notice ? askLine(request, notice) : undefined;
  const blocks: Block[] = [
    {
      type: 'header',
      text: {
        type: 'plain_text',
        text: clip(
          `Approval #${request.id}: ${request.operation} on ${request.target}`,
          SLACK_LIMITS.headerText,
        ),
      },
    },
    ...(ask && notice ? [askBlock(request, notice)] : []),
    {
      type: 'section',
      fields: [
        field('Operation', `${inlineCode(request.operation)} (${request.risk})`),
        field('Target', inlineCode(request.target)),
        field('Environment', escapeText(request.environment)),
        field('Requested by', actorMention(request.requester)),
        field('Arguments', args ? inlineCode(args) : 'none'),
        field('Expires', slackDate(request.expiresAt)),
        ...(request.requestReason !== undefined ? [field('Reason', escapeText(request.requestReason))] : []),
      ],
    },
  ];
  const preview = resultBlocks(request.preview.result);
  blocks.push(...preview.blocks);
  if (request.status === 'pending') {
    const need = request.approvalsRequired - approvers(request).length;
    const roles = approverRoles.length > 0 ? approverRoles.map(escapeText).join(' or ') : 'nobody (no role)';
    const typed = `${inlineCode(`/db approve ${request.id}`)} / ${inlineCode(`/db deny ${request.id} <reason>`)}`;
    blocks.push(
      context(
        ask
          ? `Approve or deny here, or type ${typed}.`
          : `Needs ${need} more approval${need === 1 ? '' : 's'} from ${roles}, not the requester. Or type ${typed}.`,
      ),
    );
    if (approvers(request).length > 0) blocks.push(section(statusLine(request)));
    blocks.push({
      type: 'actions',
      block_id: `dbops_request_${request.id}`,
      elements: [
        {
          type: 'button',
          action_id: ACTION_APPROVE,
          text: { type: 'plain_text', text: 'Approve' },
          style: 'primary',
          value: String(request.id),
          confirm: {
            title: { type: 'plain_text', text: `Approve #${request.id}?` },
            text: mrkdwn(
              clip(`Runs ${inlineCode(request.command)} on ${escapeText(request.environment)}.`, 300),
            ),
            confirm: { type: 'plain_text', text: 'Approve and run' },
            deny: { type: 'plain_text', text: 'Back' },
          },
        },
        {
          type: 'button',
          action_id: ACTION_DENY,
          text: { type: 'plain_text', text: 'Deny' },
          style: 'danger',
          value: String(request.id),
        },
      ],
    });
  } else {
    blocks.push(section(statusLine(request)));
  }
  const state = request.status === 'pending' ? 'waits for approval' : request.status;
  return {
    text: clip(`#${request.id} ${escapeText(request.command)}: ${state}`, 2000) + (ask ? ` — ${ask}` : ''),
    blocks: withinBlockLimit(blocks),
    omittedRows: preview.omittedRows + preview.hiddenColumns,
  };
}

/** Where the Deny modal's submission must answer: the request and its thread. */
export interface DenyMetadata {
  id: number;
  channel: string;
  thread: string;
}

export function parseDenyMetadata(text: string | undefined): DenyMetadata | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Record<string, unknown>;
    const id = typeof value.id === 'number' && Number.isSafeInteger(value.id) ? value.id : undefined;
    if (id === undefined || typeof value.channel !== 'string' || typeof value.thread !== 'string')
      return undefined;
    return { id, channel: value.channel, thread: value.thread };
  } catch {
    return undefined;
  }
}

/** The modal that asks why; its submission becomes `/db deny <id> <reason>` from the person who submits it. */
export function denyModal(meta: DenyMetadata): types.ModalView {
  return {
    type: 'modal',
    callback_id: VIEW_DENY,
    private_metadata: JSON.stringify(meta),
    title: { type: 'plain_text', text: clip(`Deny request #${meta.id}`, 24) },
    submit: { type: 'plain_text', text: 'Deny' },
    close: { type: 'plain_text', text: 'Back' },
    blocks: [
      {
        type: 'input',
        block_id: DENY_REASON_BLOCK,
        label: { type: 'plain_text', text: 'Why? The requester sees this in the thread.' },
        element: {
          type: 'plain_text_input',
          action_id: DENY_REASON_ACTION,
          multiline: true,
          max_length: 500,
        },
      },
    ],
  };
}
