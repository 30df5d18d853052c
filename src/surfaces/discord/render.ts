// Turns core replies and approval requests into Discord messages that fit Discord's limits: content
// ≤ 2,000 characters, embeds ≤ 6,000 in all, fields ≤ 1,024; tables in code blocks sized to fit and the full
// result as a CSV attachment. Pure functions: no I/O.
import { type APIEmbed, type APIEmbedField, escapeMarkdown } from 'discord.js';
import { resultToCsv } from '../../core/csv.js';
import type { RequestChange } from '../../core/dispatch.js';
import { type Reply, replyTag } from '../../core/reply.js';
import type { OperationResult } from '../../core/types.js';
import { showInvisible } from '../../core/visible.js';
import type { ApproverNotice } from '../../identity/approvers.js';
import type { ApprovalRequest } from '../../state/types.js';
import type { OutgoingFile, OutgoingMessage } from './api.js';
import { approvalButtons, pageButtons } from './components.js';
import { mentionOfActor } from './identity.js';
import { plural, resultBody } from './result-body.js';

/** Discord's documented limits (developers/resources/message.mdx, components, channels). */
export const LIMITS = {
  content: 2000,
  embedTotal: 6000,
  embedTitle: 256,
  embedDescription: 4096,
  embedFields: 25,
  fieldName: 256,
  fieldValue: 1024,
  footer: 2048,
  threadName: 100,
  filesPerMessage: 10,
  /** Ephemeral follow-ups sent for one long private answer. */
  privateMessages: 4,
} as const;

const FENCE = '```';

/** Text that renders literally: markdown, headings, lists and masked links escaped. */
export function escapeText(text: string): string {
  return escapeMarkdown(showInvisible(text), {
    heading: true,
    bulletedList: true,
    numberedList: true,
    maskedLink: true,
  });
}

/** Breaks runs of backticks so a value can never close the code block it is shown in. */
function neutralizeFences(text: string): string {
  // Values first get their own invisible characters escaped; the zero-width space below is ours.
  return showInvisible(text).replace(/`(?=`)/g, '`\u200b');
}

export function codeBlock(text: string): string {
  return `${FENCE}\n${neutralizeFences(text)}\n${FENCE}`;
}

export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/** A code block of at most `max` characters, cut at a line boundary when it must be cut. */
function clippedBlock(text: string, max: number): string {
  const block = codeBlock(text);
  if (block.length <= max) return block;
  const room = max - (FENCE.length * 2 + 4);
  const lines = neutralizeFences(text).split('\n');
  const kept: string[] = [];
  let used = 0;
  for (const line of lines) {
    if (used + line.length + 1 > room) break;
    kept.push(line);
    used += line.length + 1;
  }
  if (kept.length === 0) kept.push(clip(lines[0] ?? '', room));
  else kept.push('…');
  return `${FENCE}\n${kept.join('\n')}\n${FENCE}`.slice(0, max);
}

/** A file name Discord and spreadsheets accept. */
export function fileName(base: string, extension: string): string {
  const safe = base.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'result';
  return `${safe.slice(0, 80)}.${extension}`;
}

function attachmentFiles(result: OperationResult): OutgoingFile[] {
  return (result.attachments ?? []).map((a) => ({
    name: fileName(
      a.filename.replace(/\.[A-Za-z0-9]{1,5}$/, ''),
      /\.([A-Za-z0-9]{1,5})$/.exec(a.filename)?.[1] ?? 'txt',
    ),
    contentType: a.contentType,
    data: a.bytes ? Buffer.from(a.bytes) : Buffer.from(a.content, 'utf8'),
  }));
}

export interface RenderedResult {
  /** Markdown: the code block, and the "more rows" line when rows were left out. */
  text: string;
  files: OutgoingFile[];
  shownRows: number;
  /** Columns the phone-width table left out (the CSV has them). */
  hiddenColumns: number;
}

/** Every row of a result as a CSV file. */
export function csvFile(result: OperationResult, base: string): OutgoingFile {
  return {
    name: fileName(base, 'csv'),
    contentType: 'text/csv',
    data: Buffer.from(resultToCsv(result), 'utf8'),
  };
}

/**
 * A result in at most `budget` characters: all of it in a code block when it fits; otherwise as many rows
 * as fit, "N more rows — full result attached as CSV", and the CSV of every row.
 */
