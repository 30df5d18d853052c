// Per-target lanes for chat deliveries: which lane a command goes to, and that a full lane never holds up another.
import { describe, expect, it } from 'vitest';
import { LaneQueue, laneOf } from '../src/surfaces/lanes.js';

const TARGETS = ['kasm', 'staging'];
const state = {
  getRequest: async (id: number) => (id === 7 ? { target: 'kasm' } : undefined),
  getPagedRead: async (ref: string) => (ref === 'rabcde' ? { target: 'staging' } : undefined),
  listAudit: async (filter: { ref: string }) =>
    filter.ref === 'rkasmm' ? [{}, { target: 'kasm' }] : filter.ref === 'rgonee' ? [{ target: 'old' }] : [],
};
const app = { state };

function lane(text: string, extra: { channel?: string; boundTarget?: string } = {}) {
  return laneOf(app, TARGETS, { surface: 'slack', text, ...extra });
}

describe('laneOf', () => {
  it('puts target commands in their target lane and built-ins in their own', async () => {
    expect(await lane('sizes kasm')).toBe('target:kasm');
    expect(await lane('/db lookup staging user bob')).toBe('target:staging');
    expect(await lane('help sizes')).toBe('builtins');
    expect(await lane('targets')).toBe('builtins');
    expect(await lane('audit kasm')).toBe('builtins');
    expect(await lane('"unbalanced')).toBe('builtins');
  });

  it('follows a channel binding, and an approval to its request target', async () => {
    expect(await lane('sizes', { channel: 'C1', boundTarget: 'kasm' })).toBe('target:kasm');
    expect(await lane('sizes', { channel: 'C2' })).toBe('channel:slack:C2');
    expect(await lane('approve 7')).toBe('target:kasm');
    expect(await lane('approve 8')).toBe('builtins');
    expect(await lane('approve x')).toBe('builtins');
    const down = { state: { getRequest: () => Promise.reject(new Error('state down')) } };
    expect(await laneOf(down, TARGETS, { surface: 'slack', text: 'approve 7' })).toBe('builtins');
  });

  it('puts a Next page press in the lane of the target its answer read', async () => {
    expect(await lane('page rabcde')).toBe('target:staging');
    expect(await lane('page RABCDE 3')).toBe('target:staging');
    expect(await lane('page rzzzzz')).toBe('builtins');
    expect(await lane('page 12')).toBe('builtins');
    const down = {
      state: {
        getRequest: async () => undefined,
        getPagedRead: () => Promise.reject(new Error('state down')),
      },
    };
    expect(await laneOf(down, TARGETS, { surface: 'slack', text: 'page rabcde' })).toBe('builtins');
  });

  it('puts an All columns (CSV) press in the lane of the target its answer read', async () => {
    expect(await lane('csv rkasmm')).toBe('target:kasm');
    expect(await lane('csv RKASMM')).toBe('target:kasm');
    expect(await lane('csv rgonee')).toBe('builtins');
    expect(await lane('csv rzzzzz')).toBe('builtins');
    expect(await lane('csv kasm')).toBe('builtins');
    const down = {
      state: {
        getRequest: async () => undefined,
        listAudit: () => Promise.reject(new Error('state down')),
      },
    };
    expect(await laneOf(down, TARGETS, { surface: 'slack', text: 'csv rkasmm' })).toBe('builtins');
  });
});

describe('LaneQueue', () => {
  it('a lane full of hung jobs does not hold up another lane; queued jobs show in stats', async () => {
    const queue = new LaneQueue({ perLane: 2, total: 3 });
    const release: (() => void)[] = [];
    const hung = Array.from({ length: 5 }, () =>
      queue.run('target:sick', () => new Promise<void>((done) => release.push(done))),
    );
    await new Promise((r) => setTimeout(r, 20));
    expect(release).toHaveLength(2);
    let ran = false;
    await queue.run('target:well', async () => {
      ran = true;
    });
    expect(ran).toBe(true);
    expect(queue.stats()['target:sick']).toMatchObject({ running: 2, waiting: 3 });
    // Each finishing job hands its place to the next of its lane.
    while (release.length > 0) {
      release.shift()?.();
      await new Promise((r) => setTimeout(r, 10));
    }
    await Promise.all(hung);
    expect(queue.stats()).toEqual({});
  });

  it('the overall bound holds across lanes', async () => {
    const queue = new LaneQueue({ perLane: 4, total: 2 });
    let running = 0;
    let most = 0;
    const job = async () => {
      running += 1;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 20));
      running -= 1;
    };
    await Promise.all(['a', 'b', 'c', 'a', 'b', 'c'].map((l) => queue.run(l, job)));
    expect(most).toBe(2);
  });
});
