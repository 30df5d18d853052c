// The `schedules:` section of dbops.yaml: its zod shape, the resolved form, and cron helpers (croner).
import { Cron } from 'croner';
import { z } from 'zod';
import type { ChannelRef } from '../notify/poster.js';

const NAME = /^[a-z][a-z0-9_-]{0,62}$/;

/**
 * What a schedule runs: a catalog operation as its service person, a history sample (no operation), or the
 * digest (`/db digest` as its service person, posted with its charts).
 */
export const SCHEDULE_KINDS = ['operation', 'sample', 'digest'] as const;
export type ScheduleKind = (typeof SCHEDULE_KINDS)[number];

export const keepSchema = z
  .object({
    /** Keep the newest N backups of each target. */
    last: z.number().int().min(1).max(100_000).optional(),
    /** Keep backups younger than D days. */
    days: z.number().min(0.001).max(36_500).optional(),
  })
  .strict()
  .refine((keep) => keep.last !== undefined || keep.days !== undefined, {
    message: 'say what to keep: keep: { last: 30 } and/or keep: { days: 30 }',
  });

export const scheduleSchema = z
  .object({
    /** Five fields (minute first) or six (seconds first), e.g. "0 2 * * *". */
    cron: z.string().min(1),
    /** IANA time zone the cron expression is read in (default UTC). */
    timezone: z.string().min(1).default('UTC'),
    kind: z.enum(SCHEDULE_KINDS).default('operation'),
    operation: z.string().optional(),
    target: z.string().optional(),
    targets: z.array(z.string()).optional(),
    /** The arguments after the target, as typed: "--format plain", "--analyze". */
    args: z.string().max(500).default(''),
    /** Where outcomes are posted: "slack:C0123" or "discord:1234"; absent: the audit log only. */
    post: z
      .string()
      .regex(/^(slack|discord):[A-Za-z0-9_-]+$/, 'write the channel as "slack:C0123" or "discord:1234"')
      .optional(),
    /** What is posted: only runs that did not succeed (default), or every run's answer (a digest's default). */
    notify: z.enum(['failures', 'always']).optional(),
    /** The service person it runs as (people.<name> with service: true). */
    as: z.string().optional(),
    /** `backup` only: which backups of each target to keep; older ones are deleted (audited). */
    keep: keepSchema.optional(),
    /** `backup` only: run verify-backup on each new backup. */
    verify: z.boolean().default(false),
  })
  .strict();

export const schedulesSchema = z.record(
  z.string().regex(NAME, 'use lower-case letters, digits, "-" and "_"'),
  scheduleSchema,
);
export type RawSchedule = z.output<typeof scheduleSchema>;

export interface ResolvedSchedule {
  name: string;
  cron: string;
  timezone: string;
  kind: ScheduleKind;
  /** The operation (kind operation) or "sample". */
  operation: string;
  targets: readonly string[];
  args: string;
  post?: ChannelRef;
  notify: 'failures' | 'always';
  /** The service person (kind operation). */
  as?: string;
  keep?: { last?: number; days?: number };
  verify: boolean;
}

/** The paused croner job of a schedule (nothing fires by itself: the scheduler asks it for slots). */
export function cronOf(schedule: Pick<ResolvedSchedule, 'cron' | 'timezone'>): Cron {
  return new Cron(schedule.cron, { timezone: schedule.timezone, paused: true });
}

/** Why the expression cannot be used (bad syntax, unknown zone, never fires), or undefined. */
export function cronProblem(cron: string, timezone: string, now = new Date()): string | undefined {
  let job: Cron;
  try {
    job = new Cron(cron, { timezone, paused: true });
  } catch (err) {
    return `cron "${cron}" is not valid: ${err instanceof Error ? err.message : String(err)}`;
  }
  let next: Date | null;
  try {
    next = job.nextRun(now);
  } catch {
    return `timezone "${timezone}" is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)`;
  }
  if (next === null) return `cron "${cron}" never fires (no date matches it); check day and month`;
  return undefined;
}

/** The latest slot at or before `now`, or undefined when there is none. */
export function latestSlot(
  schedule: Pick<ResolvedSchedule, 'cron' | 'timezone'>,
  now: Date,
): Date | undefined {
  return cronOf(schedule).previousRuns(1, now)[0];
}

/** The next slot after `now`, or undefined. */
export function nextSlot(schedule: Pick<ResolvedSchedule, 'cron' | 'timezone'>, now: Date): Date | undefined {
  return cronOf(schedule).nextRun(now) ?? undefined;
}

