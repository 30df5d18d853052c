// dbops.yaml loading: interpolation, validation, cross-checks, and messages that name path, line and fix.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  hasLiteralPassword,
  interpolate,
  loadConfigFile,
  loadConfigText,
  resolvePerson,
} from '../src/config/load.js';
import { ConfigError } from '../src/core/errors.js';

const ENV = {
  DBOPS_STATE_URL: 'postgres://dbops:state-secret@state-db:5432/dbops',
  KASM_DATABASE_URL: 'postgres://dbops:kasm-secret@kasm-db:5432/kasm',
  STAGING_DB_PASSWORD: 'staging-secret',
  CODER_DATABASE_URL: 'postgres://dbops:coder-secret@coder-db:5432/coder',
};

// Line numbers matter: the tests below refer to them.
const VALID = `state:
  url: \${DBOPS_STATE_URL}
limits:
  row_cap: 500
targets:
  kasm:
    url: \${KASM_DATABASE_URL}
    environment: production
    limits: { row_cap: 50, statement_timeout: 10s }
people:
  alice: { slack: T01/U01ALICE, cli: alice, roles: [dba] }
  bob: { discord: "80351110224678912", roles: [oncall] }
policy:
  production: { read: [oncall, dba], approve: [dba], approvals: 2 }
  staging: { read: [everyone] }
channels:
  slack:C0INCIDENT: { target: kasm }
`;

/** Replaces one line (1-based) of VALID. */
function withLine(line: number, text: string): string {
  const lines = VALID.split('\n');
  lines[line - 1] = text;
  return lines.join('\n');
}

