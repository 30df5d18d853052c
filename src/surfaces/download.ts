// Downloads a file attached in chat (Discord CDN, Slack url_private) with a size cap, a deadline and an origin check.
import { UserError } from '../core/errors.js';
import type { InvocationFile } from '../core/types.js';
import { visible } from '../core/visible.js';
import { tooLarge } from './files.js';

export interface RemoteFile {
  name: string;
  /** The size the platform announced (checked before downloading, and again while reading). */
  size: number;
  url: string;
}

export interface DownloadOptions {
  /** Most bytes accepted. */
  cap: number;
  /** Origins (`https://files.slack.com`) a file may come from; anything else is never fetched. */
  origins: readonly string[];
  /** e.g. `Authorization: Bearer xoxb-…` for Slack; never logged. */
  headers?: Record<string, string>;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

const DEFAULT_TIMEOUT_MS = 30_000;

function failed(name: string, why: string): UserError {
  return new UserError(
    'invalid_argument',
    `could not download the attached file ${visible(name, 80)}: ${why}`,
  );
}

export async function downloadFile(file: RemoteFile, options: DownloadOptions): Promise<InvocationFile> {
  if (file.size > options.cap) throw tooLarge(file.name, file.size, options.cap);
  if (file.url === '') throw failed(file.name, 'the platform did not send its address; upload it here again');
  let url: URL;
  try {
    url = new URL(file.url);
  } catch {
    throw failed(file.name, 'its address is not a URL');
  }
  if (!options.origins.includes(url.origin))
    throw failed(file.name, `it is not hosted by the chat platform (${url.origin})`);
  const get = options.fetch ?? fetch;
  let response: Response;
  try {
    // Redirects are refused: a bearer token must never follow a file to another host.
    response = await get(url, {
      headers: options.headers ?? {},
      redirect: 'error',
      signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    });
  } catch (err) {
    const why =
      err instanceof Error && err.name === 'TimeoutError' ? 'it took too long' : 'the request failed';
    throw failed(file.name, why);
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel().catch(() => {});
    throw failed(file.name, `HTTP ${response.status}`);
  }
  const type = response.headers.get('content-type') ?? '';
  if (type.startsWith('text/html')) {
    // Slack answers a sign-in page (200, HTML) when the token may not read the file.
    await response.body.cancel().catch(() => {});
    throw failed(
      file.name,
      'the platform answered a web page instead of the file (is the bot allowed to read files?)',
    );
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > options.cap) {
      await reader.cancel().catch(() => {});
      throw tooLarge(file.name, total, options.cap);
    }
    chunks.push(value);
  }
  const bytes = Buffer.concat(chunks);
  return { name: file.name, size: bytes.length, bytes };
}
