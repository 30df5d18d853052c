// `/db sql <target> "<statement>"`: one reviewed ad-hoc statement — reads run read-only, writes and DDL are dry-run and approved.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { flagArg, textArg } from '../src/core/args.js';
import { resultToCsv } from '../src/core/csv.js';
import { UserError } from '../src/core/errors.js';
import { defineOperation, type OperationContext, type Preview } from '../src/core/operation.js';
import type { Action } from '../src/core/policy.js';
import { formatBytes, formatCount } from '../src/core/render.js';
import type { Column, OperationResult, Risk, Row } from '../src/core/types.js';
import { type Classified, classify, type SqlKind } from '../src/sql/classify.js';
import { columnsOf, dryRun, toCell } from '../src/sql/dry-run.js';
import { lintStatement } from '../src/sql/lint.js';
import { loadSqlParser, MAX_STATEMENT_BYTES, parseStatement, SqlRefusal } from '../src/sql/parse.js';
import { costliestNodes, explainIn, renderPlanTree, wrapNotes } from '../src/sql/plan.js';
import { decodeNamedRows, type NamedRow, namedRowsSql } from '../src/sql/rows.js';
import { maskRows, sensitivePlan } from '../src/sql/sensitive.js';
import { hidingSensitiveErrors } from '../src/sql/sensitive-errors.js';
import { checkAgainstTarget } from '../src/sql/target-check.js';

/** More rows than this are shown in part; the whole result (up to the row cap) goes as a CSV attachment. */
const SHOWN_ROWS = 20;
/** Most characters of the CSV attachment of a read. */
const CSV_BUDGET = 8 * 1024 * 1024;

const args = z.object({
  statement: textArg({
    maxLength: MAX_STATEMENT_BYTES,
    multiline: true,
    example: '"SELECT count(*) FROM users"',
    tooLong: (length) =>
      `is ${formatBytes(length)} long, over the ${formatBytes(MAX_STATEMENT_BYTES)} limit for ad-hoc SQL; ` +
      'it was not parsed or run',
  }),
  all_rows: flagArg(),
});
type Args = z.output<typeof args>;

/** What the approval binds: the exact statement (by hash), its kind, and what the dry run found. */
const stateSchema = z.object({
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  kind: z.enum(['read', 'write', 'ddl']),
  rows: z.number().int().nullable(),
});
export type SqlPreviewState = z.infer<typeof stateSchema>;

