// `dbops check-config`: the config and its packs validated, every target reached and reported.

import { catalog as operations } from '../../commands/index.js';
import { checkTargets, expectationProblems, formatCheckReport } from '../config/check.js';
import { Catalog } from '../core/catalog.js';
import { ConfigError } from '../core/errors.js';
import type { LoadedPack } from '../packs/load.js';
import { configSettingWarnings } from '../packs/names.js';
import { loadConfiguredPacks, packCatalogEntries } from '../packs/registry.js';
import { schedulePostWarnings, scheduleProblems } from '../schedules/validate.js';
import type { CHECK_CONFIG_OPTIONS, parseCommand } from './args.js';
import { configPath, env, loadConfigOrExit } from './shared.js';

export type CheckConfigArgs = ReturnType<typeof parseCommand<typeof CHECK_CONFIG_OPTIONS>>;

export async function checkConfig({ values }: CheckConfigArgs): Promise<number> {
  const path = configPath(values.config);
  const config = loadConfigOrExit(path);
  // The packs are part of the configuration: a broken pack or a wrong setting is a config error.
  let packs: LoadedPack[];
  try {
    packs = loadConfiguredPacks(config);
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
  for (const warning of schedulePostWarnings(config, env)) process.stdout.write(`warning: ${warning}\n`);
  const checks = await checkTargets(config, { packs });
  process.stdout.write(`${formatCheckReport(checks)}\n`);
  return checks.every((c) => c.reachable) && expectationProblems(checks).length === 0 ? 0 : 1;
}
