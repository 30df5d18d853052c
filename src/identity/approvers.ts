// Who can approve a request and how they are told: the approver roles' groups to mention, the people to DM.
import { resolvePerson } from '../config/load.js';
import type { Config, ResolvedPerson } from '../config/schema.js';
import { samePerson } from '../core/judgement.js';
import { decide, EVERYONE } from '../core/policy.js';
import type { ApprovalRequest } from '../state/types.js';
import { directoryOf } from './people.js';

export type NoticeMode = 'mention' | 'dm' | 'none';

/** How the approvers of one request are told (or, when escalating, the second group). */
export interface ApproverNotice {
  mode: NoticeMode;
  /** The roles being told. */
  roles: readonly string[];
  /** Slack user groups (`S…`) and Discord role ids of those roles, to mention. */
  slackGroups: readonly string[];
  discordRoles: readonly string[];
  /** Slack user ids (`U…`) of eligible approvers, to DM: never the requester under any identity. */
  slackUsers: readonly string[];
  /** Discord user ids of eligible approvers: listed in config.people, or known to hold an approving role. */
  discordUsers: readonly string[];
  /** "needs 1 of: dba — not alice" */
  summary: string;
}

function slackUserOf(identity: string): string | undefined {
  return /^[A-Z0-9]{2,32}\/([A-Z0-9]{2,32})$/.exec(identity)?.[1];
}

/**
 * The notice for a request: the environment's `approve` roles, or — when `escalation` — its `escalate_to`
 * roles. Eligible people are judged as a vote would be: they may approve now and are not the requester.
 */
export function approverNotice(config: Config, request: ApprovalRequest, escalation = false): ApproverNotice {
  const rules = config.policy[request.environment];
  const roles = (escalation ? rules?.escalate_to : rules?.approve) ?? [];
  const mode: NoticeMode = escalation
    ? rules?.notify === 'dm'
      ? 'dm'
      : 'mention'
    : (rules?.notify ?? 'none');
  const sources = config.roleSources?.roles ?? {};
  const slackGroups = [...new Set(roles.flatMap((role) => sources[role]?.slackGroups ?? []))];
  const discordRoles = [...new Set(roles.flatMap((role) => sources[role]?.discordRoles ?? []))];
  const eligible = (person: ResolvedPerson | undefined, identity: string): boolean =>
    person !== undefined &&
    (roles.includes(EVERYONE) || person.roles.some((role) => roles.includes(role))) &&
    decide({ person, identity, action: 'approve', environment: request.environment, policy: config.policy })
      .allowed &&
    !samePerson(config, request.requester, { person: person.name, identity });

  const slackUsers = new Set<string>();
  const discordUsers = new Set<string>();
  for (const listed of Object.values(config.people)) {
    const slack = listed.identities.slack;
    if (slack) {
      const user = slackUserOf(slack);
      if (user && eligible(resolvePerson(config, 'slack', slack), `slack:${slack}`)) slackUsers.add(user);
    }
    const discord = listed.identities.discord;
    if (discord && eligible(resolvePerson(config, 'discord', discord), `discord:${discord}`)) {
      discordUsers.add(discord);
    }
  }
  // Group listings carry user ids only; the workspace is the requester's, else the one people are listed in.
  const anyListed = Object.values(config.people).find((p) => p.identities.slack)?.identities.slack;
  const team =
    /^slack:([A-Z0-9]+)\//.exec(request.requester.identity)?.[1] ?? anyListed?.split('/')[0] ?? 'T';
  const requester = Object.values(config.people).find((p) => p.name === request.requester.person);
  const requesterSlack = requester?.identities.slack ? slackUserOf(requester.identities.slack) : undefined;
  const directory = directoryOf(config);
  for (const holder of directory?.holders() ?? []) {
    if (!roles.includes(holder.role)) continue;
    for (const group of holder.slack) {
      if (group.problem) continue;
      for (const user of group.members) {
        if (user === requesterSlack) continue;
        const identity = `${team}/${user}`;
        if (eligible(resolvePerson(config, 'slack', identity), `slack:${identity}`)) slackUsers.add(user);
      }
    }
    // Members whose observed (or listed) Discord roles map to an approving role; never the requester.
    for (const user of holder.discordMembers) {
      if (eligible(resolvePerson(config, 'discord', user), `discord:${user}`)) discordUsers.add(user);
    }
  }
  const need = request.approvalsRequired - request.votes.filter((v) => v.vote === 'approve').length;
  const summary = `needs ${Math.max(need, 1)} of: ${roles.length > 0 ? roles.join(', ') : 'nobody'} — not ${request.requester.person}`;
  return {
    mode,
    roles,
    slackGroups,
    discordRoles,
    slackUsers: [...slackUsers].sort(),
    discordUsers: [...discordUsers].sort(),
    summary,
  };
}
