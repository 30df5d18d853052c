// What `dbops exec` and the console say about a request they made: where its approvers are told (the
// approvals channel the running bot posts its card in), or how to get it approved without one.
import type { Config } from '../config/schema.js';
import { CONSOLE_WIDTH, wrapLines } from '../core/layout.js';
import type { Surface } from '../core/types.js';
import type { ApprovalRequest } from '../state/types.js';
import { CHAT_SURFACES } from './approvals-store.js';

/**
 * What `dbops exec` and the console add to a request they made: where approvers are told, or — with no
 * approvals channel — how to get it approved. Undefined for requests made in chat (their card is there).
 */
export function toldLines(
  config: Config,
  request: Pick<ApprovalRequest, 'id' | 'environment'>,
  surface: Surface,
  width = CONSOLE_WIDTH,
): string | undefined {
  if ((CHAT_SURFACES as readonly string[]).includes(surface)) return undefined;
  const rules = config.policy[request.environment];
  const channel = rules?.approvals_channel;
  if (channel) {
    const ids = [
      ...(channel.slack ? [`Slack ${channel.slack}`] : []),
      ...(channel.discord ? [`Discord ${channel.discord}`] : []),
    ].join(' and ');
    return wrapLines(`Approvers are told in ${channel.name ?? ids} by the running bot (dbops start).`, width);
  }
  const roles = rules?.approve.length ? ` (${rules.approve.join(', ')})` : '';
  // The commands on lines of their own, never split by the wrapping.
  return wrapLines(
    [
      `No approvals channel is set for ${request.environment}, so nobody is told.`,
      `Ask an approver${roles} to approve it:`,
      `  /db approve ${request.id} in chat, or`,
      `  dbops exec --as <approver> -- "/db approve ${request.id}"`,
    ].join('\n'),
    width,
  );
}
