// `/db explain` on real PostgreSQL 15 and 17: the plan tree, the index that would help, GENERIC_PLAN or a clear no.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import explain from '../commands/explain.js';
import { renderResult } from '../src/core/render.js';
import { estimateMisses, type PlanNode, renderPlanTree } from '../src/sql/plan.js';
import { adminQuery, createDatabase, majors } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';

const SETUP = `
CREATE EXTENSION pg_stat_statements;
CREATE TABLE orders (id int PRIMARY KEY, customer_id int, note text);
INSERT INTO orders SELECT i, i % 500, 'note ' || i FROM generate_series(1, 20000) i;
CREATE TABLE skew (a int) WITH (autovacuum_enabled = off);
INSERT INTO skew SELECT generate_series(1, 20000);
ANALYZE orders;
ANALYZE skew;
UPDATE skew SET a = 1 WHERE a < 15000;
CREATE TABLE canary (n int);
`;

for (const major of majors()) {
  describe(`explain on PostgreSQL ${major}`, () => {
    let db: { name: string; url: string };
    let h: OpHarness;

    beforeAll(async () => {
      db = await createDatabase('sqlexplain', SETUP, major);
      h = new OpHarness([testTarget('t', db.url)]);
    });
    afterAll(async () => {
      await h.close();
    });

    it('shows the plan as a tree within 80 columns and the index a big sequential scan needs', async () => {
      const result = await h.run(
        explain,
        't',
        '"SELECT * FROM orders WHERE customer_id = 42 AND note <> \'x\'"',
      );
      const lines = result.rows.map((r) => String(r.line));
      expect(lines[0]).toMatch(/^Seq Scan on public\.orders \(cost [\d,]+, [\d,]+ rows\)/);
      expect(lines.join('\n')).toMatch(
        /filter: \(\(orders\.note <> 'x'::text\) AND \(orders\.customer_id = 42\)\)|filter:/,
      );
      const notes = (result.notes?.join('\n') ?? '').replace(/\n {4}/g, ' ');
      expect(notes).toMatch(/costliest:\n {2}Seq Scan on public\.orders: 100% of the cost/);
      expect(notes.replace(/\s+/g, ' ')).toMatch(
        /sequential scan of public\.orders \(about 20,000 rows\): an index would help — CREATE INDEX ON public\.orders \((customer_id, note|note, customer_id)\)/,
      );
      for (const line of renderResult(result).split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    });

    it('with --analyze on a read: actual rows, and estimates that were far off', async () => {
      const result = await h.run(explain, 't', '"SELECT * FROM skew WHERE a = 1" --analyze');
      expect(result.headline).toMatch(/EXPLAIN ANALYZE, read-only\), ran in [\d.]+ ms/);
      expect(result.rows.map((r) => r.line).join('\n')).toMatch(/actual 14,999/);
      expect(result.notes?.join('\n').replace(/\n {4}/g, ' ')).toMatch(
        /estimates far off:\n {2}Seq Scan on public\.skew: estimated \d+ rows, got 14,999 \(\d+× more\); ANALYZE public\.skew may help/,
      );
    });

    it('when the environment holds SQL reads for approval, plans once approved', async () => {
      const held = await h.preview(explain, 't', '"SELECT count(*) FROM orders"');
      expect(held.result.headline).toMatch(/runs once approved/);
      const approved = await h.execute(explain, 't', '"SELECT count(*) FROM orders"', held.state);
      expect(approved.rows[0]?.line).toMatch(/Aggregate/);
    });

    it('refuses --analyze of a write, and any refused statement, running nothing', async () => {
      await expect(h.run(explain, 't', '"DELETE FROM canary" --analyze')).rejects.toThrow(
        /--analyze runs the statement, and this one changes data/,
      );
      await expect(h.run(explain, 't', '"SELECT pg_terminate_backend(1)"')).rejects.toThrow(/is refused/);
      await expect(h.run(explain, 't', '"SELECT * FROM pg_stat_activity"')).rejects.toThrow(
        /shows other databases/,
      );
      const plain = await h.run(explain, 't', '"INSERT INTO canary VALUES (1)"');
      expect(plain.rows[0]?.line).toMatch(/^Insert on public\.canary/);
      const [row] = await adminQuery<{ n: number }>(
        'SELECT count(*)::int AS n FROM canary',
        [],
        db.name,
        major,
      );
      expect(row?.n).toBe(0);
    });

    it('plans a query with $1 placeholders without values: GENERIC_PLAN on 16+, a forced generic plan before', async () => {
      const result = await h.run(explain, 't', '"SELECT * FROM orders WHERE id = $1 AND note = $2"');
      expect(result.rows[0]?.line).toMatch(/^Index Scan using orders_pkey on public\.orders/);
      expect(result.rows.map((r) => r.line).join('\n')).toMatch(/index cond: \(orders\.id = \$1\)/);
      expect(result.notes?.join('\n')).toMatch(
        major >= 16
          ? /planned without values \(the generic plan EXPLAIN GENERIC_PLAN shows\)/
          : /PostgreSQL 15 has no EXPLAIN GENERIC_PLAN \(16\+\), so\s+dbops prepared the query and forced a generic plan/,
      );
      await expect(h.run(explain, 't', '"SELECT * FROM orders WHERE id = $1" --analyze')).rejects.toThrow(
        /--analyze needs values/,
      );
      // the prepared statement is gone again: the same query plans twice on the pooled connection
      await h.run(explain, 't', '"SELECT * FROM orders WHERE id = $1 AND note = $2"');
      await expect(
        h.run(explain, 't', '"SELECT * FROM orders WHERE id = $1 + no_such_column"'),
      ).rejects.toThrow(/query on t failed/);
    });

    it('explains a statement of slow-queries by its queryid', async () => {
      await adminQuery('SELECT count(*) FROM orders WHERE customer_id = 7', [], db.name, major);
      const [found] = await adminQuery<{ queryid: string }>(
        "SELECT queryid::text FROM pg_stat_statements WHERE query LIKE 'SELECT count(*) FROM orders WHERE customer_id = %' AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1",
        [],
        db.name,
        major,
      );
      expect(found).toBeDefined();
      const result = await h.run(explain, 't', `--query ${found?.queryid}`);
      expect(result.rows.map((r) => r.line).join('\n')).toMatch(/Seq Scan on public\.orders/);
      expect(result.rows.map((r) => r.line).join('\n')).toMatch(/filter: \(orders\.customer_id = \$1\)/);
      await expect(h.run(explain, 't', '--query 123456789')).rejects.toThrow(
        /no statement with queryid 123456789/,
      );
    });
  });
}

describe('plan rendering', () => {
  const node = (type: string, cost: number, rows: number, extra: Partial<PlanNode> = {}): PlanNode => ({
    'Node Type': type,
    'Total Cost': cost,
    'Plan Rows': rows,
    ...extra,
  });

  it('wraps long conditions under their node instead of cutting them', () => {
    const filter = `(${Array.from({ length: 12 }, (_, i) => `column_number_${i} = ${i}`).join(' AND ')})`;
    const lines = renderPlanTree(
      node('Hash Join', 100, 10, {
        Plans: [node('Seq Scan', 50, 5, { 'Relation Name': 'a', Schema: 'public', Filter: filter })],
      }),
    );
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(80);
    expect(lines.join(' ').replace(/\s+/g, ' ')).toContain(filter);
  });

  it('reports estimate misses of ten times or more, not small ones', () => {
    const plan = node('Nested Loop', 10, 5, {
      'Actual Rows': 5000,
      Plans: [node('Index Scan', 5, 100, { 'Actual Rows': 120 })],
    });
    expect(estimateMisses(plan)).toEqual(['Nested Loop: estimated 5 rows, got 5,000 (1000× more)']);
  });
});
