// What reviewing ad-hoc SQL costs per statement, side by side with running the query itself on the real server.
// Part `sql` of `npm run bench` (bench.ts); alone: `npx tsc -p bench/tsconfig.json && node
// dist/bench/sql-classify.js <postgres-url of a database with bench.ts's app_* tables>`.
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { limitsSchema, type ResolvedTarget } from '../src/config/schema.js';
import { TargetPools } from '../src/engine/target-db.js';
import { classify } from '../src/sql/classify.js';
import { lintStatement } from '../src/sql/lint.js';
import { loadSqlParser, parseStatement } from '../src/sql/parse.js';
import { checkAgainstTarget } from '../src/sql/target-check.js';

/** Statements over bench.ts's app_* tables: chat-sized ones, a write, and a 29 kB IN list. */
const STATEMENTS: Readonly<Record<string, string>> = {
  small: 'SELECT 1',
  typical: "SELECT id, owner FROM app_7 WHERE owner = md5('12') ORDER BY id LIMIT 50",
  join:
    'WITH recent AS (SELECT owner, count(*) AS n FROM app_5 WHERE at > now() - interval $$30 days$$ ' +
    'GROUP BY owner) SELECT a.id, a.owner, r.n FROM app_3 a JOIN recent r ON r.owner = a.owner ' +
    'WHERE r.n > 0 ORDER BY r.n DESC, a.id LIMIT 20',
  write: "UPDATE app_4 SET body = 'reviewed' WHERE id BETWEEN 10 AND 20",
  large: `SELECT id FROM app_2 WHERE id IN (${Array.from({ length: 5000 }, (_, i) => i).join(', ')})`,
};

export interface StatementCost {
  statement: string;
  bytes: number;
  kind: string;
  /** Median of parse (libpg-query) + classify, in process, µs. */
  parseClassifyUs: number;
  /** Median of the catalog checks dbops adds before running it (target checks, and lint for writes), ms. */
  checksMs: number;
  /** Median of the statement itself on the server through a plain pg client (a write rolled back), ms. */
  queryMs: number;
  /** parse + classify as a share of the query itself. */
  parseClassifyRatio: number;
  /** everything dbops adds (parse, classify, checks) as a share of the query itself. */
  reviewRatio: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

function elapsedMs(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e6;
}

const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;

/** Each statement `runs` times (after a warm-up): review steps and the query itself, interleaved. */
export async function sqlReviewCost(url: string, runs: number): Promise<StatementCost[]> {
  await loadSqlParser();
  const target: ResolvedTarget = {
    name: 'bench',
    url,
    environment: 'bench',
    packs: [],
    limits: limitsSchema.parse({}),
  };
  const pools = new TargetPools({ bench: target });
  const db = pools.get('bench');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const out: StatementCost[] = [];
  try {
    for (const [name, text] of Object.entries(STATEMENTS)) {
      const parse: number[] = [];
      const checks: number[] = [];
      const query: number[] = [];
      for (let i = 0; i < runs + 5; i++) {
        const warm = i >= 5;
        let started = process.hrtime.bigint();
        const classified = classify(parseStatement(text));
        if (warm) parse.push(elapsedMs(started) * 1000);

        started = process.hrtime.bigint();
        await db.read(async (session) => {
          await checkAgainstTarget(session, classified);
          if (classified.kind !== 'read') await lintStatement(session, classified, { allRows: false });
        });
        if (warm) checks.push(elapsedMs(started));

        started = process.hrtime.bigint();
        if (classified.kind === 'read') {
          await client.query(text);
        } else {
          await client.query('BEGIN');
          await client.query(text);
          await client.query('ROLLBACK');
        }
        if (warm) query.push(elapsedMs(started));
      }
      const queryMs = median(query);
      const parseUs = median(parse);
      const checksMs = median(checks);
      out.push({
        statement: name,
        bytes: Buffer.byteLength(text),
        kind: classify(parseStatement(text)).kind,
        parseClassifyUs: round(parseUs, 1),
        checksMs: round(checksMs),
        queryMs: round(queryMs),
        parseClassifyRatio: round(parseUs / 1000 / queryMs),
        reviewRatio: round((parseUs / 1000 + checksMs) / queryMs),
      });
    }
  } finally {
    await client.end();
    await pools.closeAll();
  }
  return out;
}

/** The rows of bench.ts's table for this part. */
export function sqlReviewRows(costs: readonly StatementCost[]): string[][] {
  return costs.map((c) => [
    `sql review: ${c.statement} ${c.kind} (${c.bytes} B), median`,
    `parse+classify ${c.parseClassifyUs.toFixed(1)} µs, checks ${c.checksMs.toFixed(2)} ms`,
    `query ${c.queryMs.toFixed(2)} ms`,
    `${c.parseClassifyRatio.toFixed(3)} / ${c.reviewRatio.toFixed(2)}`,
    '-',
    '-',
  ]);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const url = process.argv[2];
  if (!url) throw new Error('usage: node dist/bench/sql-classify.js <postgres-url> [runs]');
  const costs = await sqlReviewCost(url, Number(process.argv[3] ?? 100));
  for (const row of sqlReviewRows(costs)) console.log(row.slice(0, 4).join('  '));
}
