import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { ConfigError } from '../src/core/errors.js';
import { silentLogger } from '../src/core/log.js';
import type { ChannelPoster, ChannelRef, OutgoingPost } from '../src/notify/poster.js';
import { ChannelPostError } from '../src/notify/poster.js';
import { ScheduleEngine } from '../src/schedules/engine.js';
import type { ScheduledRunReport } from '../src/schedules/hooks.js';
import { cronProblem } from '../src/schedules/schema.js';
import { schedulePostWarnings } from '../src/schedules/validate.js';
import { adminQuery } from './helpers/db.js';
import {
  appProblems,
  apps,
  BASE,
  config,
  configProblems,
  env,
  fakeClock,
  runs,
  setUpSchedules,
  stateName,
  tearDownSchedules,
} from './helpers/schedules.js';

beforeAll(setUpSchedules);
afterAll(tearDownSchedules);

describe('schedules in the config', () => {
  it('refuses bad cron, a cron that never fires, an unknown zone, target or person, and a non-service identity', () => {
    const problems = configProblems(`
schedules:
  typo:   { cron: "61 * * * *", operation: sizes, target: staging, as: robot }
  never:  { cron: "0 0 31 2 *", operation: sizes, target: staging, as: robot }
  zone:   { cron: "0 2 * * *", timezone: Mars/Base, operation: sizes, target: staging, as: robot }
  where:  { cron: "0 2 * * *", operation: sizes, target: stagin, as: robot }
  who:    { cron: "0 2 * * *", operation: sizes, target: staging, as: alice }
  ghost:  { cron: "0 2 * * *", operation: sizes, target: staging, as: nobody }
  post:   { cron: "0 2 * * *", operation: sizes, target: staging, as: robot, post: "teams:C1" }
  keep:   { cron: "0 2 * * *", operation: sizes, target: staging, as: robot, keep: { last: 3 } }
`);
    const text = problems.join('\n');
    expect(text).toMatch(/schedules\.typo\.cron .*not valid.*minute/);
    expect(text).toMatch(/schedules\.never\.cron .*never fires/);
    expect(text).toMatch(/schedules\.zone\.timezone .*not an IANA time zone/);
    expect(text).toMatch(/schedules\.where\.target .*'stagin' is not a target/);
    expect(text).toMatch(/schedules\.who\.as .*people\.alice is not a service person/);
    expect(text).toMatch(/schedules\.ghost\.as .*'nobody' is not in people/);
    expect(text).toMatch(/schedules\.post\.post .*slack:C0123/);
    expect(text).toMatch(/schedules\.keep\.keep .*only backup schedules/);
    expect(problems).toHaveLength(8);
  });

  it('refuses a service person with an identity anyone could present', () => {
    const problems = configProblems('').concat(
      (() => {
        try {
          loadConfigText(
            BASE.replace('robot: { service: true,', 'robot: { service: true, cli: robot,'),
            'x.yaml',
            env,
          );
          return [];
        } catch (err) {
          return err instanceof ConfigError ? [...err.problems] : [String(err)];
        }
      })(),
    );
    expect(problems.join('\n')).toMatch(/people\.robot .*service person.*nobody may act as robot/);
  });

  it('refuses destructive, unknown and policy-refused operations and bad arguments when the app starts', async () => {
    const problems = await appProblems(`
schedules:
  kill:    { cron: "0 2 * * *", operation: kill-idle, target: staging, as: robot }
  unknown: { cron: "0 2 * * *", operation: sizez, target: staging, as: robot }
  denied:  { cron: "0 2 * * *", operation: sizes, target: prod, as: reader }
  waits:   { cron: "0 2 * * *", operation: analyze, target: prod, as: robot }
  args:    { cron: "0 2 * * *", operation: backup, target: staging, as: robot, args: "--format zip" }
`);
    const text = problems.join('\n');
    expect(text).toMatch(
      /schedules\.kill\.operation: kill-idle is destructive; destructive operations cannot be scheduled/,
    );
    expect(text).toMatch(/schedules\.unknown\.operation: there is no operation sizez — did you mean sizes/);
    expect(text).toMatch(
      /schedules\.denied\.as: the policy would refuse it on prod: reader may not run read operations/,
    );
    expect(text).toMatch(/schedules\.waits\.as: .*needs approval on production/);
    expect(text).toMatch(/schedules\.args\.args: .*--format/);
    expect(problems).toHaveLength(5);
  });

  it('warns about channels no configured chat surface can post to', () => {
    const cfg = config(`
schedules:
  a: { cron: "0 2 * * *", operation: sizes, target: staging, as: robot, post: "slack:C1" }
  b: { cron: "0 2 * * *", operation: sizes, target: staging, as: robot, post: "discord:42" }
  c: { cron: "0 2 * * *", operation: sizes, target: staging, as: robot }
`);
    expect(schedulePostWarnings(cfg, { SLACK_BOT_TOKEN: 'xoxb-1' })).toEqual([
      'schedules.b.post: discord:42 cannot be posted to: DISCORD_TOKEN is not set, so dbops start runs no Discord surface',
    ]);
    expect(schedulePostWarnings(cfg, {})).toHaveLength(2);
  });

  it('knows a seconds field, zones, and a cron that never fires', () => {
    expect(cronProblem('*/2 * * * * *', 'UTC')).toBeUndefined();
    expect(cronProblem('0 2 * * *', 'Europe/Berlin')).toBeUndefined();
    expect(cronProblem('0 0 30 2 *', 'UTC')).toMatch(/never fires/);
  });
});