export function statementHash(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The kind, or undefined when the statement is refused (its run or preview says why, audited). */
function kindOrUndefined(statement: string): SqlKind | undefined {
  try {
    return classify(parseStatement(statement)).kind;
  } catch (err) {
    // A refused statement is refused by its run or preview; anything else (no parser loaded) is a bug.
    if (err instanceof UserError) return undefined;
    throw err;
  }
}

/** Reads run at once (risk read); writes and DDL, and anything refused, go through preview and approval. */
export function sqlRisk(statement: string): Risk {
  const kind = kindOrUndefined(statement);
  return kind === 'read' || kind === undefined ? 'read' : 'destructive';
}

export function sqlAction(statement: string): Action {
  const kind = kindOrUndefined(statement);
  return kind === 'read' || kind === undefined ? 'sql_read' : 'sql_write';
}

function noun(n: number): string {
  return `${formatCount(n)} ${n === 1 ? 'row' : 'rows'}`;
}

/** Runs a classified read in `BEGIN READ ONLY` (the engine's read) with the row cap, after the target checks. */
async function runRead(ctx: OperationContext<Args>, classified: Classified): Promise<OperationResult> {
  const select = classified.parsed.type === 'SelectStmt';
  const { raw, truncated, plan } = await ctx.db.read(async (session) => {
    await checkAgainstTarget(session, classified);
    const plan = await sensitivePlan(session, ctx.target, ctx.person, classified.parsed);
    const text = classified.parsed.text;
    const read = select
      ? await session.cursor<NamedRow>(namedRowsSql(text))
      : await session.cursor<Record<string, unknown>>(text);
    return { raw: read.rows, truncated: read.truncated, plan };
  });
  let columns: Column[];
  let plain: Row[];
  if (select) {
    ({ columns, rows: plain } = decodeNamedRows(raw as NamedRow[]));
  } else {
    const objects = raw as Record<string, unknown>[];
    columns = columnsOf(objects);
    plain = objects.map((r) => Object.fromEntries(columns.map((c) => [c.key, toCell(r[c.key])])));
  }
  // Masked before anything else sees the rows: the table, the CSV and --json all get the mask.
  const maskedKeys = new Set(columns.filter((c) => plan.masked.has(c.label)).map((c) => c.key));
  const all = maskRows(plain, { ...plan, masked: maskedKeys });
  const notes: string[] = [];
  const shownMasked = [...new Set(columns.filter((c) => maskedKeys.has(c.key)).map((c) => c.label))];
  if (shownMasked.length > 0) notes.push(`masked (sensitive): ${shownMasked.join(', ')}`);
  if (truncated) notes.push(`stopped at the row cap of ${formatCount(ctx.limits.row_cap)}: more rows exist`);
  const shown = all.slice(0, SHOWN_ROWS);
  const result: OperationResult = {
    headline: `${noun(all.length)}${truncated ? ' (truncated)' : ''} from ${ctx.target.name}`,
    columns,
    rows: shown,
    truncated,
    notes,
    data: { kind: 'read', rows: all.length },
  };
  if (all.length > SHOWN_ROWS) {
    let attached = all;
    let content = resultToCsv({ columns, rows: attached });
    // Wide values can make even a capped result huge: the attachment stays within its budget.
    while (content.length > CSV_BUDGET && attached.length > 1) {
      attached = attached.slice(
        0,
        Math.max(1, Math.floor((attached.length * CSV_BUDGET) / content.length) - 1),
      );
      content = resultToCsv({ columns, rows: attached });
    }
    const cut =
      attached.length < all.length
        ? ` (the first ${formatCount(attached.length)}: ${formatBytes(CSV_BUDGET)} limit)`
        : '';
    notes.push(
      `the first ${SHOWN_ROWS} rows are shown; the CSV has ${cut ? 'more' : `all ${formatCount(all.length)}`}${cut}`,
    );
    const stamp = ctx.now.toISOString().slice(0, 19).replace(/[-:]/g, '');
    result.attachments = [
      { filename: `sql-${ctx.target.name}-${stamp}.csv`, contentType: 'text/csv', content },
    ];
  }
  return result;
}

function parsedFor(statement: string): Classified {
  const classified = classify(parseStatement(statement));
  if (classified.parsed.hasParams) {
    throw new SqlRefusal(
      'the statement has $1-style placeholders, and /db sql runs it as typed: put the values in ' +
        '(/db explain plans it with placeholders)',
    );
  }
  return classified;
}

async function previewStatement(ctx: OperationContext<Args>): Promise<Preview> {
  await loadSqlParser();
  const classified = parsedFor(ctx.args.statement);
  const sha256 = statementHash(ctx.args.statement);
  if (classified.kind === 'read') {
    // Reads that need approval: checked and planned now, run once approved.
    const plan = await ctx.db.read(async (session) => {
      await checkAgainstTarget(session, classified);
      await sensitivePlan(session, ctx.target, ctx.person, classified.parsed);
      return classified.parsed.type === 'SelectStmt'
        ? await explainIn(session, classified.parsed.text, { analyze: false })
        : undefined;
    });
    const lines = plan ? renderPlanTree(plan.Plan) : [];
    const state: SqlPreviewState = { sha256, kind: 'read', rows: null };
    return {
      result: {
        headline: `read on ${ctx.target.name}: runs once approved; the result goes to this thread`,
        columns: [{ key: 'line', label: 'plan', kind: 'text' }],
        rows: lines.map((line) => ({ line })),
        truncated: false,
        display: 'text',
        notes: [],
        data: { kind: 'read', sha256 },
      },
      state,
    };
  }
  const found = await ctx.db.write(async (session) => {
    await checkAgainstTarget(session, classified);
    const lint = await lintStatement(session, classified, { allRows: ctx.args.all_rows });
    const plan =
      classified.kind === 'write'
        ? await explainIn(session, classified.parsed.text, { analyze: false })
        : undefined;
    const sensitive = await sensitivePlan(session, ctx.target, ctx.person, classified.parsed);
    const run = await dryRun(session, classified);
    return { lint, plan, run, sensitive };
  });
  const { lint, plan, run, sensitive } = found;
  const notes = [...lint.notes, ...run.notes];
  if (sensitive.touches) {
    // Values derived from sensitive columns could show under any name: no sample rows at all.
    run.sample = [];
    run.columns = [];
    notes.push('sample rows are not shown: the statement uses sensitive columns');
  } else {
    run.sample = maskRows(run.sample, sensitive);
  }
  if (plan) {
    notes.push('plan:', ...renderPlanTree(plan.Plan));
    const costly = costliestNodes(plan.Plan);
    if (costly.length > 0) notes.push(`costliest: ${costly.join('; ')}`);
  }
  const sampled = run.sample.filter((r) => r.row !== 'before').length;
  if (run.rows !== null && run.rows > sampled && sampled > 0) {
    notes.unshift(`a sample of ${sampled} of the ${noun(run.rows)} is shown`);
  }
  notes.push('dry run: the statement ran in a transaction that was rolled back; nothing changed');
  const state: SqlPreviewState = { sha256, kind: classified.kind, rows: run.rows };
  const what =
    run.rows === null
      ? `schema change on ${ctx.target.name} ran cleanly in a dry run`
      : `would affect ${noun(run.rows)} on ${ctx.target.name}`;
  return {
    result: {
      headline: `${classified.parsed.type.replace(/Stmt$/, '').toUpperCase()} ${what}`,
      columns: run.columns,
      rows: run.sample,
      // a sample, not a capped result: the note says how much of it is shown
      truncated: false,
      notes: wrapNotes(notes),
      data: { kind: classified.kind, rows: run.rows, sha256 },
    },
    state,
  };
}

async function executeStatement(
  ctx: OperationContext<Args>,
  previewState: unknown,
): Promise<OperationResult> {
  const parsed = stateSchema.safeParse(previewState);
  if (!parsed.success) throw new Error(`sql: malformed preview state: ${parsed.error.message}`);
  const approved = parsed.data;
  if (statementHash(ctx.args.statement) !== approved.sha256) {
    throw new UserError('stale_preview', 'the statement is not the one approved; nothing was run');
  }
  // Re-classified and re-checked: the rules and the target may have changed since the preview.
  await loadSqlParser();
  const classified = parsedFor(ctx.args.statement);
  if (classified.kind !== approved.kind) {
    throw new UserError(
      'stale_preview',
      `the statement now reads as ${classified.kind}, not ${approved.kind}; nothing was run`,
    );
  }
  if (classified.kind === 'read') return await runRead(ctx, classified);
  const rows = await ctx.db.write(async (session) => {
    await checkAgainstTarget(session, classified);
    await lintStatement(session, classified, { allRows: ctx.args.all_rows });
    const { rowCount } = await session.execute(`${classified.parsed.text}\n`);
    if (classified.kind === 'write' && rowCount !== approved.rows) {
      // Thrown inside the transaction: it is rolled back, so nothing of this run is kept.
      throw new UserError(
        'stale_preview',
        `the statement now affects ${noun(rowCount)}, but the approved dry run affected ` +
          `${noun(approved.rows ?? 0)}: rolled back, nothing changed; request it again to review the new effect`,
      );
    }
    return rowCount;
  });
  const verb = classified.parsed.type.replace(/Stmt$/, '').toUpperCase();
  return {
    headline:
      classified.kind === 'write'
        ? `${verb} changed ${noun(rows)} on ${ctx.target.name}, as in the approved dry run; committed`
        : `${verb} done on ${ctx.target.name}; committed`,
    columns: [],
    rows: [],
    truncated: false,
    notes: [],
    data: { kind: classified.kind, rows: classified.kind === 'write' ? rows : null },
  };
}

const sqlOperation = defineOperation({
  name: 'sql',
  summary: 'Ad-hoc SQL: reads run read-only; writes and DDL are dry-run, then approved',
  usage: 'sql <target> "<statement>" [--all-rows]',
  description:
    'Parses the statement with the PostgreSQL parser: exactly one statement, classified as a read ' +
    '(SELECT, TABLE, VALUES, SHOW), a write (INSERT, UPDATE, DELETE, MERGE) or DDL. Reads run in a ' +
    'read-only transaction with the timeouts and row cap and may call only immutable or stable functions. ' +
    'Writes and DDL are linted, dry-run in a transaction that is rolled back (rows affected, a sample ' +
    'before/after, the plan) and run after approval only if they still affect the same number of rows. ' +
    'Refused whatever the role: transaction control, SET ROLE, ALTER SYSTEM, COPY, DO, server files, ' +
    'large objects, dblink, signals to other sessions, other databases and server-wide catalogs. ' +
    'UPDATE/DELETE without WHERE need --all-rows. Needs the sql_read or sql_write policy role.',
  positionals: ['statement'],
  args,
  risk: 'read',
  // riskFor and actionFor parse the statement: the parser is loaded before they are asked.
  preload: loadSqlParser,
  riskFor: (a) => sqlRisk(a.statement),
  actionFor: (a) => sqlAction(a.statement),

  async run(ctx) {
    await loadSqlParser();
    const classified = parsedFor(ctx.args.statement);
    if (classified.kind !== 'read') {
      throw new SqlRefusal(
        `this ${classified.kind === 'ddl' ? 'schema change' : 'write'} runs only after a dry run and approval`,
      );
    }
    return await runRead(ctx, classified);
  },
  preview: previewStatement,
  execute: executeStatement,
});

// Errors that could quote a sensitive value (a failing row, a bad cast) are told without it.
export default hidingSensitiveErrors(sqlOperation);
