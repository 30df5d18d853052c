// `dbops discord register [--guild ID]`: creates or updates the `/db` application command — in one server
// (instant, for trying it) or globally (for production; Discord may take a while to show changes).
import { REST, Routes } from 'discord.js';
import type { Config } from '../../config/schema.js';
import { DB_COMMAND } from './command.js';
import { readDiscordSettings, restOptions } from './settings.js';

export interface RegisterOptions {
  env: Readonly<Record<string, string | undefined>>;
  config: Config;
  /** A server (guild) id: register there only. */
  guildId?: string | undefined;
}

export interface RegisterResult {
  scope: 'guild' | 'global';
  applicationId: string;
  guildId?: string;
  commands: { id: string; name: string }[];
  /** Things worth knowing that did not stop the registration. */
  warnings: string[];
}

const SNOWFLAKE = /^\d{15,25}$/;

export async function registerDiscordCommands(options: RegisterOptions): Promise<RegisterResult> {
  const settings = readDiscordSettings(options.env);
  if (!settings)
    throw new Error('set DISCORD_TOKEN (the bot token from the Developer Portal) to register /db');
  if (options.guildId !== undefined && !SNOWFLAKE.test(options.guildId)) {
    throw new Error(`--guild must be a server id (a number), got "${options.guildId.slice(0, 40)}"`);
  }
  const rest = new REST(restOptions(settings)).setToken(settings.token);
  const applicationId = settings.applicationId ?? (await currentApplicationId(rest));
  // A bulk overwrite: dbops owns this application's commands, so re-running it is idempotent.
  const route =
    options.guildId !== undefined
      ? Routes.applicationGuildCommands(applicationId, options.guildId)
      : Routes.applicationCommands(applicationId);
  const created = (await rest.put(route, { body: [DB_COMMAND] })) as { id: string; name: string }[];
  const warnings: string[] = [];
  if (!Object.values(options.config.people).some((person) => person.identities.discord)) {
    warnings.push(
      'no person in the config has a discord identity, so every /db command will be refused; add `discord: "<user id>"` to people',
    );
  }
  return {
    scope: options.guildId !== undefined ? 'guild' : 'global',
    applicationId,
    ...(options.guildId !== undefined ? { guildId: options.guildId } : {}),
    commands: created.map((c) => ({ id: c.id, name: c.name })),
    warnings,
  };
}

async function currentApplicationId(rest: REST): Promise<string> {
  const application = (await rest.get(Routes.currentApplication())) as { id?: unknown };
  if (typeof application?.id !== 'string') {
    throw new Error('could not read the application id; set DISCORD_APPLICATION_ID');
  }
  return application.id;
}
