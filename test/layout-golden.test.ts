// Golden output of table layout: a wide, seeded corpus of tables laid out at every width and option,
// hashed and compared with the hash recorded from the reference implementation, so that a rework of
// src/core/layout.ts (or of the cell formatting in render.ts) must keep every byte of every answer.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  importanceOf,
  isWhole,
  layoutRows,
  renderCards,
  wholeColumns,
  wrapLines,
  wrapText,
} from '../src/core/layout.js';
import { formatBytes, formatCount, formatValue } from '../src/core/render.js';
import { COLUMN_KINDS, type Column, type ColumnKind, type Importance, type Row } from '../src/core/types.js';

/** mulberry32: a small seeded PRNG, so the corpus is the same on every run and machine. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WIDTHS = [20, 40, 56, 80, 120];
const FREE_TEXT_WORDS = ['query', 'statement', 'definition', 'description', 'error', 'sql', 'reason', 'hint'];
const NAME_WORDS = ['pid', 'id', 'uuid', 'name', 'table', 'relation', 'index', 'schema', 'host', 'database'];
const NAME_WORDS_MORE = ['db', 'role', 'user', 'usename', 'email', 'slot', 'owner', 'kasm', 'token', 'file'];
const MINOR_WORDS = ['client', 'addr', 'address', 'port', 'application', 'wait', 'event', 'xact', 'oid'];
const OTHER_WORDS = ['state', 'kind', 'total', 'rows (est.)', 'size', 'for', 'waiting on', 'count', 'Ratio'];
const ODD_LABELS = ['', ' ', 'a\u001b[31mred', 'right\u202eleft', 'Zürich Größe', '日本語', 'x'.repeat(70)];
const SENTENCE = 'SELECT e.id, e.title, count(*) FROM exams e JOIN answers a ON a.exam_id = e.id'.split(' ');

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)] as T;
}

function uuid(rand: () => number, dashes: boolean, upper: boolean): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(rand() * 16).toString(16)).join('');
  const text = dashes
    ? `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
    : hex;
  return upper ? text.toUpperCase() : text;
}

function words(rand: () => number, count: number): string {
  return Array.from({ length: count }, () => pick(rand, SENTENCE)).join(rand() < 0.1 ? '   ' : ' ');
}

/** A string value of one of many shapes (what PostgreSQL or an operation can hand back). */
function textValue(rand: () => number): string {
  switch (Math.floor(rand() * 22)) {
    case 0:
      return uuid(rand, rand() < 0.8, rand() < 0.2);
    case 1:
      return 'w'.repeat(1 + Math.floor(rand() * 90));
    case 2:
      return words(rand, 1 + Math.floor(rand() * 30));
    case 3:
      return `${2020 + Math.floor(rand() * 10)}-12-0${1 + Math.floor(rand() * 9)} 0${Math.floor(rand() * 10)}:46 UTC`;
    case 4:
      return `at 2026-12-06 02:46:1${Math.floor(rand() * 10)} Europe/Berlin it took 6.8 MB and 12 ms, 45% (1,497 rows)`;
    case 5:
      return `${(rand() * 1000).toFixed(1)} ${pick(rand, ['bytes', 'kB', 'MB', 'GB', 'TB', 'ms', 's', '%', 'rows'])}`;
    case 6:
      return pick(rand, [
        'Zürich',
        '日本語のテキストです',
        'emoji 🚀🚀 here',
        'e\u0301te\u0301',
        'Ωμέγα ώρα',
      ]);
    case 7:
      return pick(rand, [
        '\u001b[2Jgone',
        'evil\u202etxt.exe',
        'a\rb',
        'two\nlines',
        'tab\there',
        '\u009b31m',
      ]);
    case 8:
      return '';
    case 9:
      return '  padded  value  ';
    case 10:
      return String(BigInt(Math.floor(rand() * 1e15)) * 1_000_000_007n * (rand() < 0.3 ? -1n : 1n));
    case 11:
      return `public.${'t'.repeat(10 + Math.floor(rand() * 60))}`;
    case 12:
      return `kasm-agent-${Math.floor(rand() * 100)}`;
    case 13:
      return '2026-12-06T02:46:33.123Z';
    case 14:
      return 'glue\u0001inside value with 2026-12-06 02:46 UTC';
    case 15:
      return `${words(rand, 3)} ${'x'.repeat(30 + Math.floor(rand() * 40))} ${words(rand, 4)}`;
    case 16:
      return String(Math.floor(rand() * 1e6));
    case 17:
      return 'active';
    case 18:
      return '10.0.0.1';
    case 19:
      return ' ';
    case 20:
      return `${words(rand, 2)}\u00ad${words(rand, 2)}`;
    default:
      return 'idle in transaction';
  }
}

