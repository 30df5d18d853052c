import { describe, expect, it } from 'vitest';
import type { EnvironmentPolicy, ResolvedPerson } from '../src/config/schema.js';
import { type Action, actionForRisk, allowedActions, decide } from '../src/core/policy.js';

const rules = (over: Partial<EnvironmentPolicy>): EnvironmentPolicy => ({
  read: [],
  write: [],
  request: [],
  approve: [],
  approvals: 1,
  approve_writes: false,
  ...over,
});

const policy = {
  staging: rules({
    read: ['everyone'],
    write: ['oncall', 'dba'],
    request: ['oncall', 'dba'],
    approve: ['oncall', 'dba'],
  }),
  production: rules({
    read: ['oncall', 'dba'],
    write: ['dba'],
    request: ['oncall', 'dba'],
    approve: ['dba'],
    approvals: 2,
    approve_writes: true,
  }),
  locked: rules({}),
};

const person = (name: string, roles: string[]): ResolvedPerson => ({
  name,
  roles,
  identities: { cli: name },
});
const alice = person('alice', ['dba']);
const bob = person('bob', ['oncall']);
const carol = person('carol', ['developer']);
const nobody = person('nemo', []);

type Row = [
  who: ResolvedPerson | undefined,
  action: Action,
  env: string,
  allowed: boolean,
  needsApproval?: boolean,
];
const table: Row[] = [
  [carol, 'read', 'staging', true, false],
  [nobody, 'read', 'staging', true, false], // everyone = every known person
  [undefined, 'read', 'staging', false],
  [carol, 'write', 'staging', false],
  [bob, 'write', 'staging', true, false],
  [bob, 'request', 'staging', true, true],
  [bob, 'approve', 'staging', true, false],
  [carol, 'approve', 'staging', false],
  [carol, 'read', 'production', false],
  [bob, 'read', 'production', true, false],
  [bob, 'write', 'production', false],
  [alice, 'write', 'production', true, true], // approve_writes
  [bob, 'request', 'production', true, true],
  [bob, 'approve', 'production', false],
  [alice, 'approve', 'production', true, false],
  [alice, 'read', 'locked', false], // empty rules deny
  [alice, 'read', 'nowhere', false], // unknown environment: deny by default
];

describe('policy.decide', () => {
  it.each(table)('%o %s on %s → allowed=%s', (who, action, environment, allowed, needsApproval) => {
    const decision = decide({ person: who, identity: 'cli:x', action, environment, policy });
    expect(decision.allowed).toBe(allowed);
    if (decision.allowed) expect(decision.needsApproval).toBe(needsApproval);
    else expect(decision.reason.length).toBeGreaterThan(10);
  });

  it('says which roles are needed and which the person has', () => {
    const decision = decide({
      person: bob,
      identity: 'cli:bob',
      action: 'approve',
      environment: 'production',
      policy,
    });
    expect(decision).toEqual({
      allowed: false,
      action: 'approve',
      reason: 'bob may not approve requests on production: that needs one of the roles dba (bob has oncall)',
    });
  });

  it('names the unknown identity', () => {
    const decision = decide({
      person: undefined,
      identity: 'slack:T1/U9',
      action: 'read',
      environment: 'staging',
      policy,
    });
    expect(decision.allowed).toBe(false);
    if (!decision.allowed) expect(decision.reason).toContain('slack:T1/U9');
  });

  it('carries the number of approvals of the environment', () => {
    const decision = decide({
      person: bob,
      identity: 'cli:bob',
      action: 'request',
      environment: 'production',
      policy,
    });
    expect(decision).toMatchObject({ allowed: true, approvalsRequired: 2 });
  });

  it('maps risks to actions', () => {
    expect([actionForRisk('read'), actionForRisk('write'), actionForRisk('destructive')]).toEqual([
      'read',
      'write',
      'request',
    ]);
  });

  it('lists what a person may do', () => {
    expect(allowedActions(bob, 'staging', policy)).toEqual(['read', 'write', 'request', 'approve']);
    expect(allowedActions(carol, 'production', policy)).toEqual([]);
  });
});