describe('the job engine across two replicas (injected clock)', () => {
  const clock = fakeClock(new Date(Math.ceil(Date.now() / 86_400_000) * 86_400_000 + 86_400_000 + 30_000));
  const at = (minutes: number, seconds = 5) =>
    new Date(Math.floor(clock.now().getTime() / 86_400_000) * 86_400_000 + minutes * 60_000 + seconds * 1000);
  const sampled: { target: string; at: Date }[] = [];
  const reports: ScheduledRunReport[] = [];
  const posts: { to: ChannelRef; message: OutgoingPost }[] = [];
  let release: (() => void) | undefined;
  let failing = new Set<string>();
  const poster: ChannelPoster = {
    async post(to, message) {
      if (failing.has(to.channel)) throw new Error(`channel ${to.channel}: not_in_channel`);
      posts.push({ to, message });
      return { ...to, id: String(posts.length) };
    },
  };
  let a: App;
  let b: App;
  let engineA: ScheduleEngine;
  let engineB: ScheduleEngine;

  beforeAll(async () => {
    const cfg = config(`
schedules:
  every-minute: { cron: "* * * * *", kind: sample, target: staging, post: "slack:CALERTS" }
`);
    const make = async () => {
      const app = await createApp({ config: cfg, log: silentLogger(), clock: clock.now });
      apps.push(app);
      app.schedules.sample = async (target, when) => {
        sampled.push({ target, at: when });
        if (release === undefined) return { samples: 3 };
        await new Promise<void>((resolve) => {
          const previous = release;
          release = () => {
            previous?.();
            resolve();
          };
        });
        return { samples: 3 };
      };
      app.schedules.poster = poster;
      app.schedules.observe(async (r) => {
        reports.push(r);
      });
      // The fake clock jumps minutes while heartbeats (every third of the lease, real time) do not fire.
      app.schedules.setLease(3_600_000);
      return app;
    };
    a = await make();
    b = await make();
    engineA = new ScheduleEngine({ service: a.schedules, log: silentLogger() });
    engineB = new ScheduleEngine({ service: b.schedules, log: silentLogger() });
  });

  afterAll(async () => {
    await Promise.allSettled([engineA.stop(1000), engineB.stop(1000)]);
  });

  const tickBoth = async () => {
    await Promise.all([engineA.tick(), engineB.tick()]);
    await Promise.all([engineA.settled(), engineB.settled()]);
  };

  it('does not run a slot from before the schedule was first seen', async () => {
    await tickBoth();
    expect(await runs('every-minute')).toHaveLength(0);
    expect(sampled).toHaveLength(0);
  });

  it('runs each slot once across both replicas, and a run missed over downtime once', async () => {
    clock.set(at(1));
    await tickBoth();
    await tickBoth(); // a second look at the same slot changes nothing
    expect(sampled).toHaveLength(1);
    // Four slots pass with nobody ticking (every replica down): one run, for the latest slot.
    clock.set(at(6, 20));
    await tickBoth();
    await tickBoth();
    expect(sampled).toHaveLength(2);
    const rows = await runs('every-minute');
    expect(rows.map((r) => [r.slot.toISOString(), r.state])).toEqual([
      [at(1, 0).toISOString(), 'succeeded'],
      [at(6, 0).toISOString(), 'succeeded'],
    ]);
    expect(reports.map((r) => r.outcome)).toEqual(['succeeded', 'succeeded']);
    expect(posts).toHaveLength(0); // notify: failures (default) posts nothing for a success
  });

  it('never runs two at once: a slot due while its run still waits collapses', async () => {
    release = () => {};
    clock.set(at(7));
    await Promise.all([engineA.tick(), engineB.tick()]); // slot 7 starts and blocks
    await new Promise((r) => setTimeout(r, 200));
    expect(sampled).toHaveLength(3);
    clock.set(at(8));
    await Promise.all([engineA.tick(), engineB.tick()]); // slot 8 is queued, not started
    clock.set(at(9));
    await Promise.all([engineA.tick(), engineB.tick()]); // slot 9 collapses into the waiting 8
    expect(sampled).toHaveLength(3);
    let rows = await runs('every-minute');
    expect(rows.slice(2).map((r) => [r.slot.toISOString(), r.state])).toEqual([
      [at(7, 0).toISOString(), 'running'],
      [at(8, 0).toISOString(), 'queued'],
    ]);
    const done = release;
    release = undefined;
    done?.();
    await Promise.all([engineA.settled(), engineB.settled()]);
    // pg-boss frees the singleton once the job completes; the queued slot runs on a later tick.
    for (let i = 0; i < 20 && sampled.length < 4; i++) {
      await tickBoth();
      await new Promise((r) => setTimeout(r, 100));
    }
    rows = await runs('every-minute');
    expect(rows.slice(2).map((r) => [r.slot.toISOString(), r.state])).toEqual([
      [at(7, 0).toISOString(), 'succeeded'],
      [at(8, 0).toISOString(), 'succeeded'],
    ]);
    const [seven, eight] = rows.slice(2);
    expect(eight?.started_at?.getTime()).toBeGreaterThanOrEqual(seven?.finished_at?.getTime() ?? Infinity);
  });

  it('reports a run whose replica stopped heartbeating as interrupted, once, and posts it', async () => {
    release = () => {};
    clock.set(at(10));
    await engineA.tick(); // A starts slot 10 and blocks: then A "dies" (it never ticks again)
    await new Promise((r) => setTimeout(r, 200));
    const before = reports.length;
    b.schedules.setLease(60_000);
    clock.set(at(10, 50)); // not yet past the 60 s lease
    await engineB.tick();
    expect((await runs('every-minute')).at(-1)?.state).toBe('running');
    clock.set(at(11, 20)); // past the lease: B reports it
    await Promise.all([engineB.tick(), b.schedules.sweepInterrupted()]);
    const rows = await runs('every-minute');
    const interrupted = rows.filter((r) => r.state === 'interrupted');
    expect(interrupted.map((r) => r.slot.toISOString())).toEqual([at(10, 0).toISOString()]);
    const told = reports.slice(before).filter((r) => r.outcome === 'interrupted');
    expect(told).toHaveLength(1);
    expect(posts.map((p) => p.message.text)).toEqual([
      expect.stringMatching(/^Scheduled every-minute: sample staging INTERRUPTED: the replica running it/),
    ]);
    const audit = await adminQuery(
      "SELECT count(*)::int AS n FROM dbops_audit WHERE event = 'interrupted' AND surface = 'schedule'",
      [],
      stateName,
    );
    expect(audit[0]?.n).toBe(1);
    // The run A still holds ends later (it was alive after all): its real outcome replaces the guess.
    const done = release;
    release = undefined;
    done?.();
    await Promise.all([engineA.settled(), engineB.settled()]);
    expect((await runs('every-minute')).find((r) => r.slot.getTime() === at(10, 0).getTime())?.state).toBe(
      'succeeded',
    );
  });

  it('a channel the bot cannot post to is reported, not dropped', async () => {
    failing = new Set(['CALERTS']);
    a.schedules.sample = async () => {
      throw new Error('history store unavailable');
    };
    const done = await a.schedules.runNow('every-minute', 'alice');
    expect(done).not.toBe('busy');
    expect(a.schedules.problems()).toEqual(['cannot post to slack:CALERTS: channel CALERTS: not_in_channel']);
    failing = new Set();
    await a.schedules.runNow('every-minute', 'alice');
    expect(a.schedules.problems()).toEqual([]);
    expect(posts.at(-1)?.message.text).toMatch(/FAILED: history store unavailable/);
  });

  it("an alert that cannot be posted is reported like a run's own post", async () => {
    a.schedules.sample = async () => ({ samples: 0 });
    const stop = a.schedules.observe(async () => {
      throw new ChannelPostError({ surface: 'slack', channel: 'CPAGER' }, 'channel_not_found');
    });
    try {
      await a.schedules.runNow('every-minute', 'alice');
      expect(a.schedules.problems()).toContain('cannot post to slack:CPAGER: channel_not_found');
    } finally {
      stop();
    }
  });
});

