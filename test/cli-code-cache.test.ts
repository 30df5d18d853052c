// The short-lived commands' compiled code kept between processes (src/cli/code-cache.ts): written once,
// reused, and never trusted when it is damaged or others could have written it — the answer is the same.
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fixture, makeFixture } from './helpers/app.js';

const CLI = resolve('dist/src/cli.js');
const scratch = join(tmpdir(), `dbops-code-cache-${process.pid}`);

let fx: Fixture;
let configPath: string;

beforeAll(async () => {
  mkdirSync(scratch, { recursive: true });
  fx = await makeFixture();
  configPath = fx.writeConfig();
});

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function sizes(cacheDir: string) {
  const run = await execa(
    'node',
    [CLI, 'exec', '--config', configPath, '--as', 'carol', '--', '/db targets'],
    {
      env: { ...fx.env, PATH: process.env.PATH ?? '', DBOPS_CACHE_DIR: cacheDir },
      extendEnv: false,
      reject: false,
      timeout: 60_000,
    },
  );
  expect(run.exitCode, run.stderr).toBe(0);
  expect(run.stderr).toBe('');
  return run.stdout;
}

function codeFiles(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => /^code-[0-9a-f]+\.bin$/.test(f)) : [];
}

describe('compiled code kept between dbops processes', () => {
  it('is written by the first exec and reused as it is by the next', async () => {
    const dir = join(scratch, 'reuse');
    const first = await sizes(dir);
    expect(first).toContain('staging');
    const [file] = codeFiles(dir);
    expect(file).toBeDefined();
    const path = join(dir, file ?? '');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const written = readFileSync(path);
    expect(await sizes(dir)).toBe(first);
    // Accepted, so not written again.
    expect(readFileSync(path).equals(written)).toBe(true);
  });

  it('damaged code is refused by V8 and replaced; the answer does not change', async () => {
    const dir = join(scratch, 'damaged');
    const expected = await sizes(dir);
    const [file] = codeFiles(dir);
    const path = join(dir, file ?? '');
    const garbage = Buffer.alloc(statSync(path).size, 0x5a);
    writeFileSync(path, garbage);
    expect(await sizes(dir)).toBe(expected);
    expect(readFileSync(path).equals(garbage)).toBe(false);
  });

  it('code others could have written is not run, and a directory others can write is not used', async () => {
    const dir = join(scratch, 'shared');
    const expected = await sizes(dir);
    const [file] = codeFiles(dir);
    const path = join(dir, file ?? '');
    // Valid code, but writable by others: not used (an accepted file would be left as it is), replaced
    // by this process's own, private again.
    chmodSync(path, 0o666);
    expect(await sizes(dir)).toBe(expected);
    expect(statSync(path).mode & 0o777).toBe(0o600);

    const open = join(scratch, 'open');
    mkdirSync(open, { recursive: true });
    chmodSync(open, 0o777);
    expect(await sizes(open)).toBe(expected);
    expect(codeFiles(open)).toEqual([]);
  });

  it("a new build's code replaces the old build's file", async () => {
    const dir = join(scratch, 'rebuilt');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, 'code-0123456789abcdef0123456789abcdef.bin'), 'from an older dbops', {
      mode: 0o600,
    });
    await sizes(dir);
    const files = codeFiles(dir);
    expect(files).toHaveLength(1);
    expect(files[0]).not.toBe('code-0123456789abcdef0123456789abcdef.bin');
  });
});
