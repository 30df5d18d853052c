// The state of announcing requests made outside chat (migration 13): which are due, a claim that one replica
// holds while it posts the card, and the mark (with the card's refs) that makes the announcement happen once.
import type pg from 'pg';

/** Surfaces whose requests have a chat thread of their own (their card is posted where they were made). */
export const CHAT_SURFACES = ['slack', 'discord'] as const;

/** The NOTIFY channel a process that made a request outside chat wakes the running bots' announcers on. */
export const WAKE_CHANNEL = 'dbops_approval_requests';

/** Wakes the announcers for a request made outside chat (best effort: they also sweep every few seconds). */
export async function wakeAnnouncers(pool: pg.Pool, requestId: number): Promise<void> {
  await pool.query('SELECT pg_notify($1, $2)', [WAKE_CHANNEL, String(requestId)]);
}

export class AnnouncementStore {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  /** Pending requests of these environments made outside chat, not announced and not claimed now. */
  async due(environments: readonly string[], limit = 50): Promise<number[]> {
    if (environments.length === 0) return [];
    const { rows } = await this.#pool.query<{ id: string }>(
      `SELECT id FROM dbops_requests
       WHERE status = 'pending' AND announced_at IS NULL AND environment = ANY ($1::text[])
         AND requester_surface <> ALL ($2::text[])
         AND (announce_until IS NULL OR announce_until < now())
       ORDER BY id LIMIT $3`,
      [environments, CHAT_SURFACES, limit],
    );
    return rows.map((r) => Number(r.id));
  }

  /**
   * Claims a request for `owner` for `seconds` (database time, the same clock for every replica): true for
   * exactly one caller while the claim lasts. One statement: a concurrent claim is re-checked after the
   * other's commit and finds the claim taken.
   */
  async claim(id: number, owner: string, seconds: number): Promise<boolean> {
    const { rowCount } = await this.#pool.query(
      `UPDATE dbops_requests SET announce_claim = $2, announce_until = now() + make_interval(secs => $3)
       WHERE id = $1 AND status = 'pending' AND announced_at IS NULL
         AND (announce_until IS NULL OR announce_until < now())`,
      [id, owner, seconds],
    );
    return rowCount === 1;
  }

  /** Extends this owner's claim (even a lapsed one nobody else took); false when it is not theirs. */
  async renew(id: number, owner: string, seconds: number): Promise<boolean> {
    const { rowCount } = await this.#pool.query(
      `UPDATE dbops_requests SET announce_until = now() + make_interval(secs => $3)
       WHERE id = $1 AND announce_claim = $2 AND status = 'pending' AND announced_at IS NULL`,
      [id, owner, seconds],
    );
    return rowCount === 1;
  }

  /** The card is posted: its refs are stored with the request and it is never announced again. */
  async record(id: number, refs: Record<string, unknown>): Promise<boolean> {
    const { rowCount } = await this.#pool.query(
      `UPDATE dbops_requests SET announced_at = now(), refs = refs || $2::jsonb
       WHERE id = $1 AND announced_at IS NULL`,
      [id, JSON.stringify(refs)],
    );
    return rowCount === 1;
  }

  /**
   * Nothing could be posted (the bot is not in the channel, the platform is down): any replica may try
   * again after `retrySeconds`, so a channel the bot cannot post to is not tried every sweep.
   */
  async release(id: number, owner: string, retrySeconds: number): Promise<void> {
    await this.#pool.query(
      `UPDATE dbops_requests SET announce_until = now() + make_interval(secs => $3)
       WHERE id = $1 AND announce_claim = $2 AND announced_at IS NULL`,
      [id, owner, retrySeconds],
    );
  }
}
