// HTTP mode's receiver: verify the signature, answer Slack's 200 at once, then hand the body to Bolt.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { App, Receiver, ReceiverEvent } from '@slack/bolt';

/** Slack refuses nothing older; neither do we (replays of captured requests). */
const MAX_AGE_SECONDS = 5 * 60;
/** The longest acknowledged work waits for other requests to be acknowledged first. */
const MAX_ACK_FIRST_WAIT_MS = 100;
/** Slack's payloads are small; anything larger is not Slack. */
const MAX_BODY_BYTES = 1024 * 1024;

export interface FastAckReceiverOptions {
  signingSecret: string;
  path: string;
  healthPath: string;
  healthy: () => boolean;
  /** Called with what Bolt could not process after the ack (logged by the transport). */
  onError: (err: unknown) => void;
  now?: () => number;
}

/** `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{raw body}`, compared in constant time. */
export function verifySignature(
  secret: string,
  timestamp: string | undefined,
  signature: string | undefined,
  body: string,
  nowSeconds: number,
): boolean {
  if (!timestamp || !signature || !/^\d{1,12}$/.test(timestamp)) return false;
  if (Math.abs(nowSeconds - Number(timestamp)) > MAX_AGE_SECONDS) return false;
  const expected = `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
  const given = Buffer.from(signature);
  const wanted = Buffer.from(expected);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

/** The body as Bolt expects it: form fields, an interaction's `payload` JSON, or an Events API JSON. */
function parseBody(raw: string, contentType: string | undefined): Record<string, unknown> {
  if (contentType?.includes('application/json')) return JSON.parse(raw) as Record<string, unknown>;
  const form = Object.fromEntries(new URLSearchParams(raw));
  return typeof form.payload === 'string' ? (JSON.parse(form.payload) as Record<string, unknown>) : form;
}

/**
 * Bolt's HTTPReceiver parses, verifies and runs the middleware chain before a listener can ack; under a
 * burst those steps queue on the one event loop and the acks with them. Here the 200 is written as soon as
 * the signature checks out (Slack needs nothing in it: the bot answers with its own messages), and Bolt
 * processes the event on the next turn with an ack that has nothing left to do.
 */
export class FastAckReceiver implements Receiver {
  #app: App | undefined;
  #server: Server | undefined;
  readonly #options: FastAckReceiverOptions;
  /** Requests whose body is still arriving: while any is, acknowledged work waits (acks go first). */
  #reading = 0;
  readonly #queue: ReceiverEvent[] = [];
  #draining = false;

  constructor(options: FastAckReceiverOptions) {
    this.#options = options;
  }

  init(app: App): void {
    this.#app = app;
  }

  async start(port: number): Promise<Server> {
    const server = createServer((req, res) => this.#handle(req, res));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return server;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url?.split('?')[0];
    if (req.method === 'GET' && url === this.#options.healthPath) {
      const ok = this.#options.healthy();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ok }));
      return;
    }
    if (req.method !== 'POST' || url !== this.#options.path) {
      res.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    this.#reading += 1;
    let counted = true;
    const done = () => {
      if (counted) {
        counted = false;
        this.#reading -= 1;
      }
    };
    req.on('close', done);
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        res.writeHead(413).end();
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      done();
      if (res.writableEnded) return;
      const raw = Buffer.concat(chunks).toString('utf8');
      const nowSeconds = Math.floor((this.#options.now?.() ?? Date.now()) / 1000);
      const valid = verifySignature(
        this.#options.signingSecret,
        header(req, 'x-slack-request-timestamp'),
        header(req, 'x-slack-signature'),
        raw,
        nowSeconds,
      );
      if (!valid) {
        res.writeHead(401).end();
        return;
      }
      let body: Record<string, unknown>;
      try {
        body = parseBody(raw, header(req, 'content-type'));
      } catch {
        res.writeHead(400).end();
        return;
      }
      if (body.type === 'url_verification') {
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ challenge: body.challenge }));
        return;
      }
      res.writeHead(200).end();
      if (body.ssl_check === '1') return;
      const retry = header(req, 'x-slack-retry-num');
      const reason = header(req, 'x-slack-retry-reason');
      this.#queue.push({
        body,
        ack: async () => {},
        ...(retry !== undefined && /^\d+$/.test(retry) ? { retryNum: Number(retry) } : {}),
        ...(reason !== undefined ? { retryReason: reason } : {}),
      });
      this.#drain();
    });
  }

  /**
   * Hands acknowledged events to Bolt, but only while no other request is being read: under a burst every
   * request is acknowledged before the work of the first ones competes with them for the event loop.
   */
  #drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    let waitingSince = Date.now();
    const next = () => {
      const app = this.#app;
      if (this.#queue.length === 0 || !app) {
        this.#draining = false;
        return;
      }
      // A slow (or hostile) client trickling its body never holds the work back for long.
      if (this.#reading > 0 && Date.now() - waitingSince < MAX_ACK_FIRST_WAIT_MS) {
        setTimeout(next, 1);
        return;
      }
      waitingSince = Date.now();
      const event = this.#queue.shift();
      if (event) app.processEvent(event).catch((err: unknown) => this.#options.onError(err));
      setImmediate(next);
    };
    setImmediate(next);
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
