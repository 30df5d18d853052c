// `dbops check-config` against the suite's real PostgreSQL: reachability, versions, privileges, no secrets.
import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkTargets, describeEndpoint, formatCheckReport, type TargetCheck } from '../src/config/check.js';
import { loadConfigText } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { adminQuery, adminUrl, createDatabase } from './helpers/db.js';
import { freePort } from './setup/postgres.js';

const suffix = randomBytes(4).toString('hex');
const role = `dbops_check_${suffix}`;
const password = `Pw-${randomBytes(12).toString('hex')}`;
const wrongPassword = `Wrong-${randomBytes(12).toString('hex')}`;

let database: string;
let config: Config;
let checks: TargetCheck[];
let report: string;

function urlFor(user: string, secret: string, db: string, port?: number): string {
  const url = new URL(adminUrl(db));
  url.username = user;
  url.password = secret;
  if (port !== undefined) url.port = String(port);
  return url.toString();
}

function byName(name: string): TargetCheck {
  const check = checks.find((c) => c.name === name);
  if (!check) throw new Error(`no check for ${name}`);
  return check;
}

beforeAll(async () => {
  database = (await createDatabase('check_config')).name;
  await adminQuery(`CREATE ROLE ${role} LOGIN PASSWORD '${password}' NOSUPERUSER`);
  await adminQuery(`GRANT pg_monitor TO ${role}`);
  const closedPort = await freePort();
  const env = {
    STATE_URL: adminUrl(database),
    GOOD_URL: urlFor(role, password, database),
    DOWN_URL: urlFor(role, password, database, closedPort),
    BADPW_URL: urlFor(role, wrongPassword, database),
    NODB_URL: urlFor(role, password, `missing_${suffix}`),
  };
  config = loadConfigText(
    `state:
  url: \${STATE_URL}
targets:
  good: { url: "\${GOOD_URL}", environment: production }
  down: { url: "\${DOWN_URL}", environment: production, limits: { connect_timeout: 3s } }
  badpw: { url: "\${BADPW_URL}", environment: staging }
  nodb: { url: "\${NODB_URL}", environment: staging }
people:
  alice: { cli: alice, roles: [dba] }
policy:
  production: { read: [dba] }
  staging: { read: [everyone] }
`,
    'check.yaml',
    env,
  );
  checks = await checkTargets(config);
  report = formatCheckReport(checks);
});

