// The approvals channel's config (ids validated), check-config's warnings about requests that would reach
// nobody, what `dbops exec` says about a request, and the line on the cards that says who is asked:
// mentions only with `notify: mention`, only of ids shaped like the platform's, hostile text escaped.
import { describe, expect, it } from 'vitest';
import { approvalsChannelWarnings } from '../src/config/approvals-channel.js';
import { loadConfigText } from '../src/config/load.js';
import type { ApproverNotice } from '../src/identity/approvers.js';
import { toldLines } from '../src/notify/approvals-told.js';
import type { ApprovalRequest } from '../src/state/types.js';
import { renderRequestCard } from '../src/surfaces/discord/render.js';
import { askBlock, askLine, renderCard } from '../src/surfaces/slack/cards.js';

const config = (production: string) =>
  loadConfigText(
    `
state: { url: postgres://state@localhost/state }
targets:
  prod: { url: postgres://t@localhost/t, environment: production }
people:
  alice: { cli: alice, roles: [oncall] }
  dan: { cli: dan, roles: [dba] }
policy:
  production: ${production}
`,
    'approvals-channel.yaml',
    {},
  );

const BASE = '{ read: [oncall, dba], request: [oncall, dba], approve: [dba]';

function request(overrides: Partial<ApprovalRequest> = {}): ApprovalRequest {
  return {
    id: 12,
    status: 'pending',
    operation: 'vacuum',
    target: 'prod',
    environment: 'production',
    args: {},
    command: 'vacuum prod <!channel> *bold* \u202Eexe',
    risk: 'destructive',
    requester: { person: 'alice', identity: 'cli:alice', surface: 'cli' },
    preview: { result: { kind: 'table', columns: [], rows: [] } as never, state: null },
    approvalsRequired: 1,
    votes: [],
    createdAt: new Date(),
    expiresAt: new Date(Date.now() + 600_000),
    updatedAt: new Date(),
    refs: {},
    ...overrides,
  };
}

function notice(mode: ApproverNotice['mode']): ApproverNotice {
  return {
    mode,
    roles: ['dba'],
    slackGroups: ['S0DBA', 'S0DBA>|<!channel', 'here'],
    discordRoles: ['300000000000000777', '@everyone'],
    slackUsers: [],
    discordUsers: [],
    summary: 'needs 1 of: dba — not alice',
  };
}

describe('approvals_channel in the config', () => {
  it('takes a Slack channel id and a Discord snowflake', () => {
    const loaded = config(
      `${BASE}, approvals_channel: { slack: C0APPROVALS, discord: "1122334455667788", name: "#ops" } }`,
    );
    expect(loaded.policy.production?.approvals_channel).toEqual({
      slack: 'C0APPROVALS',
      discord: '1122334455667788',
      name: '#ops',
    });
  });

  it('refuses a channel name, a mention, or neither surface', () => {
    expect(() => config(`${BASE}, approvals_channel: { slack: "#ops-approvals" } }`)).toThrow(
      /Slack channel id/,
    );
    expect(() => config(`${BASE}, approvals_channel: { discord: "<#123456>" } }`)).toThrow(/snowflake/);
    expect(() => config(`${BASE}, approvals_channel: { name: "#ops" } }`)).toThrow(/slack and\/or discord/);
  });
});

describe('check-config warnings', () => {
  it('warns when approvers are notified but requests made outside chat would reach nobody', () => {
    const warnings = approvalsChannelWarnings(config(`${BASE}, notify: mention }`), {});
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('policy.production: notify: mention');
    expect(warnings[0]).toContain('reach nobody');
    expect(approvalsChannelWarnings(config(`${BASE} }`), {})).toEqual([]);
  });

  it('warns when the channel is on a surface dbops start would not run', () => {
    const loaded = config(
      `${BASE}, notify: dm, approvals_channel: { slack: C0APPROVALS, discord: "1122334455667788" } }`,
    );
    expect(approvalsChannelWarnings(loaded, { SLACK_BOT_TOKEN: 'xoxb-1' })).toEqual([
      'policy.production.approvals_channel.discord: 1122334455667788 is never posted to: DISCORD_TOKEN is not set, so dbops start runs no Discord surface',
    ]);
    expect(approvalsChannelWarnings(loaded, { SLACK_BOT_TOKEN: 'x', DISCORD_TOKEN: 'y' })).toEqual([]);
  });
});

