// A local fake Slack for the suite: the Web API methods dbops calls (recorded with their bodies), the file
// upload URL, and a Socket Mode WebSocket that delivers envelopes and collects their acks. 127.0.0.1 only.
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';

export const TEAM = 'T1';
export const BOT_USER = 'UBOT';

/** One Web API call as the bot made it: the method and its arguments (JSON-valued fields decoded). */
export interface ApiCall {
  /** Order of arrival among calls and acks. */
  seq: number;
  method: string;
  body: Record<string, unknown>;
  authorization: string | undefined;
  /** The request's content type (Web API methods only). */
  contentType?: string;
  /** What the fake answered. */
  response?: Record<string, unknown>;
}

export interface Upload {
  fileId: string;
  content: string;
}

export interface Ack {
  /** Order of arrival among calls and acks (set by the fake). */
  seq?: number;
  envelope_id: string;
  payload?: unknown;
}

/** Fields the Web API receives as JSON text inside a form body. */
const JSON_FIELDS = new Set(['blocks', 'view', 'files', 'attachments', 'metadata']);

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function decodeForm(text: string): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const [key, value] of new URLSearchParams(text)) {
    body[key] = JSON_FIELDS.has(key) ? JSON.parse(value) : value;
  }
  return body;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Why a method should fail for a given body (e.g. not_in_channel for one channel), or undefined. */
export type Failure = (method: string, body: Record<string, unknown>) => string | undefined;

/**
 * How to hold a Web API or response_url call back before answering it: an HTTP status (429 with
 * Retry-After seconds, a 5xx), or 'hang' (never answered); undefined answers it.
 */
export type Hold = (method: string) => { status: number; retryAfter?: number } | 'hang' | undefined;

/** Every arrival of a Web API or response_url call, answered or held back, in order. */
export interface Arrival {
  method: string;
  at: number;
  /** What it got: 200, the held status, or 0 for never answered. */
  status: number;
}

export class FakeSlack {
  readonly calls: ApiCall[] = [];
  readonly uploads: Upload[] = [];
  readonly acks: Ack[] = [];
  /** WebSocket connections opened by the bot, in order; the last one is live. */
  readonly sockets: WebSocket[] = [];
  fail: Failure = () => undefined;
  hold: Hold = () => undefined;
  readonly arrivals: Arrival[] = [];
  /** Slack user groups by id (`S…`) and their members' user ids, answered by usergroups.users.list. */
  readonly userGroups = new Map<string, string[]>();
  #server: Server;
  #wss: WebSocketServer;
  #seq = 0;
  #ackWaiters = new Map<string, (ack: Ack) => void>();
  #listeners = new Set<() => void>();

  private constructor(server: Server, wss: WebSocketServer) {
    this.#server = server;
    this.#wss = wss;
  }

