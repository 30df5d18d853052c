// `dbops discord register`: the /db slash command registered in one server or globally.
import { registerDiscordCommands } from '../surfaces/discord/register.js';
import type { DISCORD_REGISTER_OPTIONS, parseCommand } from './args.js';
import { configPath, env, loadConfigOrExit } from './shared.js';

export type DiscordRegisterArgs = ReturnType<typeof parseCommand<typeof DISCORD_REGISTER_OPTIONS>>;

export async function discordRegister({ values }: DiscordRegisterArgs): Promise<number> {
  const config = loadConfigOrExit(configPath(values.config));
  const result = await registerDiscordCommands({
    env,
    config,
    ...(values.guild !== undefined ? { guildId: values.guild } : {}),
  });
  for (const warning of result.warnings) process.stderr.write(`warning: ${warning}\n`);
  const where =
    result.scope === 'guild' ? `in guild ${result.guildId}` : 'globally (may take up to an hour to appear)';
  process.stdout.write(
    `registered ${result.commands.map((c) => `/${c.name}`).join(', ')} for application ${result.applicationId} ${where}\n`,
  );
  return 0;
}
