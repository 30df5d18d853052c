// Approval buttons and the deny-reason modal; their custom ids carry the request id, so a click still works
// after a restart (nothing about a pending request lives in process memory).
import {
  type APIActionRowComponent,
  type APIComponentInMessageActionRow,
  type APIModalInteractionResponseCallbackData,
  ButtonStyle,
  ComponentType,
  TextInputStyle,
} from 'discord.js';
import type { Reply } from '../../core/reply.js';

const PREFIX = 'dbops';

export type ComponentAction = 'approve' | 'deny' | 'deny-reason';

/** `dbops:approve:7` — at most 100 characters, unique per message (Discord's custom_id rules). */
export function customId(action: ComponentAction, requestId: number): string {
  return `${PREFIX}:${action}:${requestId}`;
}

export function parseCustomId(id: string): { action: ComponentAction; requestId: number } | undefined {
  const match = /^dbops:(approve|deny|deny-reason):(\d{1,15})$/.exec(id);
  if (!match?.[1] || !match[2]) return undefined;
  return { action: match[1] as ComponentAction, requestId: Number(match[2]) };
}

export function approvalButtons(requestId: number): APIActionRowComponent<APIComponentInMessageActionRow> {
  return {
    type: ComponentType.ActionRow,
    components: [
      {
        type: ComponentType.Button,
        style: ButtonStyle.Success,
        label: 'Approve',
        custom_id: customId('approve', requestId),
      },
      {
        type: ComponentType.Button,
        style: ButtonStyle.Danger,
        label: 'Deny',
        custom_id: customId('deny', requestId),
      },
    ],
  };
}

export const REASON_INPUT = 'reason';
const REASON_MAX = 500;

/** The modal a Deny click opens: the reason becomes `/db deny <id> <reason>`. */
export function denyModal(requestId: number): APIModalInteractionResponseCallbackData {
  return {
    custom_id: customId('deny-reason', requestId),
    title: `Deny request #${requestId}`.slice(0, 45),
    components: [
      {
        type: ComponentType.ActionRow,
        components: [
          {
            type: ComponentType.TextInput,
            custom_id: REASON_INPUT,
            style: TextInputStyle.Paragraph,
            label: 'Why deny it? (shown in the thread)',
            placeholder: 'e.g. not during business hours; use --older-than 30m',
            required: true,
            min_length: 1,
            max_length: REASON_MAX,
          },
        ],
      },
    ],
  };
}

/** `/db deny 7 "<reason>"`: one quoted word for the grammar, whatever the person typed. */
export function denyCommand(requestId: number, reason: string): string {
  const oneLine = reason.replace(/\s+/g, ' ').trim().slice(0, REASON_MAX);
  if (oneLine === '') return `/db deny ${requestId}`;
  return `/db deny ${requestId} "${oneLine.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** `dbops:page:r7f3kq:3` — a "Next page" button: the answer's reference and a page number, nothing else. */
export function pageId(ref: string, page: number): string {
  return `${PREFIX}:page:${ref}:${page}`;
}

/** The reference and page of a page button; undefined for any other id (or a forged one). */
export function parsePageId(id: string): { ref: string; page: number } | undefined {
  const match = /^dbops:page:(r[a-hjkmnp-z2-9]{5}):([1-9]\d{0,6})$/.exec(id);
  if (!match?.[1] || !match[2]) return undefined;
  return { ref: match[1], page: Number(match[2]) };
}

/** Whether an id claims to be a page button, well-formed or not. */
export function isPageId(id: string): boolean {
  return id.startsWith(`${PREFIX}:page:`);
}

/** The "Next page" button under a paged public answer, when another page exists. */
export function pageButtons(reply: Reply): APIActionRowComponent<APIComponentInMessageActionRow>[] {
  const page = reply.result?.page;
  if (reply.status !== 'ok' || reply.ephemeral || !page?.next || reply.ref === undefined) return [];
  return [
    {
      type: ComponentType.ActionRow,
      components: [
        {
          type: ComponentType.Button,
          style: ButtonStyle.Secondary,
          label: `Next page (${page.number + 1})`,
          custom_id: pageId(reply.ref, page.number + 1),
        },
      ],
    },
  ];
}
