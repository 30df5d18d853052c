#!/usr/bin/env node
// The dbops command: reads the command line, answers --help and --version itself, and loads only the
// module of the command asked for (chat SDKs and database drivers stay unloaded for help and usage errors).
import {
  AUDIT_EXPORT_OPTIONS,
  CHECK_CONFIG_OPTIONS,
  CONSOLE_OPTIONS,
  DEMO_OPTIONS,
  DISCORD_REGISTER_OPTIONS,
  EXEC_OPTIONS,
  parseCommand,
  START_OPTIONS,
  UsageError,
  unknownCommand,
} from './cli/args.js';
import { COMMANDS, commandHelp, findCommand, mainHelp, readVersion } from './cli/help.js';
import type { ShortCommands } from './cli/short-types.js';
import { visible } from './core/visible.js';

/** Keeps the compiled code of the short-lived commands for the next process, once they have run. */
let keepCompiledCode: (() => void) | undefined;

/**
 * exec, console, check-config and audit export: the bundle of them through V8's code cache
 * (cli/code-cache.ts), or tsc's modules when there is no bundle.
 */
async function shortCommands(): Promise<ShortCommands> {
  const { loadShortCommands } = await import('./cli/code-cache.js');
  const { cacheDir } = await import('./cli/env.js');
  const bundled = loadShortCommands(cacheDir());
  if (!bundled) return await import('./cli/short-commands.js');
  keepCompiledCode = bundled.keep;
  return bundled.commands;
}

function printHelp(name: string): number {
  const command = findCommand(name);
  process.stdout.write(`${command ? commandHelp(command) : mainHelp()}\n`);
  return 0;
}

/** `dbops help exec` and `dbops --help exec` read like `dbops exec --help`. */
function helpFor(words: string[]): number {
  const name = words.join(' ');
  if (name === '' || findCommand(name)) return printHelp(name);
  if (words[0] === 'discord') return printHelp('discord register');
  if (words[0] === 'audit') return printHelp('audit export');
  throw unknownCommand(
    '',
    name,
    COMMANDS.map((c) => c.name),
  );
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'exec': {
      const args = parseCommand('exec', rest, EXEC_OPTIONS, true);
      if (args.values.help) return printHelp('exec');
      if (!args.values.as) throw new UsageError('exec', '--as PERSON is required');
      if (args.positionals.length === 0)
        throw new UsageError('exec', 'the command to run is missing, e.g. -- "/db sizes kasm"');
      const { exec } = await shortCommands();
      return await exec(args);
    }
    case 'console': {
      const args = parseCommand('console', rest, CONSOLE_OPTIONS);
      if (args.values.help) return printHelp('console');
      if (!args.values.as) throw new UsageError('console', '--as PERSON is required');
      const { consoleCommand } = await shortCommands();
      return await consoleCommand(args);
    }
    case 'demo': {
      if (parseCommand('demo', rest, DEMO_OPTIONS).values.help) return printHelp('demo');
      const { demo } = await import('./cli/demo.js');
      return await demo();
    }
    case 'check-config': {
      const args = parseCommand('check-config', rest, CHECK_CONFIG_OPTIONS);
      if (args.values.help) return printHelp('check-config');
      const { checkConfig } = await shortCommands();
      return await checkConfig(args);
    }
    case 'start': {
      const args = parseCommand('start', rest, START_OPTIONS);
      if (args.values.help) return printHelp('start');
      const { start } = await import('./cli/start.js');
      return await start(args);
    }
    case 'discord': {
      const [sub, ...more] = rest;
      if (sub === '--help' || sub === '-h') return printHelp('discord register');
      if (sub === undefined) throw new UsageError('discord register', 'which discord subcommand? (register)');
      if (sub !== 'register') throw unknownCommand('discord', sub, ['register']);
      const args = parseCommand('discord register', more, DISCORD_REGISTER_OPTIONS);
      if (args.values.help) return printHelp('discord register');
      const { discordRegister } = await import('./cli/discord.js');
      return await discordRegister(args);
    }
    case 'audit': {
      const [sub, ...more] = rest;
      if (sub === '--help' || sub === '-h') return printHelp('audit export');
      if (sub === undefined) throw new UsageError('audit export', 'which audit subcommand? (export)');
      if (sub !== 'export') throw unknownCommand('audit', sub, ['export']);
      const args = parseCommand('audit export', more, AUDIT_EXPORT_OPTIONS);
      if (args.values.help) return printHelp('audit export');
      const { auditExport } = await shortCommands();
      return await auditExport(args);
    }
    case 'pack': {
      // pack-test loads only the loader and embedded PostgreSQL; it parses its own options.
      const { packCli } = await import('./packs/pack-test.js');
      return await packCli(rest, (line) => process.stdout.write(`${line}\n`));
    }
    case 'help':
    case '--help':
    case '-h':
      return helpFor(rest);
    case '--version':
    case '-V':
    case 'version':
      process.stdout.write(`dbops ${readVersion()}\n`);
      return 0;
    case undefined:
      process.stderr.write(`${mainHelp()}\n`);
      return 2;
    default:
      if (command.startsWith('-')) {
        throw new UsageError(
          '',
          `unknown option ${visible(command, Number.POSITIVE_INFINITY)} (options before a command: --help, --version)`,
        );
      }
      throw unknownCommand(
        '',
        command,
        COMMANDS.map((c) => c.name.split(' ')[0] ?? c.name),
      );
  }
}

/** A usage error: what is wrong, the usage line, where the help is; exit 2. */
async function reportUsage(err: UsageError, argv: string[]): Promise<number> {
  const command = findCommand(err.command);
  const options = argv.slice(0, argv.includes('--') ? argv.indexOf('--') : argv.length);
  // exec --json promises one JSON object on stdout whatever happens.
  if (err.command === 'exec' && options.includes('--json')) {
    const { failureJson } = await import('./cli-json.js');
    process.stdout.write(`${JSON.stringify(failureJson('usage', err.message))}\n`);
    return 2;
  }
  const usage = command ? `Usage: ${command.usage}\n` : '';
  const more = command ? `dbops ${command.name} --help` : 'dbops --help';
  process.stderr.write(`dbops: ${err.message}\n${usage}Run "${more}" for more.\n`);
  return 2;
}

const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    process.exitCode = code;
    try {
      keepCompiledCode?.();
    } catch {
      // only the next start is slower
    }
  },
  async (err: unknown) => {
    if (err instanceof UsageError) {
      process.exitCode = await reportUsage(err, argv);
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    const { redactSecrets } = await import('./core/log.js');
    process.stderr.write(`dbops: ${redactSecrets(message)}\n`);
    process.exitCode = 1;
  },
);
