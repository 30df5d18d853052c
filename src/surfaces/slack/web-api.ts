// A lean Slack Web API caller for the reply path's calls (chat.postMessage / update / postEphemeral,
// response_url, the file upload's three steps): bodies built once, no debug strings, over the kept-alive
// connections; errors shaped as the SDK's (data.error), 429 waited out, 5xx and network failures retried.
import { stringify } from 'node:querystring';
import type { Logger } from '../../core/log.js';
import { redactSecrets } from '../../core/log.js';
import { type KeptAliveHttp, NoAnswerError, type RawAnswer } from './keep-alive-fetch.js';

/** A Retry-After longer than this is not waited out: the call fails (as rate limited) instead. */
const MAX_RETRY_AFTER_S = 60;
/** Backoff between retries of a failed call: base × 2^attempt, at most the cap, times 1–2 (jitter). */
const RETRY_BASE_MS = 1000;
const RETRY_CAP_MS = 10_000;
/** The SDK's name for an upload's file part (a Buffer without a name). */
const UPLOAD_PART_NAME = 'Untitled';

/** Methods Slack documents as taking JSON bodies (with the token in the Authorization header). */
const JSON_METHODS = new Set(['chat.postMessage', 'chat.update', 'chat.postEphemeral']);

export type SlackResult = Record<string, unknown> & { ok: true };

/**
 * A failed call, shaped as the SDK's errors so callers read them the same way: `code`, and for
 * `ok: false` answers `data` with Slack's `error` (not_in_channel, channel_not_found…).
 */
