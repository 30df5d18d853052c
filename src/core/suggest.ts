// "Did you mean …?": the names closest to what someone typed, for operations, targets, options and config keys.

/** Edit distance counting insertions, deletions, substitutions and adjacent transpositions (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  // Three rolling rows: the one before the previous row is needed for transpositions.
  let beforePrevious = new Array<number>(b.length + 1).fill(0);
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  let current = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    current[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(
        (previous[j] ?? 0) + 1, // deletion
        (current[j - 1] ?? 0) + 1, // insertion
        (previous[j - 1] ?? 0) + cost, // substitution
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, (beforePrevious[j - 2] ?? 0) + 1); // transposition
      }
      current[j] = best;
    }
    [beforePrevious, previous, current] = [previous, current, beforePrevious];
  }
  return previous[b.length] ?? 0;
}

/** How many edits still count as a typo: about a third of the word, at least 1 (short words) or 2. */
function typoBudget(length: number): number {
  if (length <= 3) return 1;
  return Math.max(2, Math.floor(length / 3));
}

/**
 * The candidates closest to `input`, best first: case-insensitive typos within a third of the length,
 * and candidates that start with what was typed ("kill" → "kill-idle").
 */
export function closest(input: string, candidates: readonly string[], max = 3): string[] {
  const typed = input.trim().toLowerCase();
  if (typed === '' || max <= 0) return [];
  const scored: { name: string; score: number; distance: number; index: number }[] = [];
  const seen = new Set<string>();
  candidates.forEach((name, index) => {
    if (seen.has(name)) return;
    seen.add(name);
    const lower = name.toLowerCase();
    const distance = editDistance(typed, lower);
    // A prefix match ranks after an exact match and before any typo.
    const prefix = typed.length >= 2 && lower.startsWith(typed);
    let score: number | undefined;
    if (distance === 0) score = 0;
    else if (prefix) score = 0.5;
    else if (distance <= typoBudget(typed.length)) score = distance;
    if (score !== undefined) scored.push({ name, score, distance, index });
  });
  scored.sort((x, y) => x.score - y.score || x.distance - y.distance || x.index - y.index);
  return scored.slice(0, max).map((s) => s.name);
}

/** "did you mean `a` or `b`?" or an empty string when nothing is close. */
export function didYouMean(
  input: string,
  candidates: readonly string[],
  quote = (s: string) => `\`${s}\``,
): string {
  const names = closest(input, candidates).map(quote);
  if (names.length === 0) return '';
  return `did you mean ${orList(names)}?`;
}

/** "a", "a or b", "a, b or c". */
export function orList(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}

/** Keeps echoed user input short. */
export function clipInput(text: string): string {
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}
