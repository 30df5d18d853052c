// One run of a schedule, target by target: the operation through the core as the service person (policy,
// audit, outcome journal like anyone's command), then for backups verification and retention; every
// outcome goes to the registered observers (alerts) and, when configured, to the schedule's channel.
import { replyJson } from '../cli-json.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../core/log.js';
import type { Reply } from '../core/reply.js';
import type { Invocation } from '../core/types.js';
import { ChannelPostError, type ChannelPoster, type ChannelRef } from '../notify/poster.js';
import type { StateStore } from '../state/types.js';
import type { AfterScheduledRun, SampleTarget, ScheduledRunReport } from './hooks.js';
import { deleteBackup, retentionPlan } from './retention.js';
import { channelText, type ResolvedSchedule } from './schema.js';
import type { FinalState, ScheduleRun } from './store.js';

export interface ExecuteDeps {
  config: Config;
  dispatch(inv: Invocation): Promise<Reply>;
  state: Pick<StateStore, 'audit'>;
  log: Logger;
  clock: () => Date;
  poster?: ChannelPoster | undefined;
  sample?: SampleTarget | undefined;
  observers: readonly AfterScheduledRun[];
  /** A post to a channel failed (error) or worked again (undefined): for /readyz and the logs. */
  postProblem(channel: ChannelRef, error: string | undefined): void;
}

export interface TargetOutcome {
  target: string;
  outcome: ScheduledRunReport['outcome'];
  message: string;
  request: number | null;
  /** Backups: the file made, whether it verified, what retention deleted. */
  file?: string;
  verified?: boolean;
  deleted?: string[];
}

export interface RunResult {
  state: FinalState;
  outcome: string;
  targets: TargetOutcome[];
}

function outcomeOf(reply: Reply): ScheduledRunReport['outcome'] {
  if (reply.status === 'ok') return 'succeeded';
  if (reply.code === 'shutting_down') return 'interrupted'; // this replica stopped: nothing ran
  if (reply.status === 'failed') return 'failed';
  return 'refused'; // refused, invalid, or pending (a schedule cannot wait for approval)
}

function firstLine(text: string): string {
  return (text.split('\n')[0] ?? '').slice(0, 300);
}

/** Runs every target of the schedule in turn and reports each; never throws for an operation's failure. */
export async function executeSchedule(
  deps: ExecuteDeps,
  schedule: ResolvedSchedule,
  run: Pick<ScheduleRun, 'id' | 'slot' | 'trigger' | 'triggeredBy'>,
): Promise<RunResult> {
  const targets: TargetOutcome[] = [];
  for (const target of schedule.targets) {
    const startedAt = deps.clock();
    let result: TargetOutcome;
    let data: unknown;
    let text: string | undefined;
    let files: { name: string; data: Buffer }[] | undefined;
    try {
      if (schedule.kind === 'sample') {
        if (!deps.sample) throw new Error('history sampling is not available in this dbops');
        const taken = await deps.sample(target, startedAt);
        result = { target, outcome: 'succeeded', message: `${taken.samples} samples`, request: null };
        data = taken;
      } else {
        ({ result, data, text, files } = await runOperation(deps, schedule, run, target));
      }
    } catch (err) {
      deps.log.error({ err, schedule: schedule.name, target }, 'scheduled run failed');
      result = {
        target,
        outcome: 'failed',
        message: err instanceof Error ? err.message : String(err),
        request: null,
      };
    }
    targets.push(result);
    await report(deps, schedule, {
      schedule: schedule.name,
      target,
      operation: schedule.operation,
      person: schedule.as ?? 'dbops',
      outcome: result.outcome,
      startedAt,
      finishedAt: deps.clock(),
      ...(data !== undefined ? { data } : {}),
      ...(text !== undefined ? { text } : {}),
      ...(files && files.length > 0 ? { files } : {}),
      ...(result.outcome !== 'succeeded' ? { error: result.message } : {}),
      ...(schedule.post ? { post: schedule.post } : {}),
    });
  }
  const worst: FinalState = targets.some((t) => t.outcome === 'failed')
    ? 'failed'
    : targets.some((t) => t.outcome === 'interrupted')
      ? 'interrupted'
      : targets.some((t) => t.outcome === 'refused')
        ? 'refused'
        : 'succeeded';
  const outcome = targets.map(
    (t) => `${t.target}: ${t.outcome}${t.outcome === 'succeeded' ? '' : ` (${t.message})`}`,
  );
  return { state: worst, outcome: outcome.join('; ').slice(0, 2000), targets };
}

