// Saves a reply's attachments (CSV exports) for terminal surfaces, which cannot upload files.
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { formatBytes } from '../core/render.js';
import type { Attachment } from '../core/types.js';

export interface SavedAttachment {
  filename: string;
  contentType: string;
  path: string;
  bytes: number;
}

export function defaultExportDir(env: Record<string, string | undefined>): string {
  return env.DBOPS_EXPORT_DIR ?? join(tmpdir(), 'dbops-exports');
}

/** A file name that stays inside the directory whatever the operation proposed. */
function safeName(name: string): string {
  const base = basename(name)
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .replace(/^\.+/, '');
  return base.length > 0 ? base.slice(0, 120) : 'attachment';
}

export async function saveAttachments(
  attachments: readonly Attachment[],
  dir: string,
): Promise<SavedAttachment[]> {
  if (attachments.length === 0) return [];
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const saved: SavedAttachment[] = [];
  for (const attachment of attachments) {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const path = join(dir, `${stamp}-${safeName(attachment.filename)}`);
    const body = attachment.bytes ?? attachment.content;
    await writeFile(path, body, { mode: 0o600 });
    saved.push({
      filename: attachment.filename,
      contentType: attachment.contentType,
      path,
      bytes: typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength,
    });
  }
  return saved;
}

export function describeSaved(saved: readonly SavedAttachment[]): string {
  // The path on a line of its own: it is what the next command (open, scp) needs, whole.
  return saved
    .map((s) => `attached: ${s.filename} (${formatBytes(s.bytes)}), saved to\n  ${s.path}`)
    .join('\n');
}
