// `dbops exec`: one /db command as a person, the answer on stdout/stderr (or one JSON object), an exit code.
import { createApp } from '../app.js';
import { isUserError } from '../core/errors.js';
import { withInvocationFiles } from '../core/invocation-files.js';
import { jsonRows } from '../core/json-rows.js';
import type { Reply } from '../core/reply.js';
import type { Invocation, InvocationFile } from '../core/types.js';
import { visible } from '../core/visible.js';
import { defaultExportDir, describeSaved, saveAttachments } from '../surfaces/attachments.js';
import { fileByteCap, localInvocationFiles } from '../surfaces/files.js';
import type { EXEC_OPTIONS, parseCommand } from './args.js';
import { configPath, env, loadConfigOrExit, quietLogger } from './shared.js';

export type ExecArgs = ReturnType<typeof parseCommand<typeof EXEC_OPTIONS>>;

const EXIT: Record<Reply['status'], number> = { ok: 0, pending: 0, refused: 2, invalid: 2, failed: 1 };

export async function exec({ values, positionals }: ExecArgs): Promise<number> {
  const config = loadConfigOrExit(configPath(values.config));
  const log = quietLogger();
  // Progress of long operations (vacuum, backup, restore…) on stderr: stdout stays the answer alone.
  const app = await createApp({
    config,
    log,
    onProgress: (_requestId, _inv, line) =>
      process.stderr.write(`… ${visible(line, Number.POSITIVE_INFINITY)}\n`),
  });
  try {
    let intake: { text: string; attachments: InvocationFile[] };
    try {
      intake = await localInvocationFiles(positionals.join(' '), fileByteCap(config), values.file);
    } catch (err) {
      if (!isUserError(err)) throw err;
      if (values.json) {
        const body = {
          status: 'invalid',
          request: null,
          code: err.code,
          message: err.message,
          text: err.message,
        };
        process.stdout.write(`${JSON.stringify(body)}\n`);
      } else process.stderr.write(`dbops: ${err.message}\n`);
      return 2;
    }
    const inv: Invocation = {
      surface: 'cli',
      identity: values.as ?? '',
      text: intake.text,
      ...(intake.attachments.length > 0 ? { attachments: intake.attachments } : {}),
      ...(values.channel !== undefined ? { channel: values.channel } : {}),
    };
    const reply = await withInvocationFiles(inv, () => app.core.dispatch(inv));
    const saved = await saveAttachments(reply.result?.attachments ?? [], values.out ?? defaultExportDir(env));
    if (values.json) {
      const body = {
        status: reply.status,
        request: reply.requestId,
        operation: reply.operation ?? null,
        target: reply.target ?? null,
        risk: reply.risk ?? null,
        columns: reply.result?.columns.map((c) => c.key) ?? [],
        rows: jsonRows(reply.result?.rows ?? []),
        truncated: reply.result?.truncated ?? false,
        text: reply.text,
        message: reply.message,
        ...(reply.code ? { code: reply.code } : {}),
        ...(reply.result?.data ? { data: reply.result.data } : {}),
        ...(reply.request ? { approval: { id: reply.request.id, status: reply.request.status } } : {}),
        ...(saved.length > 0 ? { attachments: saved } : {}),
      };
      process.stdout.write(`${JSON.stringify(body)}\n`);
    } else {
      (reply.status === 'ok' || reply.status === 'pending' ? process.stdout : process.stderr).write(
        `${reply.text}\n`,
      );
      if (saved.length > 0) process.stdout.write(`${describeSaved(saved)}\n`);
    }
    return EXIT[reply.status];
  } finally {
    await app.close();
  }
}
