// How long a Discord `/db` command may run before it is deferred: the window, bounded by Discord's 3 s.
import { describe, expect, it } from 'vitest';
import { ANSWER_WINDOW_MS, answerWindow } from '../src/surfaces/discord/answer-window.js';

describe('answerWindow', () => {
  const created = 1_000_000;

  it('waits the window from receipt when the interaction arrived at once', () => {
    expect(answerWindow(created, created, created)).toBe(ANSWER_WINDOW_MS);
    expect(answerWindow(created, created, created + 1_000)).toBe(ANSWER_WINDOW_MS - 1_000);
  });

  it('never waits past Discord’s deadline less the margin for the deferral', () => {
    // Delivered 1.5 s late: 3 s − 1 s margin − 1.5 s leaves 0.5 s.
    expect(answerWindow(created, created + 1_500, created + 1_500)).toBe(500);
    // Delivered after the margin began: defer at once.
    expect(answerWindow(created, created + 2_500, created + 2_500)).toBe(0);
    expect(answerWindow(created, created + 9_000, created + 9_000)).toBe(0);
  });

  it('is never negative, also when the window has passed', () => {
    expect(answerWindow(created, created, created + 5_000)).toBe(0);
  });
});
