// `dbops check-config`: the config and its packs validated, every target reached and reported.
import { readFileSync } from 'node:fs';
import { catalog as operations } from '../../commands/index.js';
import { approvalWarningLines } from '../config/approval-rules.js';
import { approvalsChannelWarnings } from '../config/approvals-channel.js';
import { checkTargets, expectationProblems, formatCheckReport } from '../config/check.js';
import type { Config } from '../config/schema.js';
import { Catalog } from '../core/catalog.js';
import { ConfigError } from '../core/errors.js';
import { wrapWords } from '../core/operation.js';
import type { LoadedPack } from '../packs/load.js';
import { configSettingWarnings } from '../packs/names.js';
import { loadConfiguredPacks, packCatalogEntries } from '../packs/registry.js';
import { schedulePostWarnings, scheduleProblems } from '../schedules/validate.js';
import { DEFAULT_API_URL } from '../surfaces/slack/settings.js';
import type { CHECK_CONFIG_OPTIONS, parseCommand } from './args.js';
import { configPath, env, loadConfigOrExit, packCacheDir } from './shared.js';

export type CheckConfigArgs = ReturnType<typeof parseCommand<typeof CHECK_CONFIG_OPTIONS>>;

export async function checkConfig({ values }: CheckConfigArgs): Promise<number> {
  const path = configPath(values.config);
  const config = loadConfigOrExit(path);
  // The packs are part of the configuration: a broken pack or a wrong setting is a config error.
  let packs: LoadedPack[];
  try {
    const cacheDir = packCacheDir();
    packs = loadConfiguredPacks(config, cacheDir !== undefined ? { cacheDir } : {});
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`dbops: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  // Schedules against the catalog and the policy: unknown or destructive operations, refused identities.
  const scheduleErrors = scheduleProblems(config, new Catalog(operations, packCatalogEntries(packs)));
  if (scheduleErrors.length > 0) {
    process.stderr.write(`dbops: ${new ConfigError(scheduleErrors).message}\n`);
    return 2;
  }
  process.stdout.write(
    `${path}: valid (${Object.keys(config.targets).length} targets, ${Object.keys(config.people).length} people, ${packs.length} packs)\n\n`,
  );
  for (const warning of configSettingWarnings(config, packs)) process.stdout.write(`warning: ${warning}\n`);
  // Long sentences: wrapped to 80 columns under their "warning:" label.
  for (const warning of approvalWarningLines(config, readFileSync(path, 'utf8')))
    process.stdout.write(`warning: ${wrapWords(warning, 71, '').join('\n         ')}\n`);
  for (const warning of schedulePostWarnings(config, env)) process.stdout.write(`warning: ${warning}\n`);
  for (const warning of approvalsChannelWarnings(config, env))
    process.stdout.write(`warning: ${wrapWords(warning, 71, '').join('\n         ')}\n`);
  const checks = await checkTargets(config, { packs });
  process.stdout.write(`${formatCheckReport(checks)}\n`);
  const rolesOk = await reportRoleHolders(config);
  return checks.every((c) => c.reachable) && expectationProblems(checks).length === 0 && rolesOk ? 0 : 1;
}

/**
 * With SLACK_BOT_TOKEN set, reads the configured Slack groups, and with DISCORD_TOKEN set (and
 * role_sources.discord_member_listing on) the guilds' members, then prints who holds each role.
 */
async function reportRoleHolders(config: Config): Promise<boolean> {
  if (!config.roleSources) return true;
  const { RoleDirectory } = await import('../identity/directory.js');
  const { roleHolderReport } = await import('../identity/holders.js');
  const directory = new RoleDirectory(config);
  // Only the bot token is needed to read groups (not the mode's app token or signing secret).
  const token = env.SLACK_BOT_TOKEN?.trim();
  const slack = token?.startsWith('xoxb-') ? token : undefined;
  if (slack && directory.usesSlack) {
    const { webApi } = await import('@slack/bolt');
    const retries = Number(env.SLACK_API_RETRIES ?? '2');
    const client = new webApi.WebClient(slack, {
      slackApiUrl: env.SLACK_API_URL?.trim() || DEFAULT_API_URL,
      retryConfig: { retries: Number.isInteger(retries) && retries >= 0 && retries <= 10 ? retries : 2 },
    });
    directory.useSlack(async (usergroup) => (await client.usergroups.users.list({ usergroup })).users ?? []);
    await directory.refresh();
  } else if (directory.usesSlack) {
    process.stdout.write('Slack groups were not read: set SLACK_BOT_TOKEN to see their members.\n');
  }
  const discordRead = await readDiscordMembers(directory);
  const report = roleHolderReport(config, directory, { read: discordRead });
  process.stdout.write(`\n${report.lines.join('\n')}\n`);
  for (const problem of report.problems) process.stdout.write(`problem: ${problem}\n`);
  const slackFailed = slack !== undefined && directory.slackGroups.some((g) => directory.groupProblem(g));
  const discordFailed = discordRead && directory.discord.listingProblem() !== undefined;
  return !slackFailed && !discordFailed;
}

/** Lists the Discord guilds' members when the config asks for it and DISCORD_TOKEN is set. */
async function readDiscordMembers(
  directory: import('../identity/directory.js').RoleDirectory,
): Promise<boolean> {
  if (!directory.discord.listing) return false;
  const { readDiscordSettings, restOptions } = await import('../surfaces/discord/settings.js');
  let settings: ReturnType<typeof readDiscordSettings>;
  try {
    settings = readDiscordSettings(env);
  } catch (err) {
    process.stdout.write(`Discord members were not read: ${err instanceof Error ? err.message : err}\n`);
    return false;
  }
  if (!settings) {
    process.stdout.write('Discord members were not read: set DISCORD_TOKEN to see who holds each role.\n');
    return false;
  }
  const { REST } = await import('discord.js');
  const { guildMemberReader } = await import('../surfaces/discord/members.js');
  directory.discord.useReader(guildMemberReader(new REST(restOptions(settings)).setToken(settings.token)));
  await directory.discord.refresh();
  return true;
}
