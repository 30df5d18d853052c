// Tells a request's approvers in Discord beyond the card (whose content mentions their roles itself): the
// card sent as a DM to each eligible approver; and once more on escalation, in the request's thread.
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../core/log.js';
import { type ApproverNotice, approverNotice } from '../../identity/approvers.js';
import { directoryOf } from '../../identity/people.js';
import type { ApprovalRequest } from '../../state/types.js';
import { type DiscordApi, safeError } from './api.js';
import { mentionOfActor } from './identity.js';
import { discordRefs } from './refs.js';
import { escapeText, renderRequestCard } from './render.js';

const SNOWFLAKE = /^\d{5,25}$/;

export class DiscordApproverNotices {
  readonly #api: DiscordApi;
  readonly #config: Config;
  readonly #log: Logger;

  constructor(deps: { api: DiscordApi; config: Config; log: Logger }) {
    this.#api = deps.api;
    this.#config = deps.config;
    this.#log = deps.log;
  }

  /**
   * A new request's card is posted; `channelId` is its thread (or the card's channel). With `notify:
   * mention` the card itself pinged the roles (renderRequestCard with `ping`); with `dm` the DMs go out.
   */
  async cardPosted(request: ApprovalRequest, channelId: string): Promise<void> {
    if (this.#config.policy[request.environment]?.notify !== 'dm') return;
    await this.#knownHolders(request);
    const notice = approverNotice(this.#config, request);
    await this.#tell(request, notice, channelId, false);
  }

  async escalated(request: ApprovalRequest): Promise<void> {
    await this.#knownHolders(request);
    const refs = discordRefs(request);
    await this.#tell(
      request,
      approverNotice(this.#config, request, true),
      refs?.thread ?? refs?.channel,
      true,
    );
  }

  /**
   * Before DMs: the members any replica saw holding a configured Discord role (within keep_last_known),
   * besides those this replica saw or listed. approverNotice never picks the requester's identity.
   */
  async #knownHolders(request: ApprovalRequest): Promise<void> {
    const directory = directoryOf(this.#config);
    const rules = this.#config.policy[request.environment];
    if (!directory?.discord.enabled || rules?.notify !== 'dm') return;
    await directory.discord.loadHolders().catch((err: unknown) => {
      this.#log.warn(
        { err: safeError(err), requestId: request.id },
        'discord: could not read the members holding approver roles; only listed people get a DM',
      );
    });
  }

  /** "🔔 <@&role> #12 vacuum … needs 1 of: dba — not alice" */
  text(request: ApprovalRequest, notice: ApproverNotice, escalation: boolean): string {
    const roles = notice.discordRoles.filter((id) => SNOWFLAKE.test(id)).map((id) => `<@&${id}>`);
    const who = roles.length > 0 ? `${roles.join(' ')} ` : '';
    const names = notice.roles.length > 0 ? notice.roles.map(escapeText).join(', ') : 'nobody';
    const need = Math.max(
      1,
      request.approvalsRequired - request.votes.filter((v) => v.vote === 'approve').length,
    );
    const lead = escalation ? '🚨 Escalated: ' : '🔔 ';
    return `${lead}${who}**#${request.id}** ${escapeText(request.command.slice(0, 200))} needs ${need} of: ${names} — not ${escapeText(request.requester.person)}${mentionOfActor(request.requester)}`;
  }

  async #tell(
    request: ApprovalRequest,
    notice: ApproverNotice,
    channelId: string | undefined,
    escalation: boolean,
  ): Promise<void> {
    if (notice.mode === 'none') return;
    const text = this.text(request, notice, escalation);
    if (notice.mode === 'mention') {
      if (!channelId) return;
      const roles = notice.discordRoles.filter((id) => SNOWFLAKE.test(id));
      await this.#api.announce(channelId, text, roles).catch((err: unknown) => {
        this.#log.warn(
          { err: safeError(err), requestId: request.id },
          'discord: could not mention the approvers',
        );
      });
      return;
    }
    const card = renderRequestCard(request, { approverRoles: notice.roles });
    for (const user of notice.discordUsers) {
      if (!SNOWFLAKE.test(user)) continue;
      try {
        const dm = await this.#api.openDm(user);
        // No mentions are parsed in a DM card (messageBody): the text names, it does not ping.
        await this.#api.send(dm, { ...card, content: text });
      } catch (err) {
        this.#log.warn(
          { err: safeError(err), requestId: request.id, user },
          'discord: could not send an approver a DM',
        );
      }
    }
  }
}
