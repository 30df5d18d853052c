// A series as one line of block characters, for answers that cannot carry a picture (console, exec, narrow text).

const BARS = '▁▂▃▄▅▆▇█';

/** Values averaged into at most `width` buckets and drawn from ▁ (lowest) to █ (highest); a flat series is level. */
export function sparkline(values: readonly number[], width = 40): string {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return '';
  const buckets = Math.min(width, finite.length);
  const averaged: number[] = [];
  for (let b = 0; b < buckets; b++) {
    const from = Math.floor((b * finite.length) / buckets);
    const to = Math.max(from + 1, Math.floor(((b + 1) * finite.length) / buckets));
    const slice = finite.slice(from, to);
    averaged.push(slice.reduce((a, v) => a + v, 0) / slice.length);
  }
  const min = Math.min(...averaged);
  const max = Math.max(...averaged);
  if (max === min) return BARS[3]?.repeat(averaged.length) ?? '';
  return averaged.map((v) => BARS[Math.round(((v - min) / (max - min)) * (BARS.length - 1))]).join('');
}