function numberValue(rand: () => number): number {
  switch (Math.floor(rand() * 12)) {
    case 0:
      return 0;
    case 1:
      return -Math.floor(rand() * 1e6);
    case 2:
      return rand() * 100;
    case 3:
      return Math.floor(rand() * 2 ** 40);
    case 4:
      return Number.NaN;
    case 5:
      return rand() < 0.5 ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
    case 6:
      return 1.5e21;
    case 7:
      return 1.005;
    case 8:
      return -0;
    case 9:
      return rand() * 1e-7;
    default:
      return Math.floor(rand() * 100_000);
  }
}

function cellValue(rand: () => number, kind: ColumnKind): Row[string] | undefined {
  const r = rand();
  if (r < 0.05) return null;
  if (r < 0.08) return undefined;
  if (r < 0.11) return rand() < 0.5;
  if (r < 0.14) return textValue(rand);
  if (kind === 'text') return rand() < 0.9 ? textValue(rand) : numberValue(rand);
  if (kind === 'timestamp') {
    return pick(rand, ['2026-12-06T02:46:33Z', '2026-06-01 12:00:00+02', 'not a time', '', 'infinity']);
  }
  if (kind === 'bool') return rand() < 0.8 ? rand() < 0.5 : 't';
  if ((kind === 'count' || kind === 'number') && rand() < 0.15) {
    return `${rand() < 0.2 ? '-' : ''}${Math.floor(rand() * 1e9)}${Math.floor(rand() * 1e9)}${Math.floor(rand() * 1e6)}`;
  }
  return numberValue(rand);
}

function columnName(rand: () => number): string {
  const pool = pick(rand, [
    FREE_TEXT_WORDS,
    NAME_WORDS,
    NAME_WORDS_MORE,
    MINOR_WORDS,
    OTHER_WORDS,
    OTHER_WORDS,
  ]);
  const first = pick(rand, pool);
  if (rand() < 0.35)
    return `${first}${pick(rand, ['_', ' ', '-', '.'])}${pick(rand, pick(rand, [OTHER_WORDS, NAME_WORDS, MINOR_WORDS]))}`;
  return rand() < 0.1 ? first.toUpperCase() : first;
}

function makeColumn(rand: () => number): Column {
  const kind = rand() < 0.45 ? 'text' : pick(rand, COLUMN_KINDS);
  const key = columnName(rand);
  const label =
    rand() < 0.08 ? pick(rand, ODD_LABELS) : rand() < 0.5 ? key.replaceAll('_', ' ') : columnName(rand);
  const col: Column = { key, label, kind };
  if (rand() < 0.3) col.importance = pick(rand, ['key', 'high', 'normal', 'low'] as Importance[]);
  if (rand() < 0.12) col.wrap = true;
  return col;
}

interface Table {
  columns: Column[];
  rows: Row[];
}

function makeTable(rand: () => number): Table {
  const columns = Array.from({ length: 1 + Math.floor(rand() * 12) }, () => makeColumn(rand));
  const size = rand();
  const count =
    size < 0.25 ? Math.floor(rand() * 4) : size < 0.6 ? Math.floor(rand() * 11) : Math.floor(rand() * 41);
  // A column's values often share a shape (all UUIDs, all short), as real results do.
  const styles = columns.map(() => (rand() < 0.3 ? textValue(rand) : undefined));
  const rows = Array.from({ length: count }, () => {
    const row: Record<string, Row[string] | undefined> = {};
    columns.forEach((col, i) => {
      const style = styles[i];
      row[col.key] =
        style !== undefined && rand() < 0.8
          ? style.length > 30
            ? style
            : `${style}`
          : cellValue(rand, col.kind);
      if (style !== undefined && /^[0-9a-f]{8}-/i.test(style) && rand() < 0.9)
        row[col.key] = uuid(rand, true, false);
    });
    if (rand() < 0.05) row.extra_key = 'not a column';
    return row as Row;
  });
  return { columns, rows };
}

