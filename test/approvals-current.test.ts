// Approvals judged on current facts: config edited (and dbops restarted) between request, vote and run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { as, type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery } from './helpers/db.js';

let fx: Fixture;
const apps: App[] = [];

beforeAll(async () => {
  fx = await makeFixture();
  await adminQuery(
    'CREATE TABLE t1 (id int); CREATE TABLE t2 (id int); CREATE TABLE t3 (id int); CREATE TABLE t4 (id int)',
    [],
    fx.staging.name,
  );
});

afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
});

/** The fixture's config with some lines of its YAML edited, as an operator would edit the file. */
function edited(...edits: [string, string][]): Config {
  let yaml = fx.yaml;
  for (const [from, to] of edits) {
    expect(yaml).toContain(from);
    yaml = yaml.replace(from, to);
  }
  return loadConfigText(yaml, 'edited.yaml', fx.env);
}

/** A dbops process started on a config (a restart after an edit, or another replica). */
async function dbops(config: Config, clock?: () => Date): Promise<App> {
  const app = await startApp(config, clock);
  apps.push(app);
  return app;
}

async function audit(requestId: number): Promise<string[]> {
  const rows = await adminQuery<{ event: string; outcome: string; identity: string }>(
    'SELECT event, outcome, identity FROM dbops_audit WHERE request_id = $1 ORDER BY id',
    [requestId],
    fx.state.name,
  );
  return rows.map((r) => `${r.event}:${r.outcome}:${r.identity}`);
}

describe('approvals judged on the config in force', () => {
  it('no longer counts the vote of a person whose approving role was removed', async () => {
    const before = await dbops(fx.config);
    const request = await as(before, 'bob')('/db vacuum kasm managers --full');
    expect(request.status).toBe('pending');
    const id = request.requestId ?? -1;
    expect((await as(before, 'alice')(`/db approve ${id}`)).message).toContain('approval 1 of 2');

    // alice stops being a DBA; dbops restarts on the edited file.
    const after = await dbops(
      edited([
        'alice: { cli: alice, slack: T1/UALICE, roles: [dba] }',
        'alice: { cli: alice, slack: T1/UALICE, roles: [developer] }',
      ]),
    );
    const second = await as(after, 'dave')(`/db approve ${id}`);
    expect(second.status).toBe('ok');
    expect(second.text).toContain('Approval 1 of 2');
    expect(second.text).toContain('alice may no longer approve on production');
    expect((await after.state.getRequest(id))?.status).toBe('pending');
  });

  it('re-judges an approved request when it runs: stale votes send it back to pending', async () => {
    const before = await dbops(fx.config);
    const request = await as(before, 'alice')('/db vacuum staging exams --full');
    const id = request.requestId ?? -1;
    // Approved (one approval on staging), but not started: as if its replica died before startRun.
    const vote = await before.state.approve(
      id,
      { person: 'bob', identity: 'cli:bob', surface: 'cli' },
      new Date(),
    );
    expect(vote.ok && vote.request.status).toBe('approved');

    const after = await dbops(
      edited(['approve: [oncall, dba] }\n  production', 'approve: [dba] }\n  production']),
    );
    await after.core.startWaitingRuns();
    const now = await after.state.getRequest(id);
    expect(now?.status).toBe('pending');
    expect(await audit(id)).toContain(`refused:stale_preview:dbops`);
  });

  it('voids a request whose target moved to another environment, at the vote and at the run', async () => {
    const before = await dbops(fx.config);
    const pending = await as(before, 'bob')('/db vacuum staging exams --full');
    const approvedEarlier = await as(before, 'bob')('/db vacuum staging t1 --full');
    const approvedId = approvedEarlier.requestId ?? -1;
    await before.state.approve(
      approvedId,
      { person: 'alice', identity: 'cli:alice', surface: 'cli' },
      new Date(),
    );

    // staging becomes production; bob (oncall) is not a production approver, dave (dba) is.
    const after = await dbops(edited(['    environment: staging\n', '    environment: production\n']));
    const vote = await as(after, 'dave')(`/db approve ${pending.requestId}`);
    expect(vote).toMatchObject({ status: 'refused', code: 'stale_preview' });
    expect(vote.message).toContain('moved from staging to production');
    const voided = await after.state.getRequest(pending.requestId ?? -1);
    expect(voided?.status).toBe('cancelled');
    expect(voided?.votes).toEqual([]);
    expect(await audit(pending.requestId ?? -1)).toContain('cancelled:void:dbops');

    await after.core.startWaitingRuns();
    expect((await after.state.getRequest(approvedId))?.status).toBe('cancelled');
    expect(await audit(approvedId)).toContain('cancelled:void:dbops');
    expect(await audit(approvedId)).not.toContain('executed:ok:dbops');
  });

  it('refuses self-approval by identity after the requester was renamed', async () => {
    const before = await dbops(fx.config);
    const request = await as(before, 'alice')('/db vacuum staging exams --full');
    const id = request.requestId ?? -1;
    const after = await dbops(edited(['  alice: {', '  alice2: {']));
    for (const [identity, surface] of [
      ['alice', 'cli'],
      ['T1/UALICE', 'slack'],
    ] as const) {
      const self = await as(after, identity, surface)(`/db approve ${id}`);
      expect(self).toMatchObject({ status: 'refused', code: 'self_approval' });
    }
    expect((await after.state.getRequest(id))?.votes).toEqual([]);
  });
});

