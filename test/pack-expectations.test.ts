// A pack's `expects.tables` checked against real databases: by checkPackExpectations, in checkTargets'
// report, and by `dbops check-config` (the built CLI) with its exit codes.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkTargets, expectationProblems, formatCheckReport } from '../src/config/check.js';
import { loadConfigText } from '../src/config/load.js';
import { checkPackExpectations } from '../src/packs/expectations.js';
import { type LoadedPack, loadPackDir } from '../src/packs/load.js';
import { adminQuery, createDatabase } from './helpers/db.js';
import { freePort } from './setup/postgres.js';

const CLI = resolve('dist/src/cli.js');

const PORTAL: Record<string, string> = {
  'pack.yaml': `
name: portal
description: A web portal's runbook
expects:
  tables:
    session_tokens: [session_token_id, expiration, user_id]
    users: [user_id, username]
    login_audit: []
`,
  'sessions.yaml': `
name: sessions
summary: Session tokens per user
risk: read
requires: { session_tokens: [user_id] }
sql: SELECT user_id, count(*) AS tokens FROM session_tokens GROUP BY user_id
`,
};

/** Everything the pack expects, with users in a schema of its own on the database's search_path. */
const GOOD_SQL = `
CREATE SCHEMA app;
CREATE TABLE app.users (user_id serial PRIMARY KEY, username text, email text);
CREATE TABLE session_tokens (session_token_id uuid PRIMARY KEY, user_id int, expiration timestamptz);
CREATE TABLE audit_rows (at timestamptz, what text);
CREATE VIEW login_audit AS SELECT at, what FROM audit_rows;
`;

/** session_tokens exists, but only in a schema that is not on the search path. */
const NO_TABLE_SQL = `
CREATE SCHEMA old;
CREATE TABLE old.session_tokens (session_token_id uuid, user_id int, expiration timestamptz);
CREATE TABLE users (user_id serial PRIMARY KEY, username text);
CREATE TABLE login_audit (at timestamptz);
`;

/** The token table of another version: expires_at instead of expiration, and a dropped column. */
const NO_COLUMN_SQL = `
CREATE TABLE session_tokens (session_token_id uuid, user_id int, expires_at timestamptz, expiration_old int);
ALTER TABLE session_tokens DROP COLUMN expiration_old;
CREATE TABLE users (user_id serial PRIMARY KEY, username text);
CREATE TABLE login_audit (at timestamptz);
`;

let pack: LoadedPack;
let packRoot: string;
let dbs: Record<'good' | 'notable' | 'nocolumn' | 'state', { name: string; url: string }>;
let downUrl: string;

