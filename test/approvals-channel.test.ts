// Requests made outside chat announced in their environment's approvals channel by the running bot: once
// across two replicas (also from the built `dbops exec` in its own process), with the group mention on the
// card, approved from it with a signed click, escalated into its thread (injected clock); DMs with
// `notify: dm`; a channel it cannot post to named in /readyz; Discord's card pinging only the approver role.
import { resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blockAction, interactionBody, postSigned } from './fakes/slack.js';
import {
  announced,
  cardsOf,
  DAN,
  ROLE_DBA,
  request,
  SECRET,
  severalSweeps,
  startWorld,
  textOf,
  type World,
} from './helpers/announce.js';
import { adminQuery } from './helpers/db.js';

let w: World;

beforeAll(async () => {
  w = await startWorld('annc');
});

afterAll(async () => {
  await w?.close();
});

describe('requests made outside chat, announced in the approvals channel', () => {
  it('is announced once by two replicas, approved from that card, escalated into its thread', async () => {
    const made = await request(w, '/db vacuum prod exams --full');
    // The requester is told where approvers hear of it, in 80 columns.
    expect(made.text).toContain('Approvers are told in #ops-approvals by the running bot');
    for (const line of made.text.split('\n')) expect(line.length).toBeLessThanOrEqual(80);

    const card = await w.slack.until(() => cardsOf(w, made.id)[0], 'the card in the approvals channel');
    expect(String(card.body.text)).toContain('<!subteam^S0DBA> needs 1 of: dba — not bob');
    await severalSweeps();
    expect(cardsOf(w, made.id)).toHaveLength(1);
    const mark = await announced(w, made.id);
    expect(mark.at).toBeInstanceOf(Date);
    expect(mark.refs.slack).toEqual({
      channel: 'C0APPROVALS',
      ts: card.response?.ts,
      thread: card.response?.ts,
    });

    // Past escalate_after, whichever replica escalates posts in the card's thread.
    w.setNow(new Date(Date.now() + 11 * 60_000));
    const from = w.slack.calls.length;
    const swept = await Promise.all(w.replicas.map((r) => r.app.escalations.sweep()));
    expect(swept.flat().map((r) => r.id)).toEqual([made.id]);
    const escalation = await w.slack.until(
      () => w.slack.callsOf('chat.postMessage', from).find((c) => textOf(c).includes('Escalated')),
      'the escalation',
    );
    expect(escalation.body).toMatchObject({ channel: 'C0APPROVALS', thread_ts: card.response?.ts });
    expect(String(escalation.body.text)).toContain('<!subteam^S0LEAD>');

    // A signed click on that card (at the other replica) approves it under the usual checks.
    const click = interactionBody(
      blockAction(w.slack, {
        user: 'UDAN',
        channel: 'C0APPROVALS',
        messageTs: String(card.response?.ts),
        actionId: 'dbops_approve',
        value: String(made.id),
      }),
    );
    const answer = await postSigned(w.replicas[1]?.url ?? '', {
      secret: SECRET,
      body: click,
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(answer.status).toBe(200);
    await expect
      .poll(async () => (await w.cli.state.getRequest(made.id))?.status, { timeout: 15_000 })
      .toBe('succeeded');
    await w.slack.until(
      () =>
        w.slack
          .callsOf('chat.update', from)
          .find((c) => c.body.ts === card.response?.ts && textOf(c).includes('approved by')),
      'the card showing the decision',
    );
    w.setNow(new Date());
  });

  it('announces a request made by the built dbops exec in a process of its own', async () => {
    const from = w.slack.calls.length;
    const run = await execa(
      'node',
      [
        resolve('dist/src/cli.js'),
        'exec',
        '--config',
        w.configPath,
        '--as',
        'bob',
        '--',
        '/db vacuum prod exams --full',
      ],
      {
        env: { PATH: process.env.PATH ?? '', STATE_URL: w.stateDb.url, TARGET_URL: w.targetUrl },
        extendEnv: false,
        reject: false,
      },
    );
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain('Approvers are told in #ops-approvals by the running bot (dbops start).');
    const id = Number(/#(\d+)/.exec(run.stdout)?.[1]);
    const card = await w.slack.until(() => cardsOf(w, id)[0], 'the card of the exec request');
    expect(w.slack.calls.indexOf(card)).toBeGreaterThanOrEqual(from);
    await severalSweeps();
    expect(cardsOf(w, id)).toHaveLength(1);
    await adminQuery("UPDATE dbops_requests SET status = 'cancelled' WHERE id = $1", [id], w.stateDb.name);
  });

  it('with notify: dm, posts the card without a mention and sends it to each approver', async () => {
    const from = w.slack.calls.length;
    const made = await request(w, '/db vacuum dmt exams --full');
    const card = await w.slack.until(
      () =>
        w.slack
          .callsOf('chat.postMessage', from)
          .find((c) => c.body.channel === 'C0DMAPPROVALS' && textOf(c).includes('dbops_approve')),
      'the card in the dm environment’s channel',
    );
    expect(String(card.body.text)).toContain('needs 1 of: dba — not bob');
    expect(textOf(card)).not.toContain('subteam');
    const opened = await w.slack.until(
      () => w.slack.callsOf('conversations.open', from).find((c) => c.body.users === 'UDAN'),
      'the DM to dan',
    );
    expect(opened).toBeTruthy();
    await w.slack.until(
      () =>
        w.slack
          .callsOf('chat.postMessage', from)
          .find((c) => c.body.channel === 'DUDAN' && textOf(c).includes(`"value":"${made.id}"`)),
      'the card in the DM',
    );
    await adminQuery(
      "UPDATE dbops_requests SET status = 'cancelled' WHERE id = $1",
      [made.id],
      w.stateDb.name,
    );
  });

  it('says how to get it approved where no approvals channel is set, and posts nothing', async () => {
    const from = w.slack.calls.length;
    const made = await request(w, '/db vacuum lab exams --full');
    expect(made.text).toContain(`/db approve ${made.id} in chat`);
    expect(made.text).toContain('nobody is told');
    for (const line of made.text.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    await severalSweeps();
    expect(
      w.slack.callsOf('chat.postMessage', from).filter((c) => textOf(c).includes('dbops_approve')),
    ).toEqual([]);
    expect((await announced(w, made.id)).at).toBeNull();
  });

  it('names a channel it cannot post to in /readyz detail, and does not try it every sweep', async () => {
    const from = w.slack.calls.length;
    w.slack.fail = (method, body) =>
      method === 'chat.postMessage' && body.channel === 'C0APPROVALS' ? 'not_in_channel' : undefined;
    try {
      const made = await request(w, '/db vacuum prod exams --full');
      await w.slack.until(
        () => w.slack.callsOf('chat.postMessage', from).find((c) => c.body.channel === 'C0APPROVALS'),
        'the attempt',
      );
      await severalSweeps();
      // One attempt by one replica; the others wait out the retry time instead of trying every 2 s.
      expect(
        w.slack.callsOf('chat.postMessage', from).filter((c) => c.body.channel === 'C0APPROVALS'),
      ).toHaveLength(1);
      expect((await announced(w, made.id)).at).toBeNull();
      const detail = w.replicas.flatMap(
        (r) => r.surfaces.find((s) => s.name === 'approvals')?.detail?.() ?? [],
      );
      expect(detail.join('\n')).toContain('cannot be posted in slack:C0APPROVALS');
      expect(detail.join('\n')).toContain('not_in_channel');
      await adminQuery(
        "UPDATE dbops_requests SET status = 'cancelled' WHERE id = $1",
        [made.id],
        w.stateDb.name,
      );
    } finally {
      w.slack.fail = () => undefined;
    }
  });

  it('posts the Discord card in its channel pinging only the approver role, and approves from it', async () => {
    const from = w.discord.calls.length;
    const made = await request(w, '/db vacuum stage exams --full');
    const card = await w.discord.waitForCall(
      (c) =>
        w.discord.calls.indexOf(c) >= from &&
        c.method === 'POST' &&
        c.path === `/channels/${w.discord.channel.id}/messages` &&
        JSON.stringify(c.body).includes(`dbops:approve:${made.id}`),
      20_000,
    );
    expect(String(card.body.content)).toContain(`<@&${ROLE_DBA}> needs 1 of: dba — not bob`);
    expect(card.body.allowed_mentions).toEqual({ parse: [], roles: [ROLE_DBA] });
    await expect.poll(async () => (await announced(w, made.id)).at, { timeout: 10_000 }).toBeInstanceOf(Date);
    const refs = (await announced(w, made.id)).refs.discord as { channel: string; message: string };
    expect(refs.channel).toBe(w.discord.channel.id);
    w.discord.memberRoles.set(DAN.id, [ROLE_DBA]);
    w.discord.click(DAN, refs.message, `dbops:approve:${made.id}`);
    await expect
      .poll(async () => (await w.cli.state.getRequest(made.id))?.status, { timeout: 15_000 })
      .toBe('succeeded');
    // Only the Discord card was posted: Slack has no channel for this environment.
    expect(cardsOf(w, made.id)).toEqual([]);
  });
});
