// Hostile values: terminal escape sequences and invisible / direction-changing characters are shown
// escaped on every surface's text, and refused in the arguments of requests that change something.
import { describe, expect, it } from 'vitest';
import cancelQuery from '../commands/cancel-query.js';
import exportOp from '../commands/export.js';
import terminate from '../commands/terminate.js';
import { UserError } from '../src/core/errors.js';
import { bindArguments, tokenize } from '../src/core/grammar.js';
import { renderResult } from '../src/core/render.js';
import type { OperationResult } from '../src/core/types.js';
import { hiddenCharacters, showInvisible, terminalSafeJson } from '../src/core/visible.js';
import { renderResult as discordResult, renderText as discordText } from '../src/surfaces/discord/render.js';
import { resultBlocks, textBlocks } from '../src/surfaces/slack/render.js';

/** Anything a terminal or a chat client would act on or hide. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for them.
const RAW = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/;

const TITLE = '\u001b]0;pwned\u0007';
const CLEAR = '\u001b[2J\u001b[H';
const hostile: OperationResult = {
  headline: `2 sessions ${CLEAR}`,
  columns: [
    { key: 'pid', label: 'pid', kind: 'id' },
    { key: 'query', label: 'query', kind: 'text' },
  ],
  rows: [
    { pid: 101, query: `SELECT 1${TITLE}` },
    // A carriage return would overwrite the line with a fake one; U+202E reverses what follows.
    { pid: 102, query: 'DELETE FROM t\rSELECT 1 -- harmless \u202Egnp.exe\u200b \u009b2J' },
  ],
  truncated: false,
  notes: [`note with ${CLEAR}`],
};

describe('showInvisible', () => {
  it('shows controls as \\xNN and invisible characters as <U+XXXX>, keeping newlines and tabs', () => {
    expect(showInvisible(`a${TITLE}b`)).toBe('a\\x1b]0;pwned\\x07b');
    expect(showInvisible('x\u202Ey\u200bz\u2066')).toBe('x<U+202E>y<U+200B>z<U+2066>');
    expect(showInvisible('one\r\ntwo\rthree\n\tfour')).toBe('one\ntwo\\rthree\n\tfour');
    expect(showInvisible('a\nb', { newlines: false })).toBe('a\\nb');
    expect(showInvisible('\u009b2J')).toBe('\\x9b2J');
    expect(showInvisible('plain ünïcödé — text ✓ 👍')).toBe('plain ünïcödé — text ✓ 👍');
  });

  it('names each hidden character and its position', () => {
    expect(hiddenCharacters('ab\u202Ec')).toEqual([
      { code: 'U+202E', name: 'RIGHT-TO-LEFT OVERRIDE', position: 3 },
    ]);
    expect(hiddenCharacters('a\u001b')).toEqual([{ code: 'U+001B', name: 'ESCAPE', position: 2 }]);
    expect(hiddenCharacters('fine')).toEqual([]);
  });

  it('leaves JSON values intact but unable to drive a terminal', () => {
    const value = { q: `x${TITLE}\u202E\u009b` };
    const json = terminalSafeJson(JSON.stringify(value));
    expect(json).not.toMatch(RAW);
    expect(JSON.parse(json)).toEqual(value);
  });
});

describe('every surface shows hostile values escaped', () => {
  it('plain text (console, exec): tables, cards, headline and notes', () => {
    for (const result of [
      hostile,
      { ...hostile, rows: hostile.rows.slice(0, 1) },
      { ...hostile, display: 'text' as const },
    ]) {
      const text = renderResult(result);
      expect(text).not.toMatch(RAW);
      expect(text).toContain('\\x1b');
    }
    expect(renderResult(hostile)).toContain('<U+202E>gnp.exe<U+200B>');
    expect(renderResult(hostile)).toContain('DELETE FROM t\\rSELECT 1');
  });

  it('Slack blocks and Discord messages', () => {
    const slack = JSON.stringify(resultBlocks(hostile));
    expect(slack).not.toMatch(RAW);
    expect(slack).toContain('&lt;U+202E&gt;gnp.exe');
    expect(JSON.stringify(textBlocks(`refused: ${CLEAR}\u202E`))).not.toMatch(RAW);
    const discord = JSON.stringify(discordResult(hostile, 2000, 'sessions'));
    // Discord code blocks break backtick runs with a zero-width space of dbops' own; values get none.
    expect(discord.replace(/`\u200b/g, '`')).not.toMatch(RAW);
    expect(discord).toContain('<U+202E>');
    expect(JSON.stringify(discordText(`line ${TITLE}\nsecond \u202E`))).not.toMatch(RAW);
  });
});

describe('arguments of requests that change something', () => {
  it('refuses a bidi or zero-width character in a destructive argument, saying which and where', () => {
    let err: unknown;
    try {
      bindArguments(terminate, tokenize('12\u202E34'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toContain('holds U+202E RIGHT-TO-LEFT OVERRIDE at position 3');
    expect((err as UserError).message).toContain('12<U+202E>34');
    expect(() => bindArguments(cancelQuery, tokenize('5\u200b'))).toThrow(
      /U\+200B ZERO WIDTH SPACE at position 2/,
    );
  });

  it('takes them in a read (shown escaped later)', () => {
    expect(bindArguments(exportOp, tokenize('notes --where "body=a\u200bb"'))).toMatchObject({
      where: 'body=a\u200bb',
    });
  });
});