async function runOperation(
  deps: ExecuteDeps,
  schedule: ResolvedSchedule,
  run: Pick<ScheduleRun, 'id'>,
  target: string,
): Promise<{ result: TargetOutcome; data: unknown; text: string; files: { name: string; data: Buffer }[] }> {
  const as = schedule.as ?? '';
  const thread = `schedule:${schedule.name}:${run.id}`;
  const command = `/db ${schedule.operation} ${target}${schedule.args ? ` ${schedule.args}` : ''}`;
  const answer = await deps.dispatch({ surface: 'schedule', identity: as, text: command, thread });
  const result: TargetOutcome = {
    target,
    outcome: outcomeOf(answer),
    message:
      answer.status === 'pending'
        ? `it waits for approval as request #${answer.requestId}; a schedule cannot wait, so its policy must let ${as} run it directly`
        : firstLine(answer.message),
    request: answer.requestId,
  };
  let text = answer.text;
  if (schedule.operation === 'backup' && result.outcome === 'succeeded') {
    const file = answer.result?.data?.file;
    if (typeof file === 'string') {
      result.file = file;
      if (schedule.verify) {
        const check = await deps.dispatch({
          surface: 'schedule',
          identity: as,
          text: `/db verify-backup ${target} ${file}`,
          thread,
        });
        result.verified = check.status === 'ok' && check.result?.data?.verified === true;
        text = `${text}\n\n${check.text}`;
        if (!result.verified) {
          result.outcome = 'failed';
          result.message = `backup ${file} was made but did not verify: ${firstLine(check.message)}`;
        }
      }
      if (schedule.keep) {
        result.deleted = await applyRetention(deps, schedule, target, file);
        if (result.deleted.length > 0) {
          text = `${text}\n\nretention (${keepText(schedule.keep)}) deleted ${result.deleted.join(', ')}`;
        }
      }
    }
  }
  // Binary attachments (a digest's charts) go with the post; text files (CSV) stay in the answer's text.
  const files = (answer.result?.attachments ?? []).flatMap((a) =>
    a.bytes ? [{ name: a.filename, data: Buffer.from(a.bytes) }] : [],
  );
  return { result, data: replyJson(answer, []), text, files };
}

function keepText(keep: NonNullable<ResolvedSchedule['keep']>): string {
  return [
    ...(keep.last !== undefined ? [`last ${keep.last}`] : []),
    ...(keep.days !== undefined ? [`${keep.days} days`] : []),
  ].join(', ');
}

/** Deletes what the keep rule lets go, each after its audit record is written (none written: none deleted). */
async function applyRetention(
  deps: ExecuteDeps,
  schedule: ResolvedSchedule,
  target: string,
  justMade: string,
): Promise<string[]> {
  if (!schedule.keep) return [];
  const plan = await retentionPlan(deps.config.backupsDir, target, schedule.keep, deps.clock(), justMade);
  for (const skipped of plan.unreadable) {
    deps.log.warn(
      { schedule: schedule.name, target, file: skipped.name, problem: skipped.problem },
      'retention left a backup it cannot read',
    );
  }
  const deleted: string[] = [];
  const as = schedule.as ?? 'dbops';
  for (const victim of plan.remove) {
    const base = {
      requestId: null,
      person: as,
      identity: `service:${as}`,
      surface: 'schedule' as const,
      operation: 'backup-retention',
      target,
      risk: 'write' as const,
      args: { file: victim.name },
      detail: { schedule: schedule.name, keep: schedule.keep, why: victim.why },
    };
    await deps.state.audit(
      { ...base, event: 'executed', outcome: `deleting backup ${victim.name} (${victim.why})` },
      deps.clock(),
    );
    try {
      await deleteBackup(victim.file);
      deleted.push(victim.name);
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      deps.log.error(
        { schedule: schedule.name, target, file: victim.name, error },
        'retention could not delete a backup',
      );
      await deps.state
        .audit(
          { ...base, event: 'failed', outcome: `could not delete backup ${victim.name}`, error },
          deps.clock(),
        )
        .catch(() => {});
    }
  }
  return deleted;
}

/** Observers, then the channel: a post that fails is reported (readyz, logs), never thrown. */
export async function report(
  deps: ExecuteDeps,
  schedule: ResolvedSchedule,
  run: ScheduledRunReport,
): Promise<void> {
  for (const observer of deps.observers) {
    try {
      await observer(run);
    } catch (err) {
      // An alert that could not be posted is a channel problem like a run's own post: /readyz detail too.
      if (err instanceof ChannelPostError) deps.postProblem(err.to, err.reason);
      deps.log.error({ err, schedule: schedule.name, target: run.target }, 'a scheduled-run observer failed');
    }
  }
  if (!schedule.post) return;
  if (run.outcome === 'succeeded' && schedule.notify !== 'always') return;
  const headline =
    run.outcome === 'succeeded'
      ? `Scheduled ${schedule.name}: ${run.operation} ${run.target} succeeded`
      : `Scheduled ${schedule.name}: ${run.operation} ${run.target} ${run.outcome.toUpperCase()}: ${run.error ?? ''}`;
  const body = run.outcome === 'succeeded' && run.text ? `${headline}\n\n${run.text}` : headline;
  if (!deps.poster) {
    deps.postProblem(schedule.post, 'no chat surface is running that can post there');
    deps.log.error(
      { schedule: schedule.name, channel: channelText(schedule.post) },
      'cannot post a scheduled run: no chat surface',
    );
    return;
  }
  try {
    const files = run.outcome === 'succeeded' ? (run.files ?? []) : [];
    await deps.poster.post(schedule.post, { text: body, ...(files.length > 0 ? { files } : {}) });
    deps.postProblem(schedule.post, undefined);
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    deps.postProblem(schedule.post, error);
    deps.log.error(
      { schedule: schedule.name, channel: channelText(schedule.post), error },
      'could not post a scheduled run',
    );
  }
}
