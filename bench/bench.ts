// `npm run bench`: measures dbops against the targets of issues 7 and 15, side by side in one run on this
// machine. It starts its own embedded PostgreSQL 15, prints a table and writes bench/results.json. Not a
// test: the numbers are reported, never asserted. Options: --runs N (default 100) side-by-side runs of
// /db sizes; --process-runs N (default 10) runs of each whole process (dbops exec, psql, dbops --help,
// node -e 0); --only sizes,memory,bigreads,slack,startup,processes,roundtrips,sql,charts runs just those.

import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { type App, createApp } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { silentLogger } from '../src/core/log.js';
import type { Invocation } from '../src/core/types.js';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../src/demo/embedded.js';
import {
  BIG_READ_ROWS,
  BIG_READS,
  bigReadRow,
  botMemory,
  containerOldSpaceMiB,
  kubernetesMemoryLimit,
} from './bot-memory.js';
import { measureCharts } from './charts.js';
import { footnote } from './footnote.js';
import { wholeProcesses } from './processes.js';
import { roundTrips } from './round-trips.js';
import { cpuRows, processRows, roundTripRows } from './rows.js';
import { APP_SCHEMA_SQL, BIG_ROWS, BIG_TABLE_SQL, configYaml } from './setup.js';
import { PSQL, psqlArgs, psqlEnv, sizesRows, sizesSideBySide } from './sizes.js';
import { SLACK_CONCURRENCY, SLACK_ROUNDS, slackHttp, slackRows } from './slack-http.js';
import { sqlReviewCost, sqlReviewRows } from './sql-classify.js';
import { round, stats } from './stats.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results.json');

const MB = 1024 * 1024;

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect) {
    collect();
    collect();
  }
}

function memory(): { rssMb: number; heapUsedMb: number } {
  gc();
  const m = process.memoryUsage();
  return { rssMb: round(m.rss / MB, 1), heapUsedMb: round(m.heapUsed / MB, 1) };
}