function problemsOf(text: string, env: Record<string, string | undefined> = ENV): readonly string[] {
  try {
    loadConfigText(text, 'dbops.yaml', env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError, but the configuration loaded');
}

describe('loadConfigText', () => {
  it('builds the frozen config with effective limits and people', () => {
    const config = loadConfigText(VALID, 'dbops.yaml', ENV);
    expect(config.state).toEqual({ url: ENV.DBOPS_STATE_URL, expirySeconds: 900 });
    expect(config.targets.kasm).toEqual({
      name: 'kasm',
      url: ENV.KASM_DATABASE_URL,
      environment: 'production',
      packs: [],
      limits: {
        statement_timeout: 10,
        lock_timeout: 1,
        row_cap: 50,
        pool_max: 4,
        pool_idle: 30,
        connect_timeout: 5,
      },
    });
    expect(config.people.alice).toEqual({
      name: 'alice',
      roles: ['dba'],
      identities: { slack: 'T01/U01ALICE', cli: 'alice' },
    });
    expect(config.policy.production?.approvals).toBe(2);
    expect(config.channels).toEqual({ 'slack:C0INCIDENT': { target: 'kasm' } });
    expect(config.backupsDir).toBe(resolve('backups'));
    expect(config.source).toBe('dbops.yaml');
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.targets.kasm?.limits)).toBe(true);
    expect(Object.isFrozen(config.people.alice?.roles)).toBe(true);
    expect(Object.isFrozen(config.people.alice?.identities)).toBe(true);
  });

  it('resolves people by identity kind', () => {
    const config = loadConfigText(VALID, 'dbops.yaml', ENV);
    expect(resolvePerson(config, 'slack', 'T01/U01ALICE')?.name).toBe('alice');
    expect(resolvePerson(config, 'discord', '80351110224678912')?.name).toBe('bob');
    expect(resolvePerson(config, 'cli', 'alice')?.name).toBe('alice');
    // An identity counts only for its own kind.
    expect(resolvePerson(config, 'discord', 'alice')).toBeUndefined();
    expect(resolvePerson(config, 'slack', 'T01/U99NOBODY')).toBeUndefined();
  });

  it('names a missing environment variable and where it is used', () => {
    expect(problemsOf(VALID, { ...ENV, KASM_DATABASE_URL: undefined })).toEqual([
      'targets.kasm.url (dbops.yaml:7): environment variable KASM_DATABASE_URL is not set; set KASM_DATABASE_URL in the environment of dbops (e.g. export KASM_DATABASE_URL=...)',
    ]);
    expect(problemsOf(VALID, { ...ENV, DBOPS_STATE_URL: '' })).toEqual([
      'state.url (dbops.yaml:2): environment variable DBOPS_STATE_URL is empty; set DBOPS_STATE_URL in the environment of dbops (e.g. export DBOPS_STATE_URL=...)',
    ]);
  });

  it('interpolates inside strings only, with $${ as a literal', () => {
    expect(interpolate(`a-\${X}-$\${Y}-\${X}`, { X: '1' })).toEqual({ ok: true, value: `a-1-\${Y}-1` });
    expect(interpolate(`\${bad name}`, {})).toEqual({
      ok: false,
      problems: [
        `"\${bad name}" is not a variable name; use letters, digits and _ (e.g. \${KASM_DATABASE_URL}), or $\${ for a literal "\${"`,
      ],
    });
    expect(interpolate('x${OPEN', {}).ok).toBe(false);
    const text = withLine(11, '  alice: { slack: T01/U01ALICE, cli: "$${HOME}", roles: [dba] }');
    expect(loadConfigText(text, 'dbops.yaml', ENV).people.alice?.identities.cli).toBe(`\${HOME}`);
    // Keys are not interpolated.
    const keyed = withLine(11, `  \${WHO}: { slack: T01/U01ALICE, roles: [dba] }`);
    expect(problemsOf(keyed, { ...ENV, WHO: 'alice' })).toEqual([
      `people.\${WHO} (dbops.yaml:11): '\${WHO}' is not a valid name; use lower-case letters, digits, "-" and "_", starting with a letter`,
    ]);
  });

  it('suggests the intended name for an unknown key', () => {
    expect(problemsOf(VALID.replace('targets:', 'tragets:'))).toEqual([
      'targets (dbops.yaml:1): is missing; add `targets:`',
      "unknown key 'tragets' (dbops.yaml:5); did you mean 'targets'?",
    ]);
    expect(problemsOf(withLine(8, '    enviroment: production'))).toEqual([
      'targets.kasm.environment (dbops.yaml:6): is missing; add `environment:` under targets.kasm',
      "unknown key 'targets.kasm.enviroment' (dbops.yaml:8); did you mean 'environment'?",
    ]);
    expect(
      problemsOf(withLine(11, '  alice: { slack: T01/U01ALICE, email: a@example.com, roles: [dba] }')),
    ).toEqual([
      "unknown key 'people.alice.email' (dbops.yaml:11); remove it; known keys here: slack, discord, cli, roles, service",
    ]);
  });

  it('requires every target environment to have a policy', () => {
    expect(problemsOf(withLine(8, '    environment: prod'))).toEqual([
      "targets.kasm.environment (dbops.yaml:8): 'prod' is not an environment in policy; use one of production, staging or add policy.prod",
    ]);
  });

  it('requires an identity for every person', () => {
    expect(problemsOf(withLine(12, '  bob: { roles: [oncall] }'))).toEqual([
      'people.bob (dbops.yaml:12): has no identity, so nobody can act as bob; add at least one of slack (T…/U…), discord (user id) or cli (login name)',
    ]);
  });

  it('refuses the same identity on two people', () => {
    expect(problemsOf(withLine(12, '  bob: { slack: T01/U01ALICE, roles: [oncall] }'))).toEqual([
      "people.bob.slack (dbops.yaml:12): slack identity 'T01/U01ALICE' already belongs to people.alice (line 11); an identity can be one person only — remove one of them",
    ]);
  });

  it('refuses a policy role nobody holds, suggesting the closest', () => {
    expect(problemsOf(withLine(14, '  production: { read: [oncall, dba], approve: [dbas] }'))).toEqual([
      "policy.production.approve[0] (dbops.yaml:14): role 'dbas' is held by no one; did you mean 'dba'? give it to someone in people.<name>.roles, use 'everyone', or remove it",
    ]);
  });

  it('refuses a channel bound to an unknown target', () => {
    expect(problemsOf(withLine(17, '  slack:C0INCIDENT: { target: kasmm }'))).toEqual([
      "channels.slack:C0INCIDENT.target (dbops.yaml:17): 'kasmm' is not a target; did you mean 'kasm'? use one of kasm",
    ]);
  });

  it('refuses a literal password in a URL and never repeats it', () => {
    const problems = problemsOf(withLine(7, '    url: postgres://dbops:hunter2@kasm-db:5432/kasm'));
    expect(problems).toEqual([
      `targets.kasm.url (dbops.yaml:7): contains a literal password; keep secrets out of the file: write \${KASM_DATABASE_URL} (or postgres://user:\${KASM_PASSWORD}@host/db) and set the variable in the environment`,
    ]);
    expect(problems.join('\n')).not.toContain('hunter2');
    const state = problemsOf(withLine(2, '  url: "host=db user=dbops password=hunter2 dbname=dbops"'));
    expect(state).toHaveLength(1);
    expect(state[0]).toMatch(
      /^state\.url \(dbops\.yaml:2\): contains a literal password; .*\$\{DBOPS_STATE_URL\}/,
    );
  });

  it('accepts a password that comes from the environment', () => {
    expect(hasLiteralPassword(`postgres://dbops:\${KASM_PASSWORD}@kasm-db/kasm`)).toBe(false);
    expect(hasLiteralPassword(`\${KASM_DATABASE_URL}`)).toBe(false);
    expect(hasLiteralPassword('postgres://dbops@kasm-db/kasm')).toBe(false);
    expect(hasLiteralPassword('postgres://dbops:pw@kasm-db/kasm')).toBe(true);
    expect(hasLiteralPassword('postgres://dbops:$${X}@kasm-db/kasm')).toBe(true);
    expect(hasLiteralPassword('postgres://h/db?user=x&password=pw')).toBe(true);
    expect(hasLiteralPassword(`postgres://h/db?password=\${PW}`)).toBe(false);
  });

  it('reports zod problems with path, line and fix', () => {
    expect(problemsOf(withLine(9, '    limits: { row_cap: 0, statement_timeout: soon }'))).toEqual([
      'targets.kasm.limits.statement_timeout (dbops.yaml:9): expected a duration like "5s", "15m" or "1h", got "soon"',
      'targets.kasm.limits.row_cap (dbops.yaml:9): must be at least 1; raise it',
    ]);
    expect(problemsOf(withLine(14, '  production: { read: oncall }'))).toEqual([
      'policy.production.read (dbops.yaml:14): must be a list like [a, b], not text; fix the value',
    ]);
  });

  it('collects every problem at once, in file order', () => {
    const text = VALID.replace('limits:\n  row_cap: 500', 'limits:\n  row_cap: 500\n  pool_maxx: 3')
      .replace('environment: production', 'environment: prod')
      .replace('approve: [dba]', 'approve: [dbas]')
      .replace('{ target: kasm }', '{ target: nope }');
    const problems = problemsOf(text, { ...ENV, KASM_DATABASE_URL: undefined });
    expect(problems.map((p) => /\(dbops\.yaml:(\d+)\)/.exec(p)?.[1])).toEqual(['5', '8', '9', '15', '18']);
    expect(problems[0]).toBe("unknown key 'limits.pool_maxx' (dbops.yaml:5); did you mean 'pool_max'?");
    expect(problems[1]).toContain('KASM_DATABASE_URL is not set');
    expect(problems[2]).toContain("'prod' is not an environment in policy");
    expect(problems[3]).toContain("role 'dbas' is held by no one");
    expect(problems[4]).toContain("'nope' is not a target");
  });

  it('reports YAML syntax errors with file:line:column', () => {
    expect(problemsOf('state:\n  url: [unclosed\ntargets: {}\n')).toEqual([
      expect.stringMatching(/^dbops\.yaml:\d+:\d+: YAML syntax error: /),
    ]);
    expect(problemsOf('')).toEqual([
      'dbops.yaml: the file is empty; start from config/dbops.example.yaml (state, targets, people, policy)',
    ]);
  });
});