/** The columns of /db sizes (commands/table-sizes.ts) and /db activity (commands/lib/activity.ts). */
const SIZES: Column[] = [
  { key: 'relation', label: 'relation', kind: 'text' },
  { key: 'kind', label: 'kind', kind: 'text' },
  { key: 'total_bytes', label: 'total', kind: 'bytes' },
  { key: 'table_bytes', label: 'table', kind: 'bytes' },
  { key: 'index_bytes', label: 'indexes', kind: 'bytes' },
  { key: 'toast_bytes', label: 'toast', kind: 'bytes' },
  { key: 'rows', label: 'rows (est.)', kind: 'count' },
];
const ACTIVITY: Column[] = [
  { key: 'pid', label: 'pid', kind: 'id' },
  { key: 'user', label: 'user', kind: 'text' },
  { key: 'application', label: 'application', kind: 'text' },
  { key: 'client_address', label: 'client', kind: 'text' },
  { key: 'state', label: 'state', kind: 'text' },
  { key: 'wait_event', label: 'waiting on', kind: 'text' },
  { key: 'query_seconds', label: 'query', kind: 'seconds' },
  { key: 'xact_seconds', label: 'transaction', kind: 'seconds' },
  { key: 'query', label: 'query text', kind: 'text' },
];

function sizesTable(rand: () => number): Table {
  const rows = Array.from({ length: Math.floor(rand() * 41) }, (_, i) => ({
    relation: `public.${pick(rand, ['exams', 'answers', 'kasm_sessions', 'a'.repeat(1 + Math.floor(rand() * 62))])}${i}`,
    kind: pick(rand, ['table', 'materialized view', 'partitioned table']),
    total_bytes: Math.floor(rand() * 2 ** (10 + Math.floor(rand() * 35))),
    table_bytes: Math.floor(rand() * 2 ** 30),
    index_bytes: Math.floor(rand() * 2 ** 20),
    toast_bytes: rand() < 0.5 ? 8192 : 0,
    rows: rand() < 0.1 ? -1 : Math.floor(rand() * 1e7),
  }));
  return { columns: SIZES, rows };
}

function activityTable(rand: () => number): Table {
  const rows = Array.from({ length: Math.floor(rand() * 41) }, () => ({
    pid: 1000 + Math.floor(rand() * 4_000_000),
    user: pick(rand, ['exam_user_staging', 'postgres', 'kasm']),
    application: pick(rand, ['psql', '', 'pg_dump', 'kasm_api worker 3']),
    client_address: pick(rand, ['10.0.0.1', '2001:db8:85a3::8a2e:370:7334', '']),
    state: pick(rand, ['active', 'idle in transaction', 'idle in transaction (aborted)']),
    wait_event: pick(rand, ['', 'Lock: transactionid', 'ClientRead']),
    query_seconds: rand() < 0.1 ? null : rand() * 10_000,
    xact_seconds: rand() * 100_000,
    query: rand() < 0.1 ? textValue(rand) : words(rand, Math.floor(rand() * 30)),
  }));
  return { columns: ACTIVITY, rows };
}

/** Values as they arrive, unformatted: control characters and runs of spaces reach the layout. */
function raw(value: Row[string] | undefined): string {
  return value === null || value === undefined ? '' : String(value);
}

const sha = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex');

/** Recorded from the implementation of commit 71282be (before the lean rework; render.ts of 8687b3d). */
const GOLDEN = {
  tables: 'e4d999cd19b8c6ef8df9d244bf33505bc93314afbe66fc790490f6097161e9b9',
  cards: '0f9d3523aad5634902acc2d9a1a93063c24139714cf23e5e62ed24e59cd6eccb',
  columns: 'a44c21c147bd428cf5d46a467f64b384f822f4327cfff4c313d9532ad5d6e441',
  wrap: 'b54899e2aae77d415a4d4bfe086dc54b717f17e53c8751b83aeed1a3e5abe2b4',
  whitespace: '2e6574bad85924423ee98b0c6820778c4332edf1a144fcf22786a4ee6ab48394',
  format: 'be181a48787c56f1238a82ef6f1944abf0ffd9ef13f359fbb26f17279abdd4f3',
};

