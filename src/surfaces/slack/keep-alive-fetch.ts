// The Slack Web API client's fetch: form posts and file uploads over kept-alive node:http(s) connections
// with one socket timeout, instead of the global fetch's web streams and a fresh abort signal per call
// (half of the bot's own CPU per command went there). Other bodies go to the global fetch. The same
// connections carry web-api.ts's calls.
import { randomBytes } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

/** A Slack answer larger than this is refused (they are a few KiB; a runaway peer costs nothing). */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
/** Connections kept open per host: enough for the SDK's concurrent calls under a burst. */
const MAX_SOCKETS = 64;

type FetchLike = (url: string | URL, init?: RequestInit) => Promise<Response>;

/** The response headers as the SDK reads them (get, has, entries): node's own object, nothing copied. */
class PlainHeaders {
  constructor(private readonly raw: IncomingMessage['headers']) {}

  get(name: string): string | null {
    const value = this.raw[name.toLowerCase()];
    if (value === undefined) return null;
    return Array.isArray(value) ? value.join(', ') : value;
  }

  has(name: string): boolean {
    return this.raw[name.toLowerCase()] !== undefined;
  }

  *entries(): IterableIterator<[string, string]> {
    for (const key of Object.keys(this.raw).sort()) {
      const value = this.get(key);
      if (value !== null) yield [key, value];
    }
  }

  *keys(): IterableIterator<string> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): IterableIterator<string> {
    for (const [, value] of this.entries()) yield value;
  }

  forEach(fn: (value: string, key: string) => void): void {
    for (const [key, value] of this.entries()) fn(value, key);
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}

/** The part of a Response the Slack SDK reads: status, headers, url and the body as text or bytes. */
class PlainResponse {
  readonly ok: boolean;
  readonly redirected = false;
  readonly type = 'basic';
  readonly bodyUsed = false;
  readonly headers: PlainHeaders;

  constructor(
    readonly status: number,
    readonly statusText: string,
    headers: IncomingMessage['headers'],
    readonly url: string,
    private readonly body: Buffer,
  ) {
    this.ok = status >= 200 && status < 300;
    this.headers = new PlainHeaders(headers);
  }

  async text(): Promise<string> {
    return this.body.toString('utf8');
  }

  async json(): Promise<unknown> {
    return JSON.parse(this.body.toString('utf8'));
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const copy = new Uint8Array(this.body.byteLength);
    copy.set(this.body);
    return copy.buffer;
  }
}

