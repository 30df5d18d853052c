// EXPLAIN (FORMAT JSON) as people read it: an indented tree within 80 columns, its costliest nodes and its misses.
import { randomBytes } from 'node:crypto';
import { formatCount } from '../core/render.js';
import type { Session } from '../engine/types.js';
import { columnsOfExpression, loadSqlParser } from './parse.js';

/** Lines of the rendered plan are wrapped at this width. */
export const PLAN_WIDTH = 80;
/** A sequential scan over at least this many rows (estimated) is worth an index check. */
export const BIG_SCAN_ROWS = 10_000;
/** Estimates this many times off (either way) are reported with --analyze. */
const MISS_FACTOR = 10;

/** One node of EXPLAIN (FORMAT JSON), the fields dbops reads. */
export interface PlanNode {
  'Node Type': string;
  /** ModifyTable nodes: Insert, Update, Delete, Merge. */
  Operation?: string;
  'Relation Name'?: string;
  Schema?: string;
  Alias?: string;
  'Index Name'?: string;
  'Join Type'?: string;
  'Total Cost': number;
  'Plan Rows': number;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Actual Total Time'?: number;
  Filter?: string;
  'Index Cond'?: string;
  'Hash Cond'?: string;
  'Merge Cond'?: string;
  'Join Filter'?: string;
  'Rows Removed by Filter'?: number;
  Plans?: PlanNode[];
}

export interface ExplainOutput {
  Plan: PlanNode;
  'Planning Time'?: number;
  'Execution Time'?: number;
}

/** The EXPLAIN option list for a statement: JSON, VERBOSE (schema names), ANALYZE. */
export function explainPrefix(options: { analyze: boolean }): string {
  const list = ['FORMAT JSON', 'VERBOSE'];
  if (options.analyze) list.push('ANALYZE', 'BUFFERS');
  return `EXPLAIN (${list.join(', ')}) `;
}

function firstPlan(rows: { 'QUERY PLAN': unknown }[]): ExplainOutput {
  const raw = rows[0]?.['QUERY PLAN'];
  const parsed: unknown = typeof raw === 'string' ? JSON.parse(raw) : raw;
  const first = Array.isArray(parsed) ? (parsed[0] as ExplainOutput | undefined) : undefined;
  if (!first?.Plan) throw new Error('EXPLAIN returned no plan');
  return first;
}

/**
 * Runs EXPLAIN of `statement` in `session` and returns its one plan. With `params` (the number of `$n`
 * placeholders) the plan is generic — the plan EXPLAIN (GENERIC_PLAN) shows on PostgreSQL 16+: that
 * option cannot travel through the extended protocol dbops uses (its Bind would need values), so the
 * statement is prepared and planned with plan_cache_mode = force_generic_plan, inside a savepoint so
 * the prepared statement is always deallocated.
 */
export async function explainIn(
  session: Session,
  statement: string,
  options: { analyze: boolean; params?: number },
): Promise<ExplainOutput> {
  const params = options.params ?? 0;
  // A newline before anything dbops appends: a trailing line comment of the statement cannot swallow it.
  if (params === 0) {
    return firstPlan(
      await session.query<{ 'QUERY PLAN': unknown }>(`${explainPrefix(options)}${statement}\n`),
    );
  }
  const name = `dbops_generic_${randomBytes(6).toString('hex')}`;
  await session.query('SAVEPOINT dbops_generic_plan');
  try {
    await session.query("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)");
    await session.query(`PREPARE ${name} AS ${statement}\n`);
    const nulls = Array.from({ length: params }, () => 'NULL').join(', ');
    const plan = firstPlan(
      await session.query<{ 'QUERY PLAN': unknown }>(
        `${explainPrefix({ analyze: false })}EXECUTE ${name}(${nulls})`,
      ),
    );
    await session.query(`DEALLOCATE ${name}`);
    return plan;
  } catch (err) {
    await session.query('ROLLBACK TO SAVEPOINT dbops_generic_plan');
    await session.query(`DEALLOCATE ${name}`).catch(() => {});
    throw err;
  }
}

function relationOf(node: PlanNode): string | undefined {
  if (!node['Relation Name']) return undefined;
  return node.Schema ? `${node.Schema}.${node['Relation Name']}` : node['Relation Name'];
}

function label(node: PlanNode): string {
  let text = node['Node Type'] === 'ModifyTable' && node.Operation ? node.Operation : node['Node Type'];
  if (node['Join Type'] && node['Join Type'] !== 'Inner') text = `${node['Join Type']} ${text}`;
  if (node['Index Name']) text += ` using ${node['Index Name']}`;
  const relation = relationOf(node);
  if (relation) {
    text += ` on ${relation}`;
    if (node.Alias && node.Alias !== node['Relation Name']) text += ` ${node.Alias}`;
  }
  return text;
}

function figures(node: PlanNode): string {
  let text = `cost ${formatCount(Math.round(node['Total Cost']))}, ${formatCount(node['Plan Rows'])} rows`;
  if (node['Actual Rows'] !== undefined) {
    const loops = node['Actual Loops'] ?? 1;
    text += `; actual ${formatCount(node['Actual Rows'])}${loops > 1 ? ` ×${formatCount(loops)}` : ''}`;
    if (node['Actual Total Time'] !== undefined) text += `, ${node['Actual Total Time'].toFixed(1)} ms`;
  }
  return `(${text})`;
}