afterAll(async () => {
  await adminQuery(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
  await adminQuery(`DROP ROLE IF EXISTS ${role}`);
});

describe('checkTargets', () => {
  it('checks the state database and every target, in config order', () => {
    expect(checks.map((c) => [c.name, c.kind, c.reachable])).toEqual([
      ['state', 'state', true],
      ['good', 'target', true],
      ['down', 'target', false],
      ['badpw', 'target', false],
      ['nodb', 'target', false],
    ]);
  });

  it('reports version, user and privileges of a non-superuser role', async () => {
    const [server] = await adminQuery<{ v: string; n: string }>(
      "SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS n",
    );
    const good = byName('good');
    expect(good).toMatchObject({
      environment: 'production',
      endpoint: `${role}@${new URL(adminUrl()).hostname}:${new URL(adminUrl()).port}/${database}`,
      serverVersion: server?.v,
      serverVersionNum: Number(server?.n),
      currentUser: role,
      superuser: false,
      inRecovery: false,
      // pg_monitor includes pg_read_all_stats; nobody granted pg_signal_backend.
      roles: { pg_monitor: true, pg_read_all_stats: true, pg_signal_backend: false },
      hints: [`GRANT pg_signal_backend TO ${role};  -- for kill-idle and terminate`],
    });
    expect(good.reason).toBeUndefined();
  });

  it('says a superuser is more than the bot needs', () => {
    const state = byName('state');
    expect(state.superuser).toBe(true);
    expect(state.roles).toEqual({ pg_monitor: true, pg_read_all_stats: true, pg_signal_backend: true });
    expect(state.hints).toEqual([
      'connected as a superuser; a role with pg_monitor and pg_signal_backend is enough and safer for a bot',
    ]);
  });

  it('names the reason a target is unreachable', () => {
    expect(byName('down').reason).toBe('connection refused (nothing listens on that host and port)');
    expect(byName('badpw').reason).toBe('authentication failed (wrong password)');
    expect(byName('nodb').reason).toBe('database does not exist');
    for (const name of ['down', 'badpw', 'nodb']) {
      expect(byName(name).serverVersion).toBeUndefined();
      expect(byName(name).hints).toEqual([]);
    }
  });

  it('checks only the targets asked for', async () => {
    const only = await checkTargets(config, { includeState: false, targets: ['good'] });
    expect(only.map((c) => [c.name, c.reachable])).toEqual([['good', true]]);
  });

  it('never shows a password', () => {
    const everything = `${report}\n${JSON.stringify(checks)}`;
    expect(everything).not.toContain(password);
    expect(everything).not.toContain(wrongPassword);
    expect(everything).not.toContain(new URL(adminUrl()).password);
    expect(describeEndpoint('postgres://u:secret@db.internal:6543/app')).toBe('u@db.internal:6543/app');
    expect(describeEndpoint('not a url password=secret')).toBe('(connection string is not a URL)');
  });
});

describe('formatCheckReport', () => {
  it('prints one block per database, readable in a terminal', () => {
    const blocks = report.split('\n\n');
    expect(blocks).toHaveLength(6);
    const good = blocks[1]?.split('\n') ?? [];
    expect(good[0]).toMatch(
      new RegExp(`^\\[ok\\] good \\(production\\)  ${role}@\\S+/${database}  \\d+ ms$`),
    );
    expect(good.slice(1)).toEqual([
      `  server:  PostgreSQL ${byName('good').serverVersion} (${byName('good').serverVersionNum})`,
      `  user:    ${role} (not superuser)`,
      '  roles:   pg_monitor yes, pg_read_all_stats yes, pg_signal_backend NO',
      `  hint:    GRANT pg_signal_backend TO ${role};  -- for kill-idle and terminate`,
    ]);
    const down = blocks[2]?.split('\n') ?? [];
    expect(down[0]).toMatch(/^\[FAILED\] down \(production\) {2}\S+ {2}\d+ ms$/);
    expect(down[1]).toBe('  error:   connection refused (nothing listens on that host and port)');
    expect(blocks[3]).toContain('  error:   authentication failed (wrong password)');
    expect(blocks[3]).toContain(`password authentication failed for user "${role}"`);
    expect(blocks[4]).toContain('  error:   database does not exist');
    expect(blocks[5]).toBe('2 of 5 reachable');
  });

  it('lists the pack operations a target cannot serve, within 80 columns, and counts them', () => {
    const text = formatCheckReport([
      {
        name: 'kasm',
        kind: 'target',
        environment: 'production',
        endpoint: 'bot@db:5432/kasm',
        reachable: true,
        hints: [],
        elapsedMs: 3,
        packs: [
          {
            pack: 'kasm',
            problems: [],
            unavailable: [
              {
                operation: 'kasm-sessions',
                shown: 'kasm-sessions',
                reason:
                  "missing table kasms (Kasm's kasms table) or table sessions (the runbook's sessions table)",
              },
              { operation: 'kasm-user', shown: 'lookup user', reason: 'missing column users.last_session' },
            ],
          },
        ],
      },
    ]);
    expect(text.split('\n').slice(1)).toEqual([
      '  server:  PostgreSQL ? (?)',
      '  user:    ? (not superuser)',
      '  pack:    kasm: every expected table and column found',
      '  unavailable: kasm kasm-sessions:',
      "    missing table kasms (Kasm's kasms table) or table sessions (the runbook's",
      '    sessions table)',
      '  unavailable: kasm lookup user:',
      '    missing column users.last_session',
      '',
      "1 of 1 reachable; every pack's schema expectations met",
      "2 pack operations unavailable on their target's schema",
    ]);
    for (const line of text.split('\n').slice(1)) expect(line.length).toBeLessThanOrEqual(80);
  });
});

describe('unreachable hosts', () => {
  it('tells a silent server (timeout) from an unknown host', async () => {
    // Accepts TCP connections and never answers: the connect timeout must fire.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => {
      sockets.push(socket);
    });
    await new Promise<void>((done) => silent.listen(0, '127.0.0.1', done));
    const address = silent.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    try {
      const cfg = loadConfigText(
        `state:
  url: postgres://dbops:\${PW}@dbops-no-such-host.invalid/dbops
targets:
  silent:
    url: postgres://dbops:\${PW}@127.0.0.1:${port}/app
    environment: staging
    limits: { connect_timeout: 1s }
people:
  alice: { cli: alice }
policy:
  staging: { read: [everyone] }
`,
        'check.yaml',
        { PW: password },
      );
      const result = await checkTargets(cfg);
      expect(result.map((c) => [c.name, c.reachable, c.reason])).toEqual([
        ['state', false, 'host not found (check the host name and DNS)'],
        ['silent', false, 'timed out connecting'],
      ]);
      const text = formatCheckReport(result);
      expect(text).toContain('dbops@dbops-no-such-host.invalid:5432/dbops');
      expect(text).not.toContain(password);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });
});
