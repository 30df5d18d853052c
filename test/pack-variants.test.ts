// Pack operations that fit the schema they find: the target's catalog read once per pool (again after a
// reconnect or when asked), the first fitting variant chosen, and operations whose tables are missing
// refused with the reason — by the operation, /db help and check-config alike — without sending their SQL.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { checkTargets, formatCheckReport } from '../src/config/check.js';
import { loadConfigText } from '../src/config/load.js';
import type { OperationContext } from '../src/core/operation.js';
import { TargetPools } from '../src/engine/target-db.js';
import type { Session, TargetDb } from '../src/engine/types.js';
import { builtinPacksDir, loadPackDir, loadPacks } from '../src/packs/load.js';
import { packOperationSpec } from '../src/packs/operation.js';
import { CATALOG_SQL, readTargetSchema, refreshTargetSchema } from '../src/packs/target-schema.js';
import { as, startApp } from './helpers/app.js';
import { adminQuery, createDatabase, openClient } from './helpers/db.js';
import { KASM_RUNBOOK_SCHEMA } from './helpers/runbook-shapes.js';

let app: App;
let partial: { name: string; url: string };
let growing: { name: string; url: string };
let configYaml: string;
let env: Record<string, string>;
const bob = (text: string) => as(app, 'bob')(text);