/** Wraps `text` to the width, continuing lines under `indent` (words are never cut, long ones overflow). */
export function wrap(text: string, indent: string, width = PLAN_WIDTH): string[] {
  const lead = /^ */.exec(text)?.[0] ?? '';
  const lines: string[] = [];
  let line = lead;
  for (const word of text.slice(lead.length).split(' ')) {
    if (line.trim() === '') line += word;
    else if (line.length + 1 + word.length <= width) line += ` ${word}`;
    else {
      lines.push(line);
      line = indent + word;
    }
  }
  if (line.trim() !== '') lines.push(line);
  return lines;
}

/** Notes wrapped to the plan width (continuation lines indented), so nothing is cut or runs past 80 columns. */
export function wrapNotes(notes: readonly string[]): string[] {
  return notes.map((note) => {
    const lead = /^ */.exec(note)?.[0] ?? '';
    return wrap(note, `${lead}  `).join('\n');
  });
}

/** The plan as an indented tree, one node per line (plus its conditions), within PLAN_WIDTH columns. */
export function renderPlanTree(root: PlanNode): string[] {
  const out: string[] = [];
  const visit = (node: PlanNode, depth: number) => {
    const pad = '  '.repeat(Math.min(depth, 12));
    const head = `${pad}${depth === 0 ? '' : '-> '}${label(node)} ${figures(node)}`;
    out.push(...wrap(head, `${pad}     `));
    for (const key of ['Index Cond', 'Hash Cond', 'Merge Cond', 'Join Filter', 'Filter'] as const) {
      const cond = node[key];
      if (cond) out.push(...wrap(`${pad}     ${key.toLowerCase()}: ${cond}`, `${pad}       `));
    }
    for (const child of node.Plans ?? []) visit(child, depth + 1);
  };
  visit(root, 0);
  return out;
}

function allNodes(root: PlanNode): PlanNode[] {
  const out: PlanNode[] = [];
  const visit = (node: PlanNode) => {
    out.push(node);
    for (const child of node.Plans ?? []) visit(child);
  };
  visit(root);
  return out;
}

/** The nodes whose own cost (total minus their children's) is largest, with their share of the whole. */
export function costliestNodes(root: PlanNode, count = 3): string[] {
  const total = root['Total Cost'] || 1;
  const own = allNodes(root).map((node) => {
    const children = (node.Plans ?? []).reduce((sum, c) => sum + c['Total Cost'], 0);
    return { node, cost: Math.max(0, node['Total Cost'] - children) };
  });
  return own
    .sort((a, b) => b.cost - a.cost)
    .slice(0, count)
    .filter((o) => o.cost > 0)
    .map((o) => `${label(o.node)}: ${Math.round((o.cost / total) * 100)}% of the cost`);
}

/** With ANALYZE: nodes whose row estimate was off by MISS_FACTOR or more (and by 100+ rows). */
export function estimateMisses(root: PlanNode): string[] {
  return allNodes(root).flatMap((node) => {
    const actual = node['Actual Rows'];
    if (actual === undefined) return [];
    const planned = node['Plan Rows'];
    const hi = Math.max(actual, planned);
    const lo = Math.max(1, Math.min(actual, planned));
    if (hi < 100 || hi / lo < MISS_FACTOR) return [];
    const relation = relationOf(node);
    const hint = relation ? `; ANALYZE ${relation} may help` : '';
    return [
      `${label(node)}: estimated ${formatCount(planned)} rows, got ${formatCount(actual)} ` +
        `(${Math.round(hi / lo)}× ${actual > planned ? 'more' : 'fewer'})${hint}`,
    ];
  });
}

const TABLE_FACTS = `
SELECT GREATEST(c.reltuples, 0)::int8 AS rows,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
       ARRAY(SELECT (SELECT a.attname::text FROM pg_attribute a
                     WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[0])
             FROM pg_index i WHERE i.indrelid = c.oid AND i.indkey[0] <> 0) AS leading
FROM pg_class c
WHERE c.oid = to_regclass(format('%I.%I', $1::text, $2::text))
`;

/** Sequential scans of big tables that filter rows, with the index on the filter's columns that would help. */
export async function seqScanAdvice(session: Session, root: PlanNode): Promise<string[]> {
  const notes: string[] = [];
  for (const node of allNodes(root)) {
    if (node['Node Type'] !== 'Seq Scan' || !node.Schema || !node['Relation Name']) continue;
    const facts = (
      await session.query<{ rows: number; columns: string[]; leading: (string | null)[] }>(TABLE_FACTS, [
        node.Schema,
        node['Relation Name'],
      ])
    )[0];
    if (!facts || facts.rows < BIG_SCAN_ROWS) continue;
    const relation = relationOf(node) ?? '';
    const scanned = `sequential scan of ${relation} (about ${formatCount(facts.rows)} rows)`;
    if (!node.Filter) {
      notes.push(`${scanned} without a filter: it reads the whole table`);
      continue;
    }
    await loadSqlParser();
    const columns = columnsOfExpression(node.Filter).filter((c) => facts.columns.includes(c));
    if (columns.length === 0) {
      notes.push(`${scanned}, filtered by ${node.Filter}`);
      continue;
    }
    const existing = columns.find((c) => facts.leading.includes(c));
    if (existing) {
      notes.push(
        `${scanned}: an index on ${existing} exists but was not chosen (the filter may match too many ` +
          'rows, or statistics are stale: ANALYZE it)',
      );
    } else {
      const quoted = columns.map((c) => (/^[a-z_][a-z0-9_]*$/.test(c) ? c : `"${c.replace(/"/g, '""')}"`));
      notes.push(`${scanned}: an index would help — CREATE INDEX ON ${relation} (${quoted.join(', ')})`);
    }
  }
  return notes;
}
