// Builds real dbops apps (state store, pools, core) over the suite's PostgreSQL for pipeline tests.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type App, createApp } from '../../src/app.js';
import { loadConfigText } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { silentLogger } from '../../src/core/log.js';
import type { Reply } from '../../src/core/reply.js';
import type { Surface } from '../../src/core/types.js';
import { freePort } from '../setup/postgres.js';
import { createDatabase } from './db.js';

export interface Fixture {
  /** The staging target's database (environment staging, approvals 1). */
  staging: { name: string; url: string };
  /** The kasm target's database (environment production, approvals 2). */
  kasm: { name: string; url: string };
  state: { name: string; url: string };
  env: Record<string, string>;
  yaml: string;
  config: Config;
  /** Writes the YAML to a temp file (for the CLI). */
  writeConfig(): string;
}

export const FIXTURE_YAML = `
state:
  url: \${STATE_URL}
limits:
  statement_timeout: 5s
  lock_timeout: 1s
  row_cap: 50
  connect_timeout: 2s
targets:
  staging:
    url: \${STAGING_URL}
    environment: staging
    description: exam platform (Alembic)
  kasm:
    url: \${KASM_URL}
    environment: production
  down:
    url: \${DOWN_URL}
    environment: development
people:
  alice: { cli: alice, slack: T1/UALICE, roles: [dba] }
  bob:   { cli: bob, discord: "80351110224678912", roles: [oncall] }
  carol: { cli: carol, roles: [developer] }
  dave:  { cli: dave, roles: [dba] }
policy:
  staging:     { read: [everyone], write: [oncall, dba], request: [oncall, dba], approve: [oncall, dba] }
  production:  { read: [oncall, dba], write: [dba], request: [oncall, dba], approve: [dba], approvals: 2 }
  development: { read: [everyone], write: [everyone], request: [everyone], approve: [dba, oncall] }
channels:
  "slack:CINCIDENT": { target: kasm }
`;

export async function makeFixture(): Promise<Fixture> {
  const [staging, kasm, state] = await Promise.all([
    createDatabase(
      'staging',
      'CREATE TABLE exams (id serial primary key, title text); INSERT INTO exams (title) SELECT md5(i::text) FROM generate_series(1, 2000) i;',
    ),
    createDatabase(
      'kasm',
      "CREATE TABLE managers (manager_id serial primary key, manager_hostname text); INSERT INTO managers (manager_hostname) VALUES ('old-host');",
    ),
    createDatabase('state'),
  ]);
  const downPort = await freePort();
  const env = {
    STATE_URL: state.url,
    STAGING_URL: staging.url,
    KASM_URL: kasm.url,
    DOWN_URL: `postgres://nobody:secret@127.0.0.1:${downPort}/nothing`,
  };
  const config = loadConfigText(FIXTURE_YAML, 'fixture.yaml', env);
  return {
    staging,
    kasm,
    state,
    env,
    yaml: FIXTURE_YAML,
    config,
    writeConfig() {
      const path = join(tmpdir(), `dbops-fixture-${state.name}.yaml`);
      writeFileSync(path, FIXTURE_YAML);
      return path;
    },
  };
}

export async function startApp(
  config: Config,
  clock?: () => Date,
  options: { runLeaseMs?: number } = {},
): Promise<App> {
  return await createApp({ config, log: silentLogger(), ...(clock ? { clock } : {}), ...options });
}

/** Sends one command as a person through the whole core. */
/**
 * Dispatches as `identity`; resolves once the writes made after the reply (a read's closing audit
 * record) are done too, so a test reads the audit log as it will stay.
 */
export function as(app: App, identity: string, surface: Surface = 'cli', channel?: string) {
  return async (text: string): Promise<Reply> => {
    const reply = await app.core.dispatch({
      surface,
      identity,
      text,
      ...(channel !== undefined ? { channel } : {}),
    });
    await app.core.settled();
    return reply;
  };
}
