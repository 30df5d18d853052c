// The Acknowledge and Mute buttons of an alert post, and the command a click on one stands for.

export const ALERT_ACTION_PREFIX = 'dbops_alert_';
export const MUTE_CHOICES = ['1h', '4h', '24h'] as const;

/** The buttons of an alert's first post; the value is the alert id. */
export function alertButtons(alertId: number): { actionId: string; label: string; value: string }[] {
  return [
    { actionId: `${ALERT_ACTION_PREFIX}ack`, label: 'Acknowledge', value: String(alertId) },
    ...MUTE_CHOICES.map((d) => ({
      actionId: `${ALERT_ACTION_PREFIX}mute_${d}`,
      label: `Mute ${d}`,
      value: String(alertId),
    })),
  ];
}

/**
 * The command a click stands for (`/db alerts ack 7`, `/db alerts mute 7 --for 4h`), run as the person
 * who clicked, so the core decides and audits it like a typed one; undefined for anything else.
 */
export function alertCommand(actionId: string, value: string): string | undefined {
  if (!/^\d{1,15}$/.test(value)) return undefined;
  if (actionId === `${ALERT_ACTION_PREFIX}ack`) return `/db alerts ack ${value}`;
  const mute = /^dbops_alert_mute_(1h|4h|24h)$/.exec(actionId);
  if (mute) return `/db alerts mute ${value} --for ${mute[1]}`;
  return undefined;
}

/** Discord carries action and value in one custom_id, `dbops_alert_ack:7`. */
export function alertCommandOfCustomId(customId: string): string | undefined {
  const at = customId.lastIndexOf(':');
  if (at < 0 || !customId.startsWith(ALERT_ACTION_PREFIX)) return undefined;
  return alertCommand(customId.slice(0, at), customId.slice(at + 1));
}
