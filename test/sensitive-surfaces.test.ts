// Sensitive columns in export and pack results, on every surface: the core's text and rows, `dbops exec`
// text and --json, Slack and Discord; masked values never in logs, the audit or any state table.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { createLogger } from '../src/core/log.js';
import type { Reply } from '../src/core/reply.js';
import { MASK } from '../src/sql/sensitive-columns.js';
import { startDiscord } from '../src/surfaces/discord/index.js';
import type { RunningSurface } from '../src/surfaces/types.js';
import { type Call, FakeDiscord, fakeUser } from './fakes/discord.js';
import { appMention, BOT_USER, FakeSlack, postSigned } from './fakes/slack.js';
import { adminQuery, createDatabase, majors } from './helpers/db.js';
import { KASM_RUNBOOK_SCHEMA } from './helpers/runbook-shapes.js';
import { freePort } from './setup/postgres.js';

const CLI = resolve('dist/src/cli.js');

const SETUP = `
${KASM_RUNBOOK_SCHEMA}
CREATE TABLE customers (id int PRIMARY KEY, name text, email text, password_hash text);
INSERT INTO customers SELECT i, 'Customer ' || i, 'cust' || i || '@secret.test', 'pbkdf2$' || i || '$salt'
  FROM generate_series(1, 30) i;
CREATE TABLE tokens (email text PRIMARY KEY, note text);
INSERT INTO tokens VALUES ('cust1@secret.test', 'a'), ('cust2@secret.test', 'b');
CREATE VIEW customer_contacts AS
  SELECT c.id, c.name, c.email AS contact, lower(c.email) AS contact_lc, length(c.name) AS name_len
    FROM customers c;
CREATE TABLE signups (id int, email text) PARTITION BY RANGE (id);
CREATE TABLE signups_early PARTITION OF signups FOR VALUES FROM (0) TO (100);
INSERT INTO signups SELECT i, 'cust' || i || '@secret.test' FROM generate_series(40, 45) i;
CREATE VIEW contacts_deep AS SELECT s.x AS who, s.id FROM (SELECT contact AS x, id FROM customer_contacts) s;
`;

/** Values that must never leave the database for someone without the privacy role. */
const SECRETS = [
  // cust1 and cust2 are typed in commands (a person's own input is audited as typed); no other is.
  /cust(?:[3-9]|\d\d)@secret\.test/,
  /pbkdf2\$/,
  // typed as admin@kasm.local: the stored spelling never leaves the database
  /Admin@Kasm\.Local/,
  /user\d+@example\.com/,
  /kasm-web-01/,
  /ip-10-20-4-17/,
];

const YAML = `
state:
  url: \${STATE_URL}
limits: { statement_timeout: 5s, lock_timeout: 1s, row_cap: 100, connect_timeout: 2s }
targets:
  kasm:
    url: \${KASM_URL}
    environment: production
    packs: [kasm]
    sensitive:
      columns: [users.username, managers.manager_hostname, customers.email, tokens.email, signups.email, "*.password_hash"]
      visible_to: [privacy]
people:
  ann: { cli: ann, slack: T1/UANN, discord: "300000000000000001", roles: [oncall] }
  pat: { cli: pat, slack: T1/UPAT, roles: [oncall, privacy] }
policy:
  production: { read: [oncall], write: [oncall], request: [oncall], approve: [oncall] }
`;

function leaks(text: string): RegExp[] {
  return SECRETS.filter((s) => s.test(text));
}

/** Every row of every dbops table of the state database, as text. */
async function stateDump(state: string): Promise<string> {
  const tables = await adminQuery<{ t: string }>(
    "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'dbops%'",
    [],
    state,
  );
  const out: string[] = [];
  for (const { t } of tables) {
    const rows = await adminQuery<{ j: string }>(`SELECT row_to_json(x)::text AS j FROM "${t}" x`, [], state);
    out.push(...rows.map((r) => `${t}: ${r.j}`));
  }
  return out.join('\n');
}