describe('a queued run whose job was lost', () => {
  it('is ended as interrupted so that later slots run', async () => {
    const clock = fakeClock(
      new Date(Math.ceil(Date.now() / 86_400_000) * 86_400_000 + 2 * 86_400_000 + 10_000),
    );
    const day = Math.floor(clock.now().getTime() / 86_400_000) * 86_400_000;
    const cfg = config(`
schedules:
  lossy: { cron: "* * * * *", kind: sample, target: staging }
`);
    const app = await createApp({ config: cfg, log: silentLogger(), clock: clock.now });
    apps.push(app);
    let sampled = 0;
    app.schedules.sample = async () => ({ samples: ++sampled });
    const engine = new ScheduleEngine({ service: app.schedules, log: silentLogger() });
    try {
      await engine.tick(); // first seen
      clock.set(new Date(day + 60_000 + 1000));
      // Enqueue without running (as if every replica died at once), then lose the job.
      const lossy = cfg.schedules.lossy;
      if (!lossy) throw new Error('no schedule');
      expect(await engine.enqueueDue(await engine.jobs(), lossy)).toBe(true);
      const [queued] = await runs('lossy');
      await adminQuery('DELETE FROM dbops_jobs.job WHERE id = $1', [queued?.job_id], stateName);
      clock.set(new Date(day + 5 * 60_000 + 1000)); // later slots came due; the run waits forever otherwise
      await engine.tick();
      await engine.settled();
      const rows = await runs('lossy');
      expect(rows.map((r) => [r.state, new Date(r.slot).getTime() - day])).toEqual([
        ['interrupted', 60_000],
        ['succeeded', 5 * 60_000],
      ]);
      expect(sampled).toBe(1);
    } finally {
      await engine.stop(1000);
    }
  });
});
