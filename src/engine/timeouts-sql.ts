// The statements that set a target session's and transaction's timeouts (client and server side agree).
import type { QueryLimits } from './types.js';

/**
 * A timeout as it goes into SQL text: a finite, non-negative number of whole milliseconds (PostgreSQL would
 * round 899.9999999999999 itself; rounding here keeps the statement text plain).
 */
export function wholeMs(ms: number): number {
  if (!Number.isFinite(ms) || ms < 0) throw new Error(`not a timeout in milliseconds: ${ms}`);
  return Math.round(ms);
}

/**
 * BEGIN and the transaction's timeouts in one round trip: a simple-protocol statement list cannot take
 * bind parameters, so the two values — numbers computed by dbops, never text from a person — are written
 * in as whole milliseconds.
 */
export function beginWithTimeouts(mode: 'read' | 'write', limits: QueryLimits): string {
  const begin = mode === 'read' ? 'BEGIN READ ONLY' : 'BEGIN';
  return `${begin}; SET LOCAL statement_timeout = ${wholeMs(limits.statementTimeoutMs)}; SET LOCAL lock_timeout = ${wholeMs(limits.lockTimeoutMs)}`;
}
export const SET_SESSION_TIMEOUTS =
  "SELECT set_config('statement_timeout', $1, false), set_config('lock_timeout', $2, false)";
export const RESET_TIMEOUTS = 'RESET statement_timeout; RESET lock_timeout';
