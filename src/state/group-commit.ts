// Group commit for the state database: audit records, delivery claims and paged reads that concurrent
// commands write at about the same time share one statement (one round trip, one commit) instead of
// one each; every caller still learns its own result and sees its own failure.
import { groupSql, pagedRecord, unitRows } from './group-sql.js';
import type { Queryable } from './rows.js';
import type { AuditEvent, PagedRead } from './types.js';

/** The most writes one statement carries. */
export const MAX_GROUP_WRITES = 100;
/** The most bytes (of JSON) one statement carries; a single larger write goes alone. */
export const MAX_GROUP_BYTES = 1024 * 1024;
/** Statements in flight at once (beside stalled ones): a slow group does not hold every command back. */
const MAX_IN_FLIGHT = 1;
/** A statement in flight longer than this no longer counts against MAX_IN_FLIGHT (a lock, a slow disk). */
const STALL_MS = 100;
/**
 * How long a write that follows its reply (a closing record, a paged read) may wait for company: it
 * rides with the next group sent, or goes after this long with whatever else waits by then.
 */
export const LINGER_MS = 25;

/** One caller's write: rows written together or not at all, with at most one claim. */
interface Unit {
  /** Audit records (may be none: a claim alone). */
  records: readonly AuditEvent[];
  at: Date;
  claim?: string;
  paged?: PagedRead;
  /** Its rows of groupSql's recordsets, as JSON objects (made once, when it is queued). */
  rows: string[];
  pagedRow?: string;
  bytes: number;
  resolve: (claimed: boolean) => void;
  reject: (err: unknown) => void;
}

export interface GroupCommitOptions {
  /** Called when a group's statement fails; the callers are told anyway. */
  onGroupFailed?: (err: unknown, writes: number) => void;
  /** Runs now and then after a group with claims or paged reads (old ones are forgotten); errors ignored. */
  housekeeping?: (q: Queryable, now: Date) => Promise<void>;
}

/**
 * Queues writes and sends them in groups: writes asked for in the same turn of the event loop, or while
 * the statements allowed in flight are busy, go in the next group (capped by count and bytes, in the
 * order asked). A group that fails on a data error (one hostile record) is split into its writes, each
 * sent alone, so one bad write fails only its own caller; a lost connection fails the whole group.
 */
export class GroupCommit {
  readonly #q: Queryable;
  readonly #options: GroupCommitOptions;
  #queue: Unit[] = [];
  /** Writes that follow their reply, waiting for company (LINGER_MS). */
  #later: Unit[] = [];
  #lingering: NodeJS.Timeout | undefined;
  /** Set by hurry(): nothing lingers until everything asked for so far is written. */
  #hurry = false;
  #scheduled = false;
  /** Paged reads queued or being written, by reference. */
  readonly #paged = new Map<string, Promise<boolean>>();
  /** Writes queued so far: each one's number tells its rows apart in a statement. */
  #units = 0;
  /** Statements sent and not stalled. */
  #inFlight = 0;
  /** Writes in statements sent and not yet answered. */
  #sending = 0;
  readonly #running = new Set<Promise<void>>();

  constructor(q: Queryable, options: GroupCommitOptions = {}) {
    this.#q = q;
    this.#options = options;
  }

  /**
   * Writes audit records, in order, all or none. `later`: they follow a reply that is already on its
   * way, so they may wait up to LINGER_MS to share a statement with others.
   */
  async audit(records: readonly AuditEvent[], at: Date, later = false): Promise<void> {
    if (records.length === 0) return;
    await this.#add({ records, at }, later);
  }

  /** Claims `key` and, only when this is the first claim, writes the records; true when claimed. */
  async claim(key: string, records: readonly AuditEvent[], at: Date): Promise<boolean> {
    return await this.#add({ records, at, claim: key });
  }

  /** Remembers a paged read (a read with a next page), once per reference; it follows its reply. */
  async pagedRead(read: PagedRead): Promise<void> {
    const written = this.#add({ records: [], at: read.createdAt, paged: read }, true);
    this.#paged.set(read.ref, written);
    try {
      await written;
    } finally {
      if (this.#paged.get(read.ref) === written) this.#paged.delete(read.ref);
    }
  }

  /**
   * Waits for the paged read of `ref` this process is still writing, if any (sent at once): its page
   * button, pressed quicker than LINGER_MS, finds it all the same.
   */
  async pagedReadWritten(ref: string): Promise<void> {
    const written = this.#paged.get(ref);
    if (!written) return;
    this.hurry();
    await written.catch(() => {});
  }

  /** Writes queued, lingering or in flight right now. */
  get pending(): number {
    return this.#queue.length + this.#later.length + this.#sending;
  }

  /** Sends what lingers now, and lets nothing linger until all asked for so far is written (shutdown). */
  hurry(): void {
    this.#hurry = true;
    this.#flushLater();
  }

  /** Resolves once every write asked for so far has ended (written or failed). */
  async drained(): Promise<void> {
    for (;;) {
      this.hurry();
      if (this.#running.size > 0) await Promise.all([...this.#running]);
      // Queued and not yet sent: the flush scheduled for this turn sends it.
      else if (this.#queue.length > 0) await new Promise((resolve) => setImmediate(resolve));
      else return;
    }
  }

  #add(unit: Pick<Unit, 'records' | 'at' | 'claim' | 'paged'>, later = false): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.#units += 1;
      const rows = unitRows(unit, this.#units, later);
      const pagedRow = unit.paged ? JSON.stringify(pagedRecord(unit.paged)) : undefined;
      let bytes = pagedRow?.length ?? 0;
      for (const row of rows) bytes += row.length;
      const queued: Unit = { ...unit, rows, ...(pagedRow ? { pagedRow } : {}), bytes, resolve, reject };
      if (later && !this.#hurry) {
        this.#later.push(queued);
        if (this.#later.length >= MAX_GROUP_WRITES) this.#flushLater();
        else this.#lingering ??= setTimeout(() => this.#flushLater(), LINGER_MS);
        return;
      }
      this.#queue.push(queued);
      if (!this.#scheduled) {
        this.#scheduled = true;
        // What the rest of this turn of the event loop asks for joins the same group.
        setImmediate(() => {
          this.#scheduled = false;
          this.#pump();
        });
      }
    });
  }

  #flushLater(): void {
    clearTimeout(this.#lingering);
    this.#lingering = undefined;
    if (this.#later.length === 0) return;
    this.#queue.push(...this.#later);
    this.#later = [];
    this.#pump();
  }

  #pump(): void {
    while (this.#inFlight < MAX_IN_FLIGHT && this.#queue.length > 0) {
      const group = this.#take();
      this.#inFlight += 1;
      this.#sending += group.length;
      let counted = true;
      const stalled = setTimeout(() => {
        counted = false;
        this.#inFlight -= 1;
        this.#pump();
      }, STALL_MS);
      const sent = this.#send(group).finally(() => {
        clearTimeout(stalled);
        if (counted) this.#inFlight -= 1;
        this.#sending -= group.length;
        this.#running.delete(sent);
        if (this.pending === 0) this.#hurry = false;
        this.#pump();
      });
      this.#running.add(sent);
    }
  }

