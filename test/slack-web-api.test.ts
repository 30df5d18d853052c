// The lean Web API caller (src/surfaces/slack/web-api.ts) against the fake Slack: JSON bodies with the
// bearer token, the upload's three steps, 429 waited out, 5xx retried, ok:false as the SDK's error shape,
// a hung call timed out, and the token in no log line or error.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/core/log.js';
import { type KeptAliveHttp, keptAliveHttp } from '../src/surfaces/slack/keep-alive-fetch.js';
import { SlackApi, SlackCallError } from '../src/surfaces/slack/web-api.js';
import { FakeSlack } from './fakes/slack.js';

const TOKEN = 'xoxb-fixture'; // not a real token: the fake Slack checks only the prefix

let fake: FakeSlack;
let http: KeptAliveHttp;
let lines: string[];

function api(options: { retries?: number; timeoutMs?: number } = {}): SlackApi {
  http.close();
  http = keptAliveHttp(options.timeoutMs ?? 5_000);
  return new SlackApi({
    apiUrl: fake.apiUrl,
    token: TOKEN,
    http,
    retries: options.retries ?? 3,
    retryBaseMs: 20,
    log: createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(line) } }),
  });
}

beforeEach(async () => {
  fake = await FakeSlack.start();
  http = keptAliveHttp(5_000);
  lines = [];
});

afterEach(async () => {
  http.close();
  await fake.close();
});

