// The demo environment: its own embedded server, sample databases, the bot's role, live sessions, config.
import { randomBytes } from 'node:crypto';
import { access, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { catalog as operations } from '../commands/index.js';
import { loadConfigFile } from '../src/config/load.js';
import { configSchema } from '../src/config/schema.js';
import { Catalog, isBuiltin } from '../src/core/catalog.js';
import { DEMO_TRY_FIRST, type DemoEnvironment, startDemoEnvironment } from '../src/demo/environment.js';
import { loadConfiguredPacks, packCatalogEntries } from '../src/packs/registry.js';
import { toolPresent } from './setup/external-tools.js';
import { freePort } from './setup/postgres.js';

/** The table each sample database is mostly about, and a floor for its row count. */
const MAIN_TABLES: Record<string, [table: string, minimumRows: number][]> = {
  kasm: [
    ['session_tokens', 10_000],
    ['kasms', 1_000],
    ['users', 1_000],
    ['images', 10],
    ['managers', 1],
  ],
  staging: [
    ['answers', 50_000],
    ['exam_attempts', 1_000],
    ['alembic_version', 1],
  ],
  coder: [
    ['workspaces', 1_000],
    ['templates', 10],
    ['users', 100],
    ['provisionerjobs', 1_000],
  ],
  capsul: [
    ['accounts', 1_000],
    ['vms', 1_000],
    ['payments', 1_000],
    ['schemaversion', 1],
  ],
  activity: [
    ['activities', 90_000],
    ['users', 1_000],
    ['feedback', 100],
  ],
};

/** The index in each database that nothing ever scans (later operations look for these). */
const UNUSED_INDEXES: Record<string, string> = {
  kasm: 'idx_kasms_container_id',
  staging: 'ix_audit_events_entity',
  coder: 'idx_provisionerjobs_worker_id',
  capsul: 'payments_created_idx',
  activity: 'idx_feedback_created_at',
};

const URL_VARIABLES: Record<string, string> = {
  kasm: 'KASM_DATABASE_URL',
  staging: 'STAGING_DATABASE_URL',
  coder: 'CODER_DATABASE_URL',
  capsul: 'CAPSUL_DATABASE_URL',
  activity: 'ACTIVITY_DATABASE_URL',
};

let demo: DemoEnvironment;
let dir: string;
let port: number;
const logLines: string[] = [];

async function query<T extends pg.QueryResultRow>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

function botUrl(database: string): string {
  const url = demo.env[URL_VARIABLES[database] ?? ''];
  if (!url) throw new Error(`no URL for ${database} in the demo's env`);
  return url;
}

function passwordOf(url: string): string {
  return decodeURIComponent(new URL(url).password);
}

async function portAcceptsConnections(target: number): Promise<boolean> {
  return await new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port: target });
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

async function exists(path: string): Promise<boolean> {
  return await access(path).then(
    () => true,
    () => false,
  );
}

beforeAll(async () => {
  dir = join(tmpdir(), `dbops-demo-test-${randomBytes(4).toString('hex')}`);
  port = await freePort();
  demo = await startDemoEnvironment({ dir, port, log: (line) => logLines.push(line) });
}, 60_000);

afterAll(async () => {
  await demo?.stop();
}, 60_000);

