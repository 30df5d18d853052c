// check-config's warnings about approvals channels: requests made outside chat that would reach nobody, and
// a channel on a surface `dbops start` would not run.
import type { Config } from './schema.js';

const SURFACE_TOKEN = { slack: 'SLACK_BOT_TOKEN', discord: 'DISCORD_TOKEN' } as const;

export function approvalsChannelWarnings(
  config: Pick<Config, 'policy'>,
  env: Readonly<Record<string, string | undefined>>,
): string[] {
  const warnings: string[] = [];
  for (const [environment, rules] of Object.entries(config.policy)) {
    const requests = rules.request.length > 0 || (rules.sql_write?.length ?? 0) > 0 || rules.approve_writes;
    const notify = rules.notify ?? 'none';
    const channel = rules.approvals_channel;
    if (requests && notify !== 'none' && !channel) {
      warnings.push(
        `policy.${environment}: notify: ${notify} tells approvers of requests made in chat only; ` +
          `requests made with dbops exec, the console or a schedule reach nobody${rules.escalate_after !== undefined ? ' until escalate_after' : ''}: ` +
          'set approvals_channel (a Slack and/or Discord channel id)',
      );
    }
    for (const surface of ['slack', 'discord'] as const) {
      const id = channel?.[surface];
      if (!id || env[SURFACE_TOKEN[surface]]?.trim()) continue;
      warnings.push(
        `policy.${environment}.approvals_channel.${surface}: ${id} is never posted to: ` +
          `${SURFACE_TOKEN[surface]} is not set, so dbops start runs no ${surface === 'slack' ? 'Slack' : 'Discord'} surface`,
      );
    }
  }
  return warnings;
}
