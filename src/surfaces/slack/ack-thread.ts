// The thread that answers Slack in HTTP mode: it owns the listening socket, checks each request's
// signature and writes Slack's 200 at once, then passes the parsed bodies to the main thread, where Bolt
// and the core do the work. Its event loop does nothing else, so a burst of commands is accepted and
// acknowledged while the main thread is busy with the work of the first ones (Node accepts one pending
// connection per event-loop turn, so a busy loop would take a turn per connection).
//
// Acknowledgements also go first for the CPU: while requests are being read or answered (or one came or
// went in the last QUIET_MS), the bodies already acknowledged are held and then passed on together, but
// none is held longer than MAX_HOLD_MS, so a steady stream never starves the work. On a machine with few
// cores the queries and API calls of a burst's first commands would otherwise slow the acks of the rest.
import { createSecretKey } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import {
  MAX_BODY_BYTES,
  parseBody,
  parsesBeforeAck,
  type RefusalReason,
  signatureProblem,
} from './signed-requests.js';

const QUIET_MS = 5;
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 15_000;
const MAX_HOLD_MS = 100;

/** A request acknowledged, for Bolt. */
export interface AckedEvent {
  body: Record<string, unknown>;
  retryNum?: number;
  retryReason?: string;
}

export interface AckThreadData {
  signingSecret: string;
  port: number;
  path: string;
  healthPath: string;
  /** Set by the main thread: 1 while it takes work (the health path answers 200), 0 otherwise. */
  health: Int32Array;
  /** From connect to a request's complete headers (default HEADERS_TIMEOUT_MS); tests shorten it. */
  headersTimeoutMs?: number;
}

/** A request acknowledged and held until the burst is over: its body parsed, or (a form) not yet. */
interface Held {
  body?: Record<string, unknown>;
  raw?: Buffer;
  remote: string | undefined;
  retryNum?: number;
  retryReason?: string;
}

const FORM = 'application/x-www-form-urlencoded';

/** What the thread tells the main thread. */
export type AckThreadMessage =
  | { type: 'listening'; port: number }
  | { type: 'failed'; message: string }
  /**
   * Bodies acknowledged, and for each 200 finished since the last message the time from the request's
   * 'request' event (its headers parsed) to the response's 'finish' (written to the socket), in ms.
   */
  | { type: 'events'; events: AckedEvent[]; ackMs: number[] }
  | { type: 'refused'; reason: RefusalReason; remote: string | undefined }
  | { type: 'closed' };

