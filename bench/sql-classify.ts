// What reviewing ad-hoc SQL costs: parse + classify per statement, against running the query itself.
// Run: `npx tsc -p bench/tsconfig.json && node dist/bench/sql-classify.js [postgres-url]`. Numbers are
// printed, never asserted; without a URL only the parse-and-classify side is measured.
import pg from 'pg';
import { classify } from '../src/sql/classify.js';
import { parseStatement } from '../src/sql/parse.js';

const STATEMENTS: Readonly<Record<string, string>> = {
  small: 'SELECT 1',
  typical: "SELECT id, email FROM users WHERE created_at > now() - interval '1 day' ORDER BY id LIMIT 50",
  join:
    'WITH recent AS (SELECT customer_id, sum(total) AS spent FROM orders WHERE placed_at > now() - ' +
    "interval '30 days' GROUP BY customer_id) SELECT c.id, c.name, r.spent FROM customers c JOIN recent r " +
    'ON r.customer_id = c.id WHERE r.spent > 1000 ORDER BY r.spent DESC LIMIT 20',
  write: "UPDATE managers SET manager_hostname = 'kasm-2' WHERE manager_id = 3 AND manager_hostname = 'old'",
  large: `SELECT * FROM t WHERE id IN (${Array.from({ length: 5000 }, (_, i) => i).join(', ')})`,
};

function microseconds(run: () => void, iterations: number): number {
  for (let i = 0; i < Math.min(50, iterations); i++) run();
  const started = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) run();
  return Number(process.hrtime.bigint() - started) / 1000 / iterations;
}

async function queryMicroseconds(client: pg.Client, sql: string, iterations: number): Promise<number> {
  for (let i = 0; i < 20; i++) await client.query(sql);
  const started = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await client.query(sql);
  return Number(process.hrtime.bigint() - started) / 1000 / iterations;
}

const url = process.argv[2];
const client = url ? new pg.Client({ connectionString: url }) : undefined;
await client?.connect();
console.log('statement  bytes  parse+classify (µs)  SELECT 1 round trip (µs)');
const roundTrip = client ? await queryMicroseconds(client, 'SELECT 1', 500) : undefined;
for (const [name, text] of Object.entries(STATEMENTS)) {
  const iterations = text.length > 10_000 ? 200 : 2000;
  const cost = microseconds(() => classify(parseStatement(text)), iterations);
  const rt = roundTrip === undefined ? '-' : roundTrip.toFixed(0);
  console.log(
    `${name.padEnd(9)}  ${String(text.length).padStart(5)}  ${cost.toFixed(1).padStart(19)}  ${rt.padStart(24)}`,
  );
}
await client?.end();