export function renderResult(
  result: OperationResult,
  budget: number,
  csvBase: string,
  where = 'full result attached as CSV',
): RenderedResult {
  const total = result.rows.length;
  const own = attachmentFiles(result);
  const body = resultBody(result, total);
  const whole = codeBlock(body.text);
  const withCsv = () => [csvFile(result, csvBase), ...own].slice(0, LIMITS.filesPerMessage);
  // Columns left out on a phone are in the CSV.
  if (whole.length <= budget)
    return {
      text: whole,
      files: body.hidden > 0 ? withCsv() : own,
      shownRows: total,
      hiddenColumns: body.hidden,
    };
  const more = (shown: number) =>
    `${shown.toLocaleString('en-US')} of ${plural(total, 'row')} shown · ${plural(total - shown, 'more row')} — ${where}`;
  const fits = (shown: number) =>
    codeBlock(resultBody(result, shown).text).length + 1 + more(shown).length <= budget;
  // Binary search for the most rows that fit.
  let lo = 0;
  let hi = Math.max(0, total - 1);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  const shown = lo;
  const tail = more(shown);
  const block = clippedBlock(resultBody(result, shown).text, Math.max(16, budget - tail.length - 1));
  return { text: `${block}\n${tail}`, files: withCsv(), shownRows: shown, hiddenColumns: 0 };
}

/** The public answer to a command that produced a result. */
export function renderResultReply(reply: Reply): OutgoingMessage {
  const result = reply.result;
  if (!result) return renderText(reply.text)[0] ?? { content: '' };
  const tag = replyTag(reply);
  const header = clip(
    `${escapeText(reply.message)}${tag !== undefined && !reply.message.includes(tag) ? ` · ${tag}` : ''}`,
    300,
  );
  const base = `${reply.operation ?? 'result'}-${reply.target ?? ''}-${reply.requestId ?? reply.ref ?? ''}`;
  const rendered = renderResult(result, LIMITS.content - header.length - 1, base);
  const next = pageButtons(reply);
  return {
    content: `${header}\n${rendered.text}`,
    files: rendered.files,
    ...(next.length > 0 ? { components: next } : {}),
  };
}

/**
 * Plain text from the core (refusals, help, status, pending lists) as one or more messages: one line as it
 * is, several lines in code blocks (the core aligns tables with spaces), split at line boundaries.
 */
export function renderText(text: string, maxMessages: number = LIMITS.privateMessages): OutgoingMessage[] {
  const trimmed = showInvisible(text).trim();
  if (!trimmed.includes('\n') && trimmed.length <= LIMITS.content) return [{ content: trimmed }];
  const room = LIMITS.content - (FENCE.length * 2 + 4);
  const chunks: string[] = [];
  let current: string[] = [];
  let used = 0;
  for (const raw of neutralizeFences(trimmed).split('\n')) {
    const line = clip(raw, room);
    if (used + line.length + 1 > room && current.length > 0) {
      chunks.push(current.join('\n'));
      current = [];
      used = 0;
    }
    current.push(line);
    used += line.length + 1;
  }
  if (current.length > 0) chunks.push(current.join('\n'));
  const kept = chunks.slice(0, maxMessages);
  if (chunks.length > maxMessages) {
    kept[kept.length - 1] = `${(kept[kept.length - 1] ?? '').slice(0, room - 10)}\n… (cut)`;
  }
  return kept.map((chunk) => ({ content: `${FENCE}\n${chunk}\n${FENCE}` }));
}

// ---- approval requests -------------------------------------------------------------------------------

const STATUS_COLOR: Record<ApprovalRequest['status'], number> = {
  pending: 0xf1c40f,
  approved: 0x3498db,
  running: 0x3498db,
  succeeded: 0x2ecc71,
  failed: 0xe74c3c,
  denied: 0xe74c3c,
  cancelled: 0x95a5a6,
  expired: 0x95a5a6,
};

function approverNames(request: ApprovalRequest): string[] {
  return request.votes.filter((v) => v.vote === 'approve').map((v) => v.person);
}

/** Discord renders `<t:…:R>` in each reader's time zone ("in 12 minutes"). */
function discordTime(date: Date, style: 'R' | 'f' | 't' = 'R'): string {
  return `<t:${Math.floor(date.getTime() / 1000)}:${style}>`;
}

function statusLine(request: ApprovalRequest): string {
  const by = approverNames(request);
  const approved = by.length > 0 ? ` (approved by ${by.join(', ')})` : '';
  switch (request.status) {
    case 'pending':
      return `waiting for approval — ${by.length} of ${request.approvalsRequired}${approved}`;
    case 'approved':
      return `approved by ${by.join(', ')} — about to run`;
    case 'running':
      return `running${approved}`;
    case 'succeeded':
      return `succeeded${approved}`;
    case 'failed':
      return `failed${approved}`;
    case 'denied': {
      const deny = request.votes.find((v) => v.vote === 'deny');
      return `denied${deny ? ` by ${deny.person}` : ''} — nothing ran`;
    }
    case 'cancelled':
      return `cancelled by ${request.requester.person} — nothing ran`;
    case 'expired':
      return 'expired without enough approvals — nothing ran';
  }
}

