// Roles from the chat platforms through the whole core: Slack user groups (refresh, TTL, failures kept for
// a bounded time, removal after a vote) and Discord role ids from the payload, with an injected clock.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { as, type Fixture, makeFixture, startApp } from './helpers/app.js';

let fx: Fixture;
const apps: App[] = [];

const SOURCES = `
role_sources:
  refresh: 60s
  keep_last_known: 10m
  roles:
    dba: { slack_groups: [S0DBA], discord_roles: ["555000111"] }
    oncall: { slack_groups: [S0ONCALL] }
`;

/** Slack's answer per group, editable by a test; a string is the error Slack gives. */
const groups = new Map<string, string[] | string>();
let now = new Date('2026-12-06T08:00:00Z');
const clock = () => now;
const advance = (seconds: number) => {
  now = new Date(now.getTime() + seconds * 1000);
};

async function app(): Promise<App> {
  const config = loadConfigText(fx.yaml + SOURCES, 'roles.yaml', fx.env);
  const started = await startApp(config, clock);
  started.directory.useSlack(async (group) => {
    const answer = groups.get(group);
    if (answer === undefined) throw new Error('An API error occurred: no_such_subteam');
    if (typeof answer === 'string') throw new Error(`An API error occurred: ${answer}`);
    return answer;
  });
  await started.directory.refresh();
  apps.push(started);
  return started;
}

beforeAll(async () => {
  fx = await makeFixture();
});

afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
});

describe('roles from Slack user groups', () => {
  it('grants a role to a group member nobody listed, and revokes it after a membership change and the TTL', async () => {
    groups.set('S0DBA', ['UDAN']);
    groups.set('S0ONCALL', []);
    const dbops = await app();
    const dan = as(dbops, 'T1/UDAN', 'slack');
    const first = await dan('/db vacuum kasm managers --full');
    expect(first.status).toBe('pending');
    expect(first.request?.requester.person).toBe('slack:T1/UDAN');

    groups.set('S0DBA', []);
    // Within the TTL the membership read last still holds.
    advance(30);
    expect((await dan('/db sizes kasm')).status).toBe('ok');
    // Past it, a resolution starts a background read; the one after it sees the new membership.
    advance(31);
    await dan('/db sizes kasm');
    await dbops.directory.refresh();
    const denied = await dan('/db sizes kasm');
    expect(denied.status).toBe('refused');
    expect(denied.message).toContain('not in dbops');
  });

  it('adds group roles to a listed person without taking theirs away', async () => {
    groups.set('S0DBA', ['UALICE']);
    groups.set('S0ONCALL', ['UCAROL']);
    const dbops = await app();
    // alice (listed, dba) keeps dba; through Slack she is also whatever her groups say.
    expect((await as(dbops, 'T1/UALICE', 'slack')('/db sizes kasm')).status).toBe('ok');
    // carol is listed only by her CLI name: her Slack identity is a different person until linked.
    const viaSlack = await as(dbops, 'T1/UCAROL', 'slack')('/db sizes kasm');
    expect(viaSlack.status).toBe('ok');
    expect((await as(dbops, 'carol')('/db sizes kasm')).status).toBe('refused');
  });

  it('no longer counts the vote of someone removed from the approver group after voting', async () => {
    groups.set('S0DBA', ['UERIN', 'UFRANK']);
    groups.set('S0ONCALL', []);
    const dbops = await app();
    const request = await as(dbops, 'bob')('/db vacuum kasm managers --full');
    expect(request.status).toBe('pending');
    const id = request.requestId ?? -1;
    expect((await as(dbops, 'T1/UERIN', 'slack')(`/db approve ${id}`)).message).toContain('approval 1 of 2');

    groups.set('S0DBA', ['UFRANK']);
    advance(61);
    await dbops.directory.refresh();
    const second = await as(dbops, 'T1/UFRANK', 'slack')(`/db approve ${id}`);
    expect(second.message).toContain('approval 1 of 2');
    expect(second.text).toContain('slack:T1/UERIN belongs to nobody');
    expect((await dbops.state.getRequest(id))?.status).toBe('pending');
  });

  it('keeps the last known membership while a group cannot be read, for keep_last_known, then denies with the reason', async () => {
    groups.set('S0DBA', ['UGWEN']);
    groups.set('S0ONCALL', []);
    const dbops = await app();
    const gwen = as(dbops, 'T1/UGWEN', 'slack');
    expect((await gwen('/db sizes kasm')).status).toBe('ok');

    groups.set('S0DBA', 'missing_scope');
    advance(5 * 60);
    await dbops.directory.refresh();
    expect((await gwen('/db sizes kasm')).status).toBe('ok');
    expect(dbops.directory.problems().join('\n')).toContain(
      'S0DBA cannot be read (An API error occurred: missing_scope)',
    );

    advance(6 * 60);
    await dbops.directory.refresh();
    const refused = await gwen('/db sizes kasm');
    expect(refused.status).toBe('refused');
    expect(refused.message).toContain(
      'roles from Slack groups are unavailable: Slack group S0DBA was last read',
    );
    const problems = dbops.directory.problems().join('\n');
    expect(problems).toContain('S0DBA was last read at');
    expect(problems).toContain('missing_scope');
  });
});

describe('roles from Discord role ids', () => {
  it('maps the payload’s role ids to roles; no roles in the payload means none', async () => {
    groups.set('S0DBA', []);
    const dbops = await app();
    const hank = (memberRoles?: string[]) =>
      dbops.core.dispatch({
        surface: 'discord',
        identity: '99887766554433',
        text: '/db sizes kasm',
        ...(memberRoles ? { memberRoles } : {}),
      });
    expect((await hank(['555000111'])).status).toBe('ok');
    expect((await hank([])).status).toBe('refused');
    expect((await hank()).status).toBe('refused');
    // bob is listed (oncall) with his Discord id: a mapped role adds dba on production.
    const bob = await dbops.core.dispatch({
      surface: 'discord',
      identity: '80351110224678912',
      text: '/db vacuum kasm managers --full',
      memberRoles: ['555000111'],
    });
    expect(bob.status).toBe('pending');
    // …and he still cannot approve his own request through another identity.
    const self = await as(dbops, 'bob')(`/db approve ${bob.requestId}`);
    expect(self.status).not.toBe('ok');
    expect(self.message).toContain('a different person');
  });
});
