// Which Slack answers carry the "All columns (CSV)" button instead of a CSV upload: a read that ran at once,
// posted in its thread, whose rows all fit and whose columns were hidden for a phone. Everything else keeps
// what it had (rows left out: the CSV; a request's result, a private answer, an export: as before).
import { describe, expect, it } from 'vitest';
import { type Reply, reply } from '../src/core/reply.js';
import type { Column, OperationResult } from '../src/core/types.js';
import { parseCsvValue } from '../src/surfaces/slack/csv-button.js';
import { renderReply } from '../src/surfaces/slack/render.js';

const columns: Column[] = [
  { key: 'pid', label: 'pid', kind: 'id' },
  { key: 'usename', label: 'user', kind: 'text' },
  { key: 'client_addr', label: 'client', kind: 'text' },
  { key: 'application_name', label: 'application', kind: 'text' },
  { key: 'query', label: 'query', kind: 'text' },
];
const row = (i: number) => ({
  pid: 1_048_576 + i,
  usename: `exam_user_staging_${i}`,
  client_addr: '2001:db8:85a3::8a2e:370:7334',
  application_name: 'uvicorn-worker-pool-b',
  query: 'SELECT e.id, e.title FROM exams e WHERE e.starts_at > now() ORDER BY e.starts_at',
});
/** Twelve rows: a table (a few rows would read as cards, which hide nothing). */
const narrow: OperationResult = {
  columns,
  rows: Array.from({ length: 12 }, (_, i) => row(i)),
  truncated: false,
};

function read(result: OperationResult, extra: Partial<Reply> = {}): Reply {
  return reply({
    status: 'ok',
    requestId: null,
    ref: 'r7f3kq',
    operation: 'idle',
    target: 'staging',
    risk: 'read',
    result,
    message: 'idle staging — done in 3ms',
    text: '',
    ephemeral: false,
    ...extra,
  });
}

interface Button {
  action_id: string;
  value: string;
}

function buttonsOf(blocks: readonly object[]): Button[] {
  return (blocks as { type: string; elements?: Button[] }[]).flatMap((b) =>
    b.type === 'actions' ? (b.elements ?? []) : [],
  );
}

const contextText = (blocks: readonly { type: string }[]) =>
  JSON.stringify(blocks.filter((b) => b.type === 'context'));

describe('the All columns (CSV) button', () => {
  it('replaces the CSV of a read whose rows all fit and whose columns were hidden', () => {
    const message = renderReply(read(narrow));
    expect(message.files).toEqual([]);
    expect(buttonsOf(message.blocks)).toEqual([
      expect.objectContaining({ action_id: 'dbops_csv', value: 'r7f3kq' }),
    ]);
    expect(contextText(message.blocks)).toContain(
      '(hidden: client, application — the All columns (CSV) button has them)',
    );
  });

  it('keeps the CSV upload when rows were left out (the message limit), as PRODUCT.md says', () => {
    const long: OperationResult = {
      columns,
      rows: Array.from({ length: 400 }, (_, i) => row(i)),
      truncated: false,
    };
    const message = renderReply(read(long));
    expect(buttonsOf(message.blocks)).toEqual([]);
    expect(message.files.map((f) => f.filename)).toEqual(['idle-staging-r7f3kq.csv']);
    expect(contextText(message.blocks)).toContain('full result attached as CSV');
    expect(contextText(message.blocks)).toContain('all columns in the CSV');
  });

  it('keeps the CSV for a request’s result, a write, a built-in’s table, an answer with its own CSV', () => {
    const { operation: _, ...builtin } = read(narrow);
    for (const answer of [read(narrow, { requestId: 9 }), read(narrow, { risk: 'write' }), builtin]) {
      const message = renderReply(answer);
      expect(buttonsOf(message.blocks)).toEqual([]);
      expect(message.files).toHaveLength(1);
    }
    const exported = renderReply(
      read({
        ...narrow,
        attachments: [{ filename: 'exams.csv', contentType: 'text/csv', content: 'a\r\n' }],
      }),
    );
    expect(buttonsOf(exported.blocks)).toEqual([]);
    expect(exported.files.map((f) => f.filename)).toEqual(['exams.csv']);
  });

  it('offers nothing on a private answer (no thread to put the file in)', () => {
    const message = renderReply(read(narrow, { ephemeral: true }), { attach: false });
    expect(buttonsOf(message.blocks)).toEqual([]);
    expect(message.files).toEqual([]);
    expect(contextText(message.blocks)).toContain('use dbops exec --json');
  });

  it('sits beside Next page on a paged answer', () => {
    const paged: OperationResult = {
      ...narrow,
      truncated: true,
      page: { number: 1, size: 12, first: 1, more: true, next: '/db idle staging --limit 12 --page 2' },
    };
    const message = renderReply(read(paged));
    expect(buttonsOf(message.blocks).map((b) => [b.action_id, b.value])).toEqual([
      ['dbops_page', 'r7f3kq:2'],
      ['dbops_csv', 'r7f3kq'],
    ]);
    expect(message.files).toEqual([]);
  });

  it('reads back only values it makes', () => {
    expect(parseCsvValue('r7f3kq')).toBe('r7f3kq');
    for (const forged of [
      'R7F3KQ',
      'r7f3kq:2',
      'r7f3kq\n',
      '\u202er7f3kq',
      'r0f3kq',
      'x'.repeat(100_000),
      7,
    ]) {
      expect(parseCsvValue(forged)).toBeUndefined();
    }
  });
});
