// Bookkeeping in few statements: a surface's delivery key is claimed with the invocation's first audit
// record (a re-delivered command runs once, a repeat writes and posts nothing, a read's reply costs the
// state database one statement), and a destructive request is stored with its record in one.
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

describe('a destructive request stored with its record', () => {
  it('takes its number, writes its pending record and the request in one statement', async () => {
    const { value, texts } = await stateStatements(() =>
      app.core.dispatch({ surface: 'cli', identity: 'alice', text: '/db vacuum staging exams --full' }),
    );
    expect(value.status).toBe('pending');
    expect(texts).toHaveLength(1);
    expect(texts[0]).toMatch(/nextval[\s\S]*INSERT INTO dbops_audit[\s\S]*INSERT INTO dbops_requests/);
    const rows = await adminQuery<{ event: string; request_id: string }>(
      'SELECT event, request_id FROM dbops_audit WHERE ref = $1 ORDER BY id',
      [value.ref],
      fx.state.name,
    );
    expect(rows).toEqual([{ event: 'pending', request_id: String(value.requestId) }]);
  });

  it('stores neither when the record is refused', async () => {
    await adminQuery(
      `CREATE FUNCTION refuse_pending() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN IF NEW.event = 'pending' THEN RAISE EXCEPTION 'refused (test)'; END IF; RETURN NEW; END $$;
       CREATE TRIGGER refuse_pending BEFORE INSERT ON dbops_audit
         FOR EACH ROW EXECUTE FUNCTION refuse_pending();`,
      [],
      fx.state.name,
    );
    try {
      const count = async () =>
        Number(
          (await adminQuery<{ n: string }>('SELECT count(*) AS n FROM dbops_requests', [], fx.state.name))[0]
            ?.n,
        );
      const before = await count();
      const reply = await app.core.dispatch({
        surface: 'cli',
        identity: 'alice',
        text: '/db vacuum staging exams --full',
      });
      expect(reply.status).toBe('failed');
      expect(reply.code).toBe('state_unavailable');
      expect(await count()).toBe(before);
    } finally {
      await adminQuery('DROP TRIGGER refuse_pending ON dbops_audit', [], fx.state.name);
    }
  });
});
