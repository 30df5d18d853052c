import { describe, expect, it } from 'vitest';
import { canonicalDuration, formatDuration, parseDuration } from '../src/core/duration.js';
import { formatBytes, formatCount, formatValue, renderResult, renderTable } from '../src/core/render.js';
import type { Column } from '../src/core/types.js';

describe('units', () => {
  it('formats bytes like pg_size_pretty', () => {
    expect(formatBytes(0)).toBe('0 bytes');
    expect(formatBytes(1023)).toBe('1023 bytes');
    expect(formatBytes(1536)).toBe('1.5 kB');
    expect(formatBytes(12 * 1024 * 1024)).toBe('12 MB');
    expect(formatBytes(1.25 * 1024 ** 3)).toBe('1.3 GB');
  });

  it('parses and formats durations', () => {
    expect(parseDuration('5m')).toBe(300);
    expect(parseDuration('1h30m')).toBe(5400);
    expect(parseDuration('250ms')).toBe(0.25);
    expect(parseDuration('5 minutes')).toBeUndefined();
    expect(parseDuration("5m'; DROP TABLE x")).toBeUndefined();
    expect(formatDuration(192)).toBe('3m 12s');
    expect(formatDuration(90061)).toBe('1d 1h');
    expect(formatDuration(0.45)).toBe('450ms');
    expect(canonicalDuration(300)).toBe('5m');
  });

  it('formats cells by kind and flattens whitespace', () => {
    expect(formatValue(12345, 'count')).toBe('12,345');
    expect(formatValue(23938, 'id')).toBe('23938');
    expect(formatValue(99.456, 'percent')).toBe('99.5%');
    expect(formatValue(true, 'bool')).toBe('yes');
    expect(formatValue(null, 'text')).toBe('');
    expect(formatValue('select 1\n  from t', 'text')).toBe('select 1 from t');
    expect(formatValue('2026-11-21T05:55:12.345Z', 'timestamp')).toBe('2026-11-21 05:55 UTC');
  });
});

describe('counts without Intl (its first formatter costs ~50 ms of start-up)', () => {
  const whole = new Intl.NumberFormat('en-US');
  const fraction = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
  const intl = (n: number) => (Number.isInteger(n) ? whole.format(n) : fraction.format(n));

  it('writes every number as Intl.NumberFormat en-US does', () => {
    const values = [
      ...[0, -0, 7, -7, 999, 1000, -1000, 9000, 1234567, 2 ** 53, 2 ** 60, 1e21, 1.5e300, -1e22],
      ...[0.005, 1.005, 2.675, 0.125, -2.5, 0.995, 9.995, 999.995, -0.004, -0.001, 1e-7, -1e-7, 0.1 + 0.2],
      ...[
        1 / 3,
        4503599627370495.5,
        Number.MAX_VALUE,
        Number.MIN_VALUE,
        Number.NaN,
        Number.POSITIVE_INFINITY,
      ],
    ];
    // A fixed pseudo-random walk over magnitudes 1e-6 … 1e33: integers, fractions, cents.
    let seed = 15;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let i = 0; i < 20_000; i++) {
      const magnitude = 10 ** Math.floor(next() * 40 - 6);
      values.push(
        (next() - 0.5) * magnitude,
        Math.floor((next() - 0.5) * magnitude),
        Math.round(next() * 1e5) / 1000,
      );
      values.push(2 ** Math.floor(next() * 1000));
    }
    const wrong = values.filter((n) => formatCount(n) !== intl(n)).map((n) => [n, formatCount(n), intl(n)]);
    expect(wrong).toEqual([]);
  });

  it('groups exact bigint text of count columns', () => {
    expect(formatValue('-12345678901234567890123', 'count')).toBe('-12,345,678,901,234,567,890,123');
    expect(formatValue('007', 'count')).toBe('7');
    expect(formatValue('-0', 'number')).toBe('0');
  });
});

