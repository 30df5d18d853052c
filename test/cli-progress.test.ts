// Progress lines of long operations in the CLI: on stderr of `dbops exec` (stdout stays the answer, or the
// one JSON object), and in `dbops console` as they come.
import { resolve } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Fixture, makeFixture } from './helpers/app.js';

const CLI = resolve('dist/src/cli.js');
let fx: Fixture;
let configPath: string;

beforeAll(async () => {
  fx = await makeFixture();
  configPath = fx.writeConfig();
});

function dbops(args: string[], input?: string) {
  return execa('node', [CLI, ...args], {
    env: { ...fx.env, PATH: process.env.PATH ?? '' },
    extendEnv: false,
    reject: false,
    timeout: 60_000,
    ...(input !== undefined ? { input } : {}),
  });
}

describe('progress of long operations', () => {
  it('goes to stderr of exec, the answer to stdout', async () => {
    const run = await dbops(['exec', '--config', configPath, '--as', 'alice', '--', '/db backup staging']);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/^… backup of staging: 1 table, 2,000 rows in snapshot \S+; running pg_dump/m);
    expect(run.stdout).not.toContain('running pg_dump');
    expect(run.stdout).toMatch(/backup/i);
  });

  it('keeps stdout one JSON object with --json', async () => {
    const run = await dbops([
      'exec',
      '--config',
      configPath,
      '--as',
      'alice',
      '--json',
      '--',
      '/db backup staging',
    ]);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stderr).toContain('running pg_dump');
    expect(JSON.parse(run.stdout)).toMatchObject({ status: 'ok', operation: 'backup' });
  });

  it('is printed in the console before the answer', async () => {
    const run = await dbops(['console', '--config', configPath, '--as', 'alice'], '/db backup staging\n');
    expect(run.exitCode, run.stderr).toBe(0);
    const progress = run.stdout.search(/… backup of staging: 1 table/);
    expect(progress).toBeGreaterThan(-1);
    expect(run.stdout.indexOf('running pg_dump')).toBeGreaterThanOrEqual(progress);
  });
});
