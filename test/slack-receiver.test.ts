// Slack HTTP mode's receiver and its acknowledging thread (the compiled ack-thread.js, a real worker
// thread): a thread that dies is reported and started again on the same port, and requests go on.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { App, ReceiverEvent } from '@slack/bolt';
import { afterAll, describe, expect, it } from 'vitest';
import { FastAckReceiver } from '../src/surfaces/slack/fast-receiver.js';
import { formBody, postSigned } from './fakes/slack.js';

const ACK_THREAD = pathToFileURL(resolve('dist/src/surfaces/slack/ack-thread.js'));
const SECRET = 'receiver-signing-secret';
const dir = mkdtempSync(join(tmpdir(), 'dbops-ack-thread-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The real thread, made to exit (code 3) 50 ms after it first listens; started again, it stays. */
function crashingOnce(): URL {
  const marker = join(dir, 'crashed');
  const wrapper = join(dir, 'crash-once.mjs');
  writeFileSync(
    wrapper,
    `import { existsSync, writeFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
const tell = parentPort.postMessage.bind(parentPort);
parentPort.postMessage = (message) => {
  tell(message);
  if (message.type === 'listening' && !existsSync(${JSON.stringify(marker)})) {
    writeFileSync(${JSON.stringify(marker)}, '');
    setTimeout(() => process.exit(3), 50);
  }
};
await import(${JSON.stringify(ACK_THREAD.href)});
`,
  );
  return pathToFileURL(wrapper);
}

async function until(what: string, done: () => boolean): Promise<void> {
  for (let waited = 0; !done(); waited += 10) {
    if (waited > 10_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('the acknowledging thread', () => {
  it('is started again on the same port when it dies, and is reported as down meanwhile', async () => {
    const lost: string[] = [];
    const bodies: Record<string, unknown>[] = [];
    const errors: unknown[] = [];
    const receiver = new FastAckReceiver({
      signingSecret: SECRET,
      path: '/slack/events',
      healthPath: '/slack/healthz',
      onError: (err) => errors.push(err),
      onThreadLost: (why) => lost.push(`${why}; listening: ${receiver.listening}`),
      threadModule: crashingOnce(),
    });
    const app = {
      processEvent: async (event: ReceiverEvent) => {
        bodies.push(event.body);
      },
    };
    receiver.init(app as unknown as App);
    const port = await receiver.start(0);
    expect(receiver.listening).toBe(true);

    await until('the thread to die', () => lost.length > 0);
    expect(lost).toEqual(['the acknowledging thread exited with code 3; listening: false']);
    await until('the thread to listen again', () => receiver.listening);

    const url = `http://127.0.0.1:${port}/slack/events`;
    const body = formBody({
      command: '/db',
      text: 'sizes staging',
      team_id: 'T1',
      user_id: 'U1',
      trigger_id: 't-1',
    });
    const answer = await postSigned(url, {
      secret: SECRET,
      body,
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(answer.status).toBe(200);
    await until('the body to reach Bolt', () => bodies.length > 0);
    expect(bodies).toEqual([
      expect.objectContaining({ command: '/db', text: 'sizes staging', trigger_id: 't-1' }),
    ]);

    await receiver.stop();
    expect(receiver.listening).toBe(false);
    await expect(fetch(url, { method: 'POST' })).rejects.toThrow();
    expect(lost).toHaveLength(1);
    expect(errors).toEqual([]);
  });

  it('closes a connection that never sends a byte, counting from connect', async () => {
    const receiver = new FastAckReceiver({
      signingSecret: SECRET,
      path: '/slack/events',
      healthPath: '/slack/healthz',
      onError: () => {},
      threadModule: ACK_THREAD,
      headersTimeoutMs: 300,
    });
    receiver.init({ processEvent: async () => {} } as unknown as App);
    const port = await receiver.start(0);
    try {
      const socket = connect(port, '127.0.0.1');
      const openedAt = performance.now();
      const closed = new Promise<number>((done) => socket.once('close', () => done(performance.now())));
      socket.on('error', () => {});
      let answer = '';
      socket.on('data', (chunk: Buffer) => {
        answer += chunk.toString();
      });
      await new Promise<void>((done) => socket.once('connect', () => done()));
      // Generous: the deadline is 300 ms; Node's own header clock never starts for a silent socket.
      const closedAt = await Promise.race([
        closed,
        new Promise<number>((r) => setTimeout(() => r(-1), 10_000)),
      ]);
      expect(closedAt).toBeGreaterThan(0);
      expect(closedAt - openedAt).toBeGreaterThanOrEqual(250);
      expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
      socket.destroy();
      // A client that sends its request in time is still answered.
      const health = await fetch(`http://127.0.0.1:${port}/slack/healthz`);
      expect(health.status).toBe(200);
    } finally {
      await receiver.stop();
    }
  });

  it('answers a signed form before parsing it: a garbled one is refused after its 200, an SSL check is not passed on, every 200 is timed', async () => {
    const bodies: Record<string, unknown>[] = [];
    const refused: string[] = [];
    const acks: number[] = [];
    const receiver = new FastAckReceiver({
      signingSecret: SECRET,
      path: '/slack/events',
      healthPath: '/slack/healthz',
      onError: () => {},
      onRefused: (reason) => refused.push(reason),
      onAcked: (ms) => acks.push(ms),
      threadModule: ACK_THREAD,
    });
    receiver.init({
      processEvent: async (event: ReceiverEvent) => {
        bodies.push(event.body);
      },
    } as unknown as App);
    const port = await receiver.start(0);
    const url = `http://127.0.0.1:${port}/slack/events`;
    const form = 'application/x-www-form-urlencoded';
    try {
      const garbled = await postSigned(url, {
        secret: SECRET,
        body: 'payload=%7B%22type%22%3A',
        contentType: form,
      });
      const ssl = await postSigned(url, {
        secret: SECRET,
        body: formBody({ ssl_check: '1' }),
        contentType: form,
      });
      const good = await postSigned(url, {
        secret: SECRET,
        body: formBody({ command: '/db', text: 'targets', trigger_id: 't-2' }),
        contentType: form,
      });
      const forged = await postSigned(url, {
        secret: 'not-the-secret',
        body: formBody({ command: '/db', text: 'targets' }),
        contentType: form,
      });
      expect([garbled.status, ssl.status, good.status, forged.status]).toEqual([200, 200, 200, 401]);
      await until('the command to reach Bolt', () => bodies.length > 0 && refused.length >= 2);
      expect(bodies).toEqual([
        expect.objectContaining({ command: '/db', text: 'targets', trigger_id: 't-2' }),
      ]);
      expect(refused.sort()).toEqual(['bad_signature', 'unparseable']);
      // The three 200s, each from its 'request' event to its 'finish'.
      await until('the ack times', () => acks.length >= 3);
      expect(acks).toHaveLength(3);
      for (const ms of acks) expect(ms).toBeGreaterThanOrEqual(0);
    } finally {
      await receiver.stop();
    }
  });
});
