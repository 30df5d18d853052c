// An interactive chat in the terminal: type /db commands as a person, `/as bob` to become someone else.
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type { Config } from '../config/schema.js';
import type { Core } from '../core/dispatch.js';
import { isUserError } from '../core/errors.js';
import { CONSOLE_WIDTH, wrapLines } from '../core/layout.js';
import type { Invocation } from '../core/types.js';
import { showInvisible } from '../core/visible.js';
import { describeSaved, saveAttachments } from './attachments.js';
import { fileByteCap, localInvocationFiles } from './files.js';

export interface ConsoleOptions {
  core: Core;
  config: Config;
  /** CLI identity of the person typing (config.people.*.cli). */
  as: string;
  channel?: string;
  input: Readable;
  output: Writable;
  /** Shown once before the first prompt. */
  banner?: string;
  /** Where attachments (CSV exports) are saved. */
  exportDir: string;
}

function cliPeople(config: Config): string[] {
  return Object.values(config.people).flatMap((p) => (p.identities.cli ? [p.identities.cli] : []));
}

/** Runs until the input ends or the person types /quit. */
export async function runConsole(options: ConsoleOptions): Promise<void> {
  const { core, config, output } = options;
  let as = options.as;
  const rl = createInterface({
    input: options.input,
    output,
    terminal: 'isTTY' in output && output.isTTY === true,
  });
  // Everything reaches the terminal through here: no value can send it an escape sequence.
  const write = (text: string) => output.write(`${showInvisible(text)}\n`);
  const prompt = () => {
    rl.setPrompt(`${as}> `);
    rl.prompt();
  };
  if (options.banner) write(options.banner);
  write(
    `You are ${as}. Type /db help, /as <person> to switch (${cliPeople(config).join(', ')}), /quit to leave.`,
  );
  prompt();
  // Lines are handled one at a time, in order, even when pasted together.
  let queue = Promise.resolve();
  let closed = false;
  await new Promise<void>((resolve) => {
    rl.on('line', (line) => {
      queue = queue.then(async () => {
        const text = line.trim();
        if (text === '') {
          if (!closed) prompt();
          return;
        }
        if (text === '/quit' || text === '/exit') {
          rl.close();
          return;
        }
        if (text === '/whoami') {
          write(`You are ${as}.`);
        } else if (text.startsWith('/as')) {
          const who = text.slice(3).trim();
          if (cliPeople(config).includes(who)) {
            as = who;
            write(`You are now ${as}.`);
          } else {
            write(`No person has the cli identity "${who}". People: ${cliPeople(config).join(', ')}.`);
          }
        } else {
          // `--file PATH` in the line is read here, as a chat surface would take an attached file.
          const intake = await localInvocationFiles(text, fileByteCap(config)).catch((err: unknown) => {
            if (isUserError(err)) return err;
            throw err;
          });
          if (isUserError(intake)) {
            write(intake.message);
          } else {
            const inv: Invocation = {
              surface: 'console',
              identity: as,
              text: intake.text,
              ...(intake.attachments.length > 0 ? { attachments: intake.attachments } : {}),
              ...(options.channel !== undefined ? { channel: options.channel } : {}),
            };
            const reply = await core.dispatch(inv);
            // One-line answers (refusals, errors) wrap too: nothing runs past 80 columns.
            write(wrapLines(showInvisible(reply.text), CONSOLE_WIDTH));
            const saved = await saveAttachments(reply.result?.attachments ?? [], options.exportDir);
            if (saved.length > 0) write(describeSaved(saved));
          }
        }
        if (!closed) prompt();
      });
    });
    rl.on('close', () => {
      closed = true;
      queue.then(
        () => resolve(),
        () => resolve(),
      );
    });
  });
  write('');
}