function headerRecord(headers: RequestInit['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  // The SDK passes a plain object: copied with lower-case names, as Headers would have them.
  if (!(headers instanceof Headers) && !Array.isArray(headers)) {
    for (const [key, value] of Object.entries(headers)) out[key.toLowerCase()] = String(value).trim();
    return out;
  }
  new Headers(headers).forEach((value, key) => {
    out[key] = value;
  });
  return out;
}

/** A field name (newlines made CRLF) or file name in a part's header, escaped as the fetch standard does. */
function partName(name: string, field = true): string {
  return (field ? name.replace(/\r\n?|\n/g, '\r\n') : name)
    .replace(/\n/g, '%0A')
    .replace(/\r/g, '%0D')
    .replace(/"/g, '%22');
}

/**
 * A FormData (the SDK's file uploads) as multipart/form-data bytes, as the global fetch would send it:
 * one part per entry, files with their name and type (application/octet-stream when it has none).
 */
export async function multipartBody(form: FormData): Promise<{ body: Buffer; contentType: string }> {
  const boundary = `----dbops-formdata-${randomBytes(12).toString('hex')}`;
  const parts: Buffer[] = [];
  for (const [name, value] of form) {
    const disposition = `--${boundary}\r\nContent-Disposition: form-data; name="${partName(name)}"`;
    if (typeof value === 'string') {
      parts.push(Buffer.from(`${disposition}\r\n\r\n${value.replace(/\r\n?|\n/g, '\r\n')}\r\n`));
      continue;
    }
    const type = value.type || 'application/octet-stream';
    parts.push(
      Buffer.from(
        `${disposition}; filename="${partName(value.name, false)}"\r\nContent-Type: ${type}\r\n\r\n`,
      ),
      Buffer.from(await value.arrayBuffer()),
      Buffer.from('\r\n'),
    );
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** What a request over the kept-alive connections answered: status, headers and the whole body. */
export interface RawAnswer {
  status: number;
  statusText: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** A call that got no answer within the time limit (its socket stayed silent). */
export class NoAnswerError extends Error {
  readonly code = 'no_answer';
}

export interface SendOptions {
  method?: string;
  headers: Record<string, string>;
  body?: string | Buffer | undefined;
  signal?: AbortSignal | undefined;
  /** 'error': a 3xx answer is a failure (what the SDK asks for). */
  redirect?: RequestInit['redirect'] | undefined;
}

/** The kept-alive connections and their one request function, shared by the SDK's fetch and web-api.ts. */
export interface KeptAliveHttp {
  send(url: URL, options: SendOptions): Promise<RawAnswer>;
  close(): void;
}

/**
 * Requests over kept-alive node:http(s) connections; a call that gets no answer within `timeoutMs`
 * (socket idle) fails with NoAnswerError.
 */
export function keptAliveHttp(timeoutMs: number): KeptAliveHttp {
  const agents = {
    'http:': new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS, maxFreeSockets: MAX_SOCKETS }),
    'https:': new HttpsAgent({ keepAlive: true, maxSockets: MAX_SOCKETS, maxFreeSockets: MAX_SOCKETS }),
  };
  const send = (url: URL, options: SendOptions): Promise<RawAnswer> => {
    const secure = url.protocol === 'https:';
    const { body, signal } = options;
    return new Promise<RawAnswer>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason ?? new Error('aborted'));
        return;
      }
      const headers = options.headers;
      if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
      // Plain options rather than the URL: node would convert the URL object on every request.
      const req = (secure ? httpsRequest : httpRequest)({
        protocol: url.protocol,
        hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
        port: url.port || (secure ? 443 : 80),
        path: `${url.pathname}${url.search}`,
        method: options.method ?? 'GET',
        headers,
        agent: secure ? agents['https:'] : agents['http:'],
      });
      const onAbort = () =>
        req.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => signal?.removeEventListener('abort', onAbort);
      req.setTimeout(timeoutMs, () =>
        req.destroy(new NoAnswerError(`no answer from ${url.host} within ${Math.round(timeoutMs / 1000)}s`)),
      );
      req.on('error', (err) => {
        done();
        reject(err);
      });
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400 && options.redirect === 'error') {
          res.resume();
          done();
          reject(new TypeError(`${url.host} answered with a redirect (${status})`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            req.destroy(new Error(`the answer from ${url.host} is over ${MAX_RESPONSE_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => {
          done();
          const whole = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
          resolve({ status, statusText: res.statusMessage ?? '', headers: res.headers, body: whole });
        });
        res.on('error', (err) => {
          done();
          reject(err);
        });
      });
      req.end(body);
    });
  };
  return {
    send,
    close() {
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  };
}

/**
 * A fetch for the Slack SDK (`clientOptions.fetch`): POSTs of a text body or a FormData (file uploads,
 * encoded here) over the kept-alive connections of `shared` (its own, with that time limit, when given a
 * number; close() closes only those). Other bodies use the global fetch.
 */
export function keepAliveFetch(shared: KeptAliveHttp | number): FetchLike & { close(): void } {
  const http = typeof shared === 'number' ? keptAliveHttp(shared) : shared;
  const post = async (
    url: URL,
    init: RequestInit,
    headers: Record<string, string>,
    body?: string | Buffer,
  ) => {
    const answer = await http.send(url, {
      method: init.method ?? 'GET',
      headers,
      body,
      signal: init.signal ?? undefined,
      redirect: init.redirect,
    });
    const response = new PlainResponse(
      answer.status,
      answer.statusText,
      answer.headers,
      url.toString(),
      answer.body,
    );
    return response as unknown as Response;
  };
  const fetchFn = async (input: string | URL, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(String(input));
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return await globalThis.fetch(input, init);
    if (init.body instanceof FormData) {
      const { body, contentType } = await multipartBody(init.body);
      const headers = headerRecord(init.headers);
      headers['content-type'] = contentType;
      return await post(url, init, headers, body);
    }
    const body = init.body;
    if (body !== undefined && body !== null && typeof body !== 'string')
      return await globalThis.fetch(input, init);
    return await post(url, init, headerRecord(init.headers), body ?? undefined);
  };
  return Object.assign(fetchFn, {
    close() {
      if (typeof shared === 'number') http.close();
    },
  });
}
