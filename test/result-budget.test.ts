// The process-wide budget on result rows: a large result waits while others hold the room (and a command
// holds its rows until its answer is delivered), small results never wait, and a long wait says "retry".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../src/core/errors.js';
import { FREE_ROWS, RowBudget, resultBudget, withResultScope } from '../src/core/result-budget.js';
import type { ResultScope } from '../src/core/types.js';
import { createDatabase } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';

let h: OpHarness;
const saved = { total: resultBudget.total, waitMs: resultBudget.waitMs };

beforeAll(async () => {
  const db = await createDatabase(
    'budget',
    'CREATE TABLE big AS SELECT i AS id, md5(i::text) AS v FROM generate_series(1, 5000) i',
  );
  h = new OpHarness([
    testTarget('t', db.url, { limits: { row_cap: 100_000, pool_max: 8 } }),
    // A short statement_timeout: a read waiting for room must not be cancelled for waiting.
    testTarget('short', db.url, { limits: { row_cap: 100_000, pool_max: 8, statement_timeout: 1 } }),
  ]);
});

afterAll(async () => {
  resultBudget.total = saved.total;
  resultBudget.waitMs = saved.waitMs;
  await h?.close();
});

async function until(what: string, done: () => boolean): Promise<void> {
  for (let waited = 0; !done(); waited += 10) {
    if (waited > 20_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A capped read of `big`; in a command's result scope when given one (as the core passes it). */
const read = (cap: number, target = 't', resultScope?: ResultScope) =>
  h.pools
    .get(target)
    .read(
      (session) => session.cursor('SELECT id, v FROM big ORDER BY id', [], cap),
      resultScope ? { resultScope } : undefined,
    );

describe('RowBudget', () => {
  it('grants in order, makes a request wait for room, and clamps one larger than the whole', async () => {
    const budget = new RowBudget(100, 10_000);
    const a = await budget.acquire(60);
    let bGot = false;
    const b = budget.acquire(60).then((release) => {
      bGot = true;
      return release;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(bGot).toBe(false);
    expect(budget.waiting).toBe(1);
    a();
    (await b)();
    expect(budget.inUse).toBe(0);
    const huge = await budget.acquire(1_000_000);
    expect(budget.inUse).toBe(100);
    huge();
  });

  it('tells the person to retry when room does not come in time', async () => {
    const budget = new RowBudget(10, 50);
    const held = await budget.acquire(10);
    const err = await budget.acquire(5).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).code).toBe('busy');
    expect(String((err as UserError).message)).toMatch(/try again in a minute/);
    expect(budget.waiting).toBe(0);
    held();
  });
});

describe('large reads share one budget per process', () => {
  it('a second large result waits until the first command has delivered its answer', async () => {
    resultBudget.total = 3_000;
    resultBudget.waitMs = 30_000;
    let delivered!: () => void;
    const gate = new Promise<void>((r) => {
      delivered = r;
    });
    // Command A reads 2,500 rows and is still "delivering" (its scope is open).
    let aRead = false;
    const a = withResultScope(async (scope) => {
      const rows = await read(2_500, 't', scope);
      aRead = true;
      await gate;
      return rows;
    });
    await until('A to hold its rows', () => aRead);
    expect(resultBudget.inUse).toBe(2_500 + 1 - FREE_ROWS);

    // B needs room past its free rows too: it waits; a small read does not.
    let bDone = false;
    const b = withResultScope(async (scope) => {
      const rows = await read(2_500, 't', scope);
      bDone = true;
      return rows;
    });
    await until('B to wait for room', () => resultBudget.waiting === 1);
    const small = await withResultScope((scope) => read(50, 't', scope));
    expect(small.rows).toHaveLength(50);
    await new Promise((r) => setTimeout(r, 100));
    expect(bDone).toBe(false);

    delivered();
    expect((await a).rows).toHaveLength(2_500);
    expect((await b).rows).toHaveLength(2_500);
    expect(resultBudget.inUse).toBe(0);
  });

  it('a read waiting for room longer than statement_timeout is not cancelled, and reads every row', async () => {
    resultBudget.total = 3_000;
    resultBudget.waitMs = 30_000;
    let delivered!: () => void;
    const gate = new Promise<void>((r) => {
      delivered = r;
    });
    let aRead = false;
    const a = withResultScope(async (scope) => {
      const rows = await read(2_500, 'short', scope);
      aRead = true;
      await gate;
      return rows;
    });
    await until('A to hold its rows', () => aRead);
    const b = withResultScope((scope) => read(2_500, 'short', scope));
    await until('B to wait for room', () => resultBudget.waiting === 1);
    // Longer than the target's statement_timeout (1 s): a wait with B's cursor open would be cancelled.
    await new Promise((r) => setTimeout(r, 1_500));
    delivered();
    expect((await a).rows).toHaveLength(2_500);
    const got = await b;
    expect(got.rows).toHaveLength(2_500);
    expect(got.truncated).toBe(true);
    expect(got.rows.map((r) => (r as { id: number }).id)).toEqual(
      Array.from({ length: 2_500 }, (_, i) => i + 1),
    );
    expect(got.fields?.map((f) => f.name)).toEqual(['id', 'v']);
    expect(resultBudget.inUse).toBe(0);
  });

  it('outside a command scope a read gives its room back when it returns', async () => {
    resultBudget.total = 3_000;
    const result = await read(2_500);
    expect(result.rows).toHaveLength(2_500);
    expect(resultBudget.inUse).toBe(0);
  });
});
