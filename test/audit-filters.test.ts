// Who did what: `/db audit` filtered by person, operation, outcome and time (injected clock), and
// `dbops audit export` (the built CLI) writing versioned JSON lines.
import { resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import type { Reply } from '../src/core/reply.js';
import { as, type Fixture, makeFixture, startApp } from './helpers/app.js';

const CLI = resolve('dist/src/cli.js');

let fx: Fixture;
let dbops: App;
let now = new Date('2026-12-06T06:00:00Z');

function rows(answer: Reply): Record<string, unknown>[] {
  return (answer.result?.rows ?? []) as Record<string, unknown>[];
}

beforeAll(async () => {
  fx = await makeFixture();
  dbops = await startApp(fx.config, () => now);
  await as(dbops, 'bob')('/db sizes staging');
  await as(dbops, 'carol')('/db sizes kasm'); // refused: developers may not read production
  now = new Date('2026-12-06T09:00:00Z');
  await as(dbops, 'alice')('/db sizes staging');
  await as(dbops, 'bob')('/db table-sizes staging --reason "INC-9 look"');
});

afterAll(async () => {
  await dbops?.close();
});

describe('/db audit filters', () => {
  it('filters by person, operation, outcome and time', async () => {
    const alice = as(dbops, 'alice');
    const byBob = rows(await alice('/db audit --person bob --limit 50'));
    expect(byBob.length).toBeGreaterThan(0);
    expect(new Set(byBob.map((r) => r.person))).toEqual(new Set(['bob']));

    const sizes = rows(await alice('/db audit --operation table-sizes'));
    expect(sizes.map((r) => r.operation)).toContain('table-sizes');
    expect(sizes.every((r) => r.operation === 'table-sizes')).toBe(true);

    const refused = rows(await alice('/db audit --outcome refused --limit 50'));
    expect(refused.some((r) => r.person === 'carol')).toBe(true);
    expect(refused.every((r) => r.event === 'refused')).toBe(true);

    const recent = rows(await alice('/db audit --since 1h --limit 50'));
    expect(recent.some((r) => r.person === 'alice')).toBe(true);
    expect(recent.some((r) => r.person === 'carol')).toBe(false);
    const early = rows(await alice('/db audit --since 2026-12-06 --until 2026-12-06T07:00:00Z --person bob'));
    expect(early.map((r) => r.operation)).toContain('sizes');
    expect(early.map((r) => r.operation)).not.toContain('table-sizes');
  });

  it('says a run whose closing record never came has no outcome recorded (after 15 minutes)', async () => {
    const record = (ref: string, minutesAgo: number, event: 'requested' | 'executed' = 'requested') =>
      dbops.state.audit(
        {
          requestId: null,
          ref,
          event,
          outcome: event === 'requested' ? 'running' : 'ok',
          person: 'bob',
          identity: 'cli:bob',
          surface: 'cli',
          operation: 'vacuum-stats',
          target: 'staging',
          risk: 'read',
        },
        new Date(now.getTime() - minutesAgo * 60_000),
      );
    await record('rkill1', 60); // killed before its end was written
    await record('rlive1', 1); // still running
    await record('rdone1', 60);
    await record('rdone1', 59, 'executed');
    const listed = rows(await as(dbops, 'alice')('/db audit --operation vacuum-stats --limit 50'));
    const outcome = (ref: string, event = 'requested') =>
      listed.find((r) => r.request === ref && r.event === event)?.outcome;
    expect(outcome('rkill1')).toBe('no outcome recorded');
    expect(outcome('rlive1')).toBe('running');
    expect(outcome('rdone1')).toBe('running');
    expect(outcome('rdone1', 'executed')).toBe('ok');
  });

  it('refuses unknown options and odd values', async () => {
    const alice = as(dbops, 'alice');
    expect((await alice('/db audit --who bob')).message).toContain('unknown option --who');
    expect((await alice('/db audit --since yesterday')).message).toContain('--since: expected a duration');
    expect((await alice("/db audit --person 'bob OR 1=1'")).status).toBe('invalid');
  });
});

describe('dbops audit export', () => {
  const run = (...args: string[]) =>
    execa('node', [CLI, 'audit', 'export', '--config', fx.writeConfig(), ...args], {
      env: { ...fx.env, PATH: process.env.PATH ?? '' },
      extendEnv: false,
      reject: false,
    });

  it('writes one JSON object a line, oldest first, with schema_version', async () => {
    const all = await run('--since', '2026-01-01', '--format', 'jsonl');
    expect(all.exitCode).toBe(0);
    const lines = all.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.length).toBeGreaterThanOrEqual(4);
    expect(lines.every((l) => l.schema_version === 1)).toBe(true);
    const ids = lines.map((l) => Number(l.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    const reasoned = lines.find((l) => l.operation === 'table-sizes');
    expect(reasoned?.reason).toBe('INC-9 look');
    expect(Object.keys(lines[0] ?? {})).toEqual(
      expect.arrayContaining(['at', 'event', 'outcome', 'person', 'identity', 'target', 'detail']),
    );
    expect(all.stderr).toContain(`exported ${lines.length} audit records`);

    const carol = await run('--since', '2026-01-01', '--person', 'carol');
    const carolLines = carol.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { person: string });
    expect(carolLines.length).toBeGreaterThan(0);
    expect(carolLines.every((l) => l.person === 'carol')).toBe(true);
  });

  it('needs --since, knows only jsonl, and has --help', async () => {
    const missing = await run();
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain('--since');
    expect((await run('--since', '1d', '--format', 'csv')).exitCode).toBe(2);
    const help = await run('--help');
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain('docs/audit.md');
  });
});