describe('loadConfigFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dbops-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads the example configuration with its variables set', () => {
    const config = loadConfigFile('config/dbops.example.yaml', ENV);
    expect(Object.keys(config.targets)).toEqual(['kasm', 'staging', 'coder']);
    expect(config.targets.kasm?.environment).toBe('production');
    expect(config.targets.kasm?.packs).toEqual(['kasm']);
    expect(config.targets.kasm?.limits.statement_timeout).toBe(10);
    expect(config.targets.staging?.url).toBe('postgres://dbops:staging-secret@staging-db.internal:5432/app');
    expect(config.targets.coder?.limits).toMatchObject({
      row_cap: 100,
      connect_timeout: 3,
      statement_timeout: 5,
    });
    expect(Object.keys(config.people)).toEqual(['alice', 'bob', 'carol']);
    expect(resolvePerson(config, 'discord', '80351110224678913')?.name).toBe('carol');
    expect(Object.keys(config.policy)).toEqual(['production', 'staging', 'development']);
    expect(config.policy.development?.expiry).toBe(3600);
    expect(config.channels['slack:C0INCIDENT']).toEqual({ target: 'kasm' });
    expect(config.state.expirySeconds).toBe(900);
    expect(config.backupsDir).toBe(resolve('config/backups'));
  });

  it('names every variable the example needs when none is set', () => {
    const err = (() => {
      try {
        loadConfigFile('config/dbops.example.yaml', {});
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConfigError);
    const problems = err instanceof ConfigError ? err.problems : [];
    expect(problems.map((p) => /variable (\w+) is not set/.exec(p)?.[1])).toEqual([
      'DBOPS_STATE_URL',
      'KASM_DATABASE_URL',
      'STAGING_DB_PASSWORD',
      'CODER_DATABASE_URL',
    ]);
  });

  it('resolves backups.dir against the file and reports an unreadable file', () => {
    const file = join(dir, 'dbops.yaml');
    writeFileSync(file, `${VALID}backups:\n  dir: ../dumps\n`);
    const config = loadConfigFile(file, ENV);
    expect(config.backupsDir).toBe(resolve(dir, '../dumps'));
    expect(config.source).toBe(file);

    const missing = join(dir, 'nope.yaml');
    expect(() => loadConfigFile(missing, ENV)).toThrow(ConfigError);
    expect(() => loadConfigFile(missing, ENV)).toThrow(
      `${missing}: cannot read the configuration (no such file); pass --config <file> or copy config/dbops.example.yaml`,
    );
  });
});
