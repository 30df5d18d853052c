// `check-config`'s account of who holds each role: people listed by hand, Slack group members as read now,
// Discord role members as listed now (opt-in) or else learned from payloads, and what cannot be read.
import type { Config } from '../config/schema.js';
import { wrapWords } from '../core/operation.js';
import type { RoleDirectory } from './directory.js';

/** Lines for the report, and the problems (a group that cannot be read) that make check-config fail. */
export function roleHolderReport(
  config: Config,
  directory: RoleDirectory,
  discord: { read: boolean } = { read: false },
): { lines: string[]; problems: string[] } {
  const roles = new Set<string>();
  for (const person of Object.values(config.people)) for (const role of person.roles) roles.add(role);
  for (const role of Object.keys(config.roleSources?.roles ?? {})) roles.add(role);
  const holders = new Map(directory.holders().map((h) => [h.role, h]));
  const lines: string[] = ['Who holds each role:'];
  const problems: string[] = [];
  const listingProblem = directory.discord.listingProblem();
  for (const role of [...roles].sort()) {
    const listed = Object.values(config.people)
      .filter((p) => p.roles.includes(role))
      .map((p) => p.name);
    lines.push(`  ${role}`);
    if (listed.length > 0) lines.push(`    listed: ${listed.join(', ')}`);
    const source = holders.get(role);
    for (const group of source?.slack ?? []) {
      if (group.problem) {
        problems.push(`role ${role}: ${group.problem}`);
        lines.push(`    slack ${group.group}: cannot be read (see the problem below)`);
      } else {
        const who = group.members.length > 0 ? group.members.join(', ') : 'nobody';
        lines.push(`    slack ${group.group}: ${who}`);
      }
    }
    for (const id of source?.discord ?? []) {
      if (!directory.discord.listing) {
        lines.push(`    discord role ${id}: learned from each interaction's payload`);
      } else if (!discord.read) {
        lines.push(`    discord role ${id}: not listed (set DISCORD_TOKEN to see its members)`);
      } else if (listingProblem) {
        lines.push(`    discord role ${id}: cannot be listed (see the problem below)`);
      } else {
        const who = directory.discord.holdersOf(id);
        // Whole ids, wrapped within 80 columns under the role.
        const [first = '', ...rest] = wrapWords(who.length > 0 ? who.join(', ') : 'nobody', 80, '      ');
        lines.push(`    discord role ${id}:`, first, ...rest);
      }
    }
  }
  if (listingProblem && discord.read) problems.push(listingProblem);
  return { lines, problems };
}
