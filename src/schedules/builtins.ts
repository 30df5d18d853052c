// The `/db schedules` and `/db run-schedule <name>` built-ins: what runs by itself, and running one now.

import type { Handler } from '../core/builtins/common.js';
import { ok, words } from '../core/builtins/common.js';
import type { CoreServices, InvocationContext } from '../core/context.js';
import { UserError } from '../core/errors.js';
import { actionForRisk, decide } from '../core/policy.js';
import { reply } from '../core/reply.js';
import { clipInput, closest } from '../core/suggest.js';
import { formatTime } from '../core/time-format.js';
import type { Column, Row } from '../core/types.js';
import { channelText, type ResolvedSchedule } from './schema.js';
import type { ScheduleService } from './service.js';
import type { ScheduleRun } from './store.js';

const WIDTH = 80;

function service(core: CoreServices): ScheduleService {
  if (!core.schedules) {
    throw new UserError('unavailable', 'schedules are not available in this dbops process');
  }
  return core.schedules;
}

/** Schedules whose every target the person may read (the others are not shown, not even by name). */
function visibleSchedules(core: CoreServices, ctx: InvocationContext): ResolvedSchedule[] {
  const readable = new Set(core.visibleTargets(ctx.person).map((t) => t.name));
  return Object.values(core.config.schedules).filter((s) => s.targets.every((t) => readable.has(t)));
}

/** The one time format; schedules that fire by the second add the seconds before the zone. */
function minute(date: Date, withSeconds = false): string {
  const text = formatTime(date);
  if (!withSeconds) return text;
  const seconds = String(date.getUTCSeconds()).padStart(2, '0');
  return text.replace(/ (\S+)$/, `:${seconds} $1`);
}

/** A six-field cron (seconds first) fires within minutes: its times are shown to the second. */
function bySeconds(schedule: ResolvedSchedule): boolean {
  return schedule.cron.trim().split(/\s+/).length === 6;
}

