// `--reason "…"`: required per environment with a pattern, stored with the request, in the audit and in
// `/db status`, and shown escaped on the Slack and Discord cards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { tokenize } from '../src/core/grammar.js';
import { cleanReason, takeReason } from '../src/identity/reason.js';
import { renderRequestCard } from '../src/surfaces/discord/render.js';
import { renderCard } from '../src/surfaces/slack/cards.js';
import { as, type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery } from './helpers/db.js';

let fx: Fixture;
let dbops: App;

beforeAll(async () => {
  fx = await makeFixture();
  const production =
    'production:  { read: [oncall, dba], write: [dba], request: [oncall, dba], approve: [dba], approvals: 2 }';
  expect(fx.yaml).toContain(production);
  const yaml = fx.yaml.replace(
    production,
    `production:  { read: [oncall, dba], write: [dba], request: [oncall, dba], approve: [dba], approvals: 2, reason_pattern: 'INC-\\d+' }`,
  );
  dbops = await startApp(loadConfigText(yaml, 'reason.yaml', fx.env));
});

afterAll(async () => {
  await dbops?.close();
});

describe('--reason', () => {
  it('is taken out of the command, cleaned and capped', () => {
    const { reason, rest } = takeReason(tokenize('kasm managers --reason "INC-7\u0007  disk\nfull" --full'));
    expect(reason).toBe('INC-7 disk full');
    expect(rest.map((t) => (t.kind === 'word' ? t.text : `--${t.name}`))).toEqual([
      'kasm',
      'managers',
      '--full',
    ]);
    expect(takeReason(tokenize('x --reason=INC-1')).reason).toBe('INC-1');
    expect(() => takeReason(tokenize('x --reason'))).toThrow(/needs a value/);
    expect(() => takeReason(tokenize('x --reason a --reason b'))).toThrow(/twice/);
    expect([...cleanReason('x'.repeat(1000))].length).toBe(300);
  });

  it('is required where the environment says so, and must match its pattern', async () => {
    const bob = as(dbops, 'bob');
    const none = await bob('/db vacuum kasm managers --full');
    expect(none.status).toBe('invalid');
    expect(none.message).toContain('need a reason');
    const wrong = await bob('/db vacuum kasm managers --full --reason "because"');
    expect(wrong.message).toContain('INC-\\d+');
    expect(wrong.status).toBe('invalid');
    // staging has no rule: a request goes ahead without one.
    expect((await bob('/db vacuum staging exams --full')).status).toBe('pending');
  });

  it('is stored with the request, audited and shown by /db status', async () => {
    const reason = 'INC-4711 <!channel> *urgent* @here';
    const request = await as(dbops, 'bob')(`/db vacuum kasm managers --full --reason '${reason}'`);
    expect(request.status).toBe('pending');
    const id = request.requestId ?? -1;
    expect(request.request?.requestReason).toBe(reason);
    expect(request.request?.command).not.toContain('INC-4711');
    const stored = await dbops.state.getRequest(id);
    expect(stored?.requestReason).toBe(reason);
    const audit = await adminQuery<{ event: string; reason: string | null }>(
      "SELECT event, detail->>'reason' AS reason FROM dbops_audit WHERE request_id = $1 ORDER BY id",
      [id],
      fx.state.name,
    );
    expect(audit.find((a) => a.event === 'pending')?.reason).toBe(reason);
    const status = await as(dbops, 'alice')(`/db status ${id}`);
    expect(status.text).toContain(`Reason: ${reason}`);

    if (!stored) throw new Error('request not stored');
    const slack = JSON.stringify(renderCard(stored, ['dba']).blocks);
    expect(slack).toContain('INC-4711 &lt;!channel&gt;');
    expect(slack).not.toContain('<!channel>');
    const discord = JSON.stringify(renderRequestCard(stored, { approverRoles: ['dba'] }).embeds);
    expect(discord).toContain('INC-4711');
    expect(discord).toContain('\\\\*urgent\\\\*');
  });
});
