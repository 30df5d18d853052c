// Per-target work queues for chat deliveries: a sick target's commands queue behind each other and never
// delay a healthy target's, nor built-ins like help and targets.
import { isBuiltin } from '../core/catalog.js';
import { parseCommand } from '../core/grammar.js';
import { isRef, RECORDS_OF_A_REF } from '../core/refs.js';

/** Lane names: `target:<name>`, `builtins`, `channel:<surface>:<id>` (a bound channel, target unknown yet). */
export type Lane = string;

export interface LaneStats {
  running: number;
  waiting: number;
  /** Age of the oldest job in the lane (running or waiting), ms. */
  oldestMs: number;
}

export interface LaneLimits {
  /** Jobs of one lane at once (default 4: the default pool_max; more would only wait for connections). */
  perLane?: number;
  /** Jobs at once over all lanes, bounding memory and state-database connections (default 32). */
  total?: number;
}

interface LaneState {
  running: number;
  /** Start times of every job of the lane, running or waiting. */
  started: Set<number>;
  waiting: (() => void)[];
}

/**
 * Runs jobs at most `perLane` at a time per lane, and at most `total` at a time overall. A job waiting for
 * its lane holds no overall place, so a lane full of hung jobs costs only its own `perLane` places.
 */
export class LaneQueue {
  readonly #perLane: number;
  readonly #total: number;
  readonly #lanes = new Map<Lane, LaneState>();
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(limits: LaneLimits = {}) {
    this.#perLane = limits.perLane ?? 4;
    this.#total = limits.total ?? 32;
  }

  async run(lane: Lane, job: () => Promise<void>): Promise<void> {
    const state = this.#lane(lane);
    let started = performance.now();
    while (state.started.has(started)) started += 1e-6;
    state.started.add(started);
    try {
      if (state.running < this.#perLane) state.running += 1;
      // A finishing job of the lane hands its place to the lane's first waiting one.
      else await new Promise<void>((turn) => state.waiting.push(turn));
      try {
        if (this.#running < this.#total) this.#running += 1;
        else await new Promise<void>((turn) => this.#waiting.push(turn));
        try {
          await job();
        } finally {
          const next = this.#waiting.shift();
          if (next) next();
          else this.#running -= 1;
        }
      } finally {
        const next = state.waiting.shift();
        if (next) next();
        else state.running -= 1;
      }
    } finally {
      state.started.delete(started);
      if (state.started.size === 0) this.#lanes.delete(lane);
    }
  }

  /** Lanes with work, each with running and waiting counts and the oldest job's age. */
  stats(): Record<Lane, LaneStats> {
    const now = performance.now();
    const out: Record<Lane, LaneStats> = {};
    for (const [lane, state] of this.#lanes) {
      out[lane] = {
        running: state.running,
        waiting: state.waiting.length,
        oldestMs: Math.max(0, Math.round(now - Math.min(...state.started))),
      };
    }
    return out;
  }

  #lane(lane: Lane): LaneState {
    let state = this.#lanes.get(lane);
    if (!state) {
      state = { running: 0, started: new Set(), waiting: [] };
      this.#lanes.set(lane, state);
    }
    return state;
  }
}

/** Built-ins that touch no target database (approve does: it runs the approved operation). */
const STATE_ONLY = new Set([
  'help',
  'targets',
  'pending',
  'status',
  'deny',
  'cancel',
  'audit',
  'bind',
  'unbind',
]);

/**
 * Which lane a command belongs to, from its text alone (no I/O but the request's target for `approve`):
 * the target it names, the target bound to its channel, or `builtins`. Anything unparsable goes to
 * `builtins`, where the core answers it quickly with the parse error.
 */
/**
 * What laneOf needs of the app: the target of an approval request, of a paged read (`page`), or of the
 * read a reference ran (`csv`).
 */
export interface RequestTargets {
  state: {
    getRequest(id: number): Promise<{ target: string } | undefined>;
    getPagedRead?(ref: string, now: Date): Promise<{ target: string } | undefined>;
    /** The audit records of a reference (`csv <ref>` runs the read they name again). */
    listAudit?(filter: { ref: string; limit: number }): Promise<{ target?: string | undefined }[]>;
  };
}

export async function laneOf(
  app: RequestTargets,
  targets: readonly string[],
  input: { surface: string; channel?: string | undefined; text: string; boundTarget?: string | undefined },
): Promise<Lane> {
  let parsed: ReturnType<typeof parseCommand>;
  try {
    parsed = parseCommand(input.text);
  } catch {
    return 'builtins';
  }
  const { operation, tokens } = parsed;
  if (STATE_ONLY.has(operation)) return 'builtins';
  const words = tokens.flatMap((t) => (t.kind === 'word' ? [t.text] : []));
  if (operation === 'page') {
    // A Next page press reads the target of the answer it is under.
    const ref = (words[0] ?? '').toLowerCase();
    if (!isRef(ref) || !app.state.getPagedRead) return 'builtins';
    try {
      const read = await app.state.getPagedRead(ref, new Date());
      return read && targets.includes(read.target) ? `target:${read.target}` : 'builtins';
    } catch {
      return 'builtins';
    }
  }
  if (operation === 'csv') {
    // An All columns (CSV) press runs the read of the answer it is under again, on that read's target.
    const ref = (words[0] ?? '').toLowerCase();
    if (!isRef(ref) || !app.state.listAudit) return 'builtins';
    try {
      const records = await app.state.listAudit({ ref, limit: RECORDS_OF_A_REF });
      const target = records.find((r) => r.target !== undefined)?.target;
      return target && targets.includes(target) ? `target:${target}` : 'builtins';
    } catch {
      return 'builtins';
    }
  }
  if (operation === 'approve') {
    const id = Number(words[0]);
    if (!Number.isSafeInteger(id) || id <= 0) return 'builtins';
    try {
      const request = await app.state.getRequest(id);
      return request ? `target:${request.target}` : 'builtins';
    } catch {
      return 'builtins'; // the core answers "state database unreachable" quickly
    }
  }
  if (!isBuiltin(operation) || operation === 'lookup') {
    const named = words.find((w) => targets.includes(w));
    if (named) return `target:${named}`;
    if (input.boundTarget) return `target:${input.boundTarget}`;
    if (input.channel) return `channel:${input.surface}:${input.channel}`;
  }
  return 'builtins';
}
