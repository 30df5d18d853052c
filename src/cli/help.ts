// What `dbops --help`, `dbops <command> --help` and `dbops --version` print; light on purpose (node:fs
// only), so help never loads a chat SDK or a database driver.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface CommandHelp {
  /** As typed after `dbops` (`discord register` is two words). */
  name: string;
  /** One line for the command list. */
  summary: string;
  usage: string;
  /** What the options mean and what the exit codes are, wrapped at 80 columns. */
  details: string;
}

const CONFIG_OPTION = `  --config FILE   the config file (default: $DBOPS_CONFIG, then ./dbops.yaml)`;

const ENVIRONMENT = `Secrets come from the environment (\${VAR} references in the config file).
Logs: $DBOPS_LOG_FILE (JSON lines), level $DBOPS_LOG_LEVEL.`;

/** The exit codes, shared by every command; exec's come from the status of the reply. */
export const EXIT_CODES = `Exit codes:
  0  done, or accepted and waiting for approval
  1  failed: the operation or a target failed, an internal error
  2  refused or invalid: not allowed, a wrong command, a bad config file,
     an unknown option (usage error)`;

export const COMMANDS: readonly CommandHelp[] = [
  {
    name: 'exec',
    summary: 'run one /db command as a person and exit',
    usage: 'dbops exec --as PERSON [options] -- "/db sizes kasm"',
    details: `Runs one command as PERSON (config people.*.cli) and prints the answer:
on stdout when done or pending, on stderr when refused, invalid or failed.
Progress lines of long operations go to stderr.

Options:
  --as PERSON     who is asking (required)
${CONFIG_OPTION}
  --channel ID    the channel the command counts as typed in
  --json          print one JSON object on stdout instead of text
  --out DIR       where attachments (CSV exports) are saved (default:
                  $DBOPS_EXPORT_DIR, else <tmp>/dbops-exports)
  --file CSV      send a file with the command, for "/db import <target>
                  <table>" (also "--file CSV" in the command text)
  -h, --help      show this help

${ENVIRONMENT}

exec exits 0 when the command was done or is pending approval, 2 when
it was refused or invalid (or the usage or config is wrong), 1 when it
failed.`,
  },
  {
    name: 'console',
    summary: 'chat with dbops in the terminal as a person',
    usage: 'dbops console --as PERSON [--config FILE] [--channel ID]',
    details: `Reads /db commands from the terminal, one a line, as PERSON; "/as bob"
switches person, "/quit" (or end of input) leaves. Progress lines of long
operations are printed as they come. "--file CSV" in a line sends that file
with the command (for /db import). Attachments are saved to
$DBOPS_EXPORT_DIR, else <tmp>/dbops-exports.

Options:
  --as PERSON     who is typing (required)
${CONFIG_OPTION}
  --channel ID    the channel the commands count as typed in
  -h, --help      show this help

Exits 0 when the input ends, 2 on a usage or config error.`,
  },
  {
    name: 'demo',
    summary: 'a throwaway PostgreSQL with sample databases, and a console',
    usage: 'dbops demo',
    details: `Starts an embedded PostgreSQL with sample databases (kasm, staging,
coder, capsul, activity), writes a config for them and opens the console as
alice. Everything is stopped when the console ends.

Options:
  -h, --help      show this help`,
  },
  {
    name: 'check-config',
    summary: 'validate the config and packs, reach every target',
    usage: 'dbops check-config [--config FILE]',
    details: `Validates the config file and the packs it names, then connects to every
target and reports its version, role and what the packs expect.

Options:
${CONFIG_OPTION}
  -h, --help      show this help

Exits 0 when everything is valid and reachable, 1 when a target is
unreachable or not as the packs expect, 2 when the config is invalid.`,
  },
  {
    name: 'start',
    summary: 'run the bot: Slack and/or Discord, health endpoints',
    usage: 'dbops start [--config FILE]',
    details: `Runs the chat surfaces whose tokens are set (SLACK_BOT_TOKEN with
SLACK_APP_TOKEN or SLACK_SIGNING_SECRET; DISCORD_TOKEN) and the health
endpoints (/healthz, /readyz, /metrics). SIGTERM or SIGINT stops it
gracefully.

Options:
${CONFIG_OPTION}
  -h, --help      show this help

${ENVIRONMENT}

Exits 0 after a clean stop, 1 when commands were still running at the
shutdown deadline or it could not start, 2 when the config is invalid.`,
  },
  {
    name: 'discord register',
    summary: 'register the /db command with Discord',
    usage: 'dbops discord register [--config FILE] [--guild ID]',
    details: `Registers (or updates) the /db slash command for the application of
DISCORD_TOKEN: in one server with --guild, else globally (global commands
may take up to an hour to appear).

Options:
${CONFIG_OPTION}
  --guild ID      register in this server only
  -h, --help      show this help

Exits 0 when registered, 1 when Discord refused, 2 on a usage or config
error.`,
  },
  {
    name: 'audit export',
    summary: 'the audit log as JSON lines for a SIEM',
    usage: 'dbops audit export --since 24h|DATE [--until …] [--format jsonl] [filters]',
    details: `Writes the audit records from --since (a duration back from now, or a date
such as 2026-12-01) to --until (default: now) on stdout, oldest first, one
JSON object a line. Every line has schema_version; the fields are described
in docs/audit.md. Reads the state database of the config.

Options:
${CONFIG_OPTION}
  --since WHEN    first record: 24h, 7d, 2026-12-01 or 2026-12-01T08:00:00Z
  --until WHEN    stop before this time
  --format jsonl  the only format (default)
  --person P      one person (every identity of theirs) or one identity
  --operation OP  one operation
  --outcome X     an event (refused, executed, …) or an outcome (ok, denied…)
  -h, --help      show this help

Exits 0 when written, 2 on a usage or config error.`,
  },
  {
    name: 'pack test',
    summary: "try a pack's examples against a throwaway PostgreSQL",
    usage: 'dbops pack test DIR [--fixtures FILE.sql] [--pg 15|17] [--execute] [--set K=V]',
    details: `Validates the pack as start-up does, starts a throwaway PostgreSQL, loads
the fixtures and runs each operation's examples: reads run, destructive
operations show their preview (--execute approves and runs them). See
docs/packs.md.

Exits 0 when every example ran, 1 when an example failed, 2 when the pack,
the fixtures or the arguments are invalid.`,
  },
];

export function findCommand(name: string): CommandHelp | undefined {
  return COMMANDS.find((c) => c.name === name);
}

/** `dbops --help`: every command with its usage. */
export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const list = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n');
  return `dbops — chat-ops for PostgreSQL

Usage:
  dbops <command> [options]
  dbops <command> --help
  dbops --version

Commands:
${list}

${ENVIRONMENT}

${EXIT_CODES}`;
}

/** `dbops <command> --help`. */
export function commandHelp(command: CommandHelp): string {
  return `Usage: ${command.usage}

${command.details}`;
}

/** The version in package.json, found above this file (the source tree or dist/). */
export function readVersion(from: string = fileURLToPath(import.meta.url)): string {
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === 'dbops' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not here: look one folder up
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}
