// A press of a button on a dbops answer (Next page, All columns (CSV)), checked before anything runs: a
// value dbops made, the first delivery of the press, a person dbops knows. What it stands for is then
// dispatched as that person, like a command they typed.
import type { BlockAction, ButtonAction } from '@slack/bolt';
import type { Logger } from '../../core/log.js';
import type { Invocation } from '../../core/types.js';
import { identityOfUser } from './identity.js';
import { section } from './render.js';
import type { Conversation } from './threads.js';

/** What the checks need from the listeners (handlers.ts): delivery claims and the unknown-person answer. */
export interface PressChecks {
  log: Logger;
  firstDelivery(key: string | undefined, conversation: Conversation): Promise<boolean>;
  unidentified(conversation: Conversation): Promise<void>;
}

export interface AnswerButton<T> {
  /** `page`, `CSV`: how the log names the button. */
  kind: string;
  /** What a valid value names, for the answer to a forged one ("a page of a dbops answer"). */
  names: string;
  /** The value as dbops made it, or undefined for anything else. */
  parse(value: unknown): T | undefined;
  /** The command the press stands for. */
  command(wanted: T): string;
}

/**
 * The invocation a press stands for, or undefined when the press ends here: a value dbops did not make
 * (answered privately, nothing run), a repeated delivery, or a person dbops does not know (answered).
 */
export async function pressedInvocation<T>(
  checks: PressChecks,
  body: BlockAction,
  action: ButtonAction,
  conversation: Conversation,
  button: AnswerButton<T>,
): Promise<{ inv: Invocation; wanted: T } | undefined> {
  const wanted = button.parse(action.value);
  if (wanted === undefined) {
    checks.log.warn(`slack: a ${button.kind} button with a value dbops did not make`);
    const text = `This button does not name ${button.names}, so nothing was run.`;
    await conversation.ephemeral({ text, blocks: [section(text)] }).catch(() => {});
    return undefined;
  }
  if (!(await checks.firstDelivery(`slack:action:${body.trigger_id}:${action.action_ts}`, conversation)))
    return undefined;
  const identity = identityOfUser(body.user, body.team?.id);
  if (!identity) {
    await checks.unidentified(conversation);
    return undefined;
  }
  const inv: Invocation = {
    surface: 'slack',
    identity,
    channel: conversation.origin.channel,
    ...(conversation.origin.thread ? { thread: conversation.origin.thread } : {}),
    text: button.command(wanted),
  };
  return { inv, wanted };
}