for (const major of majors()) {
  describe(`export and pack results on PostgreSQL ${major}`, () => {
    let app: App;
    let state: { name: string; url: string };
    let kasmUrl: string;
    const logs: string[] = [];

    beforeAll(async () => {
      const kasm = await createDatabase('sensitivekasm', SETUP, major);
      kasmUrl = kasm.url;
      state = await createDatabase('sensitivestate');
      const config = loadConfigText(YAML, 'sensitive.yaml', { STATE_URL: state.url, KASM_URL: kasm.url });
      // The app's log at debug level, captured whole.
      app = await createApp({
        config,
        log: createLogger({ level: 'debug', destination: { write: (line: string) => logs.push(line) } }),
      });
    });
    afterAll(async () => {
      await app?.close();
    });

    const as = (person: string) => (text: string) =>
      app.core.dispatch({ surface: 'cli', identity: person, text });

    function shown(reply: Reply): string {
      return `${reply.text}\n${JSON.stringify(reply.result ?? {})}\n${(reply.result?.attachments ?? []).map((a) => a.content).join('\n')}`;
    }

    it('masks a pack list and a lookup card by the columns their values come from', async () => {
      const users = await as('ann')('/db users kasm');
      expect(users.status, users.text).toBe('ok');
      expect(leaks(shown(users))).toEqual([]);
      expect(users.result?.rows[0]?.username).toBe(MASK);
      expect(users.text).toContain('masked (sensitive): username');
      // Not sensitive: the realm stays.
      expect(users.result?.rows.some((r) => r.realm === 'ldap')).toBe(true);

      const card = await as('ann')('/db lookup kasm user admin@kasm.local');
      expect(card.status, card.text).toBe('ok');
      expect(card.result?.rows).toHaveLength(1);
      expect(card.result?.rows[0]?.username).toBe(MASK);
      expect(leaks(shown(card))).toEqual([]);

      const seen = await as('pat')('/db lookup kasm user admin@kasm.local');
      expect(seen.result?.rows[0]?.username).toBe('Admin@Kasm.Local');
      expect(seen.text).not.toContain('masked');
    });

    it('masks export: the CSV, the rows shown and the data, for tables and views over them', async () => {
      const table = await as('ann')('/db export kasm customers');
      expect(table.status, table.text).toBe('ok');
      expect(leaks(shown(table))).toEqual([]);
      const csv = table.result?.attachments?.[0]?.content ?? '';
      expect(csv.split('\r\n')[1]).toBe(`1,Customer 1,${MASK},${MASK}`);
      expect(table.text).toContain('masked (sensitive): email, password_hash');

      const view = await as('ann')('/db export kasm customer_contacts');
      expect(leaks(shown(view))).toEqual([]);
      expect(view.result?.attachments?.[0]?.content.split('\r\n')[1]).toBe(`1,Customer 1,${MASK},${MASK},10`);
      const deep = await as('ann')('/db export kasm contacts_deep');
      expect(deep.result?.attachments?.[0]?.content.split('\r\n')[1]).toBe(`${MASK},1`);

      // A partition holds its parent's columns: the parent's pattern covers it.
      for (const relation of ['signups', 'signups_early']) {
        const part = await as('ann')(`/db export kasm ${relation}`);
        expect(part.status, part.text).toBe('ok');
        expect(part.result?.attachments?.[0]?.content.split('\r\n')[1]).toBe(`40,${MASK}`);
      }

      const seen = await as('pat')('/db export kasm customer_contacts --limit 1');
      expect(seen.status, seen.text).toBe('ok');
      expect(seen.result?.attachments?.[0]?.content).toContain('cust1@secret.test');
    });

    it('refuses filtering or ordering export by a sensitive column, and never orders by a sensitive key', async () => {
      for (const text of [
        '/db export kasm customers --where email=cust1@secret.test',
        '/db export kasm customers --order -email',
        '/db export kasm customer_contacts --where contact_lc=cust1@secret.test',
      ]) {
        const refused = await as('ann')(text);
        expect(refused.status, text).toBe('refused');
        expect(refused.text).toMatch(/is sensitive; it is exported only masked/);
      }
      const keyed = await as('ann')('/db export kasm tokens');
      expect(keyed.status).toBe('ok');
      expect(keyed.text).toContain('rows are in no particular order: the primary key is sensitive');
      expect(leaks(shown(keyed))).toEqual([]);
      const allowed = await as('pat')('/db export kasm customers --where email=cust2@secret.test');
      expect(allowed.status, allowed.text).toBe('ok');
      expect(allowed.result?.rows).toHaveLength(1);
    });

    it('masks a destructive pack preview for everyone (approvers see it), and the run still matches it', async () => {
      const preview = await as('pat')('/db fix-manager-hostname kasm new-host');
      expect(preview.status, preview.text).toBe('pending');
      expect(leaks(shown(preview))).toEqual([]);
      expect(preview.result?.rows).toEqual([
        expect.objectContaining({ current_hostname: MASK, new_hostname: 'new-host' }),
        expect.objectContaining({ current_hostname: MASK, new_hostname: 'new-host' }),
      ]);
      const done = await as('ann')(`/db approve ${preview.requestId}`);
      expect(done.status, done.text).toBe('ok');
      expect(done.text).toMatch(/2 rows changed/);
      expect(done.text).not.toMatch(/changed since the preview/);
    });

    it('masks what Discord receives: answers and attached CSV files', async () => {
      const fake = await FakeDiscord.start();
      const surface = await startDiscord({
        app,
        config: loadConfigText(YAML, 'sensitive.yaml', { STATE_URL: state.url, KASM_URL: kasmUrl }),
        env: fake.env(),
        log: createLogger({ level: 'debug', destination: { write: (line: string) => logs.push(line) } }),
      });
      try {
        const ann = fakeUser('300000000000000001', 'ann');
        for (const [operation, args] of [
          ['export', 'customers'],
          ['users', ''],
          ['lookup', 'user admin@kasm.local'],
        ] as const) {
          const i = fake.command(ann, { operation, target: 'kasm', args }, fake.channel);
          await fake.waitForCall(
            (c: Call) =>
              c.method === 'PATCH' &&
              c.path === `/webhooks/${fake.applicationId}/${i.token}/messages/@original` &&
              JSON.stringify(c.body).includes(MASK),
          );
        }
        const files = fake.calls.flatMap((c) => c.files.map((f) => f.content)).join('\n');
        expect(files).toContain(`1,Customer 1,${MASK},${MASK}`);
        expect(leaks(JSON.stringify(fake.calls.map((c) => c.body)) + files)).toEqual([]);
      } finally {
        await surface?.stop();
        await fake.stop();
      }
    });

    it('writes no masked value to the log or any state table (audit, requests, deliveries)', async () => {
      expect(logs.length).toBeGreaterThan(0);
      expect(leaks(logs.join('\n'))).toEqual([]);
      const dump = await stateDump(state.name);
      expect(dump).toMatch(/dbops_audit/);
      expect(leaks(dump)).toEqual([]);
    });
  });
}

