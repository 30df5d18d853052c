// The alert observer of scheduled runs: keeps each declared check's state, and posts each change once —
// the alert's first post opens its thread, follow-ups (diagnostics, reminders, "resolved") go into it.
import { durationText } from '../core/args.js';
import { formatDuration } from '../core/duration.js';
import type { Logger } from '../core/log.js';
import { formatTime } from '../core/time-format.js';
import {
  ChannelPostError,
  type ChannelPoster,
  type ChannelRef,
  type OutgoingPost,
} from '../notify/poster.js';
import type { AfterScheduledRun, ScheduledRunReport } from '../schedules/hooks.js';
import { alertButtons } from './buttons.js';
import { type DeclaredCheck, declaredChecks } from './checks.js';
import type { Alert, AlertBook, CheckStatus } from './store.js';

export const DEFAULT_REMIND_EVERY_SECONDS = 3600;

/** Runs a read operation on a target as a person; its answer as text (diagnostics for an alert's thread). */
export type Diagnose = (person: string, operation: string, target: string) => Promise<string>;

export interface AlertObserverDeps {
  book: AlertBook;
  /** Absent: state is kept and nothing is posted (a schedule that posts nowhere). */
  poster?: ChannelPoster;
  diagnose?: Diagnose;
  /** How often a failing alert that nobody acknowledged or muted is posted again (default 1 h). */
  remindEverySeconds?: number;
  log?: Logger;
}

function label(status: CheckStatus): string {
  return status.toUpperCase();
}

function since(alert: Alert, at: Date): string {
  return formatDuration(Math.max(0, (at.getTime() - alert.openedAt.getTime()) / 1000));
}

function openingPost(alert: Alert, check: DeclaredCheck, remindEvery: number): OutgoingPost {
  const lines = [
    `${label(alert.status)} ${alert.target} · ${alert.check}: ${alert.detail}`,
    `alert #${alert.id}, opened ${formatTime(alert.openedAt)} by ${alert.source}`,
    `while it fails it is posted again every ${durationText(remindEvery)}; Acknowledge or Mute silences that`,
    `\`/db alerts\` lists open alerts`,
  ];
  if (check.next.length > 0) {
    lines.push(
      `next: ${check.next.map((op) => `/db ${op} ${alert.target}`).join(', ')} (answers in this thread)`,
    );
  }
  return { text: lines.join('\n'), buttons: alertButtons(alert.id) };
}

export function createAlertObserver(deps: AlertObserverDeps): AfterScheduledRun {
  const remindEvery = deps.remindEverySeconds ?? DEFAULT_REMIND_EVERY_SECONDS;

  /** Posts and records where it went; a failure is recorded on the alert and thrown after the others. */
  async function post(alert: Alert, to: ChannelRef, message: OutgoingPost, at: Date): Promise<void> {
    if (!deps.poster) return;
    const thread = message.thread ?? alert.thread;
    // Follow-ups go where the alert was posted, even if the schedule now posts elsewhere.
    if (thread) to = { surface: thread.surface, channel: thread.channel };
    try {
      const posted = await deps.poster.post(to, { ...message, ...(thread ? { thread } : {}) });
      await deps.book.posted(alert.id, thread ? {} : { thread: posted }, at);
      if (!thread) alert.thread = posted;
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      await deps.book.posted(alert.id, { error: reason }, at).catch(() => {});
      throw err instanceof ChannelPostError ? err : new ChannelPostError(to, reason);
    }
  }

  async function diagnostics(alert: Alert, check: DeclaredCheck, report: ScheduledRunReport, to: ChannelRef) {
    if (!deps.diagnose || !alert.thread) return;
    for (const op of check.next) {
      const command = `/db ${op} ${alert.target}`;
      let answer: string;
      try {
        answer = await deps.diagnose(report.person, op, alert.target);
      } catch (err) {
        answer = `could not run it: ${err instanceof Error ? err.message : String(err)}`;
      }
      await post(
        alert,
        to,
        { text: `${command} (run as ${report.person} for alert #${alert.id})\n${answer}` },
        report.finishedAt,
      );
    }
  }

  async function onCheck(report: ScheduledRunReport, check: DeclaredCheck): Promise<void> {
    const at = report.finishedAt;
    const to = report.post;
    const transition = await deps.book.record({
      target: report.target,
      check: check.name,
      status: check.status,
      detail: check.detail,
      at,
      source: `schedule ${report.schedule} (${report.operation})`,
      channel: to,
    });
    deps.log?.info(
      { target: report.target, check: check.name, status: check.status, transition: transition.kind },
      'alert state recorded',
    );
    if (!to || !deps.poster) return;
    switch (transition.kind) {
      case 'stale':
        return;
      case 'opened': {
        const { alert } = transition;
        await post(alert, to, openingPost(alert, check, remindEvery), at);
        await diagnostics(alert, check, report, to);
        return;
      }
      case 'changed': {
        const { alert, from } = transition;
        if (!alert.thread) {
          await post(alert, to, openingPost(alert, check, remindEvery), at);
        } else {
          await post(
            alert,
            to,
            {
              text: `now ${label(alert.status)} (was ${label(from)}): ${alert.target} · ${alert.check}: ${alert.detail}`,
            },
            at,
          );
        }
        if (alert.status === 'fail') await diagnostics(alert, check, report, to);
        return;
      }
      case 'resolved': {
        const { alert } = transition;
        // An alert whose first post never landed resolves without a thread to tell.
        if (!alert.thread) return;
        await post(
          alert,
          to,
          {
            text: `resolved: ${alert.target} · ${alert.check} is ok again after ${since(alert, at)}: ${check.detail}`,
          },
          at,
        );
        return;
      }
      case 'same': {
        const { alert } = transition;
        if (!alert) return;
        if (!alert.thread) {
          // The first post did not land last time (the channel refused it): try again. Without an error
          // recorded it is still under way (another replica recorded the change a moment ago).
          if (alert.postError) await post(alert, to, openingPost(alert, check, remindEvery), at);
          return;
        }
        if (!(await deps.book.claimReminder(alert.id, at, remindEvery))) return;
        await post(
          alert,
          to,
          {
            text: `still ${label(alert.status)}: ${alert.target} · ${alert.check} since ${formatTime(alert.openedAt)} (${since(alert, at)}): ${check.detail}`,
          },
          at,
        );
        return;
      }
    }
  }

  return async (report) => {
    if (report.outcome !== 'succeeded') return;
    const failures: unknown[] = [];
    for (const check of declaredChecks(report.data)) {
      try {
        await onCheck(report, check);
      } catch (err) {
        deps.log?.warn({ err, target: report.target, check: check.name }, 'alert not posted');
        failures.push(err);
      }
    }
    // Every check was handled; the first failure is the run's to report (logs, /readyz detail).
    if (failures.length > 0) throw failures[0];
  };
}
