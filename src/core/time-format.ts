// The one way times read in text answers: "2026-12-06 02:46 UTC", "3m ago", "running 4m 12s".
import { formatDuration } from './duration.js';

/**
 * The display zone is a property of the deployment (`display.time_zone` in the config), set once when the
 * app is built: every text answer of one process reads in the same zone. `--json` never uses it (ISO 8601).
 */
let displayZone = 'UTC';

interface ZoneFormatter {
  parts: Intl.DateTimeFormat;
  /** Names the zone in en-GB when en-US has no abbreviation for it ("GMT+1" → "CET"). */
  fallbackName: Intl.DateTimeFormat;
}

const formatters = new Map<string, ZoneFormatter>();

function formatterFor(zone: string): ZoneFormatter {
  let made = formatters.get(zone);
  if (!made) {
    const options: Intl.DateTimeFormatOptions = {
      timeZone: zone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
      timeZoneName: 'short',
    };
    made = {
      parts: new Intl.DateTimeFormat('en-US', options),
      fallbackName: new Intl.DateTimeFormat('en-GB', { timeZone: zone, timeZoneName: 'short' }),
    };
    formatters.set(zone, made);
  }
  return made;
}

/** True when the runtime knows the IANA zone name ("Europe/Berlin", "UTC"). */
export function isTimeZone(zone: string): boolean {
  // The default needs no Intl (the first DateTimeFormat sets up ICU's zones: ~10–20 ms of start-up).
  if (zone === 'UTC') return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Sets the zone of every text answer of this process; an unknown zone is refused (config checks it first). */
export function setDisplayTimeZone(zone: string): void {
  if (!isTimeZone(zone)) throw new RangeError(`unknown time zone ${JSON.stringify(zone)}`);
  displayZone = zone;
}

export function displayTimeZone(): string {
  return displayZone;
}

/** "2026-12-06 02:46 UTC"; in Europe/Berlin "2026-12-06 03:46 CET". Invalid dates read "invalid date". */
export function formatTime(date: Date, zone: string = displayZone): string {
  if (Number.isNaN(date.getTime())) return 'invalid date';
  const { parts, fallbackName } = formatterFor(zone);
  const part: Partial<Record<Intl.DateTimeFormatPartTypes, string>> = {};
  for (const p of parts.formatToParts(date)) part[p.type] = p.value;
  let name = part.timeZoneName ?? zone;
  if (/^GMT[+-]/.test(name)) {
    name = fallbackName.formatToParts(date).find((p) => p.type === 'timeZoneName')?.value ?? name;
  }
  return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute} ${name}`;
}

const AGE_UNITS: readonly [string, number][] = [
  ['d', 86_400],
  ['h', 3_600],
  ['m', 60],
  ['s', 1],
];

/** The largest whole unit of a span: 200 s → "3m", 7300 s → "2h", 5.5 d → "5d". */
function coarse(seconds: number): string {
  for (const [unit, size] of AGE_UNITS) {
    if (seconds >= size) return `${Math.floor(seconds / size)}${unit}`;
  }
  return '0s';
}

/** "3m ago", "2h ago", "5d ago"; a future time reads "in 12m"; under a second "just now". */
export function formatAge(date: Date, now: Date): string {
  const seconds = (now.getTime() - date.getTime()) / 1000;
  if (!Number.isFinite(seconds)) return 'at an unknown time';
  if (Math.abs(seconds) < 1) return 'just now';
  return seconds > 0 ? `${coarse(seconds)} ago` : `in ${coarse(-seconds)}`;
}

/** "2026-12-06 02:46 UTC (3m ago)": when a person needs both the moment and how long ago it was. */
export function formatTimeAndAge(date: Date, now: Date, zone: string = displayZone): string {
  return `${formatTime(date, zone)} (${formatAge(date, now)})`;
}

/** "running 4m 12s": how long something that has not finished has been going. */
export function formatRunning(seconds: number): string {
  return `running ${seconds < 1 ? 'under a second' : formatDuration(seconds)}`;
}

/** A timestamp as PostgreSQL or a JSON row hands it over (Date, ISO text, `timestamptz` text) as a Date. */
export function asDate(value: unknown): Date | undefined {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value;
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}
