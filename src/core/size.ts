// Sizes as people type them (8192, 500kB, 10MB, 1.5GB): 1024-based like pg_size_pretty, the value in bytes.

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  bytes: 1,
  k: 1024,
  kb: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
};

export const SIZE_HINT = 'expected a size like 8192, 500kB, 10MB or 1GB';

/** "1.5GB" or "1.5 GB" → 1610612736; undefined when it is not a size. */
export function parseSize(value: string | number): number | undefined {
  const match = /^(\d{1,15}(?:\.\d{1,6})?)\s*([a-z]*)$/i.exec(String(value).trim());
  const factor = match ? SIZE_UNITS[(match[2] ?? '').toLowerCase()] : undefined;
  const bytes = match && factor !== undefined ? Math.round(Number(match[1]) * factor) : Number.NaN;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}
