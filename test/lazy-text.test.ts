// A direct run's reply lays out its text only when read: read, spread, serialized or replaced, it is the
// same value as an eager one, made once.
import { describe, expect, it } from 'vitest';
import { reply } from '../src/core/reply.js';
import { lazyText } from '../src/core/run-now.js';

function lazy(text: string): { answer: ReturnType<typeof reply>; made: () => number } {
  let calls = 0;
  const answer = lazyText(reply({ status: 'ok', requestId: null, message: 'done', text: '' }), () => {
    calls += 1;
    return text;
  });
  return { answer, made: () => calls };
}

describe('lazyText', () => {
  it('is not made until read, then made once', () => {
    const { answer, made } = lazy('a table');
    expect(made()).toBe(0);
    expect(answer.text).toBe('a table');
    expect(answer.text).toBe('a table');
    expect(made()).toBe(1);
  });

  it('is seen by spreading, JSON and key listing like a plain property', () => {
    const { answer } = lazy('rows');
    const eager = reply({ status: 'ok', requestId: null, message: 'done', text: 'rows' });
    expect(Object.keys(answer)).toEqual(Object.keys(eager));
    expect({ ...answer }).toEqual(eager);
    expect(JSON.parse(JSON.stringify(lazy('rows').answer))).toEqual(JSON.parse(JSON.stringify(eager)));
  });

  it('can be replaced before or after it is read', () => {
    const before = lazy('old');
    before.answer.text = 'new';
    expect(before.answer.text).toBe('new');
    expect(before.made()).toBe(0);
    const after = lazy('old');
    expect(after.answer.text).toBe('old');
    after.answer.text = 'new';
    expect(after.answer.text).toBe('new');
  });
});
