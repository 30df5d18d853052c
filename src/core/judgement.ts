// Judges an approval request on current facts: the policy in force now, the target's environment now,
// and who each identity belongs to now (people are compared by identities, never by name alone).
import { resolvePerson } from '../config/load.js';
import type { Config, ResolvedPerson } from '../config/schema.js';
import type { ApprovalRequest, Vote } from '../state/types.js';
import { decide } from './policy.js';
import { IDENTITY_KINDS, type IdentityKind } from './types.js';

/** Who holds an audited identity ("slack:T1/U1", "cli:alice") under this config, if anyone. */
export function personOfIdentity(config: Config, identity: string): ResolvedPerson | undefined {
  const at = identity.indexOf(':');
  const kind = identity.slice(0, at);
  if (at < 0 || !(IDENTITY_KINDS as readonly string[]).includes(kind)) return undefined;
  return resolvePerson(config, kind as IdentityKind, identity.slice(at + 1));
}

/**
 * True when two actors are the same human: the same identity, the same person (now) holding both
 * identities, or the same person name when each acted. A renamed person keeps their identities, so
 * renaming never makes a requester someone else.
 */
export function samePerson(
  config: Config,
  a: { person: string; identity: string },
  b: { person: string; identity: string },
): boolean {
  if (a.identity === b.identity || a.person === b.person) return true;
  const nowA = personOfIdentity(config, a.identity);
  const nowB = personOfIdentity(config, b.identity);
  return nowA !== undefined && nowB !== undefined && nowA.name === nowB.name;
}

export type Judgement =
  | { valid: false; reason: string }
  | {
      valid: true;
      /** Approve votes that count now: one per person, each still holding an approving role. */
      counted: Vote[];
      /** Approve votes that no longer count, with why. */
      discounted: { vote: Vote; why: string }[];
      /** Approvals the policy in force requires now. */
      required: number;
      reached: boolean;
    };

/** A request judged valid under the current config. */
export type Standing = Extract<Judgement, { valid: true }>;

/** The request as the current config sees it: void, or which votes count toward how many. */
export function judge(config: Config, request: ApprovalRequest): Judgement {
  const target = config.targets[request.target];
  if (!target) {
    return {
      valid: false,
      reason: `target ${request.target} is no longer configured, so #${request.id} is void`,
    };
  }
  if (target.environment !== request.environment) {
    return {
      valid: false,
      reason: `${request.target} moved from ${request.environment} to ${target.environment} since #${request.id} was requested, so the request is void; ask again under the ${target.environment} policy`,
    };
  }
  const rules = config.policy[target.environment];
  if (!rules) {
    return {
      valid: false,
      reason: `environment ${target.environment} has no policy any more, so #${request.id} is void`,
    };
  }
  const counted: Vote[] = [];
  const discounted: { vote: Vote; why: string }[] = [];
  const seen = new Set<string>();
  for (const vote of request.votes) {
    if (vote.vote !== 'approve') continue;
    const person = personOfIdentity(config, vote.identity);
    let why: string | undefined;
    if (!person)
      why = `${vote.identity} belongs to nobody in the config now${config.roleSources ? ', and no group or role grants it one' : ''}`;
    else if (samePerson(config, request.requester, vote)) why = `${person.name} is the requester`;
    else if (seen.has(person.name)) why = `${person.name} already counted`;
    else if (
      !decide({
        person,
        identity: vote.identity,
        action: 'approve',
        environment: target.environment,
        policy: config.policy,
      }).allowed
    )
      why = `${person.name} may no longer approve on ${target.environment}`;
    if (why !== undefined || !person) discounted.push({ vote, why: why ?? '' });
    else {
      seen.add(person.name);
      counted.push(vote);
    }
  }
  return {
    valid: true,
    counted,
    discounted,
    required: rules.approvals,
    reached: counted.length >= rules.approvals,
  };
}