  static async start(): Promise<FakeSlack> {
    const server = createServer();
    const wss = new WebSocketServer({ server, path: '/link' });
    const fake = new FakeSlack(server, wss);
    server.on('request', (req, res) => {
      fake.#handle(req, res).catch((err: unknown) => json(res, 500, { ok: false, error: String(err) }));
    });
    wss.on('connection', (socket) => {
      fake.sockets.push(socket);
      socket.on('message', (data) => {
        const message = JSON.parse(String(data)) as Ack;
        if (!message.envelope_id) return;
        fake.acks.push({ ...message, seq: fake.#tick() });
        fake.#ackWaiters.get(message.envelope_id)?.(fake.acks.at(-1) ?? message);
        fake.#ackWaiters.delete(message.envelope_id);
      });
      socket.send(
        JSON.stringify({
          type: 'hello',
          num_connections: 1,
          debug_info: { host: 'fake-slack', approximate_connection_time: 18060 },
          connection_info: { app_id: 'A1' },
        }),
      );
      fake.#changed();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Files shared in the workspace, served at url_private_download to the bot token only. */
  readonly hosted = new Map<string, Buffer>();
  /** Authorization headers of file downloads, in order. */
  readonly downloads: (string | undefined)[] = [];

  /** A Slack file object for `content`, as an event carries it; `size` is what Slack announces. */
  hostFile(name: string, content: Buffer, options: { size?: number } = {}): Record<string, unknown> {
    const id = `F${this.#next()}`;
    const path = `/files-pri/${TEAM}-${id}/download/${encodeURIComponent(name)}`;
    this.hosted.set(path, content);
    return {
      id,
      name,
      title: name,
      mimetype: 'text/csv',
      filetype: 'csv',
      size: options.size ?? content.length,
      url_private: `${this.url}/files-pri/${TEAM}-${id}/${encodeURIComponent(name)}`,
      url_private_download: `${this.url}${path}`,
    };
  }

  /** What SLACK_API_URL points at. */
  get apiUrl(): string {
    return `${this.url}/api/`;
  }

  #order = 0;

  #tick(): number {
    this.#order += 1;
    return this.#order;
  }

  #next(): number {
    this.#seq += 1;
    return this.#seq;
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const path = new URL(req.url ?? '/', this.url).pathname;
    const contentType = req.headers['content-type'] ?? '';
    if (path.startsWith('/upload/')) {
      const form = await new Response(new Uint8Array(raw), {
        headers: { 'content-type': contentType },
      }).formData();
      const file = form.get('body');
      const content = typeof file === 'string' ? file : file ? await file.text() : '';
      this.uploads.push({ fileId: path.slice('/upload/'.length), content });
      this.calls.push({
        seq: this.#tick(),
        method: 'upload',
        body: { fileId: path.slice('/upload/'.length), content },
        authorization: req.headers.authorization,
      });
      this.#changed();
      res.writeHead(200);
      res.end('OK');
      return;
    }
    const hosted = this.hosted.get(path);
    if (hosted) {
      this.downloads.push(req.headers.authorization);
      // Without the bot token Slack answers its sign-in page, not the file.
      if (!req.headers.authorization?.startsWith('Bearer xoxb-')) {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<html>sign in</html>');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/csv' });
      res.end(hosted);
      return;
    }
    if (path.startsWith('/respond/')) {
      if (this.#held('response_url', res)) return;
      this.calls.push({
        seq: this.#tick(),
        method: 'response_url',
        body: JSON.parse(raw.toString()),
        authorization: undefined,
      });
      this.#changed();
      json(res, 200, { ok: true });
      return;
    }
    if (!path.startsWith('/api/')) {
      res.writeHead(404);
      res.end();
      return;
    }
    const method = path.slice('/api/'.length);
    if (this.#held(method, res)) return;
    const text = raw.toString();
    const body = contentType.includes('application/json')
      ? (JSON.parse(text) as Record<string, unknown>)
      : decodeForm(text);
    const authorization = req.headers.authorization;
    const call: ApiCall = { seq: this.#tick(), method, body, authorization, contentType };
    // As Slack: a JSON body is only read with the token in the Authorization header.
    const unauthed =
      contentType.startsWith('application/json') && !authorization?.startsWith('Bearer ')
        ? 'not_authed'
        : undefined;
    const failure = unauthed ?? this.fail(method, body);
    call.response = failure ? { ok: false, error: failure } : this.#answer(method, body, authorization);
    this.calls.push(call);
    this.#changed();
    json(res, 200, call.response);
  }

  /** Answers (or never answers) a held call; false when the call goes on to be answered. */
  #held(method: string, res: ServerResponse): boolean {
    const held = this.hold(method);
    this.arrivals.push({ method, at: Date.now(), status: held === 'hang' ? 0 : (held?.status ?? 200) });
    if (!held) return false;
    if (held !== 'hang') {
      res.writeHead(held.status, {
        'content-type': 'application/json',
        ...(held.retryAfter !== undefined ? { 'retry-after': String(held.retryAfter) } : {}),
      });
      res.end(JSON.stringify({ ok: false, error: held.status === 429 ? 'ratelimited' : 'fatal_error' }));
    }
    return true;
  }

  #answer(
    method: string,
    body: Record<string, unknown>,
    authorization: string | undefined,
  ): Record<string, unknown> {
    const n = this.#next();
    switch (method) {
      case 'auth.test':
        return authorization?.startsWith('Bearer xoxb-')
          ? {
              ok: true,
              url: 'https://fake.slack.test/',
              team: 'Fake',
              user: 'dbops',
              team_id: TEAM,
              user_id: BOT_USER,
              bot_id: 'BBOT',
            }
          : { ok: false, error: 'invalid_auth' };
      case 'apps.connections.open':
        return authorization?.startsWith('Bearer xapp-')
          ? { ok: true, url: `${this.url.replace('http:', 'ws:')}/link?ticket=${n}` }
          : { ok: false, error: 'not_allowed_token_type' };
      case 'chat.postMessage': {
        const ts = `1700000${String(n).padStart(3, '0')}.000100`;
        return {
          ok: true,
          channel: body.channel,
          ts,
          message: { text: body.text, ts, thread_ts: body.thread_ts },
        };
      }
      case 'chat.postEphemeral':
        return { ok: true, message_ts: `1700000${String(n).padStart(3, '0')}.000200` };
      case 'chat.update':
        return { ok: true, channel: body.channel, ts: body.ts, text: body.text };
      case 'usergroups.users.list': {
        const members = this.userGroups.get(String(body.usergroup));
        return members ? { ok: true, users: [...members] } : { ok: false, error: 'no_such_subteam' };
      }
      case 'conversations.open': {
        const user = String(body.users ?? '');
        return { ok: true, channel: { id: `D${user}` } };
      }
      case 'views.open':
        return { ok: true, view: { id: `V${n}`, ...(body.view as object) } };
      case 'files.getUploadURLExternal':
        return { ok: true, upload_url: `${this.url}/upload/F${n}`, file_id: `F${n}` };
      case 'files.completeUploadExternal':
        return {
          ok: true,
          files: (body.files as { id: string; title?: string }[]).map((f) => ({ id: f.id, title: f.title })),
        };
      default:
        return { ok: false, error: 'unknown_method' };
    }
  }

  /** Resolves when `predicate` holds for the recorded state, or fails after `ms`. */
  async until<T>(predicate: () => T | undefined | false, what: string, ms = 10_000): Promise<T> {
    const found = predicate();
    if (found) return found;
    return await new Promise<T>((resolve, reject) => {
      const check = () => {
        const value = predicate();
        if (value) {
          cleanup();
          resolve(value);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `fake Slack: timed out waiting for ${what}; calls: ${this.calls.map((c) => c.method).join(', ')}; ` +
              `the last ones: ${this.calls.slice(-8).map(describeCall).join(' | ')}`,
          ),
        );
      }, ms);
      const cleanup = () => {
        clearTimeout(timer);
        this.#listeners.delete(check);
      };
      this.#listeners.add(check);
    });
  }

  /** The calls of one method made after `from` (an index into calls). */
  callsOf(method: string, from = 0): ApiCall[] {
    return this.calls.slice(from).filter((c) => c.method === method);
  }

  /** Waits for the `count`-th call of a method after `from`. */
  async call(method: string, from = 0, count = 1): Promise<ApiCall> {
    return await this.until(() => this.callsOf(method, from)[count - 1], `${method} #${count}`);
  }

  /** Resolves once `count` sockets have connected (each got its hello). */
  async connected(count = 1): Promise<WebSocket> {
    return await this.until(
      () => (this.sockets.length >= count ? this.sockets[count - 1] : undefined),
      `socket #${count}`,
    );
  }

  /** Sends an envelope on the live Socket Mode connection; resolves with the bot's ack. */
  async deliver(envelope: Envelope): Promise<Ack> {
    const socket = this.sockets.at(-1);
    if (!socket) throw new Error('fake Slack: no Socket Mode connection');
    const acked = new Promise<Ack>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ack for ${envelope.envelope_id}`)), 5000);
      this.#ackWaiters.set(envelope.envelope_id, (ack) => {
        clearTimeout(timer);
        resolve(ack);
      });
    });
    socket.send(JSON.stringify(envelope));
    return await acked;
  }

  /** Closes every Socket Mode connection from the server side, like Slack recycling a pod. */
  dropConnections(): void {
    for (const socket of this.sockets) socket.terminate();
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.terminate();
    // Calls held unanswered ('hang') and idle keep-alive connections end with the fake.
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Payloads as Slack sends them (Socket Mode envelopes; the same payloads go over HTTP).

export interface Envelope {
  envelope_id: string;
  type: 'slash_commands' | 'events_api' | 'interactive';
  payload: Record<string, unknown>;
  accepts_response_payload: boolean;
  retry_attempt?: number;
  retry_reason?: string;
}

let envelopes = 0;
let triggers = 0;

export function envelope(type: Envelope['type'], payload: Record<string, unknown>): Envelope {
  envelopes += 1;
  return {
    envelope_id: `env-${envelopes}-${Date.now()}`,
    type,
    payload,
    accepts_response_payload: type !== 'events_api',
  };
}

function trigger(): string {
  triggers += 1;
  return `${triggers}.${Date.now()}.trigger`;
}

export function slashCommand(
  fake: FakeSlack,
  options: { user: string; channel: string; text: string; team?: string },
): Record<string, string> {
  const id = trigger();
  return {
    token: 'verification-token-unused',
    team_id: options.team ?? TEAM,
    team_domain: 'fake',
    channel_id: options.channel,
    channel_name: 'ops',
    user_id: options.user,
    user_name: `name-of-${options.user}`,
    command: '/db',
    text: options.text,
    api_app_id: 'A1',
    is_enterprise_install: 'false',
    response_url: `${fake.url}/respond/${id}`,
    trigger_id: id,
  };
}

/** A button of an answer's actions block, as the bot posted it. */
export interface AnswerButton {
  action_id: string;
  value: string;
  text: { text: string };
}

/** The buttons of a posted message (its actions blocks), in order. */
export function answerButtons(call: ApiCall): AnswerButton[] {
  const blocks = (call.body.blocks ?? []) as { type: string; elements?: AnswerButton[] }[];
  return blocks.flatMap((b) => (b.type === 'actions' ? (b.elements ?? []) : []));
}

/** A press by `user` of the button `actionId` (with `value`) on a posted answer, in its thread. */
export function pressOn(
  fake: FakeSlack,
  user: string,
  answer: ApiCall,
  actionId: string,
  value: string,
): Record<string, unknown> {
  return blockAction(fake, {
    user,
    channel: String(answer.body.channel),
    messageTs: String(answer.response?.ts ?? answer.body.ts),
    threadTs: String(answer.body.thread_ts),
    actionId,
    value,
  });
}

export function appMention(options: {
  user: string;
  channel: string;
  text: string;
  ts: string;
  threadTs?: string;
  eventId?: string;
  /** File objects shared with the mention (see FakeSlack.hostFile). */
  files?: Record<string, unknown>[];
}): Record<string, unknown> {
  return {
    token: 'verification-token-unused',
    team_id: TEAM,
    api_app_id: 'A1',
    type: 'event_callback',
    event_id: options.eventId ?? `Ev${Date.now()}${Math.floor(Math.random() * 1000)}`,
    event_time: Math.floor(Date.now() / 1000),
    authorizations: [
      { enterprise_id: null, team_id: TEAM, user_id: BOT_USER, is_bot: true, is_enterprise_install: false },
    ],
    event: {
      type: 'app_mention',
      user: options.user,
      text: options.text,
      ts: options.ts,
      channel: options.channel,
      event_ts: options.ts,
      team: TEAM,
      ...(options.threadTs ? { thread_ts: options.threadTs } : {}),
      ...(options.files ? { files: options.files, upload: false } : {}),
    },
  };
}

export function blockAction(
  fake: FakeSlack,
  options: {
    user: string;
    channel: string;
    messageTs: string;
    threadTs?: string;
    actionId: string;
    value: string;
  },
): Record<string, unknown> {
  const id = trigger();
  return {
    type: 'block_actions',
    user: {
      id: options.user,
      username: `name-of-${options.user}`,
      name: `name-of-${options.user}`,
      team_id: TEAM,
    },
    api_app_id: 'A1',
    token: 'verification-token-unused',
    container: {
      type: 'message',
      message_ts: options.messageTs,
      channel_id: options.channel,
      is_ephemeral: false,
      ...(options.threadTs ? { thread_ts: options.threadTs } : {}),
    },
    trigger_id: id,
    team: { id: TEAM, domain: 'fake' },
    channel: { id: options.channel, name: 'ops' },
    message: {
      type: 'message',
      ts: options.messageTs,
      ...(options.threadTs ? { thread_ts: options.threadTs } : {}),
      text: 'card',
    },
    response_url: `${fake.url}/respond/${id}`,
    actions: [
      {
        action_id: options.actionId,
        block_id: 'dbops_request',
        text: { type: 'plain_text', text: 'button' },
        value: options.value,
        type: 'button',
        action_ts: `${Date.now() / 1000}`,
      },
    ],
  };
}

export function viewSubmission(options: {
  user: string;
  viewId: string;
  callbackId: string;
  privateMetadata: string;
  reason: string;
}): Record<string, unknown> {
  return {
    type: 'view_submission',
    team: { id: TEAM, domain: 'fake' },
    user: {
      id: options.user,
      username: `name-of-${options.user}`,
      name: `name-of-${options.user}`,
      team_id: TEAM,
    },
    api_app_id: 'A1',
    token: 'verification-token-unused',
    trigger_id: trigger(),
    view: {
      id: options.viewId,
      team_id: TEAM,
      type: 'modal',
      callback_id: options.callbackId,
      private_metadata: options.privateMetadata,
      hash: `${Date.now()}.hash`,
      state: { values: { reason: { reason: { type: 'plain_text_input', value: options.reason } } } },
    },
    response_urls: [],
  };
}

// ---------------------------------------------------------------------------------------------------------
// HTTP mode: requests signed like Slack signs them (v0, HMAC-SHA256 over `v0:{timestamp}:{body}`).

export function sign(secret: string, timestamp: number, body: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

export async function postSigned(
  url: string,
  options: {
    secret: string;
    body: string;
    contentType: string;
    timestamp?: number;
    signature?: string;
    retryNum?: number;
  },
): Promise<{ status: number; text: string }> {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': options.contentType,
      'x-slack-request-timestamp': String(timestamp),
      'x-slack-signature': options.signature ?? sign(options.secret, timestamp, options.body),
      ...(options.retryNum !== undefined
        ? { 'x-slack-retry-num': String(options.retryNum), 'x-slack-retry-reason': 'http_timeout' }
        : {}),
    },
    body: options.body,
  });
  return { status: response.status, text: await response.text() };
}

/** A slash command as Slack posts it: form-encoded fields. */
export function formBody(fields: Record<string, string>): string {
  return new URLSearchParams(fields).toString();
}

/** An interaction as Slack posts it: `payload=<json>`, form-encoded. */
export function interactionBody(payload: Record<string, unknown>): string {
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

/**
 * Posts a slash command (`command`: its fields) or an interaction (its payload) to the bot, signed with
 * `secret`, form-encoded as Slack does; fails unless the bot acknowledged it with a 200.
 */
export async function sendSigned(
  url: string,
  secret: string,
  payload: Record<string, unknown>,
  form: 'command' | 'interaction',
): Promise<void> {
  const body = form === 'command' ? formBody(payload as Record<string, string>) : interactionBody(payload);
  const sent = await postSigned(url, { secret, body, contentType: 'application/x-www-form-urlencoded' });
  if (sent.status !== 200)
    throw new Error(`the bot answered ${sent.status} to a signed ${form}: ${sent.text}`);
}

/** One call as a failed wait names it: method, channel, thread and the start of its text. */
function describeCall(c: ApiCall): string {
  const b = c.body;
  const text = typeof b.text === 'string' ? b.text.slice(0, 120) : '';
  return `${c.method} ${String(b.channel ?? '')} thread=${String(b.thread_ts ?? '-')} ${JSON.stringify(text)}`;
}
