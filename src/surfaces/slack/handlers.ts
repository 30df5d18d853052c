// The Slack listeners: each acks at once, drops retried deliveries, builds one Invocation and hands it to
// dispatch(); the answer goes to threads.ts. No authorization is decided here: the core decides every click.
import type { BlockAction, ButtonAction } from '@slack/bolt';
import { ALERT_ACTION_PREFIX, alertCommand } from '../../alerts/buttons.js';
import { isUserError } from '../../core/errors.js';
import { redactSecrets } from '../../core/log.js';
import { type Reply, replyTag } from '../../core/reply.js';
import { withResultScope } from '../../core/result-budget.js';
import type { Invocation, InvocationFile } from '../../core/types.js';
import { downloadFile, type RemoteFile } from '../download.js';
import { fileByteCap } from '../files.js';
import { registerCsvAction } from './actions-csv.js';
import { type AnswerButton, pressedInvocation } from './button-press.js';
import {
  ACTION_APPROVE,
  ACTION_DENY,
  DENY_REASON_ACTION,
  DENY_REASON_BLOCK,
  denyModal,
  parseDenyMetadata,
  parseRequestId,
  VIEW_DENY,
} from './cards.js';
import { commandText, identityOfUser, mentionUser, slackIdentity } from './identity.js';
import type { ListenerDeps } from './listener-deps.js';
import { ACTION_PAGE, parsePageValue } from './paging.js';
import { inlineCode, renderReply, section } from './render.js';
import type { Conversation } from './threads.js';

/** The Next page button: `/db page <ref> <n>` as whoever pressed. */
const PAGE_BUTTON: AnswerButton<{ ref: string; page: number }> = {
  kind: 'page',
  names: 'a page of a dbops answer',
  parse: parsePageValue,
  command: (wanted) => `/db page ${wanted.ref} ${wanted.page}`,
};

export interface HandlerDeps extends ListenerDeps {
  /** How files attached to a mention are fetched: the bot token (files:read) and the hosts they may come from. */
  files?: { token: string; origins: readonly string[] };
}

/** The files of a mention (Slack file objects), as far as a download needs them. */
function remoteFiles(event: object): RemoteFile[] {
  const files = 'files' in event && Array.isArray(event.files) ? (event.files as unknown[]) : [];
  return files.flatMap((f) => {
    if (typeof f !== 'object' || f === null) return [];
    const file = f as {
      name?: unknown;
      size?: unknown;
      url_private_download?: unknown;
      url_private?: unknown;
    };
    const url = typeof file.url_private_download === 'string' ? file.url_private_download : file.url_private;
    // Without an address (Slack Connect files come as `file_access: check_file_info`) the download says so.
    return [
      {
        name: typeof file.name === 'string' ? file.name : 'file',
        size: typeof file.size === 'number' ? file.size : 0,
        url: typeof url === 'string' ? url : '',
      },
    ];
  });
}

const UNKNOWN_USER =
  'dbops could not read your Slack team and user id from this request, so nothing was run.';
const STATE_DOWN = 'the state database is unreachable, so nothing was run; try again shortly.';

function errText(err: unknown): string {
  return redactSecrets(err instanceof Error ? err.message : String(err));
}

