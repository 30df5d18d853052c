// Pack names exec would trip over, caught earlier: check-config (built CLI) and `/db help <op> <target>`.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { createLogger } from '../src/core/log.js';
import { createDatabase } from './helpers/db.js';

const CLI = resolve('dist/src/cli.js');
const work = mkdtempSync(join(tmpdir(), 'dbops-pack-names-'));
let url: string;

beforeAll(async () => {
  url = (await createDatabase('pack_names')).url;
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function writePack(root: string, name: string, files: Record<string, string>): string {
  const dir = join(work, root, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return join(work, root);
}

function configText(packDir: string | undefined, targets: string): string {
  return `state:
  url: \${DB_URL}
${packDir ? `packs:\n  dirs: [${JSON.stringify(packDir)}]\n` : ''}targets:
${targets}
people:
  alice: { cli: alice, roles: [dba] }
policy:
  production: { read: [dba], request: [dba], approve: [dba] }
`;
}

async function checkConfig(text: string) {
  const file = join(work, `config-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, text);
  return await execa('node', [CLI, 'check-config', '--config', file], {
    env: { PATH: process.env.PATH ?? '', DB_URL: url },
    extendEnv: false,
    reject: false,
    timeout: 60_000,
  });
}

describe('check-config catches what exec would refuse', () => {
  it('an operation named like a catalog operation or a built-in, with file:line', async () => {
    const dir = writePack('clash', 'shop', {
      'pack.yaml': 'name: shop\ndescription: shop\n',
      'sizes.yaml': 'name: sizes\nsummary: clashes\nrisk: read\nsql: SELECT 1 AS one\n',
      'audit.yaml': '# the audit\n\nname: audit\nsummary: clashes\nrisk: read\nsql: SELECT 1 AS one\n',
    });
    const run = await checkConfig(
      configText(dir, `  shop: { url: "\${DB_URL}", environment: production, packs: [shop] }`),
    );
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(/shop\/sizes\.yaml:1: name: sizes is a dbops operation on every target/);
    expect(run.stderr).toMatch(/shop\/audit\.yaml:3: name: audit is a built-in dbops command/);
  });

  it('two packs on one target defining the same operation, naming both files', async () => {
    const run = await checkConfig(
      configText(undefined, `  both: { url: "\${DB_URL}", environment: production, packs: [kasm, coder] }`),
    );
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(
      /targets\.both\.packs: packs kasm and coder both define users \(.*kasm\/users\.yaml:1, .*coder\/users\.yaml:1\)/,
    );
  });

  it('warns about an optional setting without a default that SQL would read as NULL', async () => {
    const dir = writePack('nulls', 'shop', {
      'pack.yaml':
        'name: shop\ndescription: shop\nsettings:\n  region: { type: text }\n  tier: { type: text, default: gold }\n',
      'by-region.yaml':
        'name: by-region\nsummary: r\nrisk: read\nsql: SELECT :region::text AS region, :tier::text AS tier\n',
    });
    const unset = await checkConfig(
      configText(dir, `  shop: { url: "\${DB_URL}", environment: production, packs: [shop] }`),
    );
    expect(unset.stdout).toMatch(
      /warning: targets\.shop: .*shop\/pack\.yaml:4: settings\.region has no default and is not required, so :region is NULL in .*by-region\.yaml:1/,
    );
    expect(unset.stdout).not.toMatch(/settings\.tier/);
    const set = await checkConfig(
      configText(
        dir,
        `  shop: { url: "\${DB_URL}", environment: production, packs: [shop], settings: { shop: { region: eu } } }`,
      ),
    );
    expect(set.stdout).toContain('valid');
    // No settings warning (the config's one dba requesting and approving is warned about, rightly).
    expect(set.stdout).not.toMatch(/warning: targets\./);
  });
});

describe('dbops start with an invalid catalog', () => {
  it('stops at once with the error and file:line, without waiting for the state database', async () => {
    const dir = writePack('start', 'shop', {
      'pack.yaml': 'name: shop\ndescription: shop\n',
      'locks.yaml': 'name: locks\nsummary: clashes\nrisk: read\nsql: SELECT 1 AS one\n',
    });
    const file = join(work, 'start.yaml');
    writeFileSync(
      file,
      configText(dir, `  shop: { url: "\${DB_URL}", environment: production, packs: [shop] }`),
    );
    // The state database is unreachable (port 1): before the catalog check, start kept retrying it.
    const run = await execa('node', [CLI, 'start', '--config', file], {
      env: {
        PATH: process.env.PATH ?? '',
        DB_URL: 'postgres://nobody@127.0.0.1:1/none',
        DBOPS_HTTP_PORT: '0',
      },
      extendEnv: false,
      reject: false,
      timeout: 30_000,
    });
    expect(run.timedOut).toBe(false);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(/shop\/locks\.yaml:1: name: locks is a dbops operation on every target/);
    expect(run.stdout).not.toContain('retrying');
  }, 60_000);
});

describe('/db help <operation> <target>', () => {
  let app: App;
  beforeAll(async () => {
    const config = loadConfigText(
      configText(
        undefined,
        `  kasm: { url: "\${DB_URL}", environment: production, packs: [kasm] }
  coder: { url: "\${DB_URL}", environment: production, packs: [coder] }
  hidden: { url: "\${DB_URL}", environment: secret, packs: [kasm] }`,
      ).replace('policy:', 'policy:\n  secret: {}'),
      'pack-names.yaml',
      { DB_URL: url },
    );
    app = await createApp({ config, log: createLogger({ level: 'silent' }) });
  });
  afterAll(async () => {
    await app.close();
  });
  const help = (text: string) => app.core.dispatch({ surface: 'cli', identity: 'alice', text });

  it("explains the named target's operation when two packs share the name", async () => {
    const kasm = await help('/db help users kasm');
    expect(kasm.status).toBe('ok');
    expect(kasm.text).toContain('Kasm users, optionally filtered');
    expect(kasm.text).not.toContain('Coder users');
    const coder = await help('/db help users CODER');
    expect(coder.text).toContain('Coder users (not deleted)');
  });

  it('refuses a target that does not exist or that the person may not see, alike', async () => {
    const missing = await help('/db help users kasmm');
    expect(missing.status).toBe('invalid');
    expect(missing.text).toContain('unknown target "kasmm" — did you mean `kasm`?');
    const hidden = await help('/db help users hidden');
    expect(hidden.text).toContain('unknown target "hidden"');
    expect(hidden.text).not.toContain('hidden`');
  });

  it('an operation the target has not is unknown there, not explained from another pack', async () => {
    const reply = await help('/db help workspaces-per-template kasm');
    expect(reply.status).toBe('invalid');
    expect(reply.text).toContain(
      'kasm has no operation workspaces-per-template: it belongs to the coder pack, which kasm does not use',
    );
    const nothing = await help('/db help no-such-thing kasm');
    expect(nothing.text).toContain('unknown operation `no-such-thing`');
  });
});
