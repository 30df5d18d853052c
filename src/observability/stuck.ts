// Work that has been under way too long, per target, in words for /readyz ("target kasm: 8 operations stuck …").
import type { PoolStats } from '../engine/target-db.js';
import type { LaneStats } from '../surfaces/lanes.js';

/** Work older than this is reported as stuck (a sick target holds it until its deadlines pass). */
export const STUCK_AFTER_MS = 5000;

export interface QueuedWork {
  surface: string;
  lanes: Record<string, LaneStats>;
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * One line per target with work older than `afterMs`: its operations against the database (running or
 * waiting for a connection) and the chat deliveries queued for it. The bot stays ready: a sick target is
 * that target's problem, and this says so.
 */
export function describeStuck(
  pools: Record<string, PoolStats>,
  queues: readonly QueuedWork[],
  afterMs: number = STUCK_AFTER_MS,
): string[] {
  const lines: string[] = [];
  const targets = new Set(Object.keys(pools));
  for (const queue of queues) {
    for (const lane of Object.keys(queue.lanes)) if (lane.startsWith('target:')) targets.add(lane.slice(7));
  }
  for (const target of [...targets].sort()) {
    const parts: string[] = [];
    let oldest = 0;
    const pool = pools[target];
    if (pool && pool.inFlight > 0 && pool.oldestMs >= afterMs) {
      parts.push(`${plural(pool.inFlight, 'operation')} stuck for ${seconds(pool.oldestMs)}`);
      oldest = Math.max(oldest, pool.oldestMs);
    }
    for (const queue of queues) {
      const lane = queue.lanes[`target:${target}`];
      if (!lane || lane.oldestMs < afterMs) continue;
      parts.push(
        `${queue.surface} has ${plural(lane.running + lane.waiting, 'command')} for it ` +
          `(${lane.running} running, ${lane.waiting} queued, oldest ${seconds(lane.oldestMs)})`,
      );
    }
    if (parts.length > 0) lines.push(`target ${target}: ${parts.join('; ')}`);
  }
  return lines;
}
