// Approval requests made outside chat (`dbops exec`, the console, schedules) announced by the running bot:
// each pending one gets its card, with working buttons, in its environment's approvals channel, exactly
// once across replicas (a claim, then a mark in the state database, migration 13).
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import type { Config, EnvironmentPolicy } from '../config/schema.js';
import { type Logger, redactSecrets } from '../core/log.js';
import { systemRecord } from '../state/system-record.js';
import type { ApprovalRequest, StateStore } from '../state/types.js';
import { AnnouncementStore, CHAT_SURFACES, WAKE_CHANNEL } from './approvals-store.js';

export type CardSurface = (typeof CHAT_SURFACES)[number];

/** How a chat surface posts a request's card at the top of a channel (buttons, thread, mentions or DMs). */
export interface ApprovalCardPoster {
  /** Posts the card in `channel`, tells the approvers per `notify`; returns the refs to store with it. */
  postCard(request: ApprovalRequest, channel: string): Promise<Record<string, unknown>>;
}

/** How long one replica holds a request while posting its card (a replica that died leaves it after this). */
const CLAIM_SECONDS = 600;
/** How long a request whose card could not be posted anywhere waits before any replica tries again. */
const RETRY_SECONDS = 30;
const SWEEP_MS = 2_000;
/** How soon a LISTEN connection that was lost is opened again (the sweeps go on meanwhile). */
const RELISTEN_MS = 5_000;

function channelOf(rules: EnvironmentPolicy | undefined, surface: CardSurface): string | undefined {
  return rules?.approvals_channel?.[surface];
}

export interface AnnouncerDeps {
  config: Config;
  state: StateStore;
  /** The state database's URL: the announcer keeps one connection of its own. */
  stateUrl: string;
  posters: Partial<Record<CardSurface, ApprovalCardPoster>>;
  log: Logger;
  /** Who claims (for the state database and the log): the replica. */
  owner?: string;
}

export class ApprovalAnnouncer {
  readonly #config: Config;
  readonly #state: StateStore;
  readonly #pool: pg.Pool;
  readonly #store: AnnouncementStore;
  readonly #posters: Partial<Record<CardSurface, ApprovalCardPoster>>;
  readonly #log: Logger;
  readonly #owner: string;
  /** Cards posted whose mark could not be written yet (the state database was away): written first. */
  readonly #unrecorded = new Map<number, Record<string, unknown>>();
  /** Requests this replica claimed and has not finished with. */
  readonly #held = new Set<number>();
  #running: Promise<number[]> | undefined;
  /** Woken while a pass ran (it may have looked before the request existed): one more pass follows. */
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #stateUrl: string;
  #listener: pg.Client | undefined;
  #relisten: NodeJS.Timeout | undefined;
  #stopped = false;
  #failing: { since: Date; error: string } | undefined;
  /** The last card that could not be posted, per surface and channel, for /readyz detail. */
  readonly #unposted = new Map<string, { at: Date; error: string }>();

