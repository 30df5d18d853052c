// Alert state in the state database: each (target, check)'s last verdict, and the alerts it opens and
// resolves; every change is a compare-and-set under a row lock, so each change is reported once.

import type pg from 'pg';
import type { ChannelRef, PostedRef } from '../notify/poster.js';
import { inTransaction } from '../state/transaction.js';

export const CHECK_STATUSES = ['ok', 'warn', 'fail'] as const;
export type CheckStatus = (typeof CHECK_STATUSES)[number];

export interface Alert {
  id: number;
  target: string;
  check: string;
  status: Exclude<CheckStatus, 'ok'>;
  detail: string;
  /** What reported it, e.g. "schedule nightly-health (health)". */
  source: string;
  channel?: ChannelRef;
  /** The alert's first post: every follow-up goes into its thread. */
  thread?: PostedRef;
  postError?: string;
  openedAt: Date;
  lastPostedAt?: Date;
  resolvedAt?: Date;
  acked?: { by: string; at: Date };
  muted?: { by: string; until: Date };
}

/** What one verdict did to the state of its check. */
export type Transition =
  | { kind: 'opened'; alert: Alert }
  | { kind: 'changed'; alert: Alert; from: Exclude<CheckStatus, 'ok'> }
  | { kind: 'resolved'; alert: Alert }
  | { kind: 'same'; alert?: Alert }
  /** A verdict older than the one already recorded (a slow run reporting late): ignored. */
  | { kind: 'stale' };

export interface Verdict {
  target: string;
  check: string;
  status: CheckStatus;
  detail: string;
  at: Date;
  source: string;
  channel?: ChannelRef | undefined;
}

interface AlertRow {
  id: string;
  target: string;
  check_name: string;
  status: 'warn' | 'fail';
  detail: string;
  source: string;
  channel: ChannelRef | null;
  thread: PostedRef | null;
  post_error: string | null;
  opened_at: Date;
  last_posted_at: Date | null;
  resolved_at: Date | null;
  acked_by: string | null;
  acked_at: Date | null;
  muted_by: string | null;
  muted_until: Date | null;
}

function toAlert(row: AlertRow): Alert {
  return {
    id: Number(row.id),
    target: row.target,
    check: row.check_name,
    status: row.status,
    detail: row.detail,
    source: row.source,
    openedAt: row.opened_at,
    ...(row.channel ? { channel: row.channel } : {}),
    ...(row.thread ? { thread: row.thread } : {}),
    ...(row.post_error ? { postError: row.post_error } : {}),
    ...(row.last_posted_at ? { lastPostedAt: row.last_posted_at } : {}),
    ...(row.resolved_at ? { resolvedAt: row.resolved_at } : {}),
    ...(row.acked_by && row.acked_at ? { acked: { by: row.acked_by, at: row.acked_at } } : {}),
    ...(row.muted_by && row.muted_until ? { muted: { by: row.muted_by, until: row.muted_until } } : {}),
  };
}

