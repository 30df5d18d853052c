// `/db analyze <target> [table]`: refreshes planner statistics of one table or of the whole database.
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { identifierArg } from '../src/core/args.js';
import { formatDuration } from '../src/core/duration.js';
import { UserError } from '../src/core/errors.js';
import { defineOperation, type OperationContext } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import type { Column, OperationResult, Row } from '../src/core/types.js';
import { type Relation, resolveRelation } from '../src/engine/relations.js';
import {
  type BotRole,
  botRole,
  databaseRelations,
  leafPartitions,
  maintainFix,
  maintenanceLimits,
  namesText,
  ProgressReporter,
  perRelationOutcome,
  plural,
  type RelationStats,
  relationStats,
  relationText,
  roleText,
  settleStats,
  skippedAndFailedNotes,
} from './lib/maintenance.js';

const args = z.object({
  table: identifierArg().optional(),
  /** The whole database includes pg_catalog and information_schema only when asked for. */
  system: z.boolean().default(false),
});
type Ctx = OperationContext<z.output<typeof args>>;

/** One ANALYZE statement and the relations whose statistics it refreshes. */
interface Step {
  relation: RelationStats;
  /** Partitions an ANALYZE of a partitioned parent covers as well. */
  partitions: number;
}

interface Plan {
  version: number;
  bot: BotRole;
  named: Relation | undefined;
  steps: Step[];
  /** Relations reported before and after (the steps' relations, plus a named parent's partitions). */
  relations: RelationStats[];
  skipped: RelationStats[];
}

/**
 * Whole database: ANALYZE of a partitioned table also analyzes each of its partitions (and gathers the
 * statistics across them that autovacuum never does), so a partition is analyzed through its parent when
 * the parent is analyzed, and on its own only when the bot role may not analyze the parent.
 */
function databaseSteps(all: readonly RelationStats[]): Step[] {
  const byOid = new Map(all.map((r) => [r.oid, r]));
  const children = new Map<number, number[]>();
  for (const r of all) {
    if (r.parent !== null) children.set(r.parent, [...(children.get(r.parent) ?? []), r.oid]);
  }
  const descendants = (oid: number): number =>
    (children.get(oid) ?? []).reduce((n, child) => n + 1 + descendants(child), 0);
  return all
    .filter((r) => r.permitted && !(r.parent !== null && byOid.get(r.parent)?.permitted === true))
    .map((r) => ({ relation: r, partitions: r.relkind === 'p' ? descendants(r.oid) : 0 }));
}

async function planFor(ctx: Ctx): Promise<Plan> {
  const version = await ctx.db.serverVersion();
  return await ctx.db.read(async (session) => {
    const bot = await botRole(session);
    if (ctx.args.table === undefined) {
      // System catalogs are the server's business: analyzed only with --system (or when named).
      const all = (await databaseRelations(session, version)).filter((r) => ctx.args.system || !r.system);
      const steps = databaseSteps(all);
      return {
        version,
        bot,
        named: undefined,
        steps,
        relations: steps.map((s) => s.relation),
        skipped: all.filter((r) => !r.permitted),
      };
    }
    const named = await resolveRelation(session, ctx.args.table, ['r', 'm', 'p'], '<table>');
    const oids =
      named.relkind === 'p' ? [named.oid, ...(await leafPartitions(session, named.oid))] : [named.oid];
    const stats = await relationStats(session, version, oids);
    const refused = stats.filter((r) => !r.permitted);
    const self = stats.find((r) => r.oid === named.oid);
    if (refused.length > 0 || !self) {
      const first = refused[0];
      throw new UserError(
        'permission',
        `the bot role ${roleText(bot.role)} may not analyze ${namesText(refused.map((r) => r.relation))} ` +
          '(PostgreSQL would skip it with only a warning, doing nothing): ' +
          maintainFix(version, bot.role, first),
      );
    }
    // The parent first, then its partitions.
    const relations = [self, ...stats.filter((r) => r.oid !== named.oid)];
    return {
      version,
      bot,
      named,
      steps: [{ relation: self, partitions: relations.length - 1 }],
      relations,
      skipped: [],
    };
  });
}

const COLUMNS: Column[] = [
  { key: 'relation', label: 'relation', kind: 'text' },
  { key: 'rows_estimate', label: 'rows (reltuples)', kind: 'count' },
  { key: 'modified_before', label: 'changed since last analyze', kind: 'count' },
  { key: 'last_analyze_before', label: 'analyzed before', kind: 'timestamp' },
  { key: 'last_analyze', label: 'last analyze', kind: 'timestamp' },
  { key: 'seconds', label: 'took', kind: 'seconds' },
  { key: 'outcome', label: 'outcome', kind: 'text' },
];

