// The dbops command as users run it (the built dist), in separate processes.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fixture, makeFixture } from './helpers/app.js';
import { adminQuery, openClient } from './helpers/db.js';

const CLI = resolve('dist/src/cli.js');
let fx: Fixture;
let configPath: string;
const held: pg.Client[] = [];

beforeAll(async () => {
  fx = await makeFixture();
  configPath = fx.writeConfig();
});

afterAll(async () => {
  await Promise.all(held.map((c) => c.end().catch(() => {})));
});

function dbops(args: string[], input?: string, envOverride: Record<string, string> = {}) {
  return execa('node', [CLI, ...args], {
    env: { ...fx.env, PATH: process.env.PATH ?? '', ...envOverride },
    extendEnv: false,
    reject: false,
    timeout: 30_000,
    ...(input !== undefined ? { input } : {}),
  });
}

async function execJson(person: string, command: string) {
  const run = await dbops(['exec', '--config', configPath, '--as', person, '--json', '--', command]);
  return {
    exitCode: run.exitCode,
    body: JSON.parse(run.stdout) as Record<string, unknown>,
    stderr: run.stderr,
  };
}

describe('dbops exec', () => {
  it('prints one JSON object with machine values and exits 0', async () => {
    const { exitCode, body } = await execJson('carol', '/db sizes staging');
    expect(exitCode).toBe(0);
    expect(body).toMatchObject({
      status: 'ok',
      operation: 'sizes',
      target: 'staging',
      risk: 'read',
      truncated: false,
    });
    // A read is not an approval request: no number, a reference instead.
    expect(body.request).toBeNull();
    expect(body.ref).toMatch(/^r[a-z2-9]{5}$/);
    const rows = body.rows as Record<string, unknown>[];
    expect(rows.length).toBeGreaterThan(0);
    const [truth] = await adminQuery<{ bytes: string }>(
      "SELECT pg_total_relation_size('exams')::text AS bytes",
      [],
      fx.staging.name,
    );
    expect(rows.some((r) => Object.values(r).includes(Number(truth?.bytes)))).toBe(true);
    expect(String(body.text)).toContain('exams');
  });

  it('exits 2 when refused or invalid and 1 when the target fails', async () => {
    expect(await execJson('mallory', '/db sizes staging')).toMatchObject({
      exitCode: 2,
      body: { status: 'refused' },
    });
    expect(await execJson('carol', '/db sizes nowhere')).toMatchObject({
      exitCode: 2,
      body: { status: 'invalid' },
    });
    const down = await execJson('carol', '/db sizes down');
    expect(down).toMatchObject({ exitCode: 1, body: { status: 'failed', code: 'target_down' } });
    expect(JSON.stringify(down.body)).not.toContain('secret');
  });

  it('prints exactly one JSON object with status failed whatever stops it before the core', async () => {
    const badConfig = join(tmpdir(), `dbops-bad-${process.pid}.yaml`);
    writeFileSync(badConfig, 'state: [unclosed\n');
    const cases: { args: string[]; env?: Record<string, string>; code: string; exit: number }[] = [
      {
        args: ['--config', configPath],
        env: { STATE_URL: fx.env.DOWN_URL ?? '' },
        code: 'state_unavailable',
        exit: 1,
      },
      { args: ['--config', '/nonexistent/dbops.yaml'], code: 'config_not_found', exit: 2 },
      { args: ['--config', badConfig], code: 'config_invalid', exit: 2 },
      { args: ['--config', configPath, '--bogus'], code: 'usage', exit: 2 },
    ];
    for (const c of cases) {
      const run = await dbops(
        ['exec', ...c.args, '--as', 'carol', '--json', '--', '/db sizes staging'],
        undefined,
        c.env,
      );
      const lines = run.stdout.split('\n').filter((l) => l.trim() !== '');
      expect(lines, `${c.code}: ${run.stderr}`).toHaveLength(1);
      const body = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
      expect(body).toMatchObject({ status: 'failed', code: c.code, rows: [], request: null });
      expect(String(body.message).length).toBeGreaterThan(0);
      expect(run.stdout).not.toContain('secret');
      expect(run.exitCode).toBe(c.exit);
    }
    // Without --json the reason still goes to stderr, and stdout stays empty.
    const plain = await dbops(
      ['exec', '--config', configPath, '--as', 'carol', '--', '/db sizes staging'],
      undefined,
      {
        STATE_URL: fx.env.DOWN_URL ?? '',
      },
    );
    expect(plain.stdout).toBe('');
    expect(plain.stderr).toContain('cannot open the state database');
    expect(plain.stderr).not.toContain('secret');
  });

  it('explains a bad config file with the path and line', async () => {
    const run = await dbops([
      'exec',
      '--config',
      '/nonexistent/dbops.yaml',
      '--as',
      'alice',
      '--',
      '/db help',
    ]);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('not found');
  });

  it('runs a destructive request once when two processes approve it at the same moment', async () => {
    const pids: number[] = [];
    for (let i = 0; i < 2; i++) {
      const client = await openClient(fx.staging.url, 'cli-idle');
      held.push(client);
      const [row] = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows;
      if (row) pids.push(row.pid);
    }
    await new Promise((r) => setTimeout(r, 1200));
    const request = await execJson('alice', '/db kill-idle staging --older-than 1s');
    expect(request).toMatchObject({ exitCode: 0, body: { status: 'pending' } });
    const id = request.body.request as number;
    const [bob, dave] = await Promise.all([
      execJson('bob', `/db approve ${id}`),
      execJson('dave', `/db approve ${id}`),
    ]);
    const outcomes = [bob, dave].map((r) => r.body.status).sort();
    expect(outcomes).toEqual(['ok', 'refused']);
    const rows = await adminQuery<{ n: string }>(
      "SELECT count(*)::text AS n FROM dbops_audit WHERE request_id = $1 AND event = 'executed'",
      [id],
      fx.state.name,
    );
    expect(rows[0]?.n).toBe('1');
    const alive = await adminQuery('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])', [pids]);
    expect(alive).toEqual([]);
  });
});