describe('layout golden output', () => {
  const rand = prng(15);
  const tables = [
    ...Array.from({ length: 700 }, () => makeTable(rand)),
    ...Array.from({ length: 60 }, () => sizesTable(rand)),
    ...Array.from({ length: 60 }, () => activityTable(rand)),
  ];

  it('lays out every table of the corpus exactly as before', () => {
    const out: unknown[] = [];
    for (const [n, { columns, rows }] of tables.entries()) {
      const format = n % 3 === 2 ? raw : formatValue;
      out.push(layoutRows(columns, rows, format));
      for (const width of WIDTHS) {
        out.push(layoutRows(columns, rows, format, { width }));
        out.push(layoutRows(columns, rows, format, { width, preferCards: true }));
        const maxColumnWidth = 4 + ((n * 7 + width) % 40);
        out.push(layoutRows(columns, rows, format, { width, maxColumnWidth }));
        out.push(layoutRows(columns, rows, format, { width, maxColumnWidth, preferCards: n % 2 === 0 }));
      }
    }
    expect(out.length).toBe(820 * 21);
    expect(sha(out)).toBe(GOLDEN.tables);
  });

  it('renders cards exactly as before', () => {
    const out: string[] = [];
    for (const [n, { columns, rows }] of tables.entries()) {
      const cells = rows.map((row) =>
        columns.map((col) => (n % 2 ? raw : formatValue)(row[col.key], col.kind)),
      );
      const whole = wholeColumns(columns, cells);
      for (const width of WIDTHS) out.push(renderCards(columns, cells, width, whole));
    }
    expect(sha(out)).toBe(GOLDEN.cards);
  });

  it('reads importance and wholeness of every column exactly as before', () => {
    const out: unknown[] = [];
    for (const { columns, rows } of tables) {
      const cells = rows.map((row) => columns.map((col) => formatValue(row[col.key], col.kind)));
      out.push(wholeColumns(columns, cells));
      columns.forEach((col, i) => {
        const values = cells.map((r) => r[i] ?? '');
        out.push(importanceOf(col, values), isWhole(col, values));
      });
    }
    expect(sha(out)).toBe(GOLDEN.columns);
  });

  it('wraps text and blocks exactly as before', () => {
    const wrapRand = prng(56);
    const out: unknown[] = [];
    for (let n = 0; n < 3000; n++) {
      const text = n % 4 === 0 ? words(wrapRand, Math.floor(wrapRand() * 40)) : textValue(wrapRand);
      const width = Math.floor(wrapRand() * 90) - 2;
      const indent = pick(wrapRand, ['', ' ', '  ', '      ']);
      out.push(wrapText(text, width, indent, n % 2 === 0), wrapText(text, Math.max(width, 1)));
      const block = [text, `  ${text}`, '', `    ${textValue(wrapRand)} ${text}`].join('\n');
      out.push(wrapLines(block, Math.max(width, 4)));
    }
    expect(sha(out)).toBe(GOLDEN.wrap);
  });

  it('formats every cell exactly as before', () => {
    const formatRand = prng(80);
    const out: string[] = [];
    for (let n = 0; n < 20_000; n++) {
      const kind = pick(formatRand, COLUMN_KINDS);
      out.push(formatValue(cellValue(formatRand, kind), kind));
      const number = numberValue(formatRand);
      out.push(formatBytes(number), formatCount(number), formatBytes(number * 1e6), formatCount(number / 7));
    }
    expect(sha(out)).toBe(GOLDEN.format);
  });

  it('collapses whitespace and writes large numbers exactly as before', () => {
    const spaceRand = prng(120);
    const pieces = [
      'a',
      'b c',
      ' ',
      '  ',
      '\t',
      '\n',
      '\r',
      '\r\n',
      '\u000b',
      '\u000c',
      '\u00a0',
      '\u1680',
      '\u2003',
      '\u200a',
      '\u2028',
      '\u2029',
      '\u202f',
      '\u205f',
      '\u3000',
      '\ufeff',
      '\u0085',
      '\u200b',
      'é',
      '\u001b',
    ];
    const out: string[] = [];
    for (let n = 0; n < 20_000; n++) {
      const value = Array.from({ length: 1 + Math.floor(spaceRand() * 6) }, () =>
        pick(spaceRand, pieces),
      ).join('');
      out.push(formatValue(value, pick(spaceRand, ['text', 'timestamp', 'count', 'bytes'] as ColumnKind[])));
    }
    // Integers either side of 1e21, where numbers start to be written with an exponent.
    for (const n of [9.99e20, 1e21 - 2 ** 17, 1e21, 1.000001e21, 2 ** 53, 2 ** 53 + 2, 1e300]) {
      for (const value of [n, -n, n / 1000]) out.push(formatCount(value), formatValue(value, 'number'));
    }
    expect(sha(out)).toBe(GOLDEN.whitespace);
  });
});