/** A person's reason as one quoted word of the command grammar, whatever it contains. */
function quoted(text: string): string {
  return `"${text
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

export function registerHandlers(deps: HandlerDeps): void {
  const { bolt, app, threads, log } = deps;

  /**
   * Slack re-delivers what it thinks was not received (x-slack-retry-num, the same envelope): the first
   * claim of a delivery's key wins across every replica, later ones are dropped.
   */
  async function firstDelivery(key: string | undefined, conversation: Conversation): Promise<boolean> {
    if (!key) return true;
    try {
      const first = await app.state.claimDelivery(key, app.core.now());
      if (!first) log.info({ delivery: key }, 'slack: repeated delivery dropped');
      return first;
    } catch (err) {
      log.error({ err: errText(err), delivery: key }, 'slack: cannot record the delivery');
      await conversation.ephemeral({ text: STATE_DOWN, blocks: [section(STATE_DOWN)] }).catch(() => {});
      return false;
    }
  }

  // The rows of a large result count against the process's budget until the answer is delivered.
  const run = (inv: Invocation, conversation: Conversation): Promise<Reply> =>
    withResultScope(async (scope) => {
      inv.resultScope = scope;
      deps.conversations.set(inv, conversation);
      const reply = await app.core.dispatch(inv);
      if (reply.duplicate) {
        log.info({ delivery: inv.delivery }, 'slack: repeated delivery dropped');
        return reply;
      }
      try {
        await threads.deliver(reply, conversation);
      } catch (err) {
        log.error(
          { err: errText(err), requestId: reply.requestId, status: reply.status },
          'slack: reply not delivered',
        );
        const text = `dbops could not post its answer here (${replyTag(reply) ?? 'no ref'}): ${reply.message}`;
        await conversation.ephemeral({ text, blocks: [section(text)] }).catch(() => {});
      }
      return reply;
    });

  /** Downloads a mention's files with the bot token; undefined (and the reason said privately) on failure. */
  async function download(
    remote: readonly RemoteFile[],
    conversation: Conversation,
  ): Promise<{ attachments?: InvocationFile[] } | undefined> {
    if (remote.length === 0) return {};
    try {
      if (!deps.files) throw new Error('slack: file downloads are not set up');
      const attachments: InvocationFile[] = [];
      for (const file of remote) {
        attachments.push(
          await downloadFile(file, {
            cap: fileByteCap(app.core.config),
            origins: deps.files.origins,
            headers: { authorization: `Bearer ${deps.files.token}` },
          }),
        );
      }
      return { attachments };
    } catch (err) {
      if (!isUserError(err)) throw err;
      await conversation.ephemeral({ text: err.message, blocks: [section(err.message)] }).catch(() => {});
      return undefined;
    }
  }

  async function unidentified(conversation: Conversation): Promise<void> {
    await conversation.ephemeral({ text: UNKNOWN_USER, blocks: [section(UNKNOWN_USER)] }).catch(() => {});
  }

  // `/db …` (whatever the command is called in the app's manifest: it is the app's only command).
  bolt.command(/^\/[\w-]+$/, async ({ command, ack }) => {
    await ack();
    deps.track(
      async () => {
        const text = commandText(command.text ?? '');
        const conversation = threads.conversation({
          channel: command.channel_id,
          user: command.user_id,
          parentText: `${mentionUser(command.user_id)} ran ${inlineCode(`${command.command} ${text}`.trim())}`,
          responseUrl: command.response_url,
        });
        const identity = slackIdentity(command.team_id, command.user_id);
        if (!identity) return await unidentified(conversation);
        // The delivery is claimed by the core with the command's first audit record (one round trip).
        const delivery = command.trigger_id ? { delivery: `slack:command:${command.trigger_id}` } : {};
        await run(
          { surface: 'slack', identity, channel: command.channel_id, text, ...delivery },
          conversation,
        );
      },
      { text: commandText(command.text ?? ''), channel: command.channel_id },
    );
  });

  // `@dbops blocking kasm` in a thread (or in a channel: the answer starts a thread under the mention).
  bolt.event('app_mention', async ({ event, body, context }) => {
    deps.track(
      async () => {
        if (!event.user) return;
        const thread = event.thread_ts ?? event.ts;
        const conversation = threads.conversation({ channel: event.channel, user: event.user, thread });
        const key = body.event_id && `slack:event:${body.event_id}`;
        const remote = remoteFiles(event);
        // A mention with files claims its delivery before downloading them; one without, with its record.
        if (remote.length > 0 && !(await firstDelivery(key, conversation))) return;
        const identity = slackIdentity(event.user_team ?? event.team ?? body.team_id, event.user);
        if (!identity) return await unidentified(conversation);
        const text = commandText(event.text, context.botUserId) || 'help';
        // A file attached to the mention (the CSV for `import`) goes with the command.
        const files = await download(remote, conversation);
        if (!files) return;
        const delivery = remote.length === 0 && key ? { delivery: key } : {};
        await run(
          { surface: 'slack', identity, channel: event.channel, thread, text, ...files, ...delivery },
          conversation,
        );
      },
      { text: commandText(event.text, context.botUserId) || 'help', channel: event.channel },
    );
  });

  /** Where a click on a card came from: the card message and its thread. */
  function clickConversation(body: BlockAction): Conversation | undefined {
    const channel = body.channel?.id ?? body.container.channel_id;
    const cardTs = body.message?.ts ?? body.container.message_ts;
    if (typeof channel !== 'string' || typeof cardTs !== 'string') return undefined;
    const thread = body.message?.thread_ts ?? body.container.thread_ts ?? cardTs;
    return threads.conversation({
      channel,
      user: body.user.id,
      thread: typeof thread === 'string' ? thread : cardTs,
      card: { channel, ts: cardTs },
      responseUrl: body.response_url,
    });
  }

  // Approve: dispatched as the person who clicked; the core refuses self-approval and non-approvers.
  bolt.action<BlockAction<ButtonAction>>({ action_id: ACTION_APPROVE }, async ({ ack, body, action }) => {
    await ack();
    deps.track(
      async () => {
        const id = parseRequestId(action.value);
        const conversation = clickConversation(body);
        if (id === undefined || !conversation) {
          log.warn({ value: action.value }, 'slack: approve click without a request id or a message');
          return;
        }
        if (!(await firstDelivery(`slack:action:${body.trigger_id}:${action.action_ts}`, conversation)))
          return;
        const identity = identityOfUser(body.user, body.team?.id);
        if (!identity) return await unidentified(conversation);
        const reply = await run(
          {
            surface: 'slack',
            identity,
            channel: conversation.origin.channel,
            ...(conversation.origin.thread ? { thread: conversation.origin.thread } : {}),
            text: `/db approve ${id}`,
          },
          conversation,
        );
        // A refused click may come from a card that is out of date (decided from the CLI, another surface).
        if (reply.status === 'refused') await threads.refreshCard(id, conversation.origin.card);
      },
      { text: `approve ${parseRequestId(action.value) ?? ''}` },
    );
  });

  // Acknowledge / Mute on an alert post: the command it stands for, as the person who clicked.
  bolt.action<BlockAction<ButtonAction>>(
    { action_id: new RegExp(`^${ALERT_ACTION_PREFIX}`) },
    async ({ ack, body, action }) => {
      await ack();
      deps.track(async () => {
        const text = alertCommand(action.action_id, action.value ?? '');
        const conversation = clickConversation(body);
        if (!text || !conversation) {
          log.warn({ action: action.action_id }, 'slack: alert click without a command or a message');
          return;
        }
        if (!(await firstDelivery(`slack:action:${body.trigger_id}:${action.action_ts}`, conversation)))
          return;
        const identity = identityOfUser(body.user, body.team?.id);
        if (!identity) return await unidentified(conversation);
        await run(
          {
            surface: 'slack',
            identity,
            channel: conversation.origin.channel,
            ...(conversation.origin.thread ? { thread: conversation.origin.thread } : {}),
            text,
          },
          conversation,
        );
      });
    },
  );

  // Next page: `/db page <ref> <n>` as the person who pressed (their permissions, the policy in force);
  // the page replaces the message the button was on. A value dbops did not make runs nothing.
  bolt.action<BlockAction<ButtonAction>>({ action_id: ACTION_PAGE }, async ({ ack, body, action }) => {
    await ack();
    deps.track(
      async () => {
        const conversation = clickConversation(body);
        const card = conversation?.origin.card;
        if (!conversation || !card) return;
        const pressed = await pressedInvocation(
          { log, firstDelivery, unidentified },
          body,
          action,
          conversation,
          PAGE_BUTTON,
        );
        if (!pressed) return;
        const { inv } = pressed;
        await withResultScope(async (scope) => {
          inv.resultScope = scope;
          deps.conversations.set(inv, conversation);
          const reply = await app.core.dispatch(inv);
          try {
            if (reply.status !== 'ok' || reply.ephemeral || !reply.result) {
              await threads.deliver(reply, conversation);
              return;
            }
            const rendered = renderReply(reply);
            await threads.update(card, rendered);
            if (rendered.files.length > 0) await threads.upload(await conversation.thread(), rendered.files);
          } catch (err) {
            log.error({ err: errText(err), ref: reply.ref }, 'slack: page not delivered');
          }
        });
      },
      // The lane of the target the page reads (lanes.ts looks the reference up).
      { text: `page ${parsePageValue(action.value)?.ref ?? ''}` },
    );
  });

  // All columns (CSV): `/db csv <ref>` as the person who pressed (actions-csv.ts).
  registerCsvAction({ ...deps, firstDelivery, clickConversation, unidentified, errText });

  // Deny: ask why in a modal (trigger_id lives ~3 s, so it opens before anything else).
  bolt.action<BlockAction<ButtonAction>>(
    { action_id: ACTION_DENY },
    async ({ ack, body, action, client }) => {
      await ack();
      const id = parseRequestId(action.value);
      const conversation = clickConversation(body);
      if (id === undefined || !conversation?.origin.thread) return;
      try {
        await client.views.open({
          trigger_id: body.trigger_id,
          view: denyModal({ id, channel: conversation.origin.channel, thread: conversation.origin.thread }),
        });
      } catch (err) {
        log.warn({ err: errText(err), requestId: id }, 'slack: deny modal not opened');
        const text = `Could not ask for a reason; type ${inlineCode(`/db deny ${id} <reason>`)} instead.`;
        await conversation.ephemeral({ text, blocks: [section(text)] }).catch(() => {});
      }
    },
  );

  // The reason submitted: `/db deny <id> <reason>` as the person who submitted it.
  bolt.view({ callback_id: VIEW_DENY, type: 'view_submission' }, async ({ ack, body, view }) => {
    await ack();
    deps.track(async () => {
      const meta = parseDenyMetadata(view.private_metadata);
      if (!meta) {
        log.warn('slack: deny submission without its request metadata');
        return;
      }
      const conversation = threads.conversation({
        channel: meta.channel,
        user: body.user.id,
        thread: meta.thread,
      });
      if (!(await firstDelivery(`slack:view:${view.id}`, conversation))) return;
      const identity = identityOfUser(body.user, body.team?.id ?? undefined);
      if (!identity) return await unidentified(conversation);
      const reason = view.state.values[DENY_REASON_BLOCK]?.[DENY_REASON_ACTION]?.value ?? '';
      await run(
        {
          surface: 'slack',
          identity,
          channel: meta.channel,
          thread: meta.thread,
          text: `/db deny ${meta.id}${reason.trim() ? ` ${quoted(reason)}` : ''}`,
        },
        conversation,
      );
    });
  });

  bolt.error(async (err) => {
    log.error({ err: errText(err) }, 'slack: listener failed');
  });
}