describe('demo environment', () => {
  it('creates the five sample databases with rows in their main tables, readable by the bot', async () => {
    expect(demo.databases).toEqual(['kasm', 'staging', 'coder', 'capsul', 'activity']);
    const present = await query<{ datname: string }>(
      demo.adminUrl,
      'SELECT datname FROM pg_database WHERE datname = ANY($1) ORDER BY datname',
      [[...demo.databases, 'dbops_state']],
    );
    expect(present.map((row) => row.datname)).toEqual([
      'activity',
      'capsul',
      'coder',
      'dbops_state',
      'kasm',
      'staging',
    ]);

    for (const database of demo.databases) {
      for (const [table, minimumRows] of MAIN_TABLES[database] ?? []) {
        const [row] = await query<{ n: number }>(botUrl(database), `SELECT count(*)::int AS n FROM ${table}`);
        expect(row?.n, `${database}.${table}`).toBeGreaterThanOrEqual(minimumRows);
      }
    }
  });

  it('matches the runbooks: the sessions view, mixed token expiry, one Alembic revision, the capsul account', async () => {
    const tokens = await query<{ expired: number; live: number }>(
      botUrl('kasm'),
      `SELECT count(*) FILTER (WHERE expiration < now())::int AS expired,
              count(*) FILTER (WHERE expiration >= now())::int AS live
       FROM session_tokens`,
    );
    expect(tokens[0]?.expired).toBeGreaterThan(0);
    expect(tokens[0]?.live).toBeGreaterThan(0);

    const running = await query<{ n: number }>(
      botUrl('kasm'),
      "SELECT count(*)::int AS n FROM sessions WHERE status = 'running'",
    );
    expect(running[0]?.n).toBeGreaterThan(0);

    const revisions = await query<{ version_num: string }>(
      botUrl('staging'),
      'SELECT version_num FROM alembic_version',
    );
    expect(revisions).toHaveLength(1);

    // Every table of capsul-flask's change-email procedure has a row for the same account.
    const emailTables = [
      'accounts',
      'login_tokens',
      'operations',
      'payment_sessions',
      'payments',
      'ssh_public_keys',
      'unresolved_btcpay_invoices',
      'vm_ssh_authorized_key',
      'vm_ssh_host_key',
      'vms',
    ];
    for (const table of emailTables) {
      const rows = await query<{ n: number }>(
        botUrl('capsul'),
        `SELECT count(*)::int AS n FROM ${table} WHERE email = $1`,
        ['jamie.rivera@example.net'],
      );
      expect(rows[0]?.n, table).toBeGreaterThan(0);
    }
  });

  it('plants a TOASTed table, a never-used index and one duplicate index in every database', async () => {
    for (const database of demo.databases) {
      const url = botUrl(database);
      const [toast] = await query<{ bytes: string }>(
        url,
        `SELECT coalesce(sum(pg_relation_size(reltoastrelid)), 0)::text AS bytes
         FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND reltoastrelid <> 0`,
      );
      expect(Number(toast?.bytes), `${database} TOAST bytes`).toBeGreaterThan(0);

      const unused = await query<{ idx_scan: string }>(
        url,
        'SELECT idx_scan::text FROM pg_stat_user_indexes WHERE indexrelname = $1',
        [UNUSED_INDEXES[database]],
      );
      expect(unused, `${database} unused index`).toEqual([{ idx_scan: '0' }]);

      const duplicates = await query<{ n: number }>(
        url,
        `SELECT count(*)::int AS n FROM (
           SELECT 1 FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indrelid
           WHERE c.relnamespace = 'public'::regnamespace
           GROUP BY i.indrelid, i.indkey::text, i.indclass::text, i.indisunique,
                    coalesce(pg_get_expr(i.indexprs, i.indrelid), ''), coalesce(pg_get_expr(i.indpred, i.indrelid), '')
           HAVING count(*) > 1) AS sets`,
      );
      expect(duplicates[0]?.n, `${database} duplicate index sets`).toBe(1);
    }
  });

  it('writes a dbops.yaml whose URLs are only environment references, with no secrets, that the loader accepts', async () => {
    const text = await readFile(demo.configPath, 'utf8');
    const secrets = [...Object.values(demo.env), demo.adminUrl].map(passwordOf);
    for (const secret of secrets) expect(text).not.toContain(secret);
    expect(text).not.toMatch(/postgres(ql)?:\/\//);

    const urlValues = [...text.matchAll(/^\s*url:\s*(.+)$/gm)].map((match) => match[1]?.trim());
    expect(urlValues).toHaveLength(6);
    for (const value of urlValues) expect(value).toMatch(/^\$\{[A-Z][A-Z0-9_]*\}$/);
    const referenced = urlValues.map((value) => value?.slice(2, -1) ?? '').sort();
    expect(referenced).toEqual(Object.keys(demo.env).sort());

    // The raw file passes the schema, and the real loader accepts it with the demo's env.
    expect(configSchema.safeParse(parse(text)).success).toBe(true);
    const config = loadConfigFile(demo.configPath, demo.env);
    expect(Object.keys(config.targets)).toEqual(demo.databases);
    expect(config.targets.kasm?.url).toBe(demo.env.KASM_DATABASE_URL);
    expect(config.state.url).toBe(demo.env.DBOPS_STATE_URL);
    expect(config.targets.kasm?.environment).toBe('production');
    expect(config.targets.staging?.environment).toBe('staging');
    expect(config.targets.activity?.environment).toBe('development');
    expect(config.targets.kasm?.limits).toMatchObject({
      statement_timeout: 5,
      lock_timeout: 1,
      row_cap: 200,
    });
    expect(config.people.alice).toMatchObject({
      roles: ['dba'],
      identities: { cli: 'alice', slack: 'T0DEMO/U0ALICE' },
    });
    expect(config.people.bob?.roles).toEqual(['oncall']);
    expect(config.people.carol?.roles).toEqual(['developer']);
    expect(Object.keys(config.policy).sort()).toEqual(['development', 'production', 'staging']);
    // Every rule can be satisfied in the console: alice (dba) and bob (oncall) approve each other's.
    expect(config.policy.production?.approve).toEqual(['dba', 'oncall']);
    expect(config.policy.production?.sql_read).toEqual(['oncall', 'dba']);
    expect(config.backupsDir.startsWith(dir)).toBe(true);
    // staging runs the Alembic project the demo copied into its directory, the URL in EXAM_DATABASE_URL.
    expect(config.targets.staging?.settings?.alembic).toEqual({
      command: ['alembic', '-c', 'alembic.ini'],
      cwd: join(dir, 'alembic'),
      url_env: 'EXAM_DATABASE_URL',
    });
    for (const file of ['alembic.ini', 'env.py', 'versions'])
      expect(await exists(join(dir, 'alembic', file))).toBe(true);

    for (const line of logLines) {
      for (const secret of secrets) expect(line).not.toContain(secret);
    }
  });

  it('gives the bot a non-superuser role that can monitor and signal backends', async () => {
    const [role] = await query<{
      current_user: string;
      rolsuper: boolean;
      monitor: boolean;
      signal: boolean;
    }>(
      demo.env.DBOPS_STATE_URL ?? '',
      `SELECT current_user, r.rolsuper,
              pg_has_role(current_user, 'pg_monitor', 'MEMBER') AS monitor,
              pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS signal
       FROM pg_roles AS r WHERE r.rolname = current_user`,
    );
    expect(role).toEqual({ current_user: 'dbops_bot', rolsuper: false, monitor: true, signal: true });
  });

  it('holds the staging application sessions open in their states', async () => {
    const rows = await query<{ application_name: string; state: string; n: number }>(
      botUrl('staging'),
      `SELECT application_name, state, count(*)::int AS n FROM pg_stat_activity
       WHERE datname = 'staging' AND usename = 'exam_user_staging'
       GROUP BY 1, 2 ORDER BY 1, 2`,
    );
    expect(rows).toEqual([
      { application_name: 'alembic', state: 'idle in transaction', n: 1 },
      { application_name: 'celery-worker', state: 'idle', n: 2 },
      { application_name: 'exam-backend', state: 'idle', n: 3 },
      { application_name: 'report-export', state: 'active', n: 1 },
    ]);
  });

  it('has exactly one kasm query waiting on a lock held by kasm_api', async () => {
    const waiting = await query<{ application_name: string; blockers: string[] }>(
      botUrl('kasm'),
      `SELECT w.application_name,
              array(SELECT b.application_name FROM pg_stat_activity AS b
                    WHERE b.pid = ANY (pg_blocking_pids(w.pid))) AS blockers
       FROM pg_stat_activity AS w
       WHERE w.datname = 'kasm' AND cardinality(pg_blocking_pids(w.pid)) > 0`,
    );
    expect(waiting).toEqual([{ application_name: 'kasm_manager', blockers: ['kasm_api'] }]);
  });

  it('survives the bot ending one of its sessions', async () => {
    const [ended] = await query<{ ok: boolean }>(
      botUrl('staging'),
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
       WHERE datname = 'staging' AND application_name = 'celery-worker' ORDER BY pid LIMIT 1`,
    );
    expect(ended?.ok).toBe(true);
    // The demo's client sees the termination as an error event; give it a moment to arrive.
    await new Promise((done) => setTimeout(done, 200));
    const [left] = await query<{ n: number }>(
      botUrl('staging'),
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'staging' AND application_name = 'celery-worker'",
    );
    expect(left?.n).toBe(1);
  });

  it('suggests first commands that exist: catalog operations, pack operations of that target, built-ins', () => {
    const config = loadConfigFile(demo.configPath, { ...process.env, ...demo.env });
    const catalog = new Catalog(operations, packCatalogEntries(loadConfiguredPacks(config)));
    const commands = [...DEMO_TRY_FIRST.matchAll(/(?:^\s+|, )(\/(?:db|as) [^,\n]+?)(?:\s{2,}|,|\.?$)/gm)].map(
      (m) => m[1] ?? '',
    );
    expect(commands.length).toBeGreaterThanOrEqual(10);
    for (const command of commands) {
      const [verb, operation = '', target, what] = command.split(/\s+/);
      if (verb === '/as') {
        expect(['alice', 'bob', 'carol']).toContain(operation);
        continue;
      }
      const resolvedTarget = target && !target.startsWith('<') ? config.targets[target] : undefined;
      if (target && !target.startsWith('<')) expect(resolvedTarget, command).toBeDefined();
      if (operation === 'lookup') {
        expect(
          resolvedTarget && what ? catalog.lookup(resolvedTarget, what) : undefined,
          command,
        ).toBeDefined();
      } else if (!isBuiltin(operation)) {
        expect(catalog.resolve(operation, resolvedTarget), command).toBeDefined();
      }
    }
    for (const database of demo.databases) expect(DEMO_TRY_FIRST).toContain(database);
    for (const line of DEMO_TRY_FIRST.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
  });

  it('says how to install alembic when it is missing, and nothing when it is there', async () => {
    const present = await toolPresent('alembic');
    if (present) expect(demo.notes).toEqual([]);
    else expect(demo.notes.join(' ')).toContain('apt-get install alembic python3-psycopg2');
  });

  it('stops: the port refuses connections, the files it produced are kept, the rest is gone', async () => {
    expect(await portAcceptsConnections(port)).toBe(true);
    expect(await exists(dir)).toBe(true);
    // What people made during the demo: a backup, an export and the log.
    await mkdir(join(dir, 'backups', 'kasm'), { recursive: true });
    await writeFile(join(dir, 'backups', 'kasm', 'kasm-1.dump'), 'dump');
    await mkdir(join(dir, 'exports'));
    await writeFile(join(dir, 'exports', 'users.csv'), 'id\n1\n');
    await writeFile(join(dir, 'dbops.log'), '{"msg":"ran"}\n');

    const kept = await demo.stop();
    expect(kept).toBe(`${dir}-files`);
    expect(await portAcceptsConnections(port)).toBe(false);
    expect(await exists(dir)).toBe(false);
    expect((await readdir(kept ?? '')).sort()).toEqual(['backups', 'dbops.log', 'exports']);
    expect(await readFile(join(kept ?? '', 'backups', 'kasm', 'kasm-1.dump'), 'utf8')).toBe('dump');
    expect(await readFile(join(kept ?? '', 'exports', 'users.csv'), 'utf8')).toBe('id\n1\n');
    // Stopping again is harmless and names the same folder.
    expect(await demo.stop()).toBe(kept);
    await rm(kept ?? '', { recursive: true, force: true });
  }, 60_000);
});
