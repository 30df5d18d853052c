// `dbops exec`: one /db command as a person, the answer on stdout/stderr (or one JSON object), an exit code.
import { existsSync } from 'node:fs';
import { type App, createApp } from '../app.js';
import { CliFailure, failureJson, replyJson } from '../cli-json.js';
import { loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { ConfigError, isUserError } from '../core/errors.js';
import { CONSOLE_WIDTH, wrapLines } from '../core/layout.js';
import { redactSecrets } from '../core/log.js';
import type { Reply } from '../core/reply.js';
import type { Invocation, InvocationFile } from '../core/types.js';
import { showInvisible, terminalSafeJson, visible } from '../core/visible.js';
import { defaultExportDir, describeSaved, saveAttachments } from '../surfaces/attachments.js';
import { fileByteCap, localInvocationFiles } from '../surfaces/files.js';
import type { EXEC_OPTIONS, parseCommand } from './args.js';
import { configPath, env, packCacheDir, quietLogger } from './shared.js';

export type ExecArgs = ReturnType<typeof parseCommand<typeof EXEC_OPTIONS>>;

const EXIT: Record<Reply['status'], number> = { ok: 0, pending: 0, refused: 2, invalid: 2, failed: 1 };

/**
 * With --json, stdout always gets exactly one JSON object, whatever fails on the way (config, state
 * database, target, saving attachments, closing): scripts parse it instead of guessing.
 */
export async function exec(args: ExecArgs): Promise<number> {
  const json = args.values.json === true;
  try {
    return await execOnce(args, json);
  } catch (err) {
    const failure =
      err instanceof CliFailure
        ? err
        : new CliFailure(
            'internal',
            `dbops exec failed: ${err instanceof Error ? err.message : String(err)}`,
            1,
          );
    if (json)
      process.stdout.write(
        `${terminalSafeJson(JSON.stringify(failureJson(failure.code, failure.message)))}\n`,
      );
    else process.stderr.write(`dbops: ${showInvisible(redactSecrets(failure.message))}\n`);
    return failure.exitCode;
  }
}

function loadConfigChecked(path: string): Config {
  if (!existsSync(path))
    throw new CliFailure(
      'config_not_found',
      `config file ${path} not found (use --config FILE or set DBOPS_CONFIG)`,
      2,
    );
  try {
    return loadConfigFile(path, env);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliFailure('config_invalid', err.message, 2);
    throw err;
  }
}

async function execOnce({ values, positionals }: ExecArgs, json: boolean): Promise<number> {
  const config = loadConfigChecked(configPath(values.config));
  const log = quietLogger();
  let app: App;
  try {
    // Progress of long operations (vacuum, backup, restore…) on stderr: stdout stays the answer alone.
    const cacheDir = packCacheDir();
    app = await createApp({
      config,
      log,
      ...(cacheDir !== undefined ? { packCacheDir: cacheDir } : {}),
      onProgress: (_requestId, _inv, line) =>
        process.stderr.write(`… ${visible(line, Number.POSITIVE_INFINITY)}\n`),
    });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new CliFailure('state_unavailable', `cannot open the state database: ${why}`, 1);
  }
  let printed = false;
  try {
    let intake: { text: string; attachments: InvocationFile[] };
    try {
      intake = await localInvocationFiles(positionals.join(' '), fileByteCap(config), values.file);
    } catch (err) {
      if (!isUserError(err)) throw err;
      if (json) {
        const body = { ...failureJson(err.code, err.message), status: 'invalid' };
        process.stdout.write(`${terminalSafeJson(JSON.stringify(body))}\n`);
      } else process.stderr.write(`dbops: ${showInvisible(err.message)}\n`);
      printed = true;
      return 2;
    }
    const inv: Invocation = {
      surface: 'cli',
      identity: values.as ?? '',
      text: intake.text,
      ...(intake.attachments.length > 0 ? { attachments: intake.attachments } : {}),
      ...(values.channel !== undefined ? { channel: values.channel } : {}),
    };
    const reply = await app.core.dispatch(inv);
    let saved: Awaited<ReturnType<typeof saveAttachments>>;
    try {
      saved = await saveAttachments(reply.result?.attachments ?? [], values.out ?? defaultExportDir(env));
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new CliFailure('attachment_failed', `${reply.text}\ncannot save the attachments: ${why}`, 1);
    }
    // Values cannot drive the terminal: escapes shown, invisible characters marked (JSON: \u-escaped).
    if (json) process.stdout.write(`${terminalSafeJson(JSON.stringify(replyJson(reply, saved)))}\n`);
    else {
      (reply.status === 'ok' || reply.status === 'pending' ? process.stdout : process.stderr).write(
        `${wrapLines(showInvisible(reply.text), CONSOLE_WIDTH)}\n`,
      );
      if (saved.length > 0) process.stdout.write(`${showInvisible(describeSaved(saved))}\n`);
    }
    printed = true;
    return EXIT[reply.status];
  } finally {
    // The answer is out: a failure to close must not print a second object or change the exit code.
    await app.close().catch((err: unknown) => {
      if (!printed) throw err;
      log.warn({ err }, 'closing after exec failed');
    });
  }
}
