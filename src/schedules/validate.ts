// What a schedule needs from the catalog and the policy (check-config and every start refuse it otherwise):
// an operation the target has, not destructive, arguments that bind, and a service person the policy lets
// run it directly (a schedule cannot wait for an approval).
import { servicePerson } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { Catalog } from '../core/catalog.js';
import { isUserError } from '../core/errors.js';
import { bindArguments, tokenize } from '../core/grammar.js';
import { actionForRisk, decide } from '../core/policy.js';
import { closest } from '../core/suggest.js';

/** One line per problem, each naming `schedules.<name>`. */
export function scheduleProblems(config: Config, catalog: Catalog): string[] {
  const problems: string[] = [];
  for (const schedule of Object.values(config.schedules)) {
    const at = `schedules.${schedule.name}`;
    if (schedule.kind === 'sample') continue;
    const person = schedule.as !== undefined ? servicePerson(config, schedule.as) : undefined;
    if (schedule.kind === 'digest') {
      // The digest reads (slow queries, unused indexes) as its person: the policy must let it read there.
      for (const name of schedule.targets) {
        const target = config.targets[name];
        if (!target || !person) continue;
        const decision = decide({
          person,
          identity: `service:${person.name}`,
          action: 'read',
          environment: target.environment,
          policy: config.policy,
        });
        if (!decision.allowed)
          problems.push(`${at}.as: the policy would refuse its reads on ${name}: ${decision.reason}`);
      }
      continue;
    }
    for (const name of schedule.targets) {
      const target = config.targets[name];
      if (!target) continue; // reported by the file check
      const spec = catalog.resolve(schedule.operation, target);
      if (!spec) {
        const packs = catalog.packsDefining(schedule.operation);
        const names = [...catalog.allNames()];
        const guesses = closest(schedule.operation, names);
        problems.push(
          packs.length > 0
            ? `${at}.operation: ${schedule.operation} comes from the ${packs.join('/')} pack, which target ${name} does not list`
            : `${at}.operation: there is no operation ${schedule.operation}${guesses.length > 0 ? ` — did you mean ${guesses.join(' or ')}?` : ''}`,
        );
        continue;
      }
      if (spec.risk === 'destructive') {
        problems.push(
          `${at}.operation: ${spec.name} is destructive; destructive operations cannot be scheduled (they need a person's approval each time)`,
        );
        continue;
      }
      try {
        bindArguments(spec, tokenize(schedule.args));
      } catch (err) {
        if (!isUserError(err)) throw err;
        problems.push(`${at}.args: ${err.message.split('\n').join('; ')}`);
        continue;
      }
      if (!person) continue; // reported by the file check
      const decision = decide({
        person,
        identity: `service:${person.name}`,
        action: actionForRisk(spec.risk),
        environment: target.environment,
        policy: config.policy,
      });
      if (!decision.allowed) {
        problems.push(`${at}.as: the policy would refuse it on ${name}: ${decision.reason}`);
      } else if (decision.needsApproval) {
        problems.push(
          `${at}.as: ${spec.name} needs approval on ${target.environment} (approve_writes), and a schedule cannot wait for one; run it from an environment without approve_writes or drop the schedule`,
        );
      }
    }
    if (schedule.operation !== 'backup' && (schedule.keep || schedule.verify)) {
      problems.push(`${at}: keep and verify apply to backup schedules only`);
    }
  }
  return problems;
}

const SURFACE_TOKEN = { slack: 'SLACK_BOT_TOKEN', discord: 'DISCORD_TOKEN' } as const;

/**
 * Channels `dbops start` with this environment could not post to, because their chat surface is not
 * configured (check-config warns; start reports them in /readyz detail).
 */
export function schedulePostWarnings(
  config: Config,
  env: Readonly<Record<string, string | undefined>>,
): string[] {
  const warnings: string[] = [];
  for (const schedule of Object.values(config.schedules)) {
    if (!schedule.post) continue;
    const variable = SURFACE_TOKEN[schedule.post.surface];
    if (env[variable]?.trim()) continue;
    warnings.push(
      `schedules.${schedule.name}.post: ${schedule.post.surface}:${schedule.post.channel} cannot be posted to: ${variable} is not set, so dbops start runs no ${schedule.post.surface === 'slack' ? 'Slack' : 'Discord'} surface`,
    );
  }
  return warnings;
}