function seconds(from: Date, to: Date): string {
  const s = Math.max(0, Math.round((to.getTime() - from.getTime()) / 1000));
  return s < 60
    ? `${s}s`
    : s < 3600
      ? `${Math.floor(s / 60)}m ${s % 60}s`
      : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/** Breaks a line at spaces so it fits `width`; a word longer than the line stays whole (ids are never cut). */
function wrap(text: string, width: number, indent: string): string[] {
  const out: string[] = [];
  const lead = /^ */.exec(text)?.[0] ?? '';
  let line = lead;
  for (const word of text.slice(lead.length).split(' ')) {
    const candidate = line.trim() === '' ? `${line}${word}` : `${line} ${word}`;
    if (line.trim() !== '' && candidate.length > width) {
      out.push(line);
      line = `${indent}${word}`;
    } else line = candidate;
  }
  if (line.trim() !== '') out.push(line);
  return out;
}

function lastText(run: ScheduleRun | undefined, secs: boolean): string {
  if (!run) return 'never ran';
  const how =
    run.trigger === 'manual' ? `by hand (${run.triggeredBy ?? '?'})` : `slot ${minute(run.slot, secs)}`;
  const took = run.startedAt && run.finishedAt ? `, took ${seconds(run.startedAt, run.finishedAt)}` : '';
  return `${run.state} ${minute(run.finishedAt ?? run.enqueuedAt, secs)}, ${how}${took}`;
}

export const schedules: Handler = async (core, ctx, tokens) => {
  const svc = service(core);
  const [only] = words(tokens);
  const visible = visibleSchedules(core, ctx).filter((s) => only === undefined || s.name === only);
  if (only !== undefined && visible.length === 0) throw unknownSchedule(core, ctx, only);
  if (visible.length === 0) return ok(ctx, 'no schedules', 'No schedules are configured that you may see.');
  const overview = new Map((await svc.overview()).map((o) => [o.schedule.name, o]));
  const lines: string[] = [];
  const rows: Row[] = [];
  for (const schedule of visible) {
    const o = overview.get(schedule.name);
    const what =
      schedule.kind === 'sample'
        ? `history samples of ${schedule.targets.join(', ')}`
        : `${schedule.operation} ${schedule.targets.join(', ')}${schedule.args ? ` ${schedule.args}` : ''} as ${schedule.as ?? '?'}`;
    const where = schedule.post ? ` → ${channelText(schedule.post)}` : ' → audit only';
    lines.push(...wrap(`${schedule.name}: ${what}${where}`, WIDTH, '  '));
    lines.push(
      ...wrap(
        `  cron ${schedule.cron} (${schedule.timezone}) · next ${o?.next ? minute(o.next, bySeconds(schedule)) : 'never'}`,
        WIDTH,
        '    ',
      ),
    );
    lines.push(...wrap(`  last: ${lastText(o?.last, bySeconds(schedule))}`, WIDTH, '    '));
    if (o?.last?.outcome && o.last.state !== 'succeeded')
      lines.push(...wrap(`    ${o.last.outcome}`, WIDTH, '    '));
    if (o?.running) {
      lines.push(
        ...wrap(
          `  now: ${o.running.state}${o.running.startedAt ? ` since ${minute(o.running.startedAt)} on ${o.running.runner ?? '?'}` : ''}`,
          WIDTH,
          '    ',
        ),
      );
    }
    rows.push({
      schedule: schedule.name,
      operation: schedule.operation,
      targets: schedule.targets.join(','),
      cron: schedule.cron,
      timezone: schedule.timezone,
      post: schedule.post ? channelText(schedule.post) : null,
      next: o?.next?.toISOString() ?? null,
      last_state: o?.last?.state ?? null,
      last_at: o?.last?.finishedAt?.toISOString() ?? null,
      last_outcome: o?.last?.outcome ?? null,
      running: o?.running?.state ?? null,
    });
  }
  const columns: Column[] = [
    { key: 'schedule', label: 'schedule', kind: 'text' },
    { key: 'operation', label: 'operation', kind: 'text' },
    { key: 'targets', label: 'targets', kind: 'text' },
    { key: 'cron', label: 'cron', kind: 'text' },
    { key: 'timezone', label: 'zone', kind: 'text' },
    { key: 'post', label: 'post', kind: 'text' },
    { key: 'next', label: 'next', kind: 'timestamp' },
    { key: 'last_state', label: 'last', kind: 'text' },
    { key: 'last_at', label: 'last at', kind: 'timestamp' },
    { key: 'last_outcome', label: 'outcome', kind: 'text' },
    { key: 'running', label: 'now', kind: 'text' },
  ];
  return ok(ctx, `${visible.length} schedules`, lines.join('\n'), {
    result: { columns, rows, truncated: false },
  });
};

function unknownSchedule(core: CoreServices, ctx: InvocationContext, typed: string): UserError {
  const names = visibleSchedules(core, ctx).map((s) => s.name);
  const guesses = closest(typed, names);
  return new UserError(
    'invalid_argument',
    `there is no schedule \`${clipInput(typed)}\`${guesses.length > 0 ? ` — did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?` : names.length > 0 ? `; \`/db schedules\` lists them` : ''}`,
  );
}

/** Who may run a schedule now: an admin, or someone the policy lets run its operation on every target. */
function mayRun(core: CoreServices, ctx: InvocationContext, schedule: ResolvedSchedule): string | undefined {
  const person = ctx.person;
  if (!person) return 'unknown person';
  if (person.roles.some((r) => core.config.adminRoles.includes(r))) return undefined;
  const spec = schedule.kind === 'sample' ? undefined : core.catalog.get(schedule.operation);
  const action = actionForRisk(spec?.risk ?? 'read');
  for (const name of schedule.targets) {
    const target = core.config.targets[name];
    if (!target) return `target ${name} is not configured`;
    const decision = decide({
      person,
      identity: ctx.identity,
      action,
      environment: target.environment,
      policy: core.config.policy,
    });
    if (!decision.allowed) return decision.reason;
    if (decision.needsApproval)
      return `${schedule.operation} needs approval on ${target.environment}; ask an admin to run the schedule`;
  }
  return undefined;
}

export const runSchedule: Handler = async (core, ctx, tokens) => {
  const svc = service(core);
  const [name] = words(tokens);
  if (!name) throw new UserError('invalid_argument', 'which schedule? usage: /db run-schedule <name>');
  const schedule = visibleSchedules(core, ctx).find((s) => s.name === name);
  if (!schedule) throw unknownSchedule(core, ctx, name);
  const refusal = mayRun(core, ctx, schedule);
  const about = { operation: 'run-schedule', args: { schedule: name } };
  if (refusal) return await core.refuse(ctx, 'denied', `you may not run schedule ${name}: ${refusal}`, about);
  await core.auditOrStop(ctx, { ...about, event: 'builtin', outcome: `run schedule ${name} now` });
  const done = await svc.runNow(name, ctx.person?.name ?? ctx.identity);
  if (done === 'busy') {
    return await core.refuse(
      ctx,
      'target_busy',
      `schedule ${name} is running now; it never runs twice at once — \`/db schedules ${name}\` shows it`,
      about,
    );
  }
  const { run, result } = done;
  const lines = [`Ran schedule ${name} (run ${run.id}): ${result.state}`];
  for (const t of result.targets) {
    const extra = [
      ...(t.request !== null ? [`#${t.request}`] : []),
      ...(t.file ? [t.file] : []),
      ...(t.verified !== undefined ? [t.verified ? 'verified' : 'NOT verified'] : []),
      ...(t.deleted && t.deleted.length > 0 ? [`deleted ${t.deleted.join(', ')}`] : []),
    ];
    lines.push(
      ...wrap(
        `  ${t.target}: ${t.outcome} — ${t.message}${extra.length > 0 ? ` (${extra.join('; ')})` : ''}`,
        WIDTH,
        '    ',
      ),
    );
  }
  return reply({
    status: result.state === 'succeeded' ? 'ok' : 'failed',
    requestId: null,
    ref: ctx.ref,
    message: lines[0] ?? '',
    text: lines.join('\n'),
    ephemeral: false,
  });
};
