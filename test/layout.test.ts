// Layout within a width: columns kept by importance, the hidden ones named, cards when the must-keep
// columns do not fit, long values wrapped; ids, pids, UUIDs and names always whole.
import { describe, expect, it } from 'vitest';
import { importanceOf, layoutRows, PHONE_WIDTH, widthFor, wrapLines, wrapText } from '../src/core/layout.js';
import { formatValue, renderResult, renderTable } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';

const widest = (text: string) => Math.max(...text.split('\n').map((l) => l.length));

const SESSIONS: Column[] = [
  { key: 'pid', label: 'pid', kind: 'id' },
  { key: 'usename', label: 'user', kind: 'text' },
  { key: 'state', label: 'state', kind: 'text' },
  { key: 'duration', label: 'for', kind: 'seconds' },
  { key: 'client_addr', label: 'client addr', kind: 'text' },
  { key: 'backend_type', label: 'backend type', kind: 'text' },
  { key: 'query', label: 'query', kind: 'text' },
];
const QUERY =
  'SELECT e.id, e.title, count(*) FROM exams e JOIN answers a ON a.exam_id = e.id GROUP BY 1, 2 ORDER BY 3';
const sessions: Row[] = Array.from({ length: 12 }, (_, i) => ({
  pid: 4_000_000 + i,
  usename: 'exam_user_staging',
  state: 'active',
  duration: 3600 + i,
  client_addr: '2001:db8:85a3::8a2e:370:7334',
  backend_type: 'client backend',
  query: QUERY,
}));

describe('importance', () => {
  it('reads ids, UUIDs and names as must-keep, connection details as minor, queries as free text', () => {
    const text = (key: string, label = key): Column => ({ key, label, kind: 'text' });
    expect(importanceOf({ key: 'pid', label: 'pid', kind: 'id' }, [])).toBe('key');
    expect(importanceOf(text('kasm'), ['cdf352b7-5c80-b020-c79b-0cd8ba0ff514'])).toBe('key');
    expect(importanceOf(text('relname', 'table'), ['exams'])).toBe('key');
    expect(importanceOf(text('hostname'), ['kasm-agent-01'])).toBe('key');
    expect(importanceOf(text('backup'), ['kasm-2026.dump'])).toBe('key');
    expect(importanceOf(text('client_addr', 'client addr'), ['10.0.0.1'])).toBe('low');
    expect(importanceOf(text('query'), [QUERY])).toBe('normal');
    expect(importanceOf(text('indexdef', 'index definition'), ['CREATE INDEX'])).toBe('normal');
    expect(importanceOf({ key: 'x', label: 'x', kind: 'text', importance: 'low' }, [])).toBe('low');
  });

  it('reads a column again when its key or label changes (what it says is remembered per Column object)', () => {
    const col: Column = { key: 'query', label: 'query', kind: 'text' };
    const values = ['SELECT 1'];
    expect(importanceOf(col, values)).toBe('normal');
    col.label = 'client addr';
    expect(importanceOf(col, values)).toBe('low');
    col.label = 'relation';
    col.key = 'relname';
    expect(importanceOf(col, values)).toBe('key');
    col.label = 'new\u202elabel';
    const laid = layoutRows([col], [{ relname: 'exams' }], formatValue, { width: 40 });
    expect(laid.text.split('\n')[0]).toBe('new<U+202E>label');
  });

  it('gives the console 80 columns and chat a phone', () => {
    expect(widthFor('console')).toBe(80);
    expect(widthFor('cli')).toBe(80);
    expect(widthFor('slack')).toBe(PHONE_WIDTH);
    expect(widthFor('discord')).toBe(PHONE_WIDTH);
  });
});

