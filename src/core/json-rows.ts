// Result rows as `dbops exec --json` writes them: every key keeps one JSON type across the rows of a reply.
import type { Row } from './types.js';

/**
 * bigint and numeric values are JS numbers only when exact; beyond 2^53 they stay decimal text. So that a
 * consumer never meets `5` in one row and `"9223372036854775807"` in the next, a key whose values mix
 * numbers and text is written as text in every row (numbers as their exact decimal form). Keys that are
 * numbers in every row stay numbers; nulls stay null. Operations whose values can pass 2^53 on any target
 * (sequence positions) return text always, so their type does not depend on the data either.
 */
export function jsonRows(rows: readonly Row[]): Row[] {
  const mixed = new Set<string>();
  const kinds = new Map<string, Set<string>>();
  for (const row of rows) {
    for (const [key, value] of Object.entries(row)) {
      if (value === null) continue;
      let seen = kinds.get(key);
      if (!seen) {
        seen = new Set();
        kinds.set(key, seen);
      }
      seen.add(typeof value);
    }
  }
  for (const [key, seen] of kinds) if (seen.has('number') && seen.has('string')) mixed.add(key);
  if (mixed.size === 0) return [...rows];
  return rows.map((row) => {
    const out: Row = { ...row };
    for (const key of mixed) {
      const value = out[key];
      if (typeof value === 'number') out[key] = exactText(value);
    }
    return out;
  });
}

/** A number as decimal text without exponent for whole numbers (1e21 → "1000000000000000000000"). */
function exactText(n: number): string {
  return Number.isInteger(n) && Number.isFinite(n) ? BigInt(n).toString() : String(n);
}