describe('dbops console', () => {
  it('never lets a database value drive the terminal (exec, exec --json, console)', async () => {
    const evil = 'row\u001b]0;pwned\u0007\u001b[2J\rfake line \u202Egnp.exe';
    await adminQuery('CREATE TABLE hostile (id int primary key, v text)', [], fx.staging.name);
    await adminQuery('INSERT INTO hostile VALUES (1, $1)', [evil], fx.staging.name);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for them.
    const raw = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e]/;
    const out = await dbops([
      'exec',
      '--config',
      configPath,
      '--as',
      'carol',
      '--out',
      tmpdir(),
      '--',
      '/db export staging hostile',
    ]);
    expect(out.exitCode).toBe(0);
    expect(out.stdout).not.toMatch(raw);
    expect(out.stdout).toContain('row\\x1b]0;pwned\\x07');
    expect(out.stdout).toContain('<U+202E>gnp.exe');
    const json = await dbops([
      'exec',
      '--config',
      configPath,
      '--as',
      'carol',
      '--json',
      '--out',
      tmpdir(),
      '--',
      '/db export staging hostile',
    ]);
    expect(json.stdout).not.toMatch(raw);
    const body = JSON.parse(json.stdout) as { rows: Record<string, unknown>[] };
    expect(Object.values(body.rows[0] ?? {})).toContain(evil);
    const chat = await dbops(
      ['console', '--config', configPath, '--as', 'carol'],
      ['/db export staging hostile', '/quit', ''].join('\n'),
    );
    expect(chat.stdout).not.toMatch(raw);
    expect(chat.stdout).toContain('<U+202E>gnp.exe');
  });

  it('chats in the terminal and switches person with /as', async () => {
    const run = await dbops(
      ['console', '--config', configPath, '--as', 'carol'],
      ['/db sizes kasm', '/as bob', '/db sizes kasm', '/as nobody', '/quit', ''].join('\n'),
    );
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain('Refused: carol may not run read operations on production');
    expect(run.stdout).toContain('You are now bob.');
    expect(run.stdout).toContain('managers');
    expect(run.stdout).toContain('No person has the cli identity "nobody"');
  });
});