function writePack(root: string, name: string, files: Record<string, string>): void {
  mkdirSync(join(root, name), { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(root, name, file), text);
}

beforeAll(async () => {
  packRoot = mkdtempSync(join(tmpdir(), 'dbops-expects-'));
  writePack(packRoot, 'portal', PORTAL);
  const problems: string[] = [];
  const loaded = loadPackDir(join(packRoot, 'portal'), problems);
  expect(problems).toEqual([]);
  if (!loaded) throw new Error('the portal pack did not load');
  pack = loaded;
  const [good, notable, nocolumn, state] = await Promise.all([
    createDatabase('expects_good', GOOD_SQL),
    createDatabase('expects_notable', NO_TABLE_SQL),
    createDatabase('expects_nocolumn', NO_COLUMN_SQL),
    createDatabase('expects_state'),
  ]);
  await adminQuery(`ALTER DATABASE "${good.name}" SET search_path = "$user", public, app`);
  dbs = { good, notable, nocolumn, state };
  downUrl = `postgres://nobody:secret@127.0.0.1:${await freePort()}/nothing`;
});

function configYaml(): string {
  return `
state: { url: "\${STATE_URL}" }
packs: { dirs: [${JSON.stringify(packRoot)}] }
targets:
  good: { url: "\${GOOD_URL}", environment: production, packs: [portal] }
  notable: { url: "\${NOTABLE_URL}", environment: production, packs: [portal] }
  nocolumn: { url: "\${NOCOLUMN_URL}", environment: production, packs: [portal] }
  plain: { url: "\${GOOD_URL}", environment: production }
  down: { url: "\${DOWN_URL}", environment: production, packs: [portal], limits: { connect_timeout: 2s } }
people:
  alice: { cli: alice, roles: [dba] }
policy:
  production: { read: [dba] }
`;
}

function env(): Record<string, string> {
  return {
    STATE_URL: dbs.state.url,
    GOOD_URL: dbs.good.url,
    NOTABLE_URL: dbs.notable.url,
    NOCOLUMN_URL: dbs.nocolumn.url,
    DOWN_URL: downUrl,
  };
}

describe('checkPackExpectations', () => {
  it('finds nothing to say when every table and column is there (search_path, views included)', async () => {
    expect(await checkPackExpectations(dbs.good.url, pack)).toEqual([]);
  });

  it('names a missing table once, even when a schema off the search path has it', async () => {
    expect(await checkPackExpectations(dbs.notable.url, pack)).toEqual([
      'pack portal expects table session_tokens, not found',
    ]);
  });

  it('names a missing column, ignoring dropped ones, on a client the caller holds', async () => {
    const client = new pg.Client({ connectionString: dbs.nocolumn.url });
    await client.connect();
    try {
      expect(await checkPackExpectations(client, pack)).toEqual([
        'pack portal expects column expiration in table session_tokens, not found',
      ]);
      // Schema-qualified expectations look in that schema only.
      const qualified = {
        name: 'portal',
        manifest: { expects: { tables: { 'public.users': ['username'], 'old.users': [] } } },
      };
      expect(await checkPackExpectations(client, qualified)).toEqual([
        'pack portal expects table old.users, not found',
      ]);
    } finally {
      await client.end();
    }
  });

  it('follows the search_path: without app on it, app.users is not found', async () => {
    const url = new URL(dbs.good.url);
    url.searchParams.set('options', '-c search_path=public');
    expect(await checkPackExpectations(url.toString(), pack)).toEqual([
      'pack portal expects table users, not found',
    ]);
  });
});

describe('checkTargets with packs', () => {
  it("reports each target's unmet expectations, and says so in the report", async () => {
    const config = loadConfigText(configYaml(), join(packRoot, 'dbops.yaml'), env());
    const checks = await checkTargets(config, { packs: [pack] });
    expect(checks.map((c) => [c.name, c.reachable, c.packs])).toEqual([
      ['state', true, undefined],
      ['good', true, [{ pack: 'portal', problems: [], unavailable: [] }]],
      [
        'notable',
        true,
        [
          {
            pack: 'portal',
            problems: ['pack portal expects table session_tokens, not found'],
            // Only a schema off the search_path has it: the operation reading it is unavailable.
            unavailable: [
              { operation: 'sessions', shown: 'sessions', reason: 'missing table session_tokens' },
            ],
          },
        ],
      ],
      [
        'nocolumn',
        true,
        [
          {
            pack: 'portal',
            problems: ['pack portal expects column expiration in table session_tokens, not found'],
            unavailable: [],
          },
        ],
      ],
      ['plain', true, undefined],
      ['down', false, undefined],
    ]);
    expect(expectationProblems(checks)).toEqual([
      'target notable: pack portal expects table session_tokens, not found',
      'target nocolumn: pack portal expects column expiration in table session_tokens, not found',
    ]);
    const blocks = formatCheckReport(checks).split('\n\n');
    expect(blocks).toHaveLength(7);
    expect(blocks[1]).toMatch(/^\[ok\] good \(production\)/);
    expect(blocks[1]?.split('\n').at(-1)).toBe('  pack:    portal: every expected table and column found');
    expect(blocks[2]).toMatch(/^\[MISMATCH\] notable \(production\)/);
    expect(blocks[2]?.split('\n').slice(-3)).toEqual([
      '  schema:  target notable: pack portal expects table session_tokens, not found',
      '  unavailable: portal sessions:',
      '    missing table session_tokens',
    ]);
    expect(blocks[3]?.split('\n').at(-1)).toBe(
      '  schema:  target nocolumn: pack portal expects column expiration in table session_tokens, not found',
    );
    expect(blocks[4]).not.toMatch(/pack|schema:/);
    expect(blocks[5]).toMatch(/^\[FAILED\] down/);
    expect(blocks[6]).toBe(
      "5 of 6 reachable; 2 pack schema expectations not met\n1 pack operation unavailable on their target's schema",
    );
  });

  it('says when a listed pack is not loaded, and changes nothing without packs', async () => {
    const config = loadConfigText(configYaml(), join(packRoot, 'dbops.yaml'), env());
    const [good] = await checkTargets(config, { packs: [], includeState: false, targets: ['good'] });
    expect(good?.packs).toEqual([
      { pack: 'portal', problems: ['pack portal is not loaded, so its expectations were not checked'] },
    ]);
    const plain = await checkTargets(config, { includeState: false, targets: ['good', 'notable'] });
    expect(plain.map((c) => c.packs)).toEqual([undefined, undefined]);
    expect(formatCheckReport(plain).split('\n\n').at(-1)).toBe('2 of 2 reachable');
  });
});

describe('dbops check-config', () => {
  function checkConfig(yaml: string) {
    const path = join(mkdtempSync(join(tmpdir(), 'dbops-expects-config-')), 'dbops.yaml');
    writeFileSync(path, yaml);
    return execa('node', [CLI, 'check-config', '--config', path], {
      env: { ...env(), PATH: process.env.PATH ?? '' },
      extendEnv: false,
      reject: false,
      timeout: 30_000,
    });
  }

  it('exits 1 and names each unmet expectation', async () => {
    const run = await checkConfig(configYaml().replace(/^ {2}down: .*\n/m, ''));
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain('target notable: pack portal expects table session_tokens, not found');
    expect(run.stdout).toContain(
      'target nocolumn: pack portal expects column expiration in table session_tokens, not found',
    );
    expect(run.stdout).toContain('  unavailable: portal sessions:\n    missing table session_tokens\n');
    expect(run.stdout).toContain(
      "5 of 5 reachable; 2 pack schema expectations not met\n1 pack operation unavailable on their target's schema",
    );
    expect(run.exitCode).toBe(1);
  });

  it('exits 0 when every target is reachable and has what its packs expect', async () => {
    const run = await checkConfig(configYaml().replace(/^ {2}(down|notable|nocolumn): .*\n/gm, ''));
    expect(run.stdout).toContain("3 of 3 reachable; every pack's schema expectations met");
    expect(run.exitCode).toBe(0);
  });

  it('exits 2 on a pack problem, naming the file and line', async () => {
    const broken = mkdtempSync(join(tmpdir(), 'dbops-expects-broken-'));
    writePack(broken, 'portal', {
      ...PORTAL,
      'sessions.yaml': 'name: sessions\nsummary: x\nrisk: read\nsql: DELETE FROM session_tokens\n',
    });
    const run = await checkConfig(configYaml().replace(JSON.stringify(packRoot), JSON.stringify(broken)));
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(/sessions\.yaml:4: sql: a read operation must be a SELECT/);
    expect(run.stdout).toBe('');
  });
});