describe('tables that must fit', () => {
  it('hides connection details first, says so in one line, and shortens the query', () => {
    const text = renderResult({ columns: SESSIONS, rows: sessions, truncated: false });
    expect(widest(text)).toBeLessThanOrEqual(80);
    expect(text).toContain('(hidden: client addr, backend type — dbops exec --json shows all)');
    for (const row of sessions) expect(text).toContain(String(row.pid));
    expect(text).toContain('exam_user_staging');
    expect(text).toContain('SELECT e.id');
    expect(text).toContain('…');
    expect(text).not.toContain('2001:db8');
  });

  it('on a phone hides more, still keeping every pid and user whole', () => {
    const text = renderResult(
      { columns: SESSIONS, rows: sessions, truncated: false },
      { maxWidth: PHONE_WIDTH, hiddenHint: 'all columns in the CSV' },
    );
    expect(widest(text)).toBeLessThanOrEqual(PHONE_WIDTH);
    expect(text.replace(/\s+/g, ' ')).toMatch(/\(hidden: .*client addr.* — all columns in the CSV\)/);
    for (const row of sessions) expect(text).toContain(`${row.pid}  exam_user_staging`);
  });

  it('wraps free text within its column in a short table instead of shortening it', () => {
    const text = renderResult({ columns: SESSIONS, rows: sessions.slice(0, 5), truncated: false });
    expect(widest(text)).toBeLessThanOrEqual(80);
    expect(text).not.toContain('…');
    const first = text.split('\n').findIndex((l) => l.startsWith('4000000'));
    const queryAt = text.split('\n')[first]?.indexOf('SELECT') ?? -1;
    const continued = text
      .split('\n')
      .slice(first, first + 4)
      .map((l) => l.slice(queryAt).trim())
      .join(' ');
    expect(continued).toContain(QUERY.slice(0, 60));
  });

  it('shows the whole table when it fits, with nothing hidden', () => {
    const short = sessions.map((r) => ({ ...r, usename: 'app', query: 'SELECT 1', client_addr: '10.0.0.1' }));
    const text = renderResult({ columns: SESSIONS, rows: short, truncated: false });
    expect(text).not.toContain('hidden');
    expect(text).toContain('client addr');
    expect(widest(text)).toBeLessThanOrEqual(80);
  });

  it('turns rows into cards when the must-keep columns do not fit side by side', () => {
    const table = `exam_answers_archive_${'y'.repeat(42)}`; // 63 characters, PostgreSQL's longest name
    const host = 'kasm-agent-eu-west-1a-0042.compute.internal.example.com';
    const columns: Column[] = [
      { key: 'relname', label: 'table', kind: 'text' },
      { key: 'host', label: 'hostname', kind: 'text' },
      { key: 'bytes', label: 'size', kind: 'bytes' },
      { key: 'note', label: 'comment', kind: 'text' },
    ];
    const rows = Array.from({ length: 5 }, (_, i) => ({
      relname: `${table.slice(0, 62)}${i}`,
      host,
      bytes: 1024 * (i + 1),
      note: 'moved here from the old cluster during the 2025 migration, keep until audited',
    }));
    for (const width of [80, PHONE_WIDTH]) {
      const text = renderResult({ columns, rows, truncated: false }, { maxWidth: width });
      for (const row of rows) expect(text).toContain(row.relname);
      expect(text).toContain(host);
      expect(text).not.toContain('…');
      expect(text).toContain('size:');
      // Every line fits, but for a name that is wider than the screen on a line of its own.
      const over = text.split('\n').filter((l) => l.length > width);
      expect(over.every((l) => !/\S\s+\S/.test(l.trim()))).toBe(true);
      expect(text.replace(/\s+/g, ' ')).toContain(`comment: ${rows[0]?.note}`);
    }
  });

  it('wraps a column marked wrap inside its column instead of shortening it', () => {
    const columns: Column[] = [
      { key: 'name', label: 'operation', kind: 'text', importance: 'key' },
      { key: 'summary', label: 'what it does', kind: 'text', wrap: true },
    ];
    const summary = 'terminates sessions idle longer than the given time, after a second person approves';
    const text = renderTable(columns, [{ name: 'kill-idle', summary }], { maxWidth: 40 });
    expect(widest(text)).toBeLessThanOrEqual(40);
    expect(text).not.toContain('…');
    const lines = text.split('\n');
    expect(lines[2]).toMatch(/^kill-idle {2}terminates/);
    expect(lines[3]).toMatch(/^ {11}\S/);
    expect(
      lines
        .slice(2)
        .map((l) => l.trim().replace(/^kill-idle\s+/, ''))
        .join(' '),
    ).toBe(summary);
  });
});

describe('wrapping', () => {
  it('breaks at spaces, keeps a long word whole unless it is free text', () => {
    expect(wrapText('a bb ccc dddd', 6)).toEqual(['a bb', 'ccc', 'dddd']);
    const uuid = 'cdf352b7-5c80-b020-c79b-0cd8ba0ff514';
    expect(wrapText(`session ${uuid} ended`, 20)).toEqual(['session', uuid, 'ended']);
    expect(wrapText('x'.repeat(25), 10, '', true)).toEqual(['x'.repeat(10), 'x'.repeat(10), 'x'.repeat(5)]);
    expect(wrapText('one two three four', 9, '  ')).toEqual(['one two', '  three', '  four']);
  });

  it('leaves a block whose lines fit as it is, and wraps only the lines that do not', () => {
    const block = 'first line\n  second, indented\n\nlast';
    expect(wrapLines(block, 18)).toBe(block);
    expect(wrapLines(block, 12)).toBe('first line\n  second,\n    indented\n\nlast');
    expect(wrapLines('', 10)).toBe('');
  });

  it('wraps headlines and notes of a result to the width', () => {
    const note = `Run /db vacuum staging ${'exam_answers '.repeat(10)}to reclaim the space.`;
    const text = renderResult(
      {
        headline: 'Database staging: 12 MB '.repeat(5),
        columns: [{ key: 'n', label: 'n', kind: 'count' }],
        rows: [{ n: 1 }],
        truncated: false,
        notes: [note],
      },
      { maxWidth: PHONE_WIDTH },
    );
    expect(widest(text)).toBeLessThanOrEqual(PHONE_WIDTH);
    expect(text.replace(/\s+/g, ' ')).toContain(note);
  });
});
