// `dbops check-config`: the config and its packs validated, every target reached and reported.
import { checkTargets, expectationProblems, formatCheckReport } from '../config/check.js';
import { ConfigError } from '../core/errors.js';
import type { LoadedPack } from '../packs/load.js';
import { configSettingWarnings } from '../packs/names.js';
import { loadConfiguredPacks } from '../packs/registry.js';
import type { CHECK_CONFIG_OPTIONS, parseCommand } from './args.js';
import { configPath, loadConfigOrExit, packCacheDir } from './shared.js';

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
  process.stdout.write(
    `${path}: valid (${Object.keys(config.targets).length} targets, ${Object.keys(config.people).length} people, ${packs.length} packs)\n\n`,
  );
  for (const warning of configSettingWarnings(config, packs)) process.stdout.write(`warning: ${warning}\n`);
  const checks = await checkTargets(config, { packs });
  process.stdout.write(`${formatCheckReport(checks)}\n`);
  return checks.every((c) => c.reachable) && expectationProblems(checks).length === 0 ? 0 : 1;
}
