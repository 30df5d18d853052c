// The one time format: absolute times with their zone, relative ages, durations of what still runs.
import { afterEach, describe, expect, it } from 'vitest';
import { formatValue } from '../src/core/render.js';
import { requestLine } from '../src/core/reply-text.js';
import {
  asDate,
  displayTimeZone,
  formatAge,
  formatRunning,
  formatTime,
  formatTimeAndAge,
  isTimeZone,
  setDisplayTimeZone,
} from '../src/core/time-format.js';
import type { ApprovalRequest } from '../src/state/types.js';

const AT = new Date('2026-12-06T02:46:31.250Z');

afterEach(() => setDisplayTimeZone('UTC'));

describe('formatTime', () => {
  it('reads YYYY-MM-DD HH:MM with the zone, UTC by default', () => {
    expect(displayTimeZone()).toBe('UTC');
    expect(formatTime(AT)).toBe('2026-12-06 02:46 UTC');
    expect(formatTime(new Date('2026-01-01T00:00:59Z'))).toBe('2026-01-01 00:00 UTC');
  });

  it('shows a named zone with its abbreviation, summer and winter', () => {
    expect(formatTime(AT, 'Europe/Berlin')).toBe('2026-12-06 03:46 CET');
    expect(formatTime(new Date('2026-07-01T12:00:00Z'), 'Europe/Berlin')).toBe('2026-07-01 14:00 CEST');
    expect(formatTime(AT, 'America/New_York')).toBe('2026-12-05 21:46 EST');
    expect(formatTime(AT, 'Asia/Kolkata')).toBe('2026-12-06 08:16 GMT+5:30');
    // Midnight is 00, never 24.
    expect(formatTime(new Date('2026-12-05T23:00:00Z'), 'Europe/Berlin')).toBe('2026-12-06 00:00 CET');
  });

  it('follows the display zone the config sets, and refuses an unknown one', () => {
    setDisplayTimeZone('Europe/Berlin');
    expect(formatTime(AT)).toBe('2026-12-06 03:46 CET');
    expect(formatValue(AT.toISOString(), 'timestamp')).toBe('2026-12-06 03:46 CET');
    expect(() => setDisplayTimeZone('Mars/Olympus')).toThrow(/unknown time zone/);
    expect(displayTimeZone()).toBe('Europe/Berlin');
    expect(isTimeZone('Europe/Berlin')).toBe(true);
    expect(isTimeZone('CEST+bogus')).toBe(false);
  });

  it('renders timestamp cells in the one format, never ISO', () => {
    expect(formatValue('2026-12-06T02:46:31.250Z', 'timestamp')).toBe('2026-12-06 02:46 UTC');
    expect(formatValue('2026-12-06 02:46:31+00', 'timestamp')).toBe('2026-12-06 02:46 UTC');
    // Not a time: shown as the text it is.
    expect(formatValue('never', 'timestamp')).toBe('never');
    expect(formatTime(new Date(Number.NaN))).toBe('invalid date');
  });
});

describe('relative ages', () => {
  const now = new Date('2026-12-06T12:00:00Z');
  const ago = (seconds: number) => formatAge(new Date(now.getTime() - seconds * 1000), now);

  it('says the largest whole unit', () => {
    expect(ago(12)).toBe('12s ago');
    expect(ago(3 * 60 + 59)).toBe('3m ago');
    expect(ago(2 * 3600 + 1800)).toBe('2h ago');
    expect(ago(5 * 86400 + 7200)).toBe('5d ago');
    expect(ago(0.2)).toBe('just now');
    expect(ago(-12 * 60)).toBe('in 12m');
  });

  it('pairs a time with its age, and says how long something has been running', () => {
    expect(formatTimeAndAge(new Date('2026-12-06T11:57:00Z'), now)).toBe('2026-12-06 11:57 UTC (3m ago)');
    expect(formatRunning(252)).toBe('running 4m 12s');
    expect(formatRunning(-3)).toBe('running under a second');
  });

  it('reads what PostgreSQL and JSON hand over', () => {
    expect(asDate(AT)?.toISOString()).toBe(AT.toISOString());
    expect(asDate('2026-12-06 02:46:31.25+00')?.toISOString()).toBe(AT.toISOString());
    expect(asDate('not a time')).toBeUndefined();
    expect(asDate(null)).toBeUndefined();
  });
});

describe('request lines', () => {
  const now = new Date('2026-12-06T12:00:00Z');
  const request = (status: ApprovalRequest['status']): ApprovalRequest =>
    ({
      id: 7,
      command: 'vacuum staging exams --full',
      status,
      requester: { person: 'alice', identity: 'cli:alice', surface: 'cli' },
      votes: [],
      createdAt: new Date('2026-12-06T11:50:00Z'),
      updatedAt: new Date('2026-12-06T11:55:48Z'),
      expiresAt: new Date('2026-12-06T12:05:00Z'),
    }) as unknown as ApprovalRequest;

  it('say how long ago it was asked, and how long a running one has been running', () => {
    expect(requestLine(request('pending'), now)).toBe(
      '#7 vacuum staging exams --full · pending · by alice 10m ago · expires in 5m',
    );
    expect(requestLine(request('running'), now)).toBe(
      '#7 vacuum staging exams --full · running 4m 12s · by alice 10m ago',
    );
  });
});