async function analyzeNow(ctx: Ctx, plan: Plan): Promise<OperationResult> {
  const outcomes = new Map<number, { seconds: number | null; outcome: string }>();
  const progress = new ProgressReporter((line) => ctx.progress(line));
  const started = performance.now();
  await ctx.db.direct(
    async (session) => {
      let done = 0;
      for (const step of plan.steps) {
        const { relation } = step;
        progress.before('analyzing', relation.relation, null, done, plan.steps.length);
        const t0 = performance.now();
        let outcome =
          step.partitions > 0 ? `analyzed (with ${plural(step.partitions, 'partition')})` : 'analyzed';
        try {
          // relation.relation comes from the catalog through format('%I.%I'): quoted where needed.
          await session.query(`ANALYZE ${relation.relation}`);
        } catch (err) {
          const skipped = plan.named ? undefined : perRelationOutcome(err);
          if (skipped === undefined) throw err;
          outcome = skipped;
        }
        outcomes.set(relation.oid, { seconds: (performance.now() - t0) / 1000, outcome });
        done += 1;
      }
    },
    maintenanceLimits(ctx.limits, 'patient'),
  );
  const seconds = (performance.now() - started) / 1000;

  await settleStats(plan.version);
  const after = await ctx.db.read((session) =>
    relationStats(
      session,
      plan.version,
      plan.relations.map((r) => r.oid),
    ),
  );
  const afterByOid = new Map(after.map((r) => [r.oid, r]));
  const stepOutcome = plan.named ? outcomes.get(plan.named.oid) : undefined;
  const rows = plan.relations.map((before) => {
    const now = afterByOid.get(before.oid);
    // A named parent's partitions were analyzed by its one statement.
    const own = outcomes.get(before.oid) ?? {
      seconds: null,
      outcome: stepOutcome ? 'analyzed (partition)' : 'skipped: dropped meanwhile',
    };
    return {
      relation: before.relation,
      rows_estimate: now ? now.rows_estimate : null,
      modified_before: before.modified_since_analyze,
      last_analyze_before: before.last_analyze,
      last_analyze: now ? now.last_analyze : null,
      seconds: own.seconds === null ? null : Math.round(own.seconds * 1000) / 1000,
      outcome: now ? own.outcome : 'skipped: dropped meanwhile',
    } satisfies Row;
  });

  const analyzed = rows.filter((r) => r.outcome.startsWith('analyzed'));
  const subject = plan.named
    ? relationText(plan.named)
    : `${plural(plan.steps.filter((s) => outcomes.get(s.relation.oid)?.outcome.startsWith('analyzed')).length, 'table')} of ${ctx.target.name}`;
  // The named relation is the first row (a partitioned parent before its partitions).
  const namedRows = plan.named ? rows[0]?.rows_estimate : undefined;
  const headline =
    `ANALYZE of ${subject} done in ${formatDuration(seconds)}` +
    (namedRows !== undefined && namedRows !== null ? `: ~${formatCount(namedRows)} rows` : '');

  const notes: string[] = [];
  notes.push(...skippedAndFailedNotes(plan, rows, (o) => o.startsWith('analyzed'), 'analyze'));
  const cap = ctx.limits.row_cap;
  const sorted = plan.named
    ? rows
    : [...rows].sort((a, b) => (b.modified_before ?? 0) - (a.modified_before ?? 0));
  const truncated = sorted.length > cap;
  if (truncated)
    notes.push(`showing the ${formatCount(cap)} most changed of ${formatCount(sorted.length)} tables`);

  return {
    headline,
    columns: COLUMNS,
    rows: sorted.slice(0, cap),
    truncated,
    notes,
    data: {
      scope: plan.named ? 'table' : 'database',
      seconds: Math.round(seconds * 1000) / 1000,
      analyzed: analyzed.map((r) => r.relation),
      skipped: plan.skipped.map((r) => r.relation),
    },
  };
}

export default defineOperation({
  name: 'analyze',
  summary: 'ANALYZE one table or the whole database: fresh planner statistics',
  usage: 'analyze <target> [table] [--system]',
  description:
    'Runs ANALYZE on the table (a partitioned table with its partitions, and the statistics across them ' +
    'that autovacuum never gathers) or, without a table, on every table and materialized view of the ' +
    'database one by one (the system catalogs of pg_catalog and information_schema only with --system), and reports each one’s new row estimate (reltuples) and last_analyze. ANALYZE ' +
    'reads a sample and takes SHARE UPDATE EXCLUSIVE: reads and writes go on. Tables the bot role may not ' +
    'analyze, which PostgreSQL would skip with only a warning, are refused (one table) or listed (whole ' +
    'database), with the grant that fixes it.',
  positionals: ['table'],
  args,
  risk: 'write',

  async run(ctx) {
    const plan = await planFor(ctx);
    if (plan.steps.length === 0 && !plan.skipped.some((r) => !r.system)) {
      return {
        headline: `nothing to analyze: ${ctx.target.name} has no tables the bot role may analyze`,
        columns: COLUMNS,
        rows: [],
        truncated: false,
        notes:
          plan.skipped.length > 0
            ? [`${plural(plan.skipped.length, 'system catalog')} only a superuser may analyze`]
            : ctx.args.system
              ? []
              : ['system catalogs are left out; `--system` analyzes them too'],
        data: { scope: 'database', seconds: 0, analyzed: [], skipped: plan.skipped.map((r) => r.relation) },
      };
    }
    if (plan.steps.length === 0) {
      const first = plan.skipped.find((r) => !r.system) ?? plan.skipped[0];
      throw new UserError(
        'permission',
        `the bot role ${roleText(plan.bot.role)} may analyze none of the tables of this database: ` +
          maintainFix(plan.version, plan.bot.role, first),
      );
    }
    return await analyzeNow(ctx, plan);
  },
});