function embedLength(embed: APIEmbed): number {
  return (
    (embed.title?.length ?? 0) +
    (embed.description?.length ?? 0) +
    (embed.footer?.text.length ?? 0) +
    (embed.author?.name.length ?? 0) +
    (embed.fields ?? []).reduce((n, f) => n + f.name.length + f.value.length, 0)
  );
}

function field(name: string, value: string, inline = false): APIEmbedField {
  return {
    name: clip(showInvisible(name), LIMITS.fieldName),
    value: clip(showInvisible(value) || '—', LIMITS.fieldValue),
    inline,
  };
}

export interface CardContext {
  /** The roles that may approve on the request's environment (policy). */
  approverRoles: readonly string[];
  /** Who is asked: the card's content names them ("<@&role> needs 1 of: dba — not alice"). */
  notice?: ApproverNotice;
  /**
   * True only when the card is first posted: its `allowed_mentions` then lists the approver roles (with
   * `notify: mention`). Edits leave it out, so they parse no mention and nobody is pinged again.
   */
  ping?: boolean;
}

const SNOWFLAKE = /^\d{5,25}$/;

/** "<@&123…> needs 1 of: dba — not alice": role mentions only with `notify: mention`, ids checked. */
function askLine(request: ApprovalRequest, notice: ApproverNotice): { text: string; roles: string[] } {
  const roles = notice.mode === 'mention' ? notice.discordRoles.filter((id) => SNOWFLAKE.test(id)) : [];
  const need = Math.max(
    1,
    request.approvalsRequired - request.votes.filter((v) => v.vote === 'approve').length,
  );
  const names = notice.roles.length > 0 ? notice.roles.map(escapeText).join(', ') : 'nobody';
  const who = roles.length > 0 ? `${roles.map((id) => `<@&${id}>`).join(' ')} ` : '';
  return {
    text: `${who}needs ${need} of: ${names} — not ${escapeText(request.requester.person)}`,
    roles,
  };
}

/** The approval card: an embed with the preview and the request's state, and buttons while it is pending. */
export function renderRequestCard(request: ApprovalRequest, context: CardContext): OutgoingMessage {
  const fields: APIEmbedField[] = [
    field('Status', statusLine(request)),
    field(
      'Requested by',
      `${escapeText(request.requester.person)}${mentionOfActor(request.requester)}`,
      true,
    ),
    field('Target', `${escapeText(request.target)} (${escapeText(request.environment)})`, true),
    field('Risk', request.risk, true),
  ];
  if (request.requestReason !== undefined) {
    fields.push(field('Requested because', escapeText(request.requestReason)));
  }
  if (request.status === 'pending') {
    const roles = context.approverRoles.length > 0 ? context.approverRoles.join(' or ') : 'nobody';
    fields.push(
      field(
        'Who may approve',
        `${escapeText(roles)} — ${request.approvalsRequired} approval${request.approvalsRequired === 1 ? '' : 's'}, not ${escapeText(request.requester.person)}`,
        true,
      ),
      field('Expires', `${discordTime(request.expiresAt)} (${discordTime(request.expiresAt, 't')})`, true),
    );
  }
  if (request.status === 'denied' && request.reason) fields.push(field('Reason', escapeText(request.reason)));
  if (request.error) fields.push(field('Error', escapeText(request.error)));
  const title = clip(`#${request.id} ${escapeText(request.command)}`, LIMITS.embedTitle);
  const footer = { text: `dbops · /db status ${request.id}` };
  const embed: APIEmbed = {
    title,
    color: STATUS_COLOR[request.status],
    fields,
    footer,
    timestamp: request.createdAt.toISOString(),
  };
  embed.description = cardPreview(request, embedLength(embed)).description;
  // While pending the content asks the approvers; once decided it says the outcome (the mention is gone).
  const ask = request.status === 'pending' && context.notice ? askLine(request, context.notice) : undefined;
  const content =
    request.status === 'pending'
      ? `Approval needed: **#${request.id}** ${escapeText(clip(request.command, 200))}${ask ? `\n🔔 ${ask.text}` : ''}`
      : `**#${request.id}** ${escapeText(clip(request.command, 200))} — ${request.status}`;
  return {
    content,
    embeds: [embed],
    components: request.status === 'pending' ? [approvalButtons(request.id)] : [],
    ...(ask && context.ping && ask.roles.length > 0 ? { mentionRoles: ask.roles } : {}),
  };
}

