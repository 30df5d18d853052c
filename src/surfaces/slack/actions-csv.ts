// The "All columns (CSV)" press in Slack: `/db csv <ref>` dispatched as the person who pressed (their roles,
// the policy in force); the CSV goes into the answer's thread on its own, titled with what was read and when.
// A value dbops did not make runs nothing. The core decides everything; this only carries the press.
import type { BlockAction, ButtonAction } from '@slack/bolt';
import { replyTag } from '../../core/reply.js';
import { withResultScope } from '../../core/result-budget.js';
import { type AnswerButton, type PressChecks, pressedInvocation } from './button-press.js';
import { ACTION_CSV, parseCsvValue } from './csv-button.js';
import type { ListenerDeps } from './listener-deps.js';
import { clip, section } from './render.js';
import type { Conversation } from './threads.js';

/** What the press shares with the other listeners (handlers.ts): delivery claims and conversations. */
export interface CsvActionDeps extends ListenerDeps, PressChecks {
  clickConversation(body: BlockAction): Conversation | undefined;
  errText(err: unknown): string;
}

const CSV_BUTTON: AnswerButton<string> = {
  kind: 'CSV',
  names: 'a dbops answer',
  parse: parseCsvValue,
  command: (ref) => `/db csv ${ref}`,
};

export function registerCsvAction(deps: CsvActionDeps): void {
  const { bolt, app, threads, log, clickConversation, errText } = deps;
  bolt.action<BlockAction<ButtonAction>>({ action_id: ACTION_CSV }, async ({ ack, body, action }) => {
    await ack();
    deps.track(
      async () => {
        const conversation = clickConversation(body);
        if (!conversation) return;
        const pressed = await pressedInvocation(deps, body, action, conversation, CSV_BUTTON);
        if (!pressed) return;
        const { inv } = pressed;
        await withResultScope(async (scope) => {
          inv.resultScope = scope;
          deps.conversations.set(inv, conversation);
          const reply = await app.core.dispatch(inv);
          if (reply.duplicate) return;
          const file = reply.result?.attachments?.find((a) => a.filename.endsWith('.csv'));
          try {
            if (reply.status !== 'ok' || reply.ephemeral || !file) {
              await threads.deliver(reply, conversation);
              return;
            }
            // The file alone (three calls): its title says what was read, when, and of which answer.
            await threads.upload(await conversation.thread(), [
              { filename: file.filename, title: clip(reply.message, 250), content: file.content },
            ]);
          } catch (err) {
            log.error({ err: errText(err), ref: reply.ref }, 'slack: CSV not delivered');
            const text = `dbops could not post the CSV here (${replyTag(reply) ?? 'no ref'}): ${reply.message}`;
            await conversation.ephemeral({ text, blocks: [section(text)] }).catch(() => {});
          }
        });
      },
      // The lane of the target the read is on (lanes.ts looks the reference up).
      { text: `csv ${parseCsvValue(action.value) ?? ''}` },
    );
  });
}
