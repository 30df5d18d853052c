// `dbops check-config` with the Slack token: who holds each role (listed people, Slack group members, Discord
// role ids), and a group the bot cannot read named as a problem (exit 1).
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeSlack } from './fakes/slack.js';
import { createDatabase } from './helpers/db.js';

const CLI = resolve('dist/src/cli.js');

const CONFIG = `
state:
  url: \${STATE_URL}
targets:
  staging:
    url: \${STAGING_URL}
    environment: staging
people:
  alice: { slack: T1/UALICE, roles: [dba] }
role_sources:
  roles:
    dba: { slack_groups: [S0DBA], discord_roles: ["300000000000000777"] }
    auditor: { slack_groups: [S0SECRET] }
policy:
  staging: { read: [dba, auditor], request: [dba], approve: [dba] }
`;

let fake: FakeSlack;
let path: string;
let env: Record<string, string>;

beforeAll(async () => {
  const [state, staging] = await Promise.all([
    createDatabase('ccroles_state'),
    createDatabase('ccroles_staging'),
  ]);
  fake = await FakeSlack.start();
  fake.userGroups.set('S0DBA', ['UDAN', 'UERIN']);
  fake.fail = (method, body) =>
    method === 'usergroups.users.list' && body.usergroup === 'S0SECRET' ? 'missing_scope' : undefined;
  path = join(tmpdir(), `dbops-ccroles-${state.name}.yaml`);
  writeFileSync(path, CONFIG);
  env = { PATH: process.env.PATH ?? '', STATE_URL: state.url, STAGING_URL: staging.url };
});

afterAll(async () => {
  await fake?.close();
});

describe('check-config and roles from chat platforms', () => {
  it('prints who holds each role and names a group it cannot read', async () => {
    const run = await execa('node', [CLI, 'check-config', '--config', path], {
      env: { ...env, SLACK_BOT_TOKEN: 'xoxb-test', SLACK_API_URL: fake.apiUrl, SLACK_API_RETRIES: '0' },
      extendEnv: false,
      reject: false,
    });
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain('Who holds each role:');
    expect(run.stdout).toMatch(
      / {2}dba\n {4}listed: alice\n {4}slack S0DBA: UDAN, UERIN\n {4}discord role 300000000000000777/,
    );
    expect(run.stdout).toContain('problem: role auditor: Slack group S0SECRET cannot be read');
    expect(run.stdout).toContain('missing_scope');
    expect(run.exitCode).toBe(1);
    const section = run.stdout.slice(run.stdout.indexOf('Who holds each role:')).split('\n');
    for (const line of section.filter((l) => !l.startsWith('problem:')))
      expect(line.length).toBeLessThanOrEqual(80);
  });

  it('without the token, says the groups were not read', async () => {
    const run = await execa('node', [CLI, 'check-config', '--config', path], {
      env,
      extendEnv: false,
      reject: false,
    });
    expect(run.stdout).toContain('Slack groups were not read: set SLACK_BOT_TOKEN');
    expect(run.stdout).toContain('listed: alice');
    expect(run.exitCode).toBe(0);
  });
});
