// Scheduled backups: retention (which files go, audited; never the newest verified), verification, a
// failed backup posted to its channel, /db run-schedule and /db schedules, check-config and /readyz.
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { silentLogger } from '../src/core/log.js';
import type { ChannelRef, OutgoingPost } from '../src/notify/poster.js';
import { readiness } from '../src/observability/server.js';
import { planRetention } from '../src/schedules/retention.js';
import { adminQuery } from './helpers/db.js';
import {
  apps,
  BASE,
  config,
  env,
  setUpSchedules,
  stateName,
  tearDownSchedules,
} from './helpers/schedules.js';
import { requireTool, toolPresent } from './setup/external-tools.js';
import { freePort } from './setup/postgres.js';

beforeAll(setUpSchedules);
afterAll(tearDownSchedules);

describe('planRetention', () => {
  const now = new Date('2026-12-06T02:00:00Z');
  const file = (name: string, days: number, verified = false) => ({
    file: { name, path: `/x/${name}`, bytes: 1, modifiedAt: now },
    createdAt: new Date(now.getTime() - days * 86_400_000),
    verified,
  });

  it('keeps the newest N and the young ones, deletes the rest, never the newest verified', () => {
    const plan = planRetention(
      [file('d0', 0), file('d3', 3), file('d10', 10, true), file('d20', 20, true), file('d40', 40)],
      { last: 2, days: 5 },
      now,
    );
    expect(plan.keep.map((k) => k.name)).toEqual(['d0', 'd3', 'd10']);
    expect(plan.keep[2]?.why).toBe('the newest verified backup');
    expect(plan.remove.map((r) => r.name)).toEqual(['d20', 'd40']);
  });

  it('with only days, deletes what is older', () => {
    const plan = planRetention([file('d0', 0), file('d31', 31), file('d29', 29)], { days: 30 }, now);
    expect(plan.remove.map((r) => r.name)).toEqual(['d31']);
  });
});