  /**
   * The next group: the head of the queue and the queued writes of its kind after it, up to the caps;
   * lingering writes ride along where there is room. Claims alone go apart from writes that touch the
   * audit table, so that a lock held there never holds up a claim; each kind keeps its order.
   */
  #take(): Unit[] {
    let bytes = 0;
    const group: Unit[] = [];
    const fits = (unit: Unit) =>
      group.length === 0 || (group.length < MAX_GROUP_WRITES && bytes + unit.bytes <= MAX_GROUP_BYTES);
    const add = (unit: Unit) => {
      bytes += unit.bytes;
      group.push(unit);
    };
    const head = this.#queue[0];
    const claimsOnly = head !== undefined && claimOnly(head);
    const left: Unit[] = [];
    let full = false;
    for (const unit of this.#queue) {
      if (!full && claimOnly(unit) === claimsOnly && fits(unit)) add(unit);
      else {
        // Once one write of the kind does not fit, later ones wait too: the order of a kind is kept.
        if (claimOnly(unit) === claimsOnly) full = true;
        left.push(unit);
      }
    }
    this.#queue = left;
    if (!claimsOnly) {
      let riding = 0;
      for (const unit of this.#later) {
        if (!fits(unit)) break;
        add(unit);
        riding += 1;
      }
      this.#later.splice(0, riding);
      if (this.#later.length === 0) {
        clearTimeout(this.#lingering);
        this.#lingering = undefined;
      }
    }
    return group;
  }

  async #send(group: Unit[]): Promise<void> {
    let claimed: Set<string>;
    try {
      claimed = await this.#write(group);
    } catch (err) {
      this.#options.onGroupFailed?.(err, group.length);
      if (group.length > 1 && isDataError(err)) {
        // One write the database refuses (hostile text, a failing trigger) must not fail the others.
        for (const unit of group) await this.#send([unit]);
        return;
      }
      for (const unit of group) unit.reject(err);
      return;
    }
    const taken = new Set<string>();
    for (const unit of group) {
      if (unit.claim === undefined) unit.resolve(true);
      else if (claimed.has(unit.claim) && !taken.has(unit.claim)) {
        // The first write of a key in the group took the claim; a repeat in the same group did not.
        taken.add(unit.claim);
        unit.resolve(true);
      } else {
        taken.add(unit.claim);
        unit.resolve(false);
      }
    }
    const keeps = group.some((u) => u.claim !== undefined || u.paged !== undefined);
    if (this.#options.housekeeping && keeps && Math.random() < 0.01) {
      await this.#options.housekeeping(this.#q, group[0]?.at ?? new Date()).catch(() => {});
    }
  }

  async #write(group: readonly Unit[]): Promise<Set<string>> {
    const shape = {
      claims: group.some((u) => u.claim !== undefined),
      audit: group.some((u) => u.records.length > 0),
      paged: group.some((u) => u.pagedRow !== undefined),
    };
    const values: string[] = [];
    if (shape.claims || shape.audit) values.push(`[${group.flatMap((u) => u.rows).join(',')}]`);
    if (shape.paged) values.push(`[${group.flatMap((u) => u.pagedRow ?? []).join(',')}]`);
    const { rows: answer } = await this.#q.query<{ key: string }>(groupSql(shape), values);
    return new Set(answer.map((r) => r.key));
  }
}

/** A claim without a record: its statement names only dbops_deliveries. */
function claimOnly(unit: Unit): boolean {
  return unit.records.length === 0 && unit.paged === undefined;
}

/**
 * An error PostgreSQL gave about the statement's data (SQLSTATE classes other than connection,
 * resources, operator intervention and system errors): sending the writes one by one isolates it. A lost
 * connection or a timeout has no such code, or one of those classes: every write of the group failed.
 */
export function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return false;
  return !['08', '53', '57', '58', 'XX'].includes(code.slice(0, 2));
}