  constructor(deps: AnnouncerDeps) {
    this.#config = deps.config;
    this.#state = deps.state;
    this.#posters = deps.posters;
    this.#log = deps.log.child({ component: 'approvals-channel' });
    this.#owner = deps.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.#stateUrl = deps.stateUrl;
    this.#pool = new pg.Pool({
      connectionString: deps.stateUrl,
      max: 1,
      application_name: 'dbops-announce',
      connectionTimeoutMillis: 5_000,
      statement_timeout: 10_000,
      query_timeout: 15_000,
      idleTimeoutMillis: 30_000,
    });
    this.#pool.on('error', (err) => {
      this.#log.warn({ error: redactSecrets(err.message) }, 'state database connection lost (announcements)');
    });
    this.#store = new AnnouncementStore(this.#pool);
  }

  /** Environments with an approvals channel on a surface this process runs. */
  environments(): string[] {
    return Object.entries(this.#config.policy)
      .filter(([, rules]) => CHAT_SURFACES.some((s) => this.#posters[s] && channelOf(rules, s)))
      .map(([name]) => name);
  }

  /** Why announcing fails right now (the state database away, a channel it cannot post to), for /readyz. */
  problems(): string[] {
    const problems = [...this.#unposted].map(
      ([where, { at, error }]) =>
        `approval cards cannot be posted in ${where} (last tried ${at.toISOString()}): ${error}`,
    );
    if (this.#failing) {
      problems.unshift(
        `approval requests made outside chat cannot be announced since ${this.#failing.since.toISOString()}: ${this.#failing.error}`,
      );
    }
    return problems;
  }

  /**
   * One pass; a pass already under way is joined (and followed by one more, since it may have looked
   * before the request that woke this one existed). Returns the requests announced.
   */
  sweep(): Promise<number[]> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.#sweep()
      .then((ids) => {
        this.#failing = undefined;
        return ids;
      })
      .catch((err: unknown) => {
        const error = redactSecrets(err instanceof Error ? err.message : String(err));
        this.#failing ??= { since: new Date(), error };
        this.#log.warn({ error }, 'announcing approval requests failed; trying again');
        return [];
      })
      .finally(() => {
        this.#running = undefined;
        if (this.#again && !this.#stopped) {
          this.#again = false;
          void this.sweep();
        }
      });
    return this.#running;
  }

  async #sweep(): Promise<number[]> {
    const announced: number[] = [];
    // Cards already posted are recorded before anything new is claimed: a card is never posted twice.
    for (const [id, refs] of this.#unrecorded) {
      await this.#store.record(id, refs);
      this.#unrecorded.delete(id);
      announced.push(id);
    }
    // Requests this replica claimed (or may have: the answer to a claim can be lost) before a failure.
    for (const id of [...this.#held]) {
      if (await this.#store.renew(id, this.#owner, CLAIM_SECONDS)) await this.#announce(id, announced);
      else this.#held.delete(id);
    }
    for (const id of await this.#store.due(this.environments())) {
      if (this.#held.has(id)) continue;
      this.#held.add(id);
      if (!(await this.#store.claim(id, this.#owner, CLAIM_SECONDS))) {
        this.#held.delete(id);
        continue;
      }
      await this.#announce(id, announced);
    }
    return announced;
  }

  /** Posts the card of a request this replica holds, then records it (or, with nothing posted, lets go). */
  async #announce(id: number, announced: number[]): Promise<void> {
    const request = await this.#state.getRequest(id);
    if (request?.status !== 'pending') {
      this.#held.delete(id);
      return;
    }
    const refs = await this.#post(request);
    if (Object.keys(refs).length === 0) {
      await this.#store.release(id, this.#owner, RETRY_SECONDS);
      this.#held.delete(id);
      return;
    }
    this.#unrecorded.set(id, refs);
    this.#held.delete(id);
    await this.#store.record(id, refs);
    this.#unrecorded.delete(id);
    announced.push(id);
    await this.#audit(request, refs);
  }

  /** Posts the card on each surface with a channel for the environment; the refs of those that worked. */
  async #post(request: ApprovalRequest): Promise<Record<string, unknown>> {
    const rules = this.#config.policy[request.environment];
    const refs: Record<string, unknown> = {};
    for (const surface of CHAT_SURFACES) {
      const poster = this.#posters[surface];
      const channel = channelOf(rules, surface);
      if (!poster || !channel) continue;
      try {
        Object.assign(refs, await poster.postCard(request, channel));
        this.#unposted.delete(`${surface}:${channel}`);
      } catch (err) {
        const error = redactSecrets(err instanceof Error ? err.message : String(err));
        this.#unposted.set(`${surface}:${channel}`, { at: new Date(), error });
        this.#log.warn(
          { err, requestId: request.id, surface, channel },
          'could not post the approval card in the approvals channel',
        );
      }
    }
    return refs;
  }

  async #audit(request: ApprovalRequest, refs: Record<string, unknown>): Promise<void> {
    const rules = this.#config.policy[request.environment];
    const where = CHAT_SURFACES.filter((s) => refs[s] !== undefined).map(
      (s) => `${s}:${channelOf(rules, s) ?? '?'}`,
    );
    await this.#state
      .audit(
        systemRecord(request, { event: 'pending', outcome: `announced in ${where.join(', ')}` }),
        new Date(),
      )
      .catch((err: unknown) =>
        this.#log.error({ err, requestId: request.id }, 'audit of an announcement failed'),
      );
  }

  /**
   * Sweeps every `everyMs` (and once now) until stop(), and at once when a process that made a request
   * outside chat wakes it (LISTEN; see wakeAnnouncers, called where requests are made).
   */
  start(everyMs = SWEEP_MS): void {
    if (this.#timer) return;
    void this.sweep();
    this.#timer = setInterval(() => void this.sweep(), everyMs);
    this.#timer.unref();
    void this.#listen();
  }

  async #listen(): Promise<void> {
    if (this.#stopped) return;
    const client = new pg.Client({
      connectionString: this.#stateUrl,
      application_name: 'dbops-announce-listen',
      connectionTimeoutMillis: 5_000,
    });
    const lost = () => {
      if (this.#listener !== client) return;
      this.#listener = undefined;
      void client.end().catch(() => undefined);
      if (this.#stopped) return;
      this.#relisten = setTimeout(() => void this.#listen(), RELISTEN_MS);
      this.#relisten.unref();
    };
    client.on('notification', () => void this.sweep());
    client.on('error', (err) => {
      this.#log.debug({ error: redactSecrets(err.message) }, 'approvals LISTEN connection lost');
      lost();
    });
    client.on('end', lost);
    this.#listener = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${WAKE_CHANNEL}`);
      // A wake-up sent while this was away is not replayed: look now.
      void this.sweep();
    } catch (err) {
      this.#log.debug({ error: redactSecrets(String(err)) }, 'approvals LISTEN not possible now');
      lost();
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#relisten);
    this.#timer = undefined;
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.end().catch(() => undefined);
    await this.#running;
    await this.#pool.end();
  }
}