describe('what dbops exec says about a request', () => {
  it('names the channel, or says how to get it approved, in 80 columns; nothing for chat requests', () => {
    const withChannel = config(
      `${BASE}, approvals_channel: { slack: C0APPROVALS, name: "#ops-approvals" } }`,
    );
    expect(toldLines(withChannel, request(), 'cli')).toBe(
      'Approvers are told in #ops-approvals by the running bot (dbops start).',
    );
    const without = toldLines(config(`${BASE} }`), request(), 'console') ?? '';
    expect(without).toContain('/db approve 12 in chat');
    expect(without).toContain('dbops exec --as <approver> -- "/db approve 12"');
    expect(without).toContain('(dba)');
    for (const line of without.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    expect(toldLines(withChannel, request(), 'slack')).toBeUndefined();
  });
});

describe('who is asked, on the card', () => {
  it('Slack: mentions only well-formed group ids, and only with notify: mention', () => {
    const line = askLine(request(), notice('mention'));
    expect(line).toBe('<!subteam^S0DBA> needs 1 of: dba — not alice');
    const block = JSON.stringify(askBlock(request(), notice('mention')));
    expect(block.match(/usergroup_id/g)).toHaveLength(1);
    expect(block).toContain('"usergroup_id":"S0DBA"');
    for (const mode of ['none', 'dm'] as const) {
      const card = renderCard(request(), ['dba'], notice(mode));
      expect(card.text).toContain('needs 1 of: dba — not alice');
      expect(JSON.stringify(card.blocks)).toContain('needs 1 of: dba — not ');
      expect(JSON.stringify(card)).not.toContain('subteam');
      expect(JSON.stringify(card)).not.toContain('usergroup');
    }
  });

  it('Slack: the command on the card is text (no mention, markup or bidi override)', () => {
    const card = JSON.stringify(renderCard(request(), ['dba'], notice('mention')));
    expect(card).not.toContain('<!channel>');
    expect(card).not.toContain('\u202E');
  });

  it('Slack: a decided card drops the line; one with a vote shows the need left', () => {
    const vote = {
      person: 'dan',
      identity: 'cli:dan',
      surface: 'cli' as const,
      vote: 'approve' as const,
      at: new Date(),
    };
    const voted = renderCard(request({ approvalsRequired: 2, votes: [vote] }), ['dba'], notice('mention'));
    expect(voted.text).toContain('<!subteam^S0DBA> needs 1 of: dba');
    const decided = renderCard(request({ status: 'succeeded', votes: [vote] }), ['dba'], notice('mention'));
    expect(JSON.stringify(decided)).not.toContain('subteam');
    expect(JSON.stringify(decided)).not.toContain('usergroup');
    expect(JSON.stringify(decided)).toContain('approved by dan');
  });

  it('Discord: the role is mentioned and allowed only when the card is first posted', () => {
    const first = renderRequestCard(request(), {
      approverRoles: ['dba'],
      notice: notice('mention'),
      ping: true,
    });
    expect(first.content).toContain('<@&300000000000000777> needs 1 of: dba — not alice');
    expect(first.content).not.toContain('@everyone');
    expect(first.mentionRoles).toEqual(['300000000000000777']);
    const edit = renderRequestCard(request(), { approverRoles: ['dba'], notice: notice('mention') });
    expect(edit.mentionRoles).toBeUndefined();
    const none = renderRequestCard(request(), { approverRoles: ['dba'], notice: notice('none'), ping: true });
    expect(none.content).toContain('needs 1 of: dba — not alice');
    expect(none.content).not.toContain('<@&');
    expect(none.mentionRoles).toBeUndefined();
  });
});