export class AlertBook {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  /** Records one verdict; the returned transition is seen by exactly one caller. */
  async record(v: Verdict): Promise<Transition> {
    return await inTransaction(this.#pool, (client) => this.#record(client, v));
  }

  async #record(client: pg.PoolClient, v: Verdict): Promise<Transition> {
    // The first verdict of a check creates its row (ok, so a first failure opens an alert); two replicas
    // doing so at once meet in ON CONFLICT, then both wait for the row lock.
    await client.query(
      `INSERT INTO dbops_check_states (target, check_name, status, since, checked_at)
       VALUES ($1, $2, 'ok', $3, '-infinity') ON CONFLICT DO NOTHING`,
      [v.target, v.check, v.at],
    );
    const { rows } = await client.query<{ status: CheckStatus; checked_at: Date; alert_id: string | null }>(
      `SELECT status, checked_at, alert_id FROM dbops_check_states
       WHERE target = $1 AND check_name = $2 FOR UPDATE`,
      [v.target, v.check],
    );
    const state = rows[0];
    if (!state) throw new Error(`check state of ${v.target}/${v.check} vanished`);
    if (state.checked_at > v.at) return { kind: 'stale' };
    const current = state.alert_id === null ? undefined : await this.#alert(client, Number(state.alert_id));
    const setState = (status: CheckStatus, alertId: number | null, changed: boolean) =>
      client.query(
        `UPDATE dbops_check_states SET status = $3, detail = $4, checked_at = $5, alert_id = $6,
           since = CASE WHEN $7 THEN $5 ELSE since END
         WHERE target = $1 AND check_name = $2`,
        [v.target, v.check, status, v.detail, v.at, alertId, changed],
      );
    if (state.status === v.status) {
      await setState(v.status, current?.id ?? null, false);
      return current ? { kind: 'same', alert: current } : { kind: 'same' };
    }
    if (v.status === 'ok') {
      await setState('ok', null, true);
      if (!current) return { kind: 'same' };
      const { rows: resolved } = await client.query<AlertRow>(
        'UPDATE dbops_alerts SET resolved_at = $2 WHERE id = $1 RETURNING *',
        [current.id, v.at],
      );
      return { kind: 'resolved', alert: toAlert(resolved[0] as AlertRow) };
    }
    if (!current) {
      const { rows: opened } = await client.query<AlertRow>(
        `INSERT INTO dbops_alerts (target, check_name, status, detail, source, channel, opened_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
        [v.target, v.check, v.status, v.detail, v.source, v.channel ? JSON.stringify(v.channel) : null, v.at],
      );
      const alert = toAlert(opened[0] as AlertRow);
      await setState(v.status, alert.id, true);
      return { kind: 'opened', alert };
    }
    const { rows: changed } = await client.query<AlertRow>(
      'UPDATE dbops_alerts SET status = $2, detail = $3 WHERE id = $1 RETURNING *',
      [current.id, v.status, v.detail],
    );
    await setState(v.status, current.id, true);
    return { kind: 'changed', alert: toAlert(changed[0] as AlertRow), from: current.status };
  }

  async #alert(client: pg.PoolClient | pg.Pool, id: number): Promise<Alert | undefined> {
    const { rows } = await client.query<AlertRow>('SELECT * FROM dbops_alerts WHERE id = $1', [id]);
    return rows[0] ? toAlert(rows[0]) : undefined;
  }

  async get(id: number): Promise<Alert | undefined> {
    return await this.#alert(this.#pool, id);
  }

  /** Where the alert's posts went (its thread, set once) or why the last one did not land. */
  async posted(id: number, outcome: { thread?: PostedRef; error?: string }, at: Date): Promise<void> {
    await this.#pool.query(
      `UPDATE dbops_alerts SET thread = coalesce(thread, $2), post_error = $3,
         last_posted_at = CASE WHEN $3::text IS NULL THEN $4 ELSE last_posted_at END
       WHERE id = $1`,
      [id, outcome.thread ? JSON.stringify(outcome.thread) : null, outcome.error ?? null, at],
    );
  }

  /**
   * Claims the reminder of a failing alert that is due (last post at least `everySeconds` ago, neither
   * acknowledged nor muted): true for exactly one caller, which then posts it.
   */
  async claimReminder(id: number, now: Date, everySeconds: number): Promise<boolean> {
    const { rowCount } = await this.#pool.query(
      `UPDATE dbops_alerts SET last_posted_at = $2
       WHERE id = $1 AND resolved_at IS NULL AND status = 'fail' AND thread IS NOT NULL
         AND acked_at IS NULL AND (muted_until IS NULL OR muted_until <= $2)
         AND last_posted_at <= $2 - make_interval(secs => $3)`,
      [id, now, everySeconds],
    );
    return rowCount === 1;
  }

  /** Open alerts, oldest first; of some targets only when given. */
  async open(targets?: readonly string[]): Promise<Alert[]> {
    const { rows } = await this.#pool.query<AlertRow>(
      `SELECT * FROM dbops_alerts WHERE resolved_at IS NULL AND ($1::text[] IS NULL OR target = ANY($1))
       ORDER BY opened_at, id`,
      [targets ?? null],
    );
    return rows.map(toAlert);
  }

  /** Silences reminders until the alert resolves; undefined when it is not open. */
  async acknowledge(id: number, by: string, at: Date): Promise<Alert | undefined> {
    const { rows } = await this.#pool.query<AlertRow>(
      `UPDATE dbops_alerts SET acked_by = $2, acked_at = $3
       WHERE id = $1 AND resolved_at IS NULL RETURNING *`,
      [id, by, at],
    );
    return rows[0] ? toAlert(rows[0]) : undefined;
  }

  /** Silences reminders until `until`; undefined when it is not open. */
  async mute(id: number, by: string, until: Date): Promise<Alert | undefined> {
    const { rows } = await this.#pool.query<AlertRow>(
      `UPDATE dbops_alerts SET muted_by = $2, muted_until = $3
       WHERE id = $1 AND resolved_at IS NULL RETURNING *`,
      [id, by, until],
    );
    return rows[0] ? toAlert(rows[0]) : undefined;
  }
}