describe('/db run-schedule of a backup with retention', () => {
  it('backs up, deletes exactly what the rule lets go (audited), keeps the newest verified', async (ctx) => {
    requireTool(ctx, 'pg_dump', await toolPresent('pg_dump'));
    const cfg = config(`
schedules:
  nightly: { cron: "0 2 * * *", timezone: Europe/Berlin, operation: backup, target: staging, as: robot, keep: { last: 2, days: 7 } }
`);
    const app = await createApp({ config: cfg, log: silentLogger() });
    apps.push(app);
    const alice = (text: string) => app.core.dispatch({ surface: 'cli', identity: 'alice', text });
    const carol = (text: string) => app.core.dispatch({ surface: 'cli', identity: 'carol', text });
    // An existing backup, copied into older ones with their manifests moved back in time.
    const first = await alice('/db backup staging');
    expect(first.status).toBe('ok');
    const dir = join(env.BACKUPS as string, 'staging');
    const made = String(first.result?.data?.file);
    const manifest = JSON.parse(await readFile(join(dir, `${made}.json`), 'utf8')) as Record<string, unknown>;
    const old = async (name: string, days: number, extra: Record<string, unknown> = {}) => {
      const createdAt = new Date(Date.now() - days * 86_400_000).toISOString();
      await writeFile(join(dir, name), await readFile(join(dir, made)));
      await writeFile(
        join(dir, `${name}.json`),
        JSON.stringify({ ...manifest, file: name, createdAt, ...extra }),
      );
    };
    const verification = {
      ok: true,
      at: new Date().toISOString(),
      summary: 'ok',
      tablesChecked: 1,
      tablesMatched: 1,
      differences: [],
      durationSeconds: 1,
    };
    await old('staging-20261001T010000Z.dump', 60, { verification });
    await old('staging-20261101T010000Z.dump', 30);
    await old('staging-20261120T010000Z.dump', 15);
    await old('staging-20261121T010000Z-public.exams.dump', 14, {
      table: { schema: 'public', name: 'exams' },
    });
    await writeFile(join(dir, 'staging-20261002T010000Z.dump'), 'no manifest');

    expect((await carol('/db run-schedule nightly')).text).toMatch(/you may not run schedule nightly/);
    const answer = await alice('/db run-schedule nightly');
    expect(answer.status).toBe('ok');
    expect(answer.text).toMatch(/^Ran schedule nightly \(run \d+\): succeeded/);
    const left = (await readdir(dir)).filter((n) => !n.endsWith('.json')).sort();
    const newest = left.filter(
      (n) => n !== made && !n.startsWith('staging-2026100') && !n.includes('2026112'),
    );
    // Kept: the new one and the first (the newest two), the 60-day-old verified one, the per-table dump
    // and the unreadable one; deleted: the 30- and 15-day-old ones.
    expect(left).toEqual(
      [
        'staging-20261001T010000Z.dump',
        'staging-20261002T010000Z.dump',
        'staging-20261121T010000Z-public.exams.dump',
        made,
        ...newest,
      ].sort(),
    );
    expect(newest).toHaveLength(1);
    expect(answer.text.replace(/\s+/g, ' ')).toContain(
      'deleted staging-20261120T010000Z.dump, staging-20261101T010000Z.dump',
    );
    for (const line of answer.text.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    // Records that follow a reply (the run's closing record) are written by now.
    await app.core.settled();
    const deletions = await adminQuery<{ outcome: string; person: string; surface: string }>(
      "SELECT outcome, person, surface FROM dbops_audit WHERE operation = 'backup-retention' ORDER BY id",
      [],
      stateName,
    );
    expect(deletions).toEqual([
      {
        outcome: expect.stringMatching(
          /^deleting backup staging-20261120T010000Z\.dump \(not among the newest 2, 15 days old\)/,
        ),
        person: 'robot',
        surface: 'schedule',
      },
      {
        outcome: expect.stringMatching(/^deleting backup staging-20261101T010000Z\.dump/),
        person: 'robot',
        surface: 'schedule',
      },
    ]);
    // The backup itself went through the core as the service person: audited like anyone's command.
    const executed = await adminQuery<{ person: string; identity: string }>(
      "SELECT person, identity FROM dbops_audit WHERE operation = 'backup' AND surface = 'schedule' AND event = 'executed'",
      [],
      stateName,
    );
    expect(executed).toEqual([{ person: 'robot', identity: 'service:robot' }]);
    const listed = await alice('/db schedules');
    expect(listed.text).toMatch(
      /^nightly: backup staging as robot → audit only\n {2}cron 0 2 \* \* \* \(Europe\/Berlin\) · next \d{4}-\d\d-\d\d \d\d:00 UTC\n {2}last: succeeded .*by hand \(alice\)/,
    );
    for (const line of listed.text.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
  });
});

describe('a failed backup, a verified one, and what check-config and /readyz say', () => {
  it('posts a failed backup to its channel; verifies a new one and keeps only what the rule says', async (ctx) => {
    requireTool(ctx, 'pg_dump', await toolPresent('pg_dump'));
    const port = await freePort();
    const cfg = loadConfigText(
      `${BASE.replace('targets:', `targets:\n  down: { url: "postgres://robot@127.0.0.1:${port}/none", environment: staging }`)}
schedules:
  broken:   { cron: "0 2 * * *", operation: backup, target: down, as: robot, post: "discord:123456" }
  verified: { cron: "0 3 * * *", operation: backup, target: staging, as: robot, verify: true, keep: { last: 1 } }
`,
      'verify.yaml',
      { ...env, BACKUPS: await mkdtemp(join(tmpdir(), 'dbops-sched-v-')) },
    );
    const app = await createApp({ config: cfg, log: silentLogger() });
    apps.push(app);
    const posts: { to: ChannelRef; message: OutgoingPost }[] = [];
    app.schedules.poster = {
      async post(to, message) {
        posts.push({ to, message });
        return { ...to, id: '1' };
      },
    };
    const broken = await app.schedules.runNow('broken', 'alice');
    expect(broken === 'busy' ? 'busy' : broken.result.state).toBe('failed');
    expect(posts).toHaveLength(1);
    expect(posts[0]?.to).toEqual({ surface: 'discord', channel: '123456' });
    expect(posts[0]?.message.text).toMatch(/^Scheduled broken: backup down FAILED: /);

    const dir = join(cfg.backupsDir, 'staging');
    const first = await app.schedules.runNow('verified', 'alice');
    const second = await app.schedules.runNow('verified', 'alice');
    if (first === 'busy' || second === 'busy') throw new Error('busy');
    expect(second.result.targets[0]?.verified).toBe(true);
    expect(second.result.targets[0]?.deleted).toEqual([first.result.targets[0]?.file]);
    const left = (await readdir(dir)).filter((n) => !n.endsWith('.json'));
    expect(left).toEqual([second.result.targets[0]?.file]);
    const manifest = JSON.parse(await readFile(join(dir, `${left[0]}.json`), 'utf8')) as {
      verification?: { ok: boolean };
    };
    expect(manifest.verification?.ok).toBe(true);
    expect(posts).toHaveLength(1); // successes are not posted with notify: failures
  });

  it('check-config refuses a destructive schedule (exit 2) and names it', async () => {
    const path = join(env.BACKUPS as string, 'bad.yaml');
    await writeFile(
      path,
      `${BASE}\nschedules:\n  nightly-kill: { cron: "0 2 * * *", operation: kill-idle, target: staging, as: robot }\n`,
    );
    const result = await execa('node', [resolve('dist/src/cli.js'), 'check-config', '--config', path], {
      env: { ...env, PATH: process.env.PATH ?? '' },
      extendEnv: false,
      reject: false,
    });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/schedules\.nightly-kill\.operation: kill-idle is destructive/);
  });

  it('/readyz stays ready and lists channels the scheduler cannot post to', async () => {
    const verdict = await readiness({
      checkState: async () => {},
      notTakingCommands: () => undefined,
      surfaces: () => [
        {
          name: 'schedules',
          healthy: () => true,
          problem: () => undefined,
          detail: () => ['cannot post to slack:CGONE: channel_not_found'],
        },
      ],
    });
    expect(verdict.ready).toBe(true);
    expect(verdict.checks.schedules).toEqual({
      ok: true,
      detail: ['cannot post to slack:CGONE: channel_not_found'],
    });
  });
});
