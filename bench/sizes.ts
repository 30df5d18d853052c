// `/db sizes` end to end through dbops against a fresh psql process running the same SQL, interleaved,
// beside the statement alone through a connected pg client: what no dispatch can go below.
import { execa } from 'execa';
import pg from 'pg';
import { DATABASE_SIZE_SQL, RELATION_SIZES_SQL, SIZES_SQL } from '../commands/sizes.js';
import type { App } from '../src/app.js';
import type { Invocation } from '../src/core/types.js';
import type { ThrowawayPostgres } from '../src/demo/embedded.js';
import { round, stats } from './stats.js';

export const PSQL = '/usr/bin/psql';
const HOST = '127.0.0.1';
/** The --limit of `/db sizes app` (its default). */
const LIMIT = 10;

/*
 * What `/db sizes <target>` runs (commands/sizes.ts: DATABASE_SIZE_SQL, then RELATION_SIZES_SQL with
 * $1 = --limit 10), as one psql -c, the way the runbooks paste SQL today. The same constants, so both
 * sides always run the same SQL.
 */
const PSQL_SQL = `${DATABASE_SIZE_SQL};\n${RELATION_SIZES_SQL.replace(/\$1\b/g, String(LIMIT)).replace(/\$2::text/g, 'NULL::text')};`;

/** psql running what /db sizes runs, as one fresh process (connect, authenticate, query, exit). */
export function psqlArgs(server: ThrowawayPostgres): string[] {
  return [
    ...['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1'],
    ...['-h', HOST, '-p', String(server.port), '-U', 'postgres', '-d', 'app'],
    ...['-c', PSQL_SQL],
  ];
}

export function psqlEnv(server: ThrowawayPostgres): Record<string, string> {
  return { PGPASSWORD: server.password, PATH: process.env.PATH ?? '/usr/bin:/bin' };
}

/**
 * `/db sizes app` through dbops (core.dispatch to reply), the same SQL through a fresh psql, and the
 * statement dbops sends (SIZES_SQL, prepared) alone through a client connected once, interleaved in an
 * order that rotates, so none always runs on a warmer or a busier moment.
 */
export async function sizesSideBySide(app: App, server: ThrowawayPostgres, runs: number) {
  const args = psqlArgs(server);
  const env = psqlEnv(server);
  const client = new pg.Client({ connectionString: server.url('app') });
  await client.connect();
  try {
    const viaDbops = async (): Promise<number> => {
      const invocation: Invocation = { surface: 'cli', identity: 'bench', text: '/db sizes app' };
      const t0 = performance.now();
      const reply = await app.core.dispatch(invocation);
      const ms = performance.now() - t0;
      if (reply.status !== 'ok') throw new Error(`/db sizes app: ${reply.status}: ${reply.message}`);
      return ms;
    };
    const viaPsql = async (): Promise<number> => {
      const t0 = performance.now();
      const run = await execa(PSQL, args, { env, extendEnv: false, reject: false });
      const ms = performance.now() - t0;
      if (run.exitCode !== 0) throw new Error(`psql failed: ${run.stderr}`);
      return ms;
    };
    const statementAlone = async (): Promise<number> => {
      const t0 = performance.now();
      await client.query({ name: 'sizes', text: SIZES_SQL, values: [LIMIT, null] });
      return performance.now() - t0;
    };
    const sides = [viaDbops, viaPsql, statementAlone];
    const samples: number[][] = sides.map(() => []);
    for (let i = 0; i < 5; i++) for (const side of sides) await side();
    for (let i = 0; i < runs; i++) {
      for (let k = 0; k < sides.length; k++) {
        const at = (i + k) % sides.length;
        samples[at]?.push(await (sides[at] as () => Promise<number>)());
      }
    }
    const [d, p, s] = samples.map((list) => stats(list)) as [
      ReturnType<typeof stats>,
      ReturnType<typeof stats>,
      ReturnType<typeof stats>,
    ];
    return {
      dbops: d,
      psql: p,
      statementAlone: s,
      ratioMedian: round(d.medianMs / p.medianMs, 3),
      ratioP99: round(d.p99Ms / p.p99Ms, 3),
      statementRatioMedian: round(s.medianMs / p.medianMs, 3),
      statementRatioP99: round(s.p99Ms / p.p99Ms, 3),
    };
  } finally {
    await client.end();
  }
}

export type SizesSideBySide = Awaited<ReturnType<typeof sizesSideBySide>>;

/** The table's rows: dbops and the statement alone, each against psql, median and p99. */
export function sizesRows(sizes: SizesSideBySide): string[][] {
  const ms = (n: number) => `${n.toFixed(1)} ms`;
  const yes = (ok: boolean) => (ok ? 'yes' : 'NO');
  return [
    [
      '/db sizes end to end, median',
      ms(sizes.dbops.medianMs),
      `psql ${ms(sizes.psql.medianMs)}`,
      sizes.ratioMedian.toFixed(3),
      '<= 0.08 of psql',
      yes(sizes.ratioMedian <= 0.08),
    ],
    [
      '/db sizes end to end, p99',
      ms(sizes.dbops.p99Ms),
      `psql ${ms(sizes.psql.p99Ms)}`,
      sizes.ratioP99.toFixed(3),
      '<= 0.08 of psql',
      yes(sizes.ratioP99 <= 0.08),
    ],
    [
      '/db sizes statement alone (connected pg client), median / p99',
      `${ms(sizes.statementAlone.medianMs)} / ${ms(sizes.statementAlone.p99Ms)}`,
      `psql ${ms(sizes.psql.medianMs)} / ${ms(sizes.psql.p99Ms)}`,
      `${sizes.statementRatioMedian.toFixed(3)} / ${sizes.statementRatioP99.toFixed(3)}`,
      '(the floor)',
      '-',
    ],
  ];
}
