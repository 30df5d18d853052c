// The `/db` application command: its registration body, and how its options become the command text.
import {
  ApplicationCommandOptionType,
  ApplicationCommandType,
  ApplicationIntegrationType,
  InteractionContextType,
  type RESTPostAPIChatInputApplicationCommandsJSONBody,
} from 'discord.js';

export const COMMAND_NAME = 'db';

export const OPTION = { operation: 'operation', target: 'target', args: 'args', file: 'file' } as const;

/**
 * No default_member_permissions: Discord's command permissions are never the check; dbops' policy is, on
 * every invocation. Guild installs only (threads and channel bindings need a server).
 */
export const DB_COMMAND = {
  name: COMMAND_NAME,
  type: ApplicationCommandType.ChatInput,
  description: 'Run a dbops runbook operation on an allowlisted PostgreSQL database',
  contexts: [InteractionContextType.Guild],
  integration_types: [ApplicationIntegrationType.GuildInstall],
  options: [
    {
      type: ApplicationCommandOptionType.String,
      name: OPTION.operation,
      description: 'What to run: sizes, blocking, kill-idle, … or help, pending, approve, deny',
      required: true,
      autocomplete: true,
      max_length: 64,
    },
    {
      type: ApplicationCommandOptionType.String,
      name: OPTION.target,
      description: 'Which database (leave it out in a channel bound to one)',
      required: false,
      autocomplete: true,
      max_length: 64,
    },
    {
      type: ApplicationCommandOptionType.String,
      name: OPTION.args,
      description: 'Arguments and options, e.g. --older-than 10m',
      required: false,
      max_length: 1000,
    },
    {
      type: ApplicationCommandOptionType.Attachment,
      name: OPTION.file,
      description: 'A file the operation reads: the CSV for import',
      required: false,
    },
  ],
} as const satisfies RESTPostAPIChatInputApplicationCommandsJSONBody;

/** `/db` options → the text the core parses: `sizes kasm --limit 5`. */
export function commandText(options: {
  operation: string | null;
  target: string | null;
  args: string | null;
}): string {
  return [options.operation, options.target, options.args]
    .map((part) => part?.trim() ?? '')
    .filter((part) => part !== '')
    .join(' ');
}
