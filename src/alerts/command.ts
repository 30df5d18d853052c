// `/db alerts [target]` lists open alerts; `/db alerts ack <id>` and `/db alerts mute <id> --for 4h`
// (also the alert post's buttons) silence an alert's reminders — audited, for anyone who may read its target.
import { type Handler, ok, option, words } from '../core/builtins/common.js';
import type { CoreServices, InvocationContext } from '../core/context.js';
import { parseDuration } from '../core/duration.js';
import { UserError } from '../core/errors.js';
import { wrapWords } from '../core/operation.js';
import { renderTable } from '../core/render.js';
import { clipInput } from '../core/suggest.js';
import { formatTime } from '../core/time-format.js';
import type { Column, Row } from '../core/types.js';
import { showInvisible } from '../core/visible.js';
import type { Alert, AlertBook } from './store.js';

const USAGE = 'usage: /db alerts [target] | /db alerts ack <id> | /db alerts mute <id> --for 1h|4h|24h';
/** The longest mute a person may set: an alert muted for good is an alert nobody reads. */
const MAX_MUTE_SECONDS = 7 * 86_400;
const WIDTH = 80;

function bookOf(core: CoreServices): AlertBook {
  if (!core.alerts) throw new UserError('invalid_argument', 'alerts are not kept by this dbops');
  return core.alerts;
}

function silence(alert: Alert, now: Date): string {
  if (alert.acked) return `ack ${alert.acked.by}`;
  if (alert.muted && alert.muted.until > now) return `muted to ${formatTime(alert.muted.until).slice(11)}`;
  return '';
}

async function list(core: CoreServices, ctx: InvocationContext, targetName: string | undefined) {
  const visible = core.visibleTargets(ctx.person).map((t) => t.name);
  if (targetName !== undefined && !visible.includes(targetName)) {
    throw new UserError('unknown_target', `unknown target \`${clipInput(targetName)}\`. ${USAGE}`);
  }
  const alerts = await bookOf(core).open(targetName ? [targetName] : visible);
  const now = core.now();
  const columns: Column[] = [
    { key: 'id', label: '#', kind: 'id' },
    { key: 'status', label: 'status', kind: 'text' },
    { key: 'target', label: 'target', kind: 'text' },
    { key: 'check', label: 'check', kind: 'text' },
    { key: 'since', label: 'since', kind: 'text' },
    { key: 'silenced', label: 'silenced', kind: 'text' },
  ];
  const rows: Row[] = alerts.map((a) => ({
    id: a.id,
    status: a.status,
    target: a.target,
    check: a.check,
    since: formatTime(a.openedAt),
    silenced: silence(a, now),
  }));
  const headline = `${alerts.length} open alert${alerts.length === 1 ? '' : 's'}${targetName ? ` on ${targetName}` : ''}`;
  const notes = alerts.flatMap((a) => [
    `#${a.id} ${a.check}: ${showInvisible(a.detail, { newlines: false })}`,
    ...(a.postError ? [`#${a.id} not posted: ${a.postError}`] : []),
  ]);
  const text =
    alerts.length === 0
      ? `${headline}.`
      : [
          headline,
          renderTable(columns, rows, { maxWidth: WIDTH }),
          ...notes.flatMap((n) => wrapWords(n, WIDTH, '')),
        ].join('\n');
  return ok(ctx, headline, text, {
    result: { headline, columns, rows, truncated: false, notes, data: { alerts } },
  });
}

/** The alert, if the person may read its target (anyone allowed to read there may silence it). */
async function alertFor(
  core: CoreServices,
  ctx: InvocationContext,
  idText: string | undefined,
): Promise<Alert> {
  if (!idText || !/^#?\d{1,15}$/.test(idText))
    throw new UserError('invalid_argument', `which alert? ${USAGE}`);
  const id = Number(idText.replace('#', ''));
  const alert = await bookOf(core).get(id);
  const readable = alert && core.visibleTargets(ctx.person).some((t) => t.name === alert.target);
  // A missing alert and one on a target the person cannot read answer alike.
  if (!alert || !readable)
    throw new UserError('not_found', `there is no alert #${id}; \`/db alerts\` lists open ones`);
  if (alert.resolvedAt) {
    throw new UserError(
      'not_found',
      `alert #${id} resolved at ${formatTime(alert.resolvedAt)}; nothing to silence`,
    );
  }
  return alert;
}

export const alerts: Handler = async (core, ctx, tokens) => {
  const [verb, arg] = words(tokens);
  if (verb !== 'ack' && verb !== 'mute') return await list(core, ctx, verb);
  const alert = await alertFor(core, ctx, arg);
  const by = ctx.person?.name ?? ctx.identity;
  const about = { target: alert.target, operation: 'alerts' };
  const now = core.now();
  if (verb === 'ack') {
    await core.auditOrStop(ctx, { event: 'builtin', outcome: `alert #${alert.id} acknowledged`, ...about });
    await bookOf(core).acknowledge(alert.id, by, now);
    const text = `${by} acknowledged alert #${alert.id} (${alert.target} · ${alert.check}): no more reminders until it resolves.`;
    return ok(ctx, text, text, { ephemeral: false });
  }
  const forText = option(tokens, 'for') ?? '1h';
  const seconds = parseDuration(forText);
  if (seconds === undefined || seconds < 60 || seconds > MAX_MUTE_SECONDS) {
    throw new UserError('invalid_argument', `argument --for: a duration from 1m to 7d, e.g. 4h. ${USAGE}`);
  }
  const until = new Date(now.getTime() + seconds * 1000);
  await core.auditOrStop(ctx, {
    event: 'builtin',
    outcome: `alert #${alert.id} muted until ${until.toISOString()}`,
    ...about,
  });
  await bookOf(core).mute(alert.id, by, until);
  const text = `${by} muted alert #${alert.id} (${alert.target} · ${alert.check}) until ${formatTime(until)}: no reminders until then.`;
  return ok(ctx, text, text, { ephemeral: false });
};
