// History samples in the state database: written per sampling run, read as one series, pruned by age.
import type pg from 'pg';
import type { Metric, Sample } from './metrics.js';

export interface SeriesPoint {
  subject: string;
  at: Date;
  value: number | null;
}

export class HistoryStore {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  /** Stores one run's samples in one statement; a repeated (target, metric, subject, at) keeps the first. */
  async insert(samples: readonly Sample[]): Promise<number> {
    if (samples.length === 0) return 0;
    const { rowCount } = await this.#pool.query(
      `INSERT INTO dbops_samples (target, metric, subject, at, value)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::float8[])
       ON CONFLICT DO NOTHING`,
      [
        samples.map((s) => s.target),
        samples.map((s) => s.metric),
        samples.map((s) => s.subject),
        samples.map((s) => s.at.toISOString()),
        samples.map((s) => s.value),
      ],
    );
    return rowCount ?? 0;
  }

  /**
   * One metric of one target since a time, oldest first; `subject` narrows it (a table, a state).
   * At most `limit` points, the newest ones when there are more.
   */
  async series(query: {
    target: string;
    metric: Metric;
    since: Date;
    subject?: string | undefined;
    limit: number;
  }): Promise<{ points: SeriesPoint[]; more: boolean }> {
    const { rows } = await this.#pool.query<{ subject: string; at: Date; value: number | null }>(
      `SELECT subject, at, value FROM (
         SELECT subject, at, value FROM dbops_samples
         WHERE target = $1 AND metric = $2 AND at >= $3 AND ($4::text IS NULL OR subject = $4)
         ORDER BY at DESC, subject
         LIMIT $5
       ) newest ORDER BY at, subject`,
      [query.target, query.metric, query.since, query.subject ?? null, query.limit + 1],
    );
    const more = rows.length > query.limit;
    return { points: more ? rows.slice(1) : rows, more };
  }

  /** The subjects (tables, states) a metric of a target has samples for since a time. */
  async subjects(target: string, metric: Metric, since: Date): Promise<string[]> {
    const { rows } = await this.#pool.query<{ subject: string }>(
      `SELECT DISTINCT subject FROM dbops_samples
       WHERE target = $1 AND metric = $2 AND at >= $3 ORDER BY subject`,
      [target, metric, since],
    );
    return rows.map((r) => r.subject);
  }

  /** Deletes samples older than `before`; returns how many. */
  async prune(before: Date): Promise<number> {
    const { rowCount } = await this.#pool.query('DELETE FROM dbops_samples WHERE at < $1', [before]);
    return rowCount ?? 0;
  }

  /** What the last digest of a target saw (slow query ids, unused indexes), or undefined before the first. */
  async lastDigest(target: string): Promise<DigestSnapshot | undefined> {
    const { rows } = await this.#pool.query<{ snapshot: DigestSnapshot }>(
      'SELECT snapshot FROM dbops_digest_snapshots WHERE target = $1 ORDER BY taken_at DESC LIMIT 1',
      [target],
    );
    return rows[0]?.snapshot;
  }

  async saveDigest(target: string, at: Date, snapshot: DigestSnapshot): Promise<void> {
    await this.#pool.query(
      `INSERT INTO dbops_digest_snapshots (target, taken_at, snapshot) VALUES ($1, $2, $3)
       ON CONFLICT (target, taken_at) DO UPDATE SET snapshot = EXCLUDED.snapshot`,
      [target, at, JSON.stringify(snapshot)],
    );
  }
}

/** What a digest remembers of a target for the next one. */
export interface DigestSnapshot {
  slowQueries: string[];
  unusedIndexes: string[];
}