describe('the lean Slack Web API caller', () => {
  it('posts the chat methods as JSON with the bearer token, and uploads a file in three steps', async () => {
    const slack = api();
    const blocks = [{ type: 'section', text: { type: 'mrkdwn', text: '*hi* <b> & "q"' } }];
    const posted = await slack.postMessage({ channel: 'COPS', text: 'hi', blocks, unfurl_links: false });
    expect(posted.ts).toEqual(expect.any(String));
    await slack.update({ channel: 'COPS', ts: posted.ts, text: 'edited', blocks });
    await slack.postEphemeral({ channel: 'COPS', user: 'UALICE', text: 'psst', blocks });
    const chat = fake.calls.filter((c) => c.method.startsWith('chat.'));
    expect(chat.map((c) => c.method)).toEqual(['chat.postMessage', 'chat.update', 'chat.postEphemeral']);
    for (const call of chat) {
      expect(call.contentType).toBe('application/json; charset=utf-8');
      expect(call.authorization).toBe(`Bearer ${TOKEN}`);
      expect(call.body.blocks).toEqual(blocks);
      expect(call.response?.ok).toBe(true);
    }
    expect(chat[0]?.body.unfurl_links).toBe(false);

    const csv = 'name,size\r\nä "quoted",1\r\n';
    await slack.upload(
      { channel: 'COPS', thread: String(posted.ts) },
      { filename: 'sizes.csv', title: 'sizes', content: csv },
    );
    const steps = fake.calls.slice(chat.length);
    expect(steps.map((c) => c.method)).toEqual([
      'files.getUploadURLExternal',
      'upload',
      'files.completeUploadExternal',
    ]);
    expect(steps[0]?.body).toMatchObject({ filename: 'sizes.csv', length: String(Buffer.byteLength(csv)) });
    expect(steps[0]?.authorization).toBe(`Bearer ${TOKEN}`);
    // The upload URL gets the bytes, not the token.
    expect(steps[1]?.authorization).toBeUndefined();
    expect(fake.uploads.at(-1)?.content).toBe(csv);
    expect(steps[2]?.body).toMatchObject({
      files: [{ id: fake.uploads.at(-1)?.fileId, title: 'sizes' }],
      channel_id: 'COPS',
      thread_ts: posted.ts,
    });
  });

  it('has a fake that, as Slack, reads a JSON body only with the token in the header', async () => {
    // The fake's own rule, as Slack's: JSON is read only with the Authorization header.
    const response = await fetch(`${fake.apiUrl}chat.postMessage`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ channel: 'COPS', text: 'x' }),
    });
    expect(await response.json()).toMatchObject({ ok: false, error: 'not_authed' });
  });

  it('surfaces ok:false as the error the callers read (data.error), without retrying it', async () => {
    const slack = api();
    fake.fail = (method, body) =>
      method === 'chat.postMessage'
        ? body.channel === 'CGONE'
          ? 'channel_not_found'
          : 'not_in_channel'
        : undefined;
    for (const [channel, code] of [
      ['CPRIVATE', 'not_in_channel'],
      ['CGONE', 'channel_not_found'],
    ] as const) {
      const err = await slack.postMessage({ channel, text: 'x' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SlackCallError);
      expect(err).toMatchObject({ code: 'slack_webapi_platform_error', data: { ok: false, error: code } });
      expect((err as Error).message).toBe(`An API error occurred: ${code}`);
    }
    expect(fake.arrivals.filter((a) => a.method === 'chat.postMessage')).toHaveLength(2);
  });

  it('waits out a 429 for its Retry-After, then sends the call again', async () => {
    const slack = api();
    let limited = 0;
    fake.hold = (method) =>
      method === 'chat.postMessage' && limited++ === 0 ? { status: 429, retryAfter: 1 } : undefined;
    const posted = await slack.postMessage({ channel: 'COPS', text: 'after the limit' });
    expect(posted.ok).toBe(true);
    const tries = fake.arrivals.filter((a) => a.method === 'chat.postMessage');
    expect(tries.map((a) => a.status)).toEqual([429, 200]);
    // Retry-After: 1 second (a generous lower bound: the wait is a second, the backoff 20 ms).
    expect((tries[1]?.at ?? 0) - (tries[0]?.at ?? 0)).toBeGreaterThanOrEqual(900);
    expect(fake.calls.filter((c) => c.method === 'chat.postMessage')).toHaveLength(1);
  });

  it('gives up on a 429 after its retries, or when Retry-After is missing or too long', async () => {
    fake.hold = (method) => (method === 'chat.update' ? { status: 429, retryAfter: 0 } : undefined);
    const err = await api({ retries: 2 })
      .update({ channel: 'COPS', ts: '1.2', text: 'x' })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'slack_webapi_rate_limited_error', statusCode: 429 });
    expect(fake.arrivals.filter((a) => a.method === 'chat.update')).toHaveLength(3);
    fake.hold = (method) => (method === 'chat.update' ? { status: 429, retryAfter: 3600 } : undefined);
    await expect(api().update({ channel: 'COPS', ts: '1.2', text: 'x' })).rejects.toMatchObject({
      code: 'slack_webapi_rate_limited_error',
      retryAfter: 3600,
    });
  });

  it('retries a 5xx with backoff, and fails a 4xx at once', async () => {
    const slack = api();
    let failures = 0;
    fake.hold = (method) => (method === 'chat.postEphemeral' && failures++ < 2 ? { status: 503 } : undefined);
    await slack.postEphemeral({ channel: 'COPS', user: 'UALICE', text: 'x' });
    expect(fake.arrivals.filter((a) => a.method === 'chat.postEphemeral').map((a) => a.status)).toEqual([
      503, 503, 200,
    ]);
    fake.hold = (method) => (method === 'response_url' ? { status: 404 } : undefined);
    await expect(slack.respond(`${fake.url}/respond/T1/expired`, { text: 'x' })).rejects.toMatchObject({
      code: 'slack_webapi_http_error',
      statusCode: 404,
    });
    expect(fake.arrivals.filter((a) => a.method === 'response_url')).toHaveLength(1);
  });

  it('posts to a response_url as JSON without the token', async () => {
    await api().respond(`${fake.url}/respond/T1/abc`, { response_type: 'ephemeral', text: 'only you' });
    const call = fake.calls.find((c) => c.method === 'response_url');
    expect(call?.body).toEqual({ response_type: 'ephemeral', text: 'only you' });
    expect(call?.authorization).toBeUndefined();
  });

  it('times out a call that gets no answer, and does not send it again', async () => {
    fake.hold = (method) => (method === 'chat.postMessage' ? 'hang' : undefined);
    const started = Date.now();
    const err = await api({ timeoutMs: 300 })
      .postMessage({ channel: 'COPS', text: 'into the void' })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'slack_webapi_request_error' });
    expect((err as Error).message).toMatch(/no answer/);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(fake.arrivals.filter((a) => a.method === 'chat.postMessage')).toHaveLength(1);
  });

  it('never puts the token in a log line or an error, whatever fails', async () => {
    const slack = api({ retries: 1, timeoutMs: 300 });
    const errors: unknown[] = [];
    fake.hold = (method) =>
      method === 'chat.postMessage'
        ? { status: 429, retryAfter: 0 }
        : method === 'chat.update'
          ? { status: 500 }
          : method === 'chat.postEphemeral'
            ? 'hang'
            : undefined;
    fake.fail = (method) => (method === 'files.getUploadURLExternal' ? 'invalid_auth' : undefined);
    for (const call of [
      () => slack.postMessage({ channel: 'COPS', text: 'x' }),
      () => slack.update({ channel: 'COPS', ts: '1.2', text: 'x' }),
      () => slack.postEphemeral({ channel: 'COPS', user: 'U1', text: 'x' }),
      () => slack.upload({ channel: 'COPS', thread: '1.2' }, { filename: 'a.csv', title: 'a', content: 'a' }),
    ]) {
      errors.push(await call().catch((e: unknown) => e));
    }
    // A refused connection: the network error is retried once, then surfaces.
    await fake.close();
    errors.push(await slack.postMessage({ channel: 'COPS', text: 'x' }).catch((e: unknown) => e));
    fake = await FakeSlack.start();
    expect(errors.every((e) => e instanceof SlackCallError)).toBe(true);
    expect(lines.length).toBeGreaterThan(0);
    const everything = [...lines, ...errors.map((e) => `${(e as Error).message} ${JSON.stringify(e)}`)].join(
      '\n',
    );
    expect(everything).not.toContain(TOKEN);
    expect(everything).not.toContain('secret-token');
  });
});