/** What the main thread tells the thread. */
export type AckThreadCommand = { type: 'close' };

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function run(port: NonNullable<typeof parentPort>, data: AckThreadData): void {
  const tell = (message: AckThreadMessage) => port.postMessage(message);
  /** Requests being read or answered, and when one last came or went. */
  let inProgress = 0;
  let lastActivity = 0;
  const held: Held[] = [];
  /** Acknowledgement times not yet told (they go with the next events). */
  const acked: number[] = [];
  let heldSince = 0;
  let timer: NodeJS.Timeout | undefined;
  let closing = false;
  const key = createSecretKey(Buffer.from(data.signingSecret, 'utf8'));
  /** Form bodies were acknowledged unparsed: they are parsed here, once the burst is over. */
  const parsed = (h: Held): AckedEvent | undefined => {
    let body = h.body;
    if (!body) {
      try {
        body = parseBody(h.raw?.toString('utf8') ?? '', FORM);
      } catch {
        tell({ type: 'refused', reason: 'unparseable', remote: h.remote });
        return undefined;
      }
    }
    if (body.ssl_check === '1') return undefined;
    return {
      body,
      ...(h.retryNum !== undefined ? { retryNum: h.retryNum } : {}),
      ...(h.retryReason !== undefined ? { retryReason: h.retryReason } : {}),
    };
  };
  const pass = () => {
    timer = undefined;
    if (held.length === 0 && acked.length === 0) return;
    const now = performance.now();
    const busy = inProgress > 0 || now - lastActivity < QUIET_MS;
    if (busy && (held.length === 0 || now - heldSince < MAX_HOLD_MS) && !closing) {
      timer = setTimeout(pass, 1);
      return;
    }
    const events: AckedEvent[] = [];
    for (const h of held.splice(0)) {
      const event = parsed(h);
      if (event) events.push(event);
    }
    tell({ type: 'events', events, ackMs: acked.splice(0) });
  };
  const hold = (h: Held) => {
    if (held.length === 0) heldSince = performance.now();
    held.push(h);
    if (closing) pass();
    else timer ??= setTimeout(pass, 1);
  };
  const headersTimeoutMs = data.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
  /** Sockets accepted whose first request has not sent its headers yet, with their deadline. */
  const silent = new Map<Socket, NodeJS.Timeout>();
  // The request timeouts below are enforced on this interval (Node's default: every 30 s).
  const server = createServer({ connectionsCheckingInterval: 2_000 }, (req, res) => {
    const startedAt = performance.now();
    const deadline = silent.get(req.socket);
    if (deadline) {
      clearTimeout(deadline);
      silent.delete(req.socket);
    }
    inProgress += 1;
    lastActivity = performance.now();
    res.once('close', () => {
      inProgress -= 1;
      lastActivity = performance.now();
    });
    const url = req.url?.split('?')[0];
    if (req.method === 'GET' && url === data.healthPath) {
      const ok = Atomics.load(data.health, 0) === 1;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ok }));
      return;
    }
    if (req.method !== 'POST' || url !== data.path) {
      res.writeHead(404).end();
      return;
    }
    const remote = req.socket.remoteAddress;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        if (!res.headersSent) {
          res.writeHead(413, { connection: 'close' }).end();
          tell({ type: 'refused', reason: 'too_large', remote });
        }
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (res.headersSent) return;
      const bytes = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      const problem = signatureProblem(
        key,
        header(req, 'x-slack-request-timestamp'),
        header(req, 'x-slack-signature'),
        bytes,
        Math.floor(Date.now() / 1000),
      );
      if (problem) {
        res.writeHead(401).end();
        tell({ type: 'refused', reason: problem, remote });
        return;
      }
      // A JSON body (Events API) is parsed before the answer: it may be Slack's URL check, which is
      // answered with its challenge, and a garbled one gets its 400. A form (slash commands, buttons) is
      // answered first and parsed after the burst (parsed() above): its 200 waits for nothing but the HMAC.
      const contentType = header(req, 'content-type');
      let body: Record<string, unknown> | undefined;
      if (parsesBeforeAck(contentType)) {
        try {
          body = parseBody(bytes.toString('utf8'), contentType);
        } catch {
          res.writeHead(400).end();
          tell({ type: 'refused', reason: 'unparseable', remote });
          return;
        }
        if (body.type === 'url_verification') {
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ challenge: body.challenge }));
          return;
        }
      }
      // Slack needs nothing in the 200: the bot answers with its own messages.
      res.once('finish', () => {
        acked.push(performance.now() - startedAt);
        timer ??= setTimeout(pass, 1);
      });
      res.writeHead(200).end();
      const retry = header(req, 'x-slack-retry-num');
      const reason = header(req, 'x-slack-retry-reason');
      hold({
        ...(body ? { body } : { raw: bytes }),
        remote,
        ...(retry !== undefined && /^\d+$/.test(retry) ? { retryNum: Number(retry) } : {}),
        ...(reason !== undefined ? { retryReason: reason } : {}),
      });
    });
  });
  // Slack sends a whole request at once: a client that trickles its headers or body is cut off instead of
  // holding a connection for Node's defaults (60 s for headers, 300 s for the request).
  server.headersTimeout = headersTimeoutMs;
  server.requestTimeout = Math.max(REQUEST_TIMEOUT_MS, headersTimeoutMs);
  // Node starts its header clock at a request's first byte: a connection that never sends one would be
  // held for ever. The deadline here starts at connect and ends when the first request's headers are in
  // (later requests on a kept-alive socket are covered by Node's keep-alive and header timeouts).
  server.on('connection', (socket: Socket) => {
    lastActivity = performance.now();
    const timer = setTimeout(() => {
      silent.delete(socket);
      // As Node answers a request whose headers came too slowly; then the socket goes whatever happens.
      if (socket.writable) socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
      setTimeout(() => socket.destroy(), 1_000).unref();
    }, headersTimeoutMs);
    timer.unref();
    silent.set(socket, timer);
    socket.once('close', () => {
      clearTimeout(silent.get(socket));
      silent.delete(socket);
    });
  });
  server.once('error', (err) => tell({ type: 'failed', message: err.message }));
  server.listen(data.port, () => {
    const address = server.address();
    tell({ type: 'listening', port: typeof address === 'object' && address ? address.port : data.port });
  });
  port.on('message', (command: AckThreadCommand) => {
    if (command.type !== 'close') return;
    closing = true;
    clearTimeout(timer);
    pass();
    server.close(() => {
      pass();
      tell({ type: 'closed' });
      port.close();
    });
    server.closeAllConnections();
  });
}

if (parentPort) run(parentPort, workerData as AckThreadData);