describe('dbops exec (text and --json) and Slack', () => {
  let env: Record<string, string>;
  let configPath: string;
  let dir: string;

  beforeAll(async () => {
    const kasm = await createDatabase('sensitivecli', SETUP);
    const state = await createDatabase('sensitiveclistate');
    dir = await mkdtemp(join(tmpdir(), 'dbops-sensitive-'));
    configPath = join(dir, 'dbops.yaml');
    await writeFile(configPath, YAML);
    env = {
      PATH: process.env.PATH ?? '',
      STATE_URL: state.url,
      KASM_URL: kasm.url,
      DBOPS_LOG_FILE: join(dir, 'dbops.log'),
      DBOPS_LOG_LEVEL: 'debug',
    };
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function exec(person: string, command: string, json = false) {
    const out = join(dir, `out-${person}-${Math.random().toString(36).slice(2)}`);
    const run = await execa(
      'node',
      [
        CLI,
        'exec',
        '--config',
        configPath,
        '--as',
        person,
        '--out',
        out,
        ...(json ? ['--json'] : []),
        '--',
        command,
      ],
      { env, extendEnv: false, reject: false, timeout: 60_000 },
    );
    const files = await readdir(out).catch(() => [] as string[]);
    const attached = await Promise.all(files.map((f) => readFile(join(out, f), 'utf8')));
    return { ...run, attached: attached.join('\n') };
  }

  it('shows masked values in exec text and --json, files included; the privacy role sees them', async () => {
    const text = await exec('ann', '/db export kasm customers');
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toContain(MASK);
    expect(leaks(`${text.stdout}${text.stderr}${text.attached}`)).toEqual([]);
    expect(text.attached).toContain(`1,Customer 1,${MASK},${MASK}`);

    const json = await exec('ann', '/db users kasm', true);
    expect(json.exitCode, json.stderr).toBe(0);
    const body = JSON.parse(json.stdout) as { rows: Record<string, unknown>[]; text: string };
    expect(body.rows[0]?.username).toBe(MASK);
    expect(leaks(json.stdout)).toEqual([]);

    const card = await exec('ann', '/db lookup kasm user admin@kasm.local', true);
    expect((JSON.parse(card.stdout) as { rows: Record<string, unknown>[] }).rows[0]?.username).toBe(MASK);
    expect(leaks(card.stdout)).toEqual([]);

    const seen = await exec('pat', '/db users kasm', true);
    expect(seen.stdout).toMatch(/user\d+@example\.com/);

    // The log of the runs above (pat's included: values are never logged at all).
    const log = await readFile(env.DBOPS_LOG_FILE ?? '', 'utf8');
    expect(log.length).toBeGreaterThan(0);
    expect(leaks(log)).toEqual([]);
  });

  it('masks what Slack receives: messages and uploaded CSV files', async () => {
    const built = async <M>(path: string): Promise<M> =>
      (await import(pathToFileURL(resolve('dist/src', path)).href)) as M;
    const { createApp } = await built<typeof import('../src/app.js')>('app.js');
    const { loadConfigText: load } = await built<typeof import('../src/config/load.js')>('config/load.js');
    const { silentLogger } = await built<typeof import('../src/core/log.js')>('core/log.js');
    const { startSlack } =
      await built<typeof import('../src/surfaces/slack/index.js')>('surfaces/slack/index.js');
    const config = load(YAML, 'sensitive.yaml', env);
    const app = await createApp({ config, log: silentLogger() });
    const fake = await FakeSlack.start();
    const port = await freePort();
    const secret = 'sensitive-signing-secret-5c2e';
    let surface: RunningSurface | undefined;
    try {
      surface = await startSlack({
        app,
        config,
        log: silentLogger(),
        env: {
          SLACK_BOT_TOKEN: 'xoxb-sens',
          SLACK_SIGNING_SECRET: secret,
          SLACK_PORT: String(port),
          SLACK_API_URL: fake.apiUrl,
          SLACK_API_RETRIES: '0',
        },
      });
      let ts = 1_700_000_000;
      for (const text of ['export kasm customers', 'users kasm', 'lookup kasm user admin@kasm.local']) {
        ts += 1;
        const event = appMention({
          user: 'UANN',
          channel: 'COPS',
          text: `<@${BOT_USER}> ${text}`,
          ts: `${ts}.000100`,
        });
        const posted = await postSigned(`http://127.0.0.1:${port}/slack/events`, {
          secret,
          body: JSON.stringify(event),
          contentType: 'application/json',
        });
        expect(posted.status).toBe(200);
      }
      await fake.until(() => fake.uploads.some((u) => u.content.includes('Customer 1')), 'the export CSV');
      await fake.until(
        () => fake.calls.filter((c) => JSON.stringify(c.body).includes(MASK)).length >= 3,
        'three masked answers',
      );
      const everything = JSON.stringify(fake.calls) + fake.uploads.map((u) => u.content).join('\n');
      expect(fake.uploads.map((u) => u.content).join('')).toContain(`1,Customer 1,${MASK},${MASK}`);
      expect(leaks(everything)).toEqual([]);
    } finally {
      await surface?.stop();
      await app.close();
      await fake.close();
    }
  });
});
