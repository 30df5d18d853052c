// The approvals channel under faults: two replicas sweeping at the same moment post a card once (the
// claim); the process that made a request wakes the bots at once (LISTEN/NOTIFY); a state database that
// drops while the card is posted, or is away during a sweep, loses nothing and posts nothing twice; hostile
// text in the request is shown as text on the card.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/core/log.js';
import { ApprovalAnnouncer } from '../src/notify/approvals.js';
import type { ApiCall } from './fakes/slack.js';
import {
  announced,
  cardsOf,
  request,
  severalSweeps,
  startWorld,
  textOf,
  type World,
} from './helpers/announce.js';

let w: World;

beforeAll(async () => {
  w = await startWorld('anncf');
});

afterAll(async () => {
  await w?.close();
});

describe('the approvals channel under faults', () => {
  it('posts once when two replicas sweep at the same moment (the claim), however slow the post', async () => {
    const config = w.directConfig;
    const posted: number[] = [];
    const slow = {
      async postCard(request: { id: number }) {
        posted.push(request.id);
        await new Promise((r) => setTimeout(r, 300));
        return { slack: { channel: 'C0ELSEWHERE', ts: `1.${request.id}`, thread: `1.${request.id}` } };
      },
    };
    const pair = ['replica-a', 'replica-b'].map(
      (owner) =>
        new ApprovalAnnouncer({
          config,
          state: w.cli.state,
          stateUrl: w.stateDb.url,
          posters: { slack: slow },
          log: silentLogger(),
          owner,
        }),
    );
    try {
      // The running replicas are kept out of it: their sweeps would announce it first.
      w.proxy.drop();
      const made = await request(w, '/db vacuum prod exams --full');
      const [a, b] = await Promise.all(pair.map((announcer) => announcer.sweep()));
      expect([...(a ?? []), ...(b ?? [])]).toEqual([made.id]);
      expect(posted).toEqual([made.id]);
      expect((await announced(w, made.id)).refs.slack).toMatchObject({ channel: 'C0ELSEWHERE' });
      await Promise.all(pair.map((announcer) => announcer.sweep()));
      expect(posted).toEqual([made.id]);
    } finally {
      w.proxy.restore();
      await Promise.all(pair.map((announcer) => announcer.stop()));
    }
  });

  it('is woken at once by the process that made the request (LISTEN/NOTIFY), not only by its sweeps', async () => {
    const posted: number[] = [];
    const announcer = new ApprovalAnnouncer({
      config: w.directConfig,
      state: w.cli.state,
      stateUrl: w.stateDb.url,
      posters: {
        slack: {
          async postCard(request: { id: number }) {
            posted.push(request.id);
            return { slack: { channel: 'C0WOKEN', ts: `2.${request.id}`, thread: `2.${request.id}` } };
          },
        },
      },
      log: silentLogger(),
      owner: 'replica-woken',
    });
    try {
      w.proxy.drop();
      // Its timer would next look in ten minutes: only the wake-up can announce the request sooner.
      announcer.start(600_000);
      await new Promise((r) => setTimeout(r, 1_000));
      const made = await request(w, '/db vacuum prod exams --full');
      await expect.poll(() => posted, { timeout: 10_000 }).toEqual([made.id]);
    } finally {
      w.proxy.restore();
      await announcer.stop();
    }
  });

  it('loses nothing when the state database drops while the card is posted, and posts it once', async () => {
    // The state database goes away right as the card reaches Slack: the mark cannot be written.
    let dropped = false;
    w.slack.fail = (method, body) => {
      if (!dropped && method === 'chat.postMessage' && body.channel === 'C0APPROVALS') {
        dropped = true;
        w.proxy.drop();
      }
      return undefined;
    };
    const made = await request(w, '/db vacuum prod exams --full --reason "<!channel> \u202Egnp.exe"');
    await w.slack.until(() => cardsOf(w, made.id)[0], 'the card');
    expect(dropped).toBe(true);
    await severalSweeps();
    expect((await announced(w, made.id)).at).toBeNull();
    w.proxy.restore();
    await expect.poll(async () => (await announced(w, made.id)).at, { timeout: 20_000 }).toBeInstanceOf(Date);
    await severalSweeps();
    const cards = cardsOf(w, made.id);
    expect(cards).toHaveLength(1);
    expect((await announced(w, made.id)).refs.slack).toMatchObject({ ts: cards[0]?.response?.ts });
    // The typed reason is shown as text: no mention, the bidi override made visible.
    expect(textOf(cards[0] as ApiCall)).not.toContain('<!channel>');
    expect(textOf(cards[0] as ApiCall)).not.toContain('\u202E');
    w.slack.fail = () => undefined;
  });

  it('is announced when the state database was away during the sweep, once it is back', async () => {
    w.proxy.drop();
    const made = await request(w, '/db vacuum prod exams --full');
    await severalSweeps();
    expect(cardsOf(w, made.id)).toEqual([]);
    w.proxy.restore();
    await w.slack.until(() => cardsOf(w, made.id)[0], 'the card after the outage', 20_000);
    await severalSweeps();
    expect(cardsOf(w, made.id)).toHaveLength(1);
  });
});