export function channelText(channel: ChannelRef): string {
  return `${channel.surface}:${channel.channel}`;
}

/** The post channel as a reference ("slack:C1" → { surface: 'slack', channel: 'C1' }). */
export function channelRef(text: string): ChannelRef {
  const colon = text.indexOf(':');
  return { surface: text.slice(0, colon) as ChannelRef['surface'], channel: text.slice(colon + 1) };
}

export function resolveSchedule(name: string, raw: RawSchedule): ResolvedSchedule {
  const targets = [...(raw.target !== undefined ? [raw.target] : []), ...(raw.targets ?? [])];
  return {
    name,
    cron: raw.cron,
    timezone: raw.timezone,
    kind: raw.kind,
    operation: raw.kind === 'operation' ? (raw.operation ?? '') : raw.kind,
    targets: [...new Set(targets)],
    args: raw.args,
    ...(raw.post !== undefined ? { post: channelRef(raw.post) } : {}),
    notify: raw.notify ?? (raw.kind === 'digest' ? 'always' : 'failures'),
    ...(raw.as !== undefined ? { as: raw.as } : {}),
    ...(raw.keep !== undefined
      ? {
          keep: {
            ...(raw.keep.last !== undefined ? { last: raw.keep.last } : {}),
            ...(raw.keep.days !== undefined ? { days: raw.keep.days } : {}),
          },
        }
      : {}),
    verify: raw.verify,
  };
}

/**
 * Structural checks that need only the file (the catalog-dependent ones are in checkSchedulesAgainst):
 * cron and zone, targets, the service person, what only backups take. `report(path, what)` collects.
 */
export function crossCheckSchedules(
  data: Record<string, unknown>,
  report: (path: (string | number)[], what: string) => void,
): void {
  const schedules = data.schedules;
  if (typeof schedules !== 'object' || schedules === null) return;
  const targets = typeof data.targets === 'object' && data.targets !== null ? Object.keys(data.targets) : [];
  const people = (typeof data.people === 'object' && data.people !== null ? data.people : {}) as Record<
    string,
    unknown
  >;
  for (const [name, value] of Object.entries(schedules as Record<string, unknown>)) {
    if (typeof value !== 'object' || value === null) continue;
    const s = value as Record<string, unknown>;
    const at = (key: string | number, ...more: (string | number)[]) => ['schedules', name, key, ...more];
    if (typeof s.cron === 'string') {
      const tz = typeof s.timezone === 'string' ? s.timezone : 'UTC';
      const problem = cronProblem(s.cron, tz);
      if (problem) report(at(problem.startsWith('timezone') ? 'timezone' : 'cron'), problem);
    }
    const kind = s.kind === 'sample' || s.kind === 'digest' ? s.kind : 'operation';
    const listed = [
      ...(typeof s.target === 'string' ? [s.target] : []),
      ...(Array.isArray(s.targets) ? s.targets.filter((t): t is string => typeof t === 'string') : []),
    ];
    if (listed.length === 0)
      report(['schedules', name], 'names no target; add target: <name> or targets: [a, b]');
    for (const target of listed) {
      if (!targets.includes(target)) {
        report(
          at(typeof s.target === 'string' && s.target === target ? 'target' : 'targets'),
          `'${target}' is not a target; use one of ${targets.join(', ') || '(none are configured)'}`,
        );
      }
    }
    if (kind !== 'operation') {
      if (s.operation !== undefined)
        report(at('operation'), `a ${kind} schedule runs no operation; remove it`);
      if (kind === 'sample') continue;
    } else if (typeof s.operation !== 'string' || s.operation === '') {
      report(['schedules', name], 'names no operation; add operation: <name> (or kind: sample)');
    }
    if (typeof s.as !== 'string') {
      report(['schedules', name], 'says not whom it runs as; add as: <service person from people>');
    } else {
      const person = people[s.as];
      if (typeof person !== 'object' || person === null) {
        report(at('as'), `'${s.as}' is not in people; add people.${s.as}: { service: true, roles: [...] }`);
      } else if ((person as Record<string, unknown>).service !== true) {
        report(
          at('as'),
          `people.${s.as} is not a service person; schedules run as a person with service: true`,
        );
      }
    }
    if (s.operation !== 'backup') {
      if (s.keep !== undefined) report(at('keep'), 'only backup schedules keep files; remove keep');
      if (s.verify === true) report(at('verify'), 'only backup schedules verify; remove verify');
    }
  }
}
