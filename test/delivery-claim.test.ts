// A surface's delivery key is claimed by the core with the invocation's first audit record, in one
// statement: a re-delivered command runs once, a repeat writes and posts nothing, and a read's reply
// costs the state database one statement.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import type { Reply } from '../src/core/reply.js';
import { type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery } from './helpers/db.js';

let fx: Fixture;
let app: App;

beforeAll(async () => {
  fx = await makeFixture();
  app = await startApp(fx.config);
});

afterAll(async () => {
  await app?.close();
});

/** alice through Slack, carol (no Slack identity) through the CLI: a delivery key works on any surface. */
const deliver = (key: string, text: string, who: 'alice' | 'carol') =>
  app.core.dispatch({
    ...(who === 'alice'
      ? { surface: 'slack', identity: 'T1/UALICE' }
      : { surface: 'cli', identity: 'carol' }),
    text,
    delivery: key,
  });

async function records(ref: string | undefined): Promise<string[]> {
  const rows = await adminQuery<{ event: string; outcome: string }>(
    'SELECT event, outcome FROM dbops_audit WHERE ref = $1 ORDER BY id',
    [ref ?? null],
    fx.state.name,
  );
  return rows.map((r) => `${r.event}:${r.outcome}`);
}

/** The statements sent to the state database while `work` runs (every pg client of this process). */
async function stateStatements<T>(work: () => Promise<T>): Promise<{ value: T; texts: string[] }> {
  const texts: string[] = [];
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  proto.query = function (this: { database?: string }, ...args: unknown[]) {
    const [first] = args;
    const text = typeof first === 'string' ? first : (first as { text?: string } | undefined)?.text;
    if (this.database === fx.state.name) texts.push(String(text));
    return original.apply(this, args);
  };
  try {
    return { value: await work(), texts };
  } finally {
    proto.query = original;
  }
}

describe('a delivery claimed with the first audit record', () => {
  it('runs a read delivered twice at once exactly once; the repeat writes nothing', async () => {
    const replies = await Promise.all([
      deliver('slack:command:T-twice', '/db sizes staging', 'alice'),
      deliver('slack:command:T-twice', '/db sizes staging', 'alice'),
    ]);
    await app.core.settled();
    const ran = replies.filter((r) => !r.duplicate);
    const repeats = replies.filter((r) => r.duplicate);
    expect(ran).toHaveLength(1);
    expect(ran[0]?.status).toBe('ok');
    expect(repeats).toHaveLength(1);
    expect(await records(ran[0]?.ref)).toEqual(['requested:running', 'executed:ok']);
    expect(await records(repeats[0]?.ref)).toEqual([]);
    // Delivered again later (Slack's retry after a timeout): dropped too.
    const late = await deliver('slack:command:T-twice', '/db sizes staging', 'alice');
    expect(late.duplicate).toBe(true);
    expect(await records(late.ref)).toEqual([]);
  });

  it('drops a repeat of a built-in and of a refusal', async () => {
    const first = await deliver('slack:command:T-help', '/db targets', 'alice');
    expect(first.duplicate).toBeUndefined();
    expect((await deliver('slack:command:T-help', '/db targets', 'alice')).duplicate).toBe(true);
    // carol may not write on staging: the refusal's record claims the delivery.
    const refused = await deliver('slack:command:T-refused', '/db vacuum staging exams --full', 'carol');
    expect(refused.status).toBe('refused');
    expect(refused.duplicate).toBeUndefined();
    const again: Reply = await deliver('slack:command:T-refused', '/db vacuum staging exams --full', 'carol');
    expect(again.duplicate).toBe(true);
  });

  it('costs a read one state statement before its reply: the claim and the record together', async () => {
    await deliver('slack:command:T-warm', '/db sizes staging', 'alice');
    await app.core.settled();
    const { value, texts } = await stateStatements(() =>
      deliver('slack:command:T-count', '/db sizes staging', 'alice'),
    );
    expect(value.status).toBe('ok');
    expect(texts).toHaveLength(1);
    expect(texts[0]).toMatch(/INSERT INTO dbops_deliveries[\s\S]*INSERT INTO dbops_audit/);
    const after = await stateStatements(() => app.core.settled());
    expect(after.texts).toHaveLength(1);
    expect(after.texts[0]).toMatch(/INSERT INTO dbops_audit/);
    expect(await records(value.ref)).toEqual(['requested:running', 'executed:ok']);
  });
});