describe('approved requests that could not start', () => {
  it('are started by dbops when the target frees, never by a third party, and expire otherwise', async () => {
    let now = new Date();
    const app = await dbops(fx.config, () => now);
    const first = await as(app, 'bob')('/db vacuum staging exams --full');
    const second = await as(app, 'bob')('/db vacuum staging t1 --full');
    const third = await as(app, 'bob')('/db vacuum staging t2 --full');
    const [a, b, c] = [first, second, third].map((r) => r.requestId ?? -1) as [number, number, number];
    // #a runs elsewhere (another replica): approved and started directly in the store.
    await app.state.approve(a, { person: 'alice', identity: 'cli:alice', surface: 'cli' }, now);
    expect((await app.state.startRun(a, now)).ok).toBe(true);

    const busy = await as(app, 'alice')(`/db approve ${b}`);
    expect(busy).toMatchObject({ status: 'refused', code: 'target_busy' });
    expect((await app.state.getRequest(b))?.status).toBe('approved');
    // dave never voted on #b: he may not start it.
    const thirdParty = await as(app, 'dave')(`/db approve ${b}`);
    expect(thirdParty).toMatchObject({ status: 'refused', code: 'not_pending' });
    expect(thirdParty.message).toContain('already approved by alice');
    expect((await app.state.getRequest(b))?.status).toBe('approved');

    await as(app, 'alice')(`/db approve ${c}`);
    expect((await app.state.getRequest(c))?.status).toBe('approved');

    // #a ends; the sweep starts the oldest waiting request as dbops.
    await app.state.finishRun(a, { status: 'succeeded' }, now);
    await app.core.startWaitingRuns();
    await expect
      .poll(async () => (await app.state.getRequest(b))?.status, { timeout: 30_000 })
      .toBe('succeeded');
    expect(await audit(b)).toContain('executed:ok:dbops');
    // The end of #b started #c as well (same replica, target free again).
    await expect
      .poll(async () => (await app.state.getRequest(c))?.status, { timeout: 30_000 })
      .toBe('succeeded');

    // The requester may still withdraw an approved request that waits for its target.
    const withdrawn = await as(app, 'bob')('/db vacuum staging t1 --full');
    const w = withdrawn.requestId ?? -1;
    const busyAgain = (await as(app, 'bob')('/db vacuum staging t2 --full')).requestId ?? -1;
    await app.state.approve(busyAgain, { person: 'alice', identity: 'cli:alice', surface: 'cli' }, now);
    expect((await app.state.startRun(busyAgain, now)).ok).toBe(true);
    expect((await as(app, 'alice')(`/db approve ${w}`)).code).toBe('target_busy');
    expect((await as(app, 'bob')(`/db cancel ${w}`)).status).toBe('ok');
    expect((await app.state.getRequest(w))?.status).toBe('cancelled');
    await app.state.finishRun(busyAgain, { status: 'succeeded' }, now);

    // One more approved request that cannot start, then its time runs out: it expires like a pending one.
    const fourth = await as(app, 'bob')('/db vacuum staging t3 --full');
    const d = fourth.requestId ?? -1;
    const e = (await as(app, 'bob')('/db vacuum staging t4 --full')).requestId ?? -1;
    await app.state.approve(e, { person: 'alice', identity: 'cli:alice', surface: 'cli' }, now);
    expect((await app.state.startRun(e, now)).ok).toBe(true);
    expect((await as(app, 'alice')(`/db approve ${d}`)).code).toBe('target_busy');
    now = new Date(now.getTime() + 2 * 3600_000);
    const expired = await app.core.sweepExpired();
    expect(expired.map((r) => r.id)).toContain(d);
    expect((await app.state.getRequest(d))?.status).toBe('expired');
    expect(await audit(d)).toContain('expired:expired:dbops');
  });
});