/** Statements pg_stat_statements saw on one database (successful ones), with how often each ran. */
async function statements(database: string): Promise<{ query: string; calls: number }[]> {
  return await adminQuery<{ query: string; calls: number }>(
    `SELECT query, calls::int AS calls FROM pg_stat_statements
      WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [],
    database,
  );
}

beforeAll(async () => {
  const [p, g, state, migrated, fresh] = await Promise.all([
    // Kasm as the runbook has it, but without sessions (nor kasms) and without session_tokens.
    createDatabase(
      'kasmpartial',
      `${KASM_RUNBOOK_SCHEMA}
       DROP TABLE sessions; DROP TABLE session_tokens;
       CREATE EXTENSION pg_stat_statements;`,
    ),
    createDatabase('kasmgrowing', `${KASM_RUNBOOK_SCHEMA} CREATE EXTENSION pg_stat_statements;`),
    createDatabase('variantsstate'),
    // The exam platform's runbook: alembic_version (version_num), and a database never migrated.
    createDatabase(
      'migrated',
      "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); INSERT INTO alembic_version VALUES ('3f2a1b')",
    ),
    createDatabase('fresh'),
  ]);
  partial = p;
  growing = g;
  // Forget the set-up's own statements (this database's only).
  for (const d of [partial.name, growing.name]) {
    await adminQuery(
      'SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)',
      [],
      d,
    );
  }
  configYaml = `
state: { url: "\${STATE_URL}" }
targets:
  partial: { url: "\${PARTIAL_URL}", environment: production, packs: [kasm] }
  growing: { url: "\${GROWING_URL}", environment: production, packs: [kasm] }
  migrated: { url: "\${MIGRATED_URL}", environment: production, packs: [alembic] }
  fresh: { url: "\${FRESH_URL}", environment: production, packs: [alembic] }
  down: { url: "postgres://postgres@127.0.0.1:1/nothing", environment: production, packs: [kasm] }
people:
  alice: { cli: alice, roles: [dba] }
  bob: { cli: bob, roles: [dba] }
policy:
  production: { read: [dba], write: [dba], request: [dba], approve: [dba] }
`;
  env = {
    STATE_URL: state.url,
    PARTIAL_URL: partial.url,
    GROWING_URL: growing.url,
    MIGRATED_URL: migrated.url,
    FRESH_URL: fresh.url,
  };
  app = await startApp(loadConfigText(configYaml, 'variants.yaml', env));
});

afterAll(async () => app?.close());

const MISSING_SESSIONS =
  "missing table kasms (Kasm's kasms table) or table sessions (the runbook's sessions table)";

describe('an operation the schema cannot serve', () => {
  it('is refused with the missing tables, not a PostgreSQL error, and nothing is queued', async () => {
    const sessions = await bob('/db kasm-sessions partial');
    expect(sessions).toMatchObject({ status: 'refused', code: 'unavailable' });
    expect(sessions.text).toContain(`kasm-sessions is not available on partial: ${MISSING_SESSIONS}`);
    const user = await bob('/db lookup partial user admin@kasm.local');
    expect(user).toMatchObject({ status: 'refused', code: 'unavailable' });
    expect(user.text).toContain('lookup user is not available on partial: missing');
    expect(user.text).toContain('table sessions');
    const clean = await as(app, 'alice')('/db clean-expired-tokens partial');
    expect(clean).toMatchObject({ status: 'refused', code: 'unavailable' });
    expect(clean.text).toContain('missing table session_tokens');
    expect((await bob('/db pending partial')).text).not.toContain('clean-expired-tokens');
    // What the schema has still works.
    expect((await bob('/db workspaces partial')).status).toBe('ok');
    // Only the catalog query and the workspaces query ever ran there; the catalog was read once.
    const seen = await statements(partial.name);
    expect(seen.filter((s) => /\bkasms\b|\bsessions\b|session_tokens/.test(s.query))).toEqual([]);
    expect(seen.filter((s) => s.query.includes('pg_table_is_visible'))).toEqual([
      expect.objectContaining({ calls: 1 }),
    ]);
  });

  it('never hands its SQL to the database: a recording session sees only the catalog query', async () => {
    const pack = loadPackDir(join(builtinPacksDir(), 'kasm'), []);
    const op = pack?.operations.find((o) => o.def.name === 'kasm-sessions');
    if (!pack || !op) throw new Error('kasm-sessions not loaded');
    const config = loadConfigText(configYaml, 'variants.yaml', env);
    const pools = new TargetPools(config.targets);
    const sent: string[] = [];
    const real = pools.get('partial');
    const record = (session: Session): Session =>
      new Proxy(session, {
        get(target, key, receiver) {
          const value = Reflect.get(target, key, receiver);
          if (key === 'query' || key === 'cursor' || key === 'execute') {
            return (sql: string, ...rest: unknown[]) => {
              sent.push(sql);
              return (value as (...a: unknown[]) => unknown).call(target, sql, ...rest);
            };
          }
          return value;
        },
      });
    const db: TargetDb = {
      name: real.name,
      read: (fn, limits) => real.read((s) => fn(record(s)), limits),
      write: (fn, limits) => real.write((s) => fn(record(s)), limits),
      direct: (fn, limits) => real.direct((s) => fn(record(s)), limits),
      ownPids: () => real.ownPids(),
      serverVersion: () => real.serverVersion(),
      generation: () => real.generation?.() ?? 0,
    };
    const target = config.targets.partial;
    if (!target) throw new Error('no target');
    const spec = packOperationSpec(pack, op);
    const ctx = {
      args: spec.args.parse({}),
      target,
      db,
      limits: { ...target.limits },
      now: new Date(),
      requestId: 'r1',
      backupsDir: '/nonexistent',
      progress: () => {},
    } as unknown as OperationContext<Record<string, unknown>>;
    try {
      await expect(spec.run?.(ctx)).rejects.toMatchObject({ code: 'unavailable' });
      expect(sent).toEqual([CATALOG_SQL]);
      expect(await spec.unavailable?.(db)).toBe(MISSING_SESSIONS);
      expect(sent).toEqual([CATALOG_SQL]);
    } finally {
      await pools.closeAll();
    }
  });

  it('/db help <target> lists it with the same reason, within 80 columns', async () => {
    const help = await bob('/db help partial');
    expect(help.status).toBe('ok');
    expect(help.text).toContain('Unavailable here (the schema lacks what they need):');
    expect(help.text).toMatch(/ {2}kasm-sessions:\n {4}missing table kasms/);
    expect(help.text).toMatch(/ {2}lookup user:\n/);
    expect(help.text).toMatch(/ {2}clean-expired-tokens:\n {4}missing table session_tokens/);
    expect(help.text).not.toMatch(/ {2}workspaces:/);
    const unavailable = help.text.slice(help.text.indexOf('Unavailable here'));
    for (const line of unavailable.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    const full = await bob('/db help growing');
    expect(full.text).not.toContain('Unavailable here');
    // A target that cannot be asked: help still answers, and says what it cannot know.
    const down = await bob('/db help down');
    expect(down.status).toBe('ok');
    expect(down.text).toContain('Which operations its schema can serve is unknown:');
    expect(down.text).toContain('kasm-sessions');
  });

  it('check-config lists, per target, each unavailable operation and what is missing', async () => {
    const config = loadConfigText(configYaml, 'variants.yaml', env);
    const packs = loadPacks([builtinPacksDir()]);
    const checks = await checkTargets(config, { packs, includeState: false });
    const byName = Object.fromEntries(checks.map((c) => [c.name, c]));
    const partialKasm = byName.partial?.packs?.find((p) => p.pack === 'kasm');
    expect(partialKasm?.unavailable?.map((u) => u.shown).sort()).toEqual([
      'clean-expired-tokens',
      'kasm-sessions',
      'logout-all',
      'lookup session',
      'lookup user',
    ]);
    expect(partialKasm?.unavailable?.find((u) => u.operation === 'kasm-sessions')?.reason).toBe(
      MISSING_SESSIONS,
    );
    // The expectations (the runbook minimum) name session_tokens too.
    expect(partialKasm?.problems).toEqual(['pack kasm expects table session_tokens, not found']);
    expect(byName.growing?.packs?.[0]?.unavailable).toEqual([]);
    const report = formatCheckReport(checks);
    expect(report).toContain(
      "  unavailable: kasm kasm-sessions:\n    missing table kasms (Kasm's kasms table) or table sessions (the runbook's\n    sessions table)\n",
    );
    expect(report).toContain('  unavailable: kasm logout-all:\n    missing table session_tokens\n');
    const unavailableLines = report
      .split('\n')
      .filter((l) => l.startsWith('  unavailable:') || l.startsWith('    '));
    for (const line of unavailableLines) expect(line.length).toBeLessThanOrEqual(80);
    expect(byName.fresh?.packs?.[0]?.unavailable?.map((u) => `${u.shown}: ${u.reason}`)).toEqual([
      'migrate-down: missing table alembic_version',
      'migrate-up: missing table alembic_version',
      'migrations: missing table alembic_version',
    ]);
    expect(byName.migrated?.packs?.[0]?.unavailable).toEqual([]);
    expect(report).toContain("\n8 pack operations unavailable on their target's schema");
  });
});

describe('the schema cache', () => {
  it('is read once per pool, again after a reconnect and when refreshed, and the variant follows', async () => {
    const columns = async () => {
      const r = await bob('/db workspaces growing');
      expect(r.status).toBe('ok');
      return r.result?.columns.map((c) => c.key);
    };
    const catalogReads = async () =>
      (await statements(growing.name))
        .filter((s) => s.query.includes('pg_table_is_visible'))
        .reduce((n, s) => n + s.calls, 0);
    expect(await columns()).not.toContain('image');
    const before = await catalogReads();
    await adminQuery(
      "ALTER TABLE images ADD COLUMN name text NOT NULL DEFAULT 'kasmweb/x:1'",
      [],
      growing.name,
    );
    // Cached for the pool: the richer variant is not chosen yet, and nothing fails.
    expect(await columns()).not.toContain('image');
    // The server drops the bot's connections: the pool reconnects, and the schema is read again.
    const pids = app.pools.get('growing').ownPids();
    expect(pids.length).toBeGreaterThan(0);
    await adminQuery('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
    await expect.poll(() => app.pools.get('growing').ownPids().length, { timeout: 10_000 }).toBe(0);
    expect(await columns()).toContain('image');
    const rows = (await bob('/db workspaces growing')).result?.rows ?? [];
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => r.image === 'kasmweb/x:1')).toBe(true);
    // The column goes away behind the cache's back: the one call that still names it fails with
    // PostgreSQL's words, and the schema is forgotten, so the next call fits again.
    await adminQuery('ALTER TABLE images DROP COLUMN name', [], growing.name);
    const stale = await bob('/db workspaces growing');
    expect(stale).toMatchObject({ status: 'failed', code: 'query_failed' });
    expect(stale.text).toContain('column "name" does not exist');
    expect(await columns()).not.toContain('image');
    // And an explicit refresh (as check-config reads afresh) picks the richer variant again.
    await adminQuery(
      "ALTER TABLE images ADD COLUMN name text NOT NULL DEFAULT 'kasmweb/y:2'",
      [],
      growing.name,
    );
    await refreshTargetSchema(app.pools.get('growing'));
    expect(await columns()).toContain('image');
    await adminQuery('ALTER TABLE images DROP COLUMN name', [], growing.name);
    await refreshTargetSchema(app.pools.get('growing'));
    expect(await columns()).not.toContain('image');
    // Read four more times in all: after the reconnect, after the error and at the two refreshes;
    // every other call used the cache.
    expect(await catalogReads()).toBe(before + 4);
  });
});

describe('the alembic pack and alembic_version', () => {
  it('reads the revision where the table is, and says a database never migrated has none', async () => {
    const migrations = await bob('/db migrations migrated');
    expect(migrations.status).toBe('ok');
    expect(migrations.result?.rows).toEqual([{ version_num: '3f2a1b' }]);
    const none = await bob('/db migrations fresh');
    expect(none).toMatchObject({ status: 'refused', code: 'unavailable' });
    expect(none.text).toContain('migrations is not available on fresh: missing table alembic_version');
    // The upgrade reads the current revision first: refused before any command runs or request is made.
    const up = await as(app, 'alice')('/db migrate-up fresh');
    expect(up).toMatchObject({ status: 'refused', code: 'unavailable' });
    expect(up.text).toContain('missing table alembic_version');
  });
});

describe('a preview and a schema that changes before the approval', () => {
  it('runs nothing when the variant that previewed no longer fits, and says to ask again', async () => {
    const request = await as(
      app,
      'alice',
    )('/db fix-manager-hostname growing kasm-web-09 --from ip-10-20-4-17');
    expect(request.status).toBe('pending');
    expect(request.result?.columns.map((c) => c.key)).toContain('zone_id');
    await adminQuery('CREATE TABLE zones (zone_id uuid PRIMARY KEY, zone_name text)', [], growing.name);
    try {
      await refreshTargetSchema(app.pools.get('growing'));
      const approved = await bob(`/db approve ${request.requestId}`);
      expect(approved).toMatchObject({ code: 'stale_preview' });
      expect(approved.text).toContain('the schema of growing changed since the preview');
      expect(await adminQuery('SELECT manager_hostname FROM managers ORDER BY 1', [], growing.name)).toEqual([
        { manager_hostname: 'ip-10-20-4-17' },
        { manager_hostname: 'kasm-web-01' },
      ]);
    } finally {
      await adminQuery('DROP TABLE zones', [], growing.name);
      await refreshTargetSchema(app.pools.get('growing'));
    }
  });
});

describe('reading the catalog', () => {
  it('finds unqualified names through the search_path, schema.table anywhere, never dropped columns', async () => {
    const { url } = await createDatabase(
      'catalog',
      `CREATE SCHEMA side; CREATE TABLE side.t (a int, gone int); ALTER TABLE side.t DROP COLUMN gone;
       CREATE TABLE public.t (b int); CREATE SCHEMA app; CREATE VIEW app.v AS SELECT 1 AS one;`,
    );
    const client = await openClient(url);
    try {
      const onPath = await readTargetSchema(client);
      expect(onPath.missing({ t: ['b'], 'side.t': ['a'] })).toEqual([]);
      expect(onPath.missing({ t: ['a'], 'side.t': ['gone'], v: ['one'] })).toEqual([
        'column t.a',
        'column side.t.gone',
        'table v',
      ]);
      await client.query('SET search_path = side, app');
      const other = await readTargetSchema(client);
      expect(other.missing({ t: ['a'], v: ['one'], 'public.t': ['b'] })).toEqual([]);
      expect(other.missing({ t: ['b'] })).toEqual(['column t.b']);
    } finally {
      await client.end();
    }
  });
});
