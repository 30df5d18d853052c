// check-config warns about approval rules nobody can satisfy, naming the environment, the rule and the people.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approvalWarningLines, unsatisfiableApprovals } from '../src/config/approval-rules.js';
import { loadConfigText } from '../src/config/load.js';
import { createDatabase } from './helpers/db.js';

const ENV = { DB_URL: 'postgres://u@127.0.0.1:1/x' };

function config(people: string, policy: string) {
  // Every target's environment needs a policy; one nobody may request on adds no warning.
  if (!policy.includes('  staging:')) policy += '\n  staging: { read: [everyone] }';
  if (!policy.includes('  production:')) policy += '\n  production: { read: [everyone] }';
  const text = `state:
  url: \${DB_URL}
targets:
  kasm: { url: "\${DB_URL}", environment: production }
  staging: { url: "\${DB_URL}", environment: staging }
people:
${people}
policy:
${policy}
`;
  return { text, config: loadConfigText(text, 'dbops.yaml', ENV) };
}

const messages = (c: ReturnType<typeof config>) => unsatisfiableApprovals(c.config).map((w) => w.message);

describe('unsatisfiable approval rules', () => {
  it('fewer eligible approvers than approvals: names the environment, rule, approvers and requesters', () => {
    const c = config(
      '  alice: { cli: alice, roles: [dba] }\n  bob: { cli: bob, roles: [oncall] }',
      '  production: { read: [dba], request: [dba, oncall], approve: [dba], approvals: 2 }\n' +
        '  staging: { read: [everyone], request: [oncall], approve: [dba] }',
    );
    expect(messages(c)).toEqual([
      'policy.production (target kasm): approvals: 2 needs 2 approvers, but alice is the only person who may ' +
        'approve (approve: [dba]); destructive operations requested there by alice and bob can never run',
    ]);
    // file:line of the rule, as the other config messages say it.
    expect(approvalWarningLines(c.config, c.text)).toEqual([`dbops.yaml:10: ${messages(c)[0]}`]);
  });

  it('nobody at all may approve', () => {
    const c = config(
      '  alice: { cli: alice, roles: [dba] }',
      '  production: { read: [dba], request: [dba], approve: [] }',
    );
    expect(messages(c)).toEqual([
      'policy.production (target kasm): approvals: 1 needs an approver, but nobody may approve ' +
        '(approve: [] matches no person); destructive operations requested there by alice can never run',
    ]);
    expect(approvalWarningLines(c.config, c.text)[0]).toMatch(/^dbops\.yaml:9: /);
  });

  it('the only DBA is also the only one who may request: the requester never approves their own', () => {
    const c = config(
      '  alice: { cli: alice, roles: [dba] }\n  carol: { cli: carol, roles: [developer] }',
      '  production: { read: [everyone], request: [dba], sql_write: [dba], approve: [dba] }',
    );
    expect(messages(c)).toEqual([
      'policy.production (target kasm): destructive operations and SQL writes requested by alice can never be ' +
        'approved: approvals: 1 needs an approver other than the requester (nobody approves their own ' +
        'request), and alice is the only person who may approve (approve: [dba])',
    ]);
  });

  it('two approvers for approvals: 2 block exactly those two; others are fine', () => {
    const c = config(
      '  alice: { cli: alice, roles: [dba] }\n  dave: { cli: dave, roles: [dba] }\n  bob: { cli: bob, roles: [oncall] }',
      '  production: { read: [dba], request: [oncall, dba], approve: [dba], approvals: 2 }',
    );
    expect(messages(c)).toEqual([
      'policy.production (target kasm): destructive operations requested by alice and dave can never be ' +
        'approved: approvals: 2 needs 2 approvers other than the requester (nobody approves their own ' +
        'request), and only alice and dave may approve (approve: [dba])',
    ]);
  });

  it('approve_writes makes writes wait too; everyone as approver counts every person', () => {
    const c = config(
      '  alice: { cli: alice, roles: [dba] }',
      '  staging: { read: [everyone], write: [everyone], approve: [everyone], approve_writes: true }',
    );
    expect(messages(c)).toEqual([
      'policy.staging (target staging): write operations requested by alice can never be approved: ' +
        'approvals: 1 needs an approver other than the requester (nobody approves their own request), and ' +
        'alice is the only person who may approve (approve: [everyone])',
    ]);
  });

  it('satisfiable rules, and environments where nobody may request, say nothing', () => {
    const ok = config(
      '  alice: { cli: alice, roles: [dba] }\n  dave: { cli: dave, roles: [dba] }\n  bob: { cli: bob, roles: [oncall] }',
      '  production: { read: [dba], request: [oncall], approve: [dba], approvals: 2 }\n' +
        '  staging: { read: [everyone], approve: [] }',
    );
    expect(unsatisfiableApprovals(ok.config)).toEqual([]);
    expect(approvalWarningLines(ok.config, ok.text)).toEqual([]);
  });
});

describe('dbops check-config (built CLI)', () => {
  const CLI = resolve('dist/src/cli.js');
  const work = mkdtempSync(join(tmpdir(), 'dbops-approval-rules-'));
  let url: string;

  beforeAll(async () => {
    url = (await createDatabase('approval_rules')).url;
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('prints the warning with file:line and still exits 0 when every target is fine', async () => {
    const file = join(work, 'dbops.yaml');
    writeFileSync(
      file,
      `state:
  url: \${DB_URL}
targets:
  kasm: { url: "\${DB_URL}", environment: production }
people:
  alice: { cli: alice, roles: [dba] }
policy:
  production:
    read: [dba]
    request: [dba]
    approve: [dba]
`,
    );
    const run = await execa('node', [CLI, 'check-config', '--config', file], {
      env: { PATH: process.env.PATH ?? '', DB_URL: url },
      extendEnv: false,
      reject: false,
      timeout: 60_000,
    });
    const warnings = run.stdout
      .split('\n')
      .filter((l) => l.startsWith('warning: ') || l.startsWith('         '));
    // Wrapped to 80 columns (a word longer than that, the temp file's path, stays whole).
    for (const line of warnings.slice(1)) expect(line.length).toBeLessThanOrEqual(80);
    expect(warnings.join(' ').replace(/\s+/g, ' ')).toContain(
      `warning: ${file}:11: policy.production (target kasm): destructive operations requested by alice can ` +
        'never be approved',
    );
    expect(run.exitCode, run.stdout + run.stderr).toBe(0);
  });
});
