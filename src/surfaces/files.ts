// Files that come with a command: `--file PATH` on the terminal surfaces, and the cap every surface applies.
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Config } from '../config/schema.js';
import { IMPORT_DEFAULTS } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import { formatBytes } from '../core/render.js';
import type { InvocationFile } from '../core/types.js';
import { visible } from '../core/visible.js';

/**
 * The most bytes any target accepts for an import: surfaces refuse (or stop downloading) a larger file
 * before it is read whole; the operation then applies its own target's, possibly smaller, limit.
 */
export function fileByteCap(config: Pick<Config, 'targets'>): number {
  const caps = Object.values(config.targets).map(
    (t) => t.limits.import_max_bytes ?? IMPORT_DEFAULTS.maxBytes,
  );
  return Math.max(IMPORT_DEFAULTS.maxBytes, ...caps);
}

export function tooLarge(name: string, size: number, cap: number): UserError {
  return new UserError(
    'invalid_argument',
    `the attached file ${visible(name, 80)} is ${formatBytes(size)}; files over ${formatBytes(cap)} are not accepted`,
  );
}

const FILE_OPTION = /(^|\s)--file(?:=|\s+)(?:"([^"]*)"|'([^']*)'|(\S+))/;

/** `import t users --file ./a.csv` → the text without the option, and the path. */
export function takeFileOption(text: string): { text: string; path?: string } {
  const match = FILE_OPTION.exec(text);
  if (!match) return { text };
  const path = match[2] ?? match[3] ?? match[4] ?? '';
  const rest = `${text.slice(0, match.index)}${match[1] ?? ''}${text.slice(match.index + match[0].length)}`;
  if (FILE_OPTION.test(rest))
    throw new UserError('invalid_argument', 'give --file once: one file per command');
  return { text: rest.replace(/\s+/g, ' ').trim(), path };
}

/** Reads a local file for a command, refusing anything but a regular file and anything over `cap` bytes. */
export async function readLocalFile(path: string, cap: number): Promise<InvocationFile> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? String(err.code) : '';
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code || 'unreadable';
    throw new UserError('invalid_argument', `--file ${path}: ${why}`);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new UserError('invalid_argument', `--file ${path}: not a regular file`);
    if (info.size > cap) throw tooLarge(basename(path), info.size, cap);
    // Read one byte past the cap, in case the file grew since stat.
    const buffer = Buffer.alloc(Math.min(info.size, cap) + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > cap) throw tooLarge(basename(path), length, cap);
    const bytes = buffer.subarray(0, length);
    return { name: basename(path), size: bytes.length, bytes };
  } finally {
    await handle.close();
  }
}

/** The command text and its files for a terminal surface: `--file` in the text, or given beside it. */
export async function localInvocationFiles(
  text: string,
  cap: number,
  path?: string,
): Promise<{ text: string; attachments: InvocationFile[] }> {
  const taken = takeFileOption(text);
  if (taken.path !== undefined && path !== undefined)
    throw new UserError('invalid_argument', 'give --file once: one file per command');
  const chosen = path ?? taken.path;
  if (chosen === undefined) return { text: taken.text, attachments: [] };
  if (chosen === '') throw new UserError('invalid_argument', '--file needs a path');
  return { text: taken.text, attachments: [await readLocalFile(chosen, cap)] };
}
