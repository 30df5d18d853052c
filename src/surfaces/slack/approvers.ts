// Tells a request's approvers in Slack beyond the card (which mentions their groups itself): the card sent to
// each eligible approver as a DM (its buttons work there, under the same checks); and once more on escalation.
import type { App as BoltApp } from '@slack/bolt';
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../core/log.js';
import { type ApproverNotice, approverNotice } from '../../identity/approvers.js';
import type { ApprovalRequest } from '../../state/types.js';
import { cardRef, GROUP_ID, renderCard } from './cards.js';
import { actorMention } from './identity.js';
import { escapeText } from './render.js';

type WebClient = BoltApp['client'];

/** Slack user ids as config and Slack give them; anything else is never DMed. */
const USER_ID = /^[UW][A-Z0-9]{2,31}$/;

export class SlackApproverNotices {
  readonly #client: WebClient;
  readonly #config: Config;
  readonly #log: Logger;

  constructor(deps: { client: WebClient; config: Config; log: Logger }) {
    this.#client = deps.client;
    this.#config = deps.config;
    this.#log = deps.log;
  }

  /**
   * A new request's card is in `place`. With `notify: mention` the card itself mentions the groups (see
   * askLine in cards.ts), so nothing more is posted; with `notify: dm` each approver gets the card by DM.
   */
  async cardPosted(request: ApprovalRequest, place: { channel: string; thread: string }): Promise<void> {
    const notice = approverNotice(this.#config, request);
    if (notice.mode !== 'dm') return;
    await this.#tell(request, notice, place, false);
  }

  /** The request waited `escalate_after`: tell the `escalate_to` groups (in the card's thread, or by DM). */
  async escalated(request: ApprovalRequest): Promise<void> {
    const ref = cardRef(request.refs);
    const place = ref ? { channel: ref.channel, thread: ref.thread } : undefined;
    await this.#tell(request, approverNotice(this.#config, request, true), place, true);
  }

  /** What the mention or DM says: "#12 vacuum … needs 1 of: dba — not @bob". */
  text(request: ApprovalRequest, notice: ApproverNotice, escalation: boolean): string {
    const groups = notice.slackGroups.filter((g) => GROUP_ID.test(g)).map((g) => `<!subteam^${g}>`);
    const who = groups.length > 0 ? `${groups.join(' ')} ` : '';
    const roles = notice.roles.length > 0 ? notice.roles.map(escapeText).join(', ') : 'nobody';
    const need = Math.max(
      1,
      request.approvalsRequired - request.votes.filter((v) => v.vote === 'approve').length,
    );
    const lead = escalation ? ':rotating_light: Escalated: ' : ':bell: ';
    return `${lead}${who}#${request.id} ${escapeText(request.command)} (${escapeText(request.environment)}) needs ${need} of: ${roles} — not ${actorMention(request.requester)}`;
  }

  async #tell(
    request: ApprovalRequest,
    notice: ApproverNotice,
    place: { channel: string; thread: string } | undefined,
    escalation: boolean,
  ): Promise<void> {
    if (notice.mode === 'none') return;
    const text = this.text(request, notice, escalation);
    if (notice.mode === 'mention') {
      if (!place) return;
      await this.#client.chat
        .postMessage({ channel: place.channel, thread_ts: place.thread, text })
        .catch((err: unknown) =>
          this.#log.warn({ err, requestId: request.id }, 'slack: could not mention the approvers'),
        );
      return;
    }
    const card = renderCard(request, notice.roles);
    for (const user of notice.slackUsers) {
      if (!USER_ID.test(user)) continue;
      try {
        const opened = await this.#client.conversations.open({ users: user });
        const channel = opened.channel?.id;
        if (!channel) continue;
        await this.#client.chat.postMessage({
          channel,
          text,
          blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }, ...card.blocks].slice(0, 50),
        });
      } catch (err) {
        this.#log.warn({ err, requestId: request.id, user }, 'slack: could not send an approver a DM');
      }
    }
  }
}
