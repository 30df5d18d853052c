// A command's result scope travels with its invocation (no AsyncLocalStorage): the rows of a large read
// stay reserved in the process's budget until the surface has delivered the answer, and a command
// without a scope gives them back when its read returns.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { resultBudget, withResultScope } from '../src/core/result-budget.js';
import type { Invocation } from '../src/core/types.js';
import { makeFixture, startApp } from './helpers/app.js';

let app: App;
const saved = { total: resultBudget.total, waitMs: resultBudget.waitMs };

beforeAll(async () => {
  const fixture = await makeFixture();
  app = await startApp(fixture.config);
  resultBudget.total = 10_000;
});

afterAll(async () => {
  resultBudget.total = saved.total;
  resultBudget.waitMs = saved.waitMs;
  await app?.close();
});

const EXPORT = '/db export staging exams --limit 1500';

describe('a result scope carried by the invocation', () => {
  it('holds a large read’s rows through delivery, then gives them back', async () => {
    let held = -1;
    const reply = await withResultScope(async (resultScope) => {
      const inv: Invocation = { surface: 'cli', identity: 'alice', text: EXPORT, resultScope };
      const answer = await app.core.dispatch(inv);
      held = resultBudget.inUse; // the surface is "delivering" now
      return answer;
    });
    expect(reply.status).toBe('ok');
    expect(reply.result?.attachments?.[0]?.content.split('\r\n').length).toBeGreaterThan(1500);
    expect(held).toBeGreaterThan(0);
    expect(resultBudget.inUse).toBe(0);
  });

  it('without a scope the read gives its rows back when it returns', async () => {
    const reply = await app.core.dispatch({ surface: 'cli', identity: 'alice', text: EXPORT });
    expect(reply.status).toBe('ok');
    expect(resultBudget.inUse).toBe(0);
  });

  it('a second large read waits while the first command still delivers', async () => {
    resultBudget.total = 800;
    resultBudget.waitMs = 30_000;
    try {
      let delivered!: () => void;
      const gate = new Promise<void>((r) => {
        delivered = r;
      });
      let firstRead = false;
      const first = withResultScope(async (resultScope) => {
        const answer = await app.core.dispatch({
          surface: 'cli',
          identity: 'alice',
          text: EXPORT,
          resultScope,
        });
        firstRead = true;
        await gate;
        return answer;
      });
      for (let i = 0; !firstRead && i < 2000; i++) await new Promise((r) => setTimeout(r, 10));
      let secondDone = false;
      const second = withResultScope(async (resultScope) => {
        const answer = await app.core.dispatch({
          surface: 'cli',
          identity: 'dave',
          text: EXPORT,
          resultScope,
        });
        secondDone = true;
        return answer;
      });
      for (let i = 0; resultBudget.waiting === 0 && i < 2000; i++)
        await new Promise((r) => setTimeout(r, 10));
      expect(resultBudget.waiting).toBe(1);
      await new Promise((r) => setTimeout(r, 100));
      expect(secondDone).toBe(false);
      delivered();
      expect((await first).status).toBe('ok');
      expect((await second).status).toBe('ok');
      expect(resultBudget.inUse).toBe(0);
    } finally {
      resultBudget.total = 10_000;
    }
  });
});