function progress(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

async function sql(url: string, text: string): Promise<pg.QueryResultRow[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

type Server = ThrowawayPostgres;

async function startPostgres(): Promise<Server> {
  return await startThrowawayPostgres({ prefix: 'dbops-bench-pg-', settings: { max_connections: '300' } });
}

async function dispatchOk(app: App, text: string): Promise<void> {
  const invocation: Invocation = { surface: 'cli', identity: 'bench', text };
  const reply = await app.core.dispatch(invocation);
  if (reply.status !== 'ok') throw new Error(`${text}: ${reply.status}: ${reply.message}`);
}

/** (b) Resident memory idle, then after reads of a 1,000,000-row table through the capped cursor. */
async function memoryOnBigReads(app: App, server: Server) {
  const idle = memory();
  const [size] = await sql(server.url('app'), "SELECT pg_total_relation_size('big') AS bytes");
  const reads = [
    // The export streams through the cursor to its cap; the sort makes the server go through all rows.
    '/db export app big --limit 10000 --order -payload',
    '/db export app big --limit 10000',
  ];
  for (let i = 0; i < 5; i++) for (const text of reads) await dispatchOk(app, text);
  // The engine's capped cursor on a plain SELECT of the whole table (what read operations use).
  for (let i = 0; i < 5; i++) {
    await app.pools.get('app').read(async (session) => {
      const read = await session.cursor('SELECT * FROM big', [], 10_000);
      if (!read.truncated) throw new Error('expected the cursor to stop at its cap');
    });
  }
  const after = memory();
  return {
    tableMb: round(Number(size?.bytes) / MB, 1),
    rows: BIG_ROWS,
    idle,
    after,
    rssGrowthMb: round(after.rssMb - idle.rssMb, 1),
    heapGrowthMb: round(after.heapUsedMb - idle.heapUsedMb, 1),
    gcExposed: typeof (globalThis as { gc?: unknown }).gc === 'function',
  };
}

/** (c) createApp with 200 allowlisted targets (pools open lazily), against 1 target, median of `runs`. */
async function startup(env: Record<string, string>, server: Server, runs: number) {
  const measure = async (targets: number) => {
    const yaml = configYaml(targets);
    const samples: number[] = [];
    let opened = 0;
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const config = loadConfigText(yaml, 'bench.yaml', env);
      const app = await createApp({ config, log: silentLogger() });
      samples.push(performance.now() - t0);
      opened = Math.max(
        opened,
        Object.values(app.pools.stats()).reduce((n, s) => n + s.total, 0),
      );
      await app.close();
    }
    return { targets, ...stats(samples), poolConnectionsOpened: opened };
  };
  const one = await measure(1);
  const many = await measure(200);
  const [connections] = await sql(
    server.url('postgres'),
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'dbops'",
  );
  return { one, many, targetConnectionsAfter: Number(connections?.n ?? 0) };
}

const PARTS = [
  'sizes',
  'memory',
  'bigreads',
  'slack',
  'startup',
  'processes',
  'roundtrips',
  'sql',
  'charts',
] as const;

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
  const [head, ...body] = rows;
  return [line(head ?? []), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '100' },
      'process-runs': { type: 'string', default: '10' },
      only: { type: 'string', default: PARTS.join(',') },
    },
  });
  const processRuns = Number(values['process-runs']);
  if (!Number.isInteger(processRuns) || processRuns < 3)
    throw new Error('--process-runs: expected a whole number of at least 3');
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 10) throw new Error('--runs: expected a whole number of at least 10');
  const only = new Set(values.only.split(',').map((p) => p.trim()));
  for (const part of only) {
    if (!(PARTS as readonly string[]).includes(part))
      throw new Error(`--only: unknown part ${part}; expected some of ${PARTS.join(', ')}`);
  }
  if (!existsSync(PSQL)) throw new Error(`${PSQL} not found: install postgresql-client`);

  progress('starting an embedded PostgreSQL 15');
  const server = await startPostgres();
  try {
    await sql(server.url('postgres'), 'CREATE DATABASE app');
    await sql(server.url('postgres'), 'CREATE DATABASE dbops_state');
    const big = only.has('memory') || only.has('bigreads');
    progress(`loading the target: 30 application tables${big ? ' and a 1,000,000-row table' : ''}`);
    await sql(server.url('app'), APP_SCHEMA_SQL);
    // The big table only serves the memory parts (it takes a while to load on a busy machine).
    if (big) await sql(server.url('app'), BIG_TABLE_SQL);
    const env = { BENCH_STATE_URL: server.url('dbops_state'), BENCH_TARGET_URL: server.url('app') };

    const config = loadConfigText(configYaml(1), 'bench.yaml', env);
    const app = await createApp({ config, log: silentLogger() });
    let sizes: Awaited<ReturnType<typeof sizesSideBySide>> | undefined;
    let mem: Awaited<ReturnType<typeof memoryOnBigReads>> | undefined;
    let slack: Awaited<ReturnType<typeof slackHttp>> | undefined;
    let start: Awaited<ReturnType<typeof startup>> | undefined;
    let processes: Awaited<ReturnType<typeof wholeProcesses>> | undefined;
    let trips: Awaited<ReturnType<typeof roundTrips>> | undefined;
    const bigReads: Awaited<ReturnType<typeof botMemory>>[] = [];
    try {
      if (only.has('processes')) {
        progress(
          `whole processes: dbops exec and psql, dbops --help and node -e 0, ${processRuns} runs each`,
        );
        processes = await wholeProcesses({
          cli: join(ROOT, 'dist', 'src', 'cli.js'),
          configYaml: configYaml(1),
          env,
          psql: PSQL,
          psqlArgs: psqlArgs(server),
          psqlEnv: psqlEnv(server),
          runs: processRuns,
        });
      }
      if (only.has('roundtrips')) {
        progress('statements per command on the state database and the target');
        trips = await roundTrips(app, {
          stateDb: 'dbops_state',
          targetDb: 'app',
          targetUrl: server.url('app'),
          requester: 'bench',
          approver: 'bench2',
        });
      }
      if (only.has('sizes')) {
        progress(
          `/db sizes app: ${runs} runs each through dbops, psql and a connected pg client, interleaved`,
        );
        sizes = await sizesSideBySide(app, server, runs);
      }
      if (only.has('memory')) {
        progress('memory: reads of the 1,000,000-row table');
        mem = await memoryOnBigReads(app, server);
      }
      if (only.has('bigreads')) {
        progress(
          `memory of dbops start: ${BIG_READS} concurrent ${BIG_READ_ROWS.toLocaleString('en-US')}-row reads over Slack`,
        );
        // As the pod runs it (Node gives V8 the cgroup's limit, so the heap is sized from it), then with
        // the heap V8 picks on this machine (much larger: garbage is collected later).
        const limit = await kubernetesMemoryLimit(ROOT);
        for (const nodeOptions of [`--max-old-space-size=${containerOldSpaceMiB(limit.mib)}`, '']) {
          bigReads.push(
            await botMemory({ root: ROOT, configYaml: configYaml(1, BIG_READ_ROWS), env, nodeOptions }),
          );
        }
      }
      if (only.has('slack')) {
        progress(
          `Slack HTTP mode: ${SLACK_ROUNDS} rounds of ${SLACK_CONCURRENCY} concurrent signed /db sizes`,
        );
        slack = await slackHttp(app, config, SLACK_ROUNDS, SLACK_CONCURRENCY, server.port);
      }
    } finally {
      await app.close();
    }
    if (only.has('startup')) {
      progress('start-up with 1 and with 200 allowlisted targets');
      start = await startup(env, server, 10);
    }
    // Issue 16: reviewing ad-hoc SQL (bench/sql-classify.ts) against running the statement itself.
    const review = only.has('sql') ? await sqlReviewCost(server.url('app'), runs) : undefined;
    // Issue 19: what a chart costs (render time and memory per chart; bench/charts.ts).
    const charts = only.has('charts') ? await measureCharts(10) : undefined;

    const ms = (n: number) => `${n.toFixed(1)} ms`;
    const yes = (ok: boolean) => (ok ? 'yes' : 'NO');
    const rows = [['measurement', 'dbops', 'baseline', 'ratio', 'target', 'met']];
    if (sizes) rows.push(...sizesRows(sizes));
    if (mem) {
      rows.push([
        `RSS after 1M-row reads (${mem.tableMb} MB table)`,
        `${mem.after.rssMb} MB`,
        `idle ${mem.idle.rssMb} MB`,
        `${mem.rssGrowthMb >= 0 ? '+' : ''}${mem.rssGrowthMb} MB`,
        '< 50 MB growth',
        yes(mem.rssGrowthMb < 50),
      ]);
    }
    rows.push(...bigReads.map(bigReadRow));
    if (start) {
      rows.push([
        'start-up, 200 targets, median',
        ms(start.many.medianMs),
        `1 target ${ms(start.one.medianMs)}`,
        (start.many.medianMs / start.one.medianMs).toFixed(2),
        'pools lazy',
        yes(start.many.poolConnectionsOpened === 0 && start.targetConnectionsAfter === 0),
      ]);
    }
    if (review) rows.push(...sqlReviewRows(review));
    if (slack) rows.push(...slackRows(slack, ms, yes), ...cpuRows(slack.cpuSplit));
    for (const c of charts ?? []) {
      rows.push([
        `chart: ${c.series} series, ${c.points} points, PNG ${c.pngKiB} KiB, median`,
        ms(c.medianMs),
        `first (loads the libraries) ${ms(c.firstMs)}`,
        `p95 ${ms(c.p95Ms)}`,
        `RSS +${c.rssGrowthMiB} MiB over ${c.charts}`,
        '-',
      ]);
    }
    if (processes) rows.push(...processRows(processes));
    if (trips) rows.push(...roundTripRows(trips));
    const results = {
      at: new Date().toISOString(),
      machine: {
        node: process.version,
        cpus: cpus().length,
        cpu: cpus()[0]?.model ?? 'unknown',
        loadavg: loadavg().map((n) => round(n)),
      },
      ...(sizes ? { sizes: { ...sizes, targetRatio: 0.08 } } : {}),
      ...(mem ? { memory: { ...mem, targetGrowthMb: 50 } } : {}),
      ...(bigReads.length > 0 ? { botMemoryUnderBigReads: bigReads } : {}),
      ...(start ? { startup: start } : {}),
      ...(slack ? { slack } : {}),
      ...(review ? { sqlReview: review } : {}),
      ...(charts ? { charts } : {}),
      ...(processes ? { processes: { ...processes, targetExecRatio: 5, targetHelpRatio: 2 } } : {}),
      ...(trips ? { statementsPerCommand: trips } : {}),
    };
    await writeFile(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
    process.stdout.write(`\n${table(rows)}\n\n`);
    process.stdout.write(
      footnote({
        psql: PSQL,
        cpus: results.machine.cpus,
        loadavg: results.machine.loadavg,
        results: RESULTS,
      }),
    );
  } finally {
    await server.stop();
  }
}

main().then(
  () => {
    process.exitCode = 0;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
