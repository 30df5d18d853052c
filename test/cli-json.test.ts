// `dbops exec --json` as users run it (the built dist): each column of `rows` has one JSON type.
import { resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fixture, makeFixture } from './helpers/app.js';
import { adminQuery } from './helpers/db.js';

const CLI = resolve('dist/src/cli.js');
let fx: Fixture;
let configPath: string;

beforeAll(async () => {
  fx = await makeFixture();
  configPath = fx.writeConfig();
  // A bigint sequence past 2^53 next to the integer one of exams.id: the mix that used to give
  // `remaining` a number in one row and a string in the next.
  await adminQuery(
    "CREATE SEQUENCE huge_seq; SELECT setval('huge_seq', 9007199254740993)",
    [],
    fx.staging.name,
  );
});

afterAll(async () => {
  await adminQuery('DROP SEQUENCE IF EXISTS huge_seq', [], fx.staging.name);
});

describe('dbops exec --json', () => {
  it('gives sequence values as exact decimal strings for integer and bigint sequences alike', async () => {
    const run = await execa(
      'node',
      [CLI, 'exec', '--config', configPath, '--as', 'carol', '--json', '--', '/db sequences staging'],
      { env: { ...fx.env, PATH: process.env.PATH ?? '' }, extendEnv: false, reject: false, timeout: 30_000 },
    );
    expect(run.exitCode, run.stderr).toBe(0);
    const body = JSON.parse(run.stdout) as { rows: Record<string, unknown>[] };
    const byName = new Map(body.rows.map((r) => [r.sequence, r]));
    expect(byName.get('public.huge_seq')).toMatchObject({
      last_value: '9007199254740993',
      remaining: (9223372036854775807n - 9007199254740993n).toString(),
    });
    const [exams] = await adminQuery<{ last: string | null }>(
      "SELECT pg_sequence_last_value('exams_id_seq')::text AS last",
      [],
      fx.staging.name,
    );
    expect(byName.get('public.exams_id_seq')).toMatchObject({
      last_value: exams?.last,
      remaining: (2147483647n - BigInt(exams?.last ?? '0')).toString(),
    });
    for (const key of ['last_value', 'remaining', 'start_value', 'increment']) {
      const types = new Set(body.rows.map((r) => typeof r[key]));
      expect([...types], key).toEqual(['string']);
    }
  });
});