/** The card's preview, in what the rest of the embed leaves of the 6,000 characters (at most 4,096). */
function cardPreview(request: ApprovalRequest, used: number): { description: string; complete: boolean } {
  const label = request.status === 'pending' ? '**Preview**' : '**Preview at request time**';
  const room = Math.min(LIMITS.embedDescription, LIMITS.embedTotal - used - 40) - label.length - 1;
  const preview = renderResult(
    request.preview.result,
    room,
    `preview-${request.id}`,
    'full preview in the thread',
  );
  const complete = preview.shownRows >= request.preview.result.rows.length && preview.hiddenColumns === 0;
  return { description: `${label}\n${preview.text}`, complete };
}

/** The first message in a request's thread: what it waits for, and the full preview when the card cut it. */
export function renderRequestIntro(request: ApprovalRequest, context: CardContext): OutgoingMessage {
  const roles = context.approverRoles.length > 0 ? context.approverRoles.join(' or ') : 'nobody';
  const line = `Request #${request.id} needs ${request.approvalsRequired} approval${request.approvalsRequired === 1 ? '' : 's'} from ${escapeText(roles)} — not ${escapeText(request.requester.person)}. It expires ${discordTime(request.expiresAt)}. Use the buttons on the card, or \`/db approve ${request.id}\` · \`/db deny ${request.id} <reason>\` · \`/db cancel ${request.id}\`. The outcome is posted here.`;
  const card = renderRequestCard(request, context).embeds?.[0];
  // Rows the card cut, or columns it hid on a phone: the whole preview goes to the thread as CSV.
  if (cardPreview(request, card ? embedLength({ ...card, description: '' }) : 0).complete)
    return { content: line };
  const preview = request.preview.result;
  return {
    content: `${line}\nThe full preview is attached.`,
    files: [csvFile(preview, `preview-${request.id}`)],
  };
}

function outcomeHeader(request: ApprovalRequest, mark: string, what: string): string {
  return clip(`${mark} **#${request.id}** ${escapeText(clip(request.command, 200))} ${what}`, 400);
}

/** What a change of an approval request says in its thread (undefined: nothing worth a message). */
export function renderRequestChange(
  request: ApprovalRequest,
  change: RequestChange,
): OutgoingMessage | undefined {
  const by = approverNames(request).map(escapeText);
  switch (change) {
    case 'created':
    case 'running':
      return undefined;
    case 'voted': {
      const last = request.votes.filter((v) => v.vote === 'approve').at(-1);
      const left = request.approvalsRequired - by.length;
      return {
        content: `✅ ${escapeText(last?.person ?? 'someone')} approved (${by.length} of ${request.approvalsRequired}); waiting for ${left} more approval${left === 1 ? '' : 's'}.`,
      };
    }
    case 'approved':
      return { content: outcomeHeader(request, '▶️', `approved by ${by.join(', ')} — running now.`) };
    case 'succeeded': {
      const header = outcomeHeader(request, '✅', `succeeded (approved by ${by.join(', ')}).`);
      if (!request.result) return { content: header };
      const rendered = renderResult(
        request.result,
        LIMITS.content - header.length - 1,
        `${request.operation}-${request.target}-${request.id}`,
      );
      return { content: `${header}\n${rendered.text}`, files: rendered.files };
    }
    case 'failed':
      return {
        content: clip(
          `${outcomeHeader(request, '❌', 'failed.')}\n${escapeText(request.error ?? 'no error was recorded')}`,
          LIMITS.content,
        ),
      };
    case 'denied': {
      const deny = request.votes.find((v) => v.vote === 'deny');
      return {
        content: clip(
          `${outcomeHeader(request, '⛔', `denied by ${escapeText(deny?.person ?? 'an approver')} — nothing ran.`)}${request.reason ? `\nReason: ${escapeText(request.reason)}` : ''}`,
          LIMITS.content,
        ),
      };
    }
    case 'cancelled':
      return {
        content: outcomeHeader(
          request,
          '↩️',
          `cancelled by ${escapeText(request.requester.person)} — nothing ran.`,
        ),
      };
    case 'expired':
      return {
        content: outcomeHeader(
          request,
          '⌛',
          'expired without enough approvals — nothing ran. Run the command again if it is still needed.',
        ),
      };
  }
}

/** A thread's name: `#7 kill-idle staging --older-than 10m`. */
export function threadName(id: number | string | null, command: string): string {
  const label = id === null ? '' : typeof id === 'number' ? `#${id} ` : `${id} `;
  const name = `${label}${command.replace(/\s+/g, ' ').trim()}`;
  return clip(name || 'dbops', LIMITS.threadName);
}

/** Progress lines of a long operation, as one message. */
export function renderProgress(lines: readonly string[]): OutgoingMessage {
  return { content: clippedBlock(lines.join('\n'), LIMITS.content) };
}
