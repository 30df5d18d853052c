// Slack and Discord at a phone's width: tables keep ids whole, hide what does not fit, say so, and the
// CSV that goes with the answer (or with an approval request's thread) carries every column.
import { describe, expect, it } from 'vitest';
import { PHONE_WIDTH } from '../src/core/layout.js';
import { reply } from '../src/core/reply.js';
import type { Column, OperationResult } from '../src/core/types.js';
import type { ApprovalRequest } from '../src/state/types.js';
import { renderRequestIntro, renderResultReply } from '../src/surfaces/discord/render.js';
import { renderReply } from '../src/surfaces/slack/render.js';

const columns: Column[] = [
  { key: 'pid', label: 'pid', kind: 'id' },
  { key: 'usename', label: 'user', kind: 'text' },
  { key: 'client_addr', label: 'client', kind: 'text' },
  { key: 'application_name', label: 'application', kind: 'text' },
  { key: 'query', label: 'query', kind: 'text' },
];
const result: OperationResult = {
  headline: 'Sessions idle longer than 10m on staging, which kill-idle would terminate after approval',
  columns,
  rows: Array.from({ length: 12 }, (_, i) => ({
    pid: 1_048_576 + i,
    usename: `exam_user_staging_${i}`,
    client_addr: '2001:db8:85a3::8a2e:370:7334',
    application_name: 'uvicorn-worker-pool-b',
    query: 'SELECT e.id, e.title FROM exams e WHERE e.starts_at > now() ORDER BY e.starts_at',
  })),
  truncated: false,
};
const answer = reply({
  status: 'ok',
  requestId: 9,
  operation: 'idle',
  target: 'staging',
  result,
  message: 'ok',
});

/** The lines inside the code blocks of a Markdown text. */
const codeLines = (markdown: string) =>
  [...markdown.matchAll(/```\n([\s\S]*?)\n```/g)].flatMap((m) => (m[1] ?? '').split('\n'));

describe('a phone-width answer', () => {
  it('on Slack: every code line fits, pids and users whole, hidden columns named and in the CSV', () => {
    const message = renderReply(answer);
    const text = message.blocks
      .map((b) => (b.type === 'section' && typeof b.text?.text === 'string' ? b.text.text : ''))
      .join('\n');
    const lines = codeLines(text);
    expect(lines.length).toBeGreaterThan(12);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(PHONE_WIDTH);
    for (const row of result.rows) expect(text).toContain(`${row.pid}  ${row.usename}`);
    const context = JSON.stringify(message.blocks.filter((b) => b.type === 'context'));
    expect(context).toContain('(hidden: client, application — all columns in the CSV)');
    const csv = message.files.find((f) => f.filename.endsWith('.csv'));
    expect(csv?.content).toContain('2001:db8:85a3::8a2e:370:7334');
  });

  it('on Discord: the same, in one message with the CSV attached', () => {
    const message = renderResultReply(answer);
    const lines = codeLines(message.content ?? '');
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(PHONE_WIDTH);
    for (const row of result.rows) expect(message.content).toContain(`${row.pid}  ${row.usename}`);
    expect((message.content ?? '').replace(/\s+/g, ' ')).toContain('(hidden: client, application');
    expect(message.files?.some((f) => f.name.endsWith('.csv'))).toBe(true);
  });

  it('on Discord: a request whose preview hid columns gets the whole preview in its thread', () => {
    const request: ApprovalRequest = {
      id: 9,
      status: 'pending',
      operation: 'kill-idle',
      target: 'staging',
      environment: 'staging',
      args: {},
      command: 'kill-idle staging --older-than 10m',
      risk: 'destructive',
      requester: { person: 'alice', identity: 'cli:alice', surface: 'cli' },
      preview: { result: { ...result, rows: result.rows.slice(0, 4) }, state: null },
      approvalsRequired: 1,
      votes: [],
      createdAt: new Date(),
      expiresAt: new Date(Date.now() + 600_000),
      updatedAt: new Date(),
      refs: {},
    };
    const intro = renderRequestIntro(request, { approverRoles: ['dba'] });
    expect(intro.content).toContain('The full preview is attached.');
    expect(intro.files?.[0]?.name).toMatch(/\.csv$/);
  });
});