describe('tables', () => {
  it('never clips an id or a UUID that the next command needs; other columns give way', () => {
    const columns: Column[] = [
      { key: 'kasm_id', label: 'kasm id', kind: 'text' },
      { key: 'pid', label: 'pid', kind: 'id' },
      { key: 'user', label: 'user', kind: 'text' },
      { key: 'note', label: 'description', kind: 'text' },
    ];
    const uuid = 'cdf352b7-5c80-b020-c79e-0123456789ab';
    const pid = '12345';
    // Eleven rows: a longer table shortens free text rather than wrapping it.
    const rows = [
      { kasm_id: uuid, pid, user: 'rosa@example.com', note: 'Kali Linux '.repeat(6) },
      ...Array.from({ length: 10 }, (_, i) => ({ kasm_id: null, pid: i, user: 'ava', note: 'Zoom' })),
    ];
    const text = renderTable(columns, rows, { maxWidth: 80 });
    expect(text).toContain(uuid);
    expect(text).toContain(pid);
    expect(text).toContain('…'); // the free text gave way instead
  });

  const columns: Column[] = [
    { key: 'name', label: 'table', kind: 'text' },
    { key: 'bytes', label: 'size', kind: 'bytes' },
  ];

  it('aligns text left and numbers right', () => {
    const text = renderTable(columns, [
      { name: 'users', bytes: 2048 },
      { name: 'activities', bytes: 10 * 1024 * 1024 },
    ]);
    expect(text.split('\n')).toEqual([
      'table         size',
      '----------  ------',
      'users       2.0 kB',
      'activities   10 MB',
    ]);
  });

  it('clips wide free text so every line fits', () => {
    const free: Column[] = [
      { key: 'query', label: 'query', kind: 'text' },
      { key: 'bytes', label: 'size', kind: 'bytes' },
    ];
    const rows = Array.from({ length: 11 }, () => ({ query: 'x'.repeat(300), bytes: 1 }));
    const text = renderTable(free, rows, { maxWidth: 40 });
    for (const line of text.split('\n')) expect(line.length).toBeLessThanOrEqual(40);
    expect(text).toContain('…');
  });

  it('never clips a table name: a name wider than the screen makes the rows cards', () => {
    const name = `t${'x'.repeat(62)}`;
    const text = renderTable(columns, [{ name, bytes: 1 }], { maxWidth: 40 });
    expect(text).toContain(name);
    expect(text).not.toContain('…');
  });

  it('says when rows were capped', () => {
    const text = renderResult({ headline: 'h', columns, rows: [{ name: 'a', bytes: 1 }], truncated: true });
    expect(text).toContain('1 row shown — more rows exist');
    expect(renderResult({ columns, rows: [], truncated: false })).toContain('(no rows)');
  });
});

describe('canonical durations', () => {
  it('round-trips exactly', () => {
    for (const seconds of [0, 0.25, 1.5, 59, 60, 300, 5400, 90061, 86400 * 3 + 1]) {
      expect(parseDuration(canonicalDuration(seconds))).toBe(seconds);
    }
    expect(canonicalDuration(90061)).toBe('1d1h1m1s');
  });
});

describe('cards', () => {
  it('renders each row as aligned label: value lines', async () => {
    const { renderResult } = await import('../src/core/render.js');
    const text = renderResult({
      display: 'card',
      columns: [
        { key: 'username', label: 'user', kind: 'text' },
        { key: 'sessions', label: 'running sessions', kind: 'count' },
      ],
      rows: [{ username: 'alice', sessions: 1200 }],
      truncated: false,
    });
    expect(text).toBe('user:             alice\nrunning sessions: 1,200');
  });
});

describe('automatic cards', () => {
  it('shows a few rows with long values as cards instead of clipping them, and many rows as a table', async () => {
    const { renderResult } = await import('../src/core/render.js');
    const columns = [
      { key: 'pid', label: 'blocked pid', kind: 'id' as const },
      { key: 'query', label: 'blocked query', kind: 'text' as const },
    ];
    const query = `UPDATE managers SET manager_hostname = 'kasm-01' WHERE manager_id = '${'x'.repeat(40)}'`;
    const few = renderResult({ columns, rows: [{ pid: 5078, query }], truncated: false });
    // Wrapped at 80 columns, not clipped: every word is there, in order.
    expect(few).toContain('blocked query: UPDATE managers');
    expect(few.replace(/\s+/g, ' ')).toContain(`blocked query: ${query}`);
    for (const line of few.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    const many = renderResult({
      columns,
      rows: Array.from({ length: 11 }, (_, i) => ({ pid: i, query })),
      truncated: false,
    });
    expect(many).toContain('…');
    expect(many).not.toContain(query);
  });
});
