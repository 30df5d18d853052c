// `/db explain <target> "<query>"` or `--query <queryid>`: a query's plan as a readable tree, with what to fix.
import { z } from 'zod';
import { flagArg, textArg } from '../src/core/args.js';
import { UserError } from '../src/core/errors.js';
import { defineOperation, type OperationContext } from '../src/core/operation.js';
import { formatBytes } from '../src/core/render.js';
import type { OperationResult } from '../src/core/types.js';
import { quoteIdent } from '../src/engine/relations.js';
import { classify } from '../src/sql/classify.js';
import { loadSqlParser, MAX_STATEMENT_BYTES, parseStatement, SqlRefusal } from '../src/sql/parse.js';
import {
  costliestNodes,
  estimateMisses,
  explainIn,
  renderPlanTree,
  seqScanAdvice,
  wrapNotes,
} from '../src/sql/plan.js';
import { sensitivePlan } from '../src/sql/sensitive.js';
import { checkAgainstTarget } from '../src/sql/target-check.js';

/** PostgreSQL 16 added EXPLAIN (GENERIC_PLAN), which plans a query with $1 placeholders and no values. */
const GENERIC_PLAN_SINCE = 160000;

const EXTENSION_SCHEMA = `
SELECT n.nspname AS schema
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'
`;

/** The statement's text by queryid, for this database only. */
function statementByIdSql(schema: string): string {
  return `
SELECT s.query
FROM ${quoteIdent(schema)}.pg_stat_statements s
WHERE s.queryid = $1::int8
  AND s.dbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
LIMIT 1
`;
}

const args = z.object({
  statement: textArg({
    maxLength: MAX_STATEMENT_BYTES,
    multiline: true,
    example: '"SELECT * FROM orders WHERE customer_id = 42"',
    tooLong: (length) =>
      `is ${formatBytes(length)} long, over the ${formatBytes(MAX_STATEMENT_BYTES)} limit; it was not parsed`,
  }).optional(),
  query: textArg({
    pattern: /^-?\d{1,20}$/,
    hint: 'a queryid from /db slow-queries',
    example: '-12345',
  }).optional(),
  analyze: flagArg(),
});

async function explainQuery(ctx: OperationContext<z.output<typeof args>>): Promise<OperationResult> {
  const { statement, query, analyze } = ctx.args;
  if ((statement === undefined) === (query === undefined)) {
    throw new UserError('invalid_argument', 'give either the query in quotes or --query <queryid>, not both');
  }
  const version = await ctx.db.serverVersion();
  let text = statement;
  if (query !== undefined) {
    text = await ctx.db.read(async (session) => {
      const ext = (await session.query<{ schema: string }>(EXTENSION_SCHEMA))[0];
      if (!ext) {
        throw new UserError(
          'not_found',
          `pg_stat_statements is not installed in ${ctx.target.name}, so there are no query ids to explain`,
        );
      }
      const found = (await session.query<{ query: string | null }>(statementByIdSql(ext.schema), [query]))[0];
      if (!found?.query) {
        throw new UserError(
          'not_found',
          `no statement with queryid ${query} in ${ctx.target.name} (statistics reset, or another database)`,
        );
      }
      return found.query;
    });
  }
  await loadSqlParser();
  const classified = classify(parseStatement(text ?? ''));
  const { parsed } = classified;
  if (parsed.type === 'ExplainStmt') throw new SqlRefusal('give the query itself, without EXPLAIN');
  if (classified.kind === 'ddl') throw new SqlRefusal('a schema change has no plan to show');
  if (analyze && classified.kind !== 'read') {
    throw new SqlRefusal(
      '--analyze runs the statement, and this one changes data: /db sql shows its plan with a dry run ' +
        'that is rolled back, and runs it only once approved',
    );
  }
  const generic = parsed.hasParams;
  if (generic && analyze) {
    throw new SqlRefusal('--analyze needs values: put literal values in place of $1, $2, …');
  }
  const { plan, advice } = await ctx.db.read(async (session) => {
    await checkAgainstTarget(session, classified);
    // Actual row counts answer questions about values: the same rules as showing them.
    if (analyze) await sensitivePlan(session, ctx.target, ctx.person, parsed);
    const out = await explainIn(session, parsed.text, { analyze, params: parsed.paramCount });
    return { plan: out, advice: await seqScanAdvice(session, out.Plan) };
  });
  const notes: string[] = [];
  const costly = costliestNodes(plan.Plan);
  if (costly.length > 0) notes.push('costliest:', ...costly.map((c) => `  ${c}`));
  const misses = analyze ? estimateMisses(plan.Plan) : [];
  if (misses.length > 0) notes.push('estimates far off:', ...misses.map((m) => `  ${m}`));
  notes.push(...advice);
  if (generic) {
    notes.push(
      version >= GENERIC_PLAN_SINCE
        ? 'planned without values (the generic plan EXPLAIN GENERIC_PLAN shows): real values may get another plan'
        : `planned without values: PostgreSQL ${Math.floor(version / 10000)} has no EXPLAIN GENERIC_PLAN (16+), so ` +
            'dbops prepared the query and forced a generic plan; real values may get another plan',
    );
  }
  const time =
    analyze && plan['Execution Time'] !== undefined ? `, ran in ${plan['Execution Time'].toFixed(1)} ms` : '';
  return {
    headline: `plan on ${ctx.target.name}${analyze ? ' (EXPLAIN ANALYZE, read-only)' : ''}${time}`,
    columns: [{ key: 'line', label: 'plan', kind: 'text' }],
    rows: renderPlanTree(plan.Plan).map((line) => ({ line })),
    truncated: false,
    display: 'text',
    notes: wrapNotes(notes),
    data: { plan: plan.Plan, generic, analyze, seqScans: advice, misses },
  };
}

export default defineOperation({
  name: 'explain',
  summary: "A query's plan as a tree: costliest steps, misses, scans an index would avoid",
  usage: 'explain <target> "<query>" | --query <queryid> [--analyze]',
  description:
    'Plans the query with EXPLAIN (FORMAT JSON) in a read-only transaction and shows the plan as a tree, ' +
    'its costliest nodes, sequential scans of big tables with the index that would help and, with ' +
    '--analyze (reads only: it runs the query), estimates that were far off. --query takes a queryid ' +
    'from /db slow-queries; its $1 placeholders are planned without values (a generic plan). ' +
    'The query passes the same checks as /db sql. Needs the sql_read policy role.',
  positionals: ['statement'],
  args,
  risk: 'read',
  // A plan, not a list.
  paged: false,
  actionFor: () => 'sql_read',

  run: explainQuery,
  // Held for approval only when the environment holds SQL reads (approve_sql_reads): planned once approved.
  async preview(ctx) {
    return {
      result: {
        headline: `explain on ${ctx.target.name} runs once approved; the plan goes to this thread`,
        columns: [],
        rows: [],
        truncated: false,
      },
      state: null,
    };
  },
  execute: (ctx) => explainQuery(ctx),
});