export class SlackCallError extends Error {
  constructor(
    message: string,
    readonly code:
      | 'slack_webapi_platform_error'
      | 'slack_webapi_http_error'
      | 'slack_webapi_request_error'
      | 'slack_webapi_rate_limited_error',
    readonly data?: Record<string, unknown> & { error?: string },
    readonly statusCode?: number,
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

export interface SlackApiOptions {
  /** The Web API's base URL, ending in `/` (SLACK_API_URL). */
  apiUrl: string;
  token: string;
  http: KeptAliveHttp;
  /** Retries after a 429, a 5xx or a network failure (SLACK_API_RETRIES). */
  retries: number;
  log: Logger;
  /** Backoff base (tests make it short). */
  retryBaseMs?: number;
}

export interface UploadTo {
  channel: string;
  thread: string;
}

export interface UploadItem {
  filename: string;
  title: string;
  content: string | Uint8Array;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function retryAfterSeconds(answer: RawAnswer): number | undefined {
  const raw = answer.headers['retry-after'];
  const value = Number(Array.isArray(raw) ? raw[0] : raw);
  return Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** A multipart/form-data body with one file part named `body`, as the SDK sends an upload. */
function uploadBody(bytes: Buffer): { body: Buffer; contentType: string } {
  const boundary = `----dbops-upload-${Date.now().toString(36)}${Math.random().toString(36).slice(2)}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="body"; filename="${UPLOAD_PART_NAME}"\r\n` +
      'Content-Type: application/octet-stream\r\n\r\n',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  return {
    body: Buffer.concat([head, bytes, tail]),
    contentType: `multipart/form-data; boundary=${boundary}`,
  };
}

/** A form body as the SDK builds one: objects as JSON text, undefined and null left out. */
function formBody(args: Record<string, unknown>): string {
  const flat: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(args)) {
    if (value === undefined || value === null) continue;
    flat[key] =
      typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
        ? value
        : JSON.stringify(value);
  }
  return stringify(flat);
}

export class SlackApi {
  readonly #base: string;
  readonly #auth: string;
  readonly #http: KeptAliveHttp;
  readonly #retries: number;
  readonly #log: Logger;
  readonly #retryBaseMs: number;
  /** Each method's URL, parsed once. */
  readonly #urls = new Map<string, URL>();

  constructor(options: SlackApiOptions) {
    this.#base = options.apiUrl.endsWith('/') ? options.apiUrl : `${options.apiUrl}/`;
    this.#auth = `Bearer ${options.token}`;
    this.#http = options.http;
    this.#retries = options.retries;
    this.#log = options.log;
    this.#retryBaseMs = options.retryBaseMs ?? RETRY_BASE_MS;
  }

  /** A Web API method: JSON for the chat methods, a form for the rest; `ok: false` throws. */
  async call(method: string, args: Record<string, unknown>): Promise<SlackResult> {
    const json = JSON_METHODS.has(method);
    const body = json ? JSON.stringify(args) : formBody(args);
    let url = this.#urls.get(method);
    if (!url) {
      url = new URL(method, this.#base);
      this.#urls.set(method, url);
    }
    const answer = await this.#send(
      method,
      url,
      () => ({
        'content-type': json ? 'application/json; charset=utf-8' : 'application/x-www-form-urlencoded',
        accept: 'application/json',
        authorization: this.#auth,
      }),
      body,
    );
    return this.#result(method, answer);
  }

  postMessage(args: Record<string, unknown>): Promise<SlackResult> {
    return this.call('chat.postMessage', args);
  }

  update(args: Record<string, unknown>): Promise<SlackResult> {
    return this.call('chat.update', args);
  }

  postEphemeral(args: Record<string, unknown>): Promise<SlackResult> {
    return this.call('chat.postEphemeral', args);
  }

  /** A message to a command's or click's response_url (no token: the URL is the credential). */
  async respond(url: string, message: Record<string, unknown>): Promise<void> {
    const target = new URL(url);
    await this.#send(
      'response_url',
      target,
      () => ({ 'content-type': 'application/json; charset=utf-8' }),
      JSON.stringify(message),
    );
  }

  /** A file into a thread: files.getUploadURLExternal, the upload, files.completeUploadExternal. */
  async upload(to: UploadTo, file: UploadItem): Promise<void> {
    const bytes = typeof file.content === 'string' ? Buffer.from(file.content) : Buffer.from(file.content);
    const slot = await this.call('files.getUploadURLExternal', {
      filename: file.filename,
      length: bytes.byteLength,
    });
    const uploadUrl = typeof slot.upload_url === 'string' ? slot.upload_url : undefined;
    const fileId = typeof slot.file_id === 'string' ? slot.file_id : undefined;
    if (!uploadUrl || !fileId)
      throw new Error(`No upload url found for file (id: ${fileId}, filename: ${file.filename})`);
    const { body, contentType } = uploadBody(bytes);
    // The upload URL is Slack's file service: it gets the bytes, not the token (as the SDK does it).
    await this.#send('upload', new URL(uploadUrl), () => ({ 'content-type': contentType }), body);
    await this.call('files.completeUploadExternal', {
      files: [{ id: fileId, title: file.title }],
      channel_id: to.channel,
      thread_ts: to.thread,
    });
  }

  #result(method: string, answer: RawAnswer): SlackResult {
    let result: Record<string, unknown>;
    try {
      result = JSON.parse(answer.body.toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new SlackCallError(
        `${method}: Slack answered something that is not JSON`,
        'slack_webapi_http_error',
        undefined,
        answer.status,
      );
    }
    if (result.ok !== true) {
      const error = typeof result.error === 'string' ? result.error : 'unknown_error';
      throw new SlackCallError(`An API error occurred: ${error}`, 'slack_webapi_platform_error', {
        ...result,
        ok: false,
        error,
      });
    }
    return result as SlackResult;
  }

  /** One call with the retry policy: a 429 waits its Retry-After, a 5xx or a dropped connection backs off. */
  async #send(
    what: string,
    url: URL,
    headers: () => Record<string, string>,
    body: string | Buffer,
  ): Promise<RawAnswer> {
    for (let attempt = 0; ; attempt++) {
      const more = attempt < this.#retries;
      let answer: RawAnswer;
      try {
        answer = await this.#http.send(url, { method: 'POST', headers: headers(), body, redirect: 'error' });
      } catch (err) {
        const reason = redactSecrets(err instanceof Error ? err.message : String(err));
        // A call that got no answer in time is not sent again: the reply would wait minutes otherwise.
        if (!more || err instanceof NoAnswerError || err instanceof TypeError)
          throw new SlackCallError(`${what}: ${reason}`, 'slack_webapi_request_error');
        await this.#backoff(what, attempt, reason);
        continue;
      }
      if (answer.status === 429) {
        const seconds = retryAfterSeconds(answer);
        if (seconds === undefined || seconds > MAX_RETRY_AFTER_S || !more) {
          throw new SlackCallError(
            `${what}: rate limited by Slack (retry after ${seconds ?? '?'} s)`,
            'slack_webapi_rate_limited_error',
            undefined,
            429,
            seconds,
          );
        }
        this.#log.warn(
          { call: what, retryAfter: seconds, attempt: attempt + 1 },
          'slack: rate limited; waiting',
        );
        await sleep(seconds * 1000);
        continue;
      }
      if (answer.status >= 500 && more) {
        await this.#backoff(what, attempt, `HTTP ${answer.status}`);
        continue;
      }
      if (answer.status < 200 || answer.status >= 300) {
        throw new SlackCallError(
          `${what}: Slack answered HTTP ${answer.status} ${answer.statusText}`.trim(),
          'slack_webapi_http_error',
          undefined,
          answer.status,
        );
      }
      return answer;
    }
  }

  async #backoff(what: string, attempt: number, reason: string): Promise<void> {
    const ms = Math.min(RETRY_CAP_MS, this.#retryBaseMs * 2 ** attempt) * (1 + Math.random());
    this.#log.warn({ call: what, reason, attempt: attempt + 1 }, 'slack: Web API call failed; retrying');
    await sleep(ms);
  }
}
