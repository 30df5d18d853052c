// Medians, percentiles and rounding for the benchmark's samples (milliseconds unless named otherwise).

export interface Stats {
  runs: number;
  medianMs: number;
  p90Ms: number;
  p99Ms: number;
  minMs: number;
  maxMs: number;
}

export function stats(samples: readonly number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
  const mid = sorted.length / 2;
  const median =
    sorted.length % 2 === 1
      ? (sorted[Math.floor(mid)] ?? NaN)
      : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
  return {
    runs: sorted.length,
    medianMs: round(median),
    p90Ms: round(at(0.9)),
    p99Ms: round(at(0.99)),
    minMs: round(sorted[0] ?? NaN),
    maxMs: round(sorted.at(-1) ?? NaN),
  };
}

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
