// `check-config`'s account of who holds each role: people listed by hand, Slack group members as read now,
// Discord roles by id (their members are known only when they act), and every group that cannot be read.
import type { Config } from '../config/schema.js';
import type { RoleDirectory } from './directory.js';

/** Lines for the report, and the problems (a group that cannot be read) that make check-config fail. */
export function roleHolderReport(
  config: Config,
  directory: RoleDirectory,
): { lines: string[]; problems: string[] } {
  const roles = new Set<string>();
  for (const person of Object.values(config.people)) for (const role of person.roles) roles.add(role);
  for (const role of Object.keys(config.roleSources?.roles ?? {})) roles.add(role);
  const holders = new Map(directory.holders().map((h) => [h.role, h]));
  const lines: string[] = ['Who holds each role:'];
  const problems: string[] = [];
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
      lines.push(`    discord role ${id}: members are read from each interaction`);
    }
  }
  return { lines, problems };
}
