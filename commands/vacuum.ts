// `/db vacuum <target> [table] [--analyze] [--full]`: reclaims dead tuples of one table or of the whole database.
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { formatDuration } from '../src/core/duration.js';
import { UserError } from '../src/core/errors.js';
import { defineOperation, type Preview } from '../src/core/operation.js';
import { formatBytes, formatCount } from '../src/core/render.js';
import type { Column, OperationResult, Risk, Row } from '../src/core/types.js';
import {
  lockHolders,
  MAINTENANCE_STATEMENT_SECONDS,
  maintainFix,
  maintenanceLimits,
  namesText,
  ProgressReporter,
  perRelationOutcome,
  plural,
  relationStats,
  relationText,
  roleText,
  settleStats,
  skippedAndFailedNotes,
  sumOf,
} from './lib/maintenance.js';
import { args, type Ctx, FULL_NEEDS_TABLE, type Plan, planFor, vacuumSql } from './lib/vacuum-plan.js';

interface Outcome {
  seconds: number | null;
  outcome: string;
}

const RESULT_COLUMNS: Column[] = [
  { key: 'relation', label: 'relation', kind: 'text' },
  { key: 'total_bytes_before', label: 'size before', kind: 'bytes' },
  { key: 'total_bytes_after', label: 'size after', kind: 'bytes' },
  { key: 'dead_tuples_before', label: 'dead before', kind: 'count' },
  { key: 'dead_tuples_after', label: 'dead after', kind: 'count' },
  { key: 'seconds', label: 'took', kind: 'seconds' },
  { key: 'outcome', label: 'outcome', kind: 'text' },
];

async function vacuumNow(ctx: Ctx, plan: Plan): Promise<OperationResult> {
  const { full, analyze } = ctx.args;
  const outcomes = new Map<number, Outcome>();
  const progress = new ProgressReporter((line) => ctx.progress(line));
  const verb = full ? 'VACUUM FULL of' : 'vacuuming';
  const limits = maintenanceLimits(ctx.limits, full ? 'short' : 'patient');
  const started = performance.now();
  await ctx.db.direct(async (session) => {
    let done = 0;
    for (const statement of plan.statements) {
      progress.before(verb, statement.relation, statement.bytes, done, plan.statements.length);
      const t0 = performance.now();
      let outcome = full ? 'rewritten' : 'vacuumed';
      try {
        await session.query(vacuumSql(statement.relation, full, analyze));
      } catch (err) {
        // One table's lock or timeout must not abort a database-wide run; a named table's error is the answer.
        const skipped = plan.named ? undefined : perRelationOutcome(err);
        if (skipped === undefined) throw err;
        outcome = skipped;
      }
      const seconds = (performance.now() - t0) / 1000;
      // A partitioned table's partitions share the one statement that processed them.
      for (const oid of statement.oids) {
        outcomes.set(oid, { seconds: statement.oids.length === 1 ? seconds : null, outcome });
      }
      done += 1;
    }
  }, limits);
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
  const rows = plan.relations.map((before) => {
    const now = afterByOid.get(before.oid);
    const outcome = outcomes.get(before.oid) ?? { seconds: null, outcome: 'skipped: dropped meanwhile' };
    return {
      relation: before.relation,
      total_bytes_before: before.total_bytes,
      total_bytes_after: now ? now.total_bytes : null,
      dead_tuples_before: before.dead_tuples,
      dead_tuples_after: now ? now.dead_tuples : null,
      seconds: outcome.seconds === null ? null : Math.round(outcome.seconds * 1000) / 1000,
      outcome: now ? outcome.outcome : 'skipped: dropped meanwhile',
    } satisfies Row;
  });
  return vacuumResult(ctx, plan, rows, seconds);
}

type ResultRow = {
  relation: string;
  total_bytes_before: number | null;
  total_bytes_after: number | null;
  dead_tuples_before: number | null;
  dead_tuples_after: number | null;
  seconds: number | null;
  outcome: string;
};

function vacuumResult(ctx: Ctx, plan: Plan, rows: ResultRow[], seconds: number): OperationResult {
  const { full, analyze } = ctx.args;
  const processed = rows.filter((r) => r.outcome === 'vacuumed' || r.outcome === 'rewritten');
  const sizeBefore = sumOf(processed.map((r) => r.total_bytes_before));
  const sizeAfter = sumOf(processed.map((r) => r.total_bytes_after));
  const deadBefore = sumOf(processed.map((r) => r.dead_tuples_before));
  const deadAfter = sumOf(processed.map((r) => r.dead_tuples_after));
  const what = full ? 'VACUUM FULL' : analyze ? 'VACUUM ANALYZE' : 'VACUUM';
  const subject = plan.named
    ? relationText(plan.named)
    : `${plural(processed.length, 'table')} of ${ctx.target.name}`;
  const headline =
    `${what} of ${subject} done in ${formatDuration(seconds)}: ` +
    `${formatBytes(sizeBefore)} → ${formatBytes(sizeAfter)}, ` +
    `dead tuples ${formatCount(deadBefore)} → ${formatCount(deadAfter)}`;

  const notes: string[] = [];
  if (deadAfter > 0) {
    notes.push(
      `${plural(deadAfter, 'dead tuple')} could not be removed yet: a transaction, prepared transaction or ` +
        `replication slot older than the deletions still needs them — see \`/db long-running ${ctx.target.name}\``,
    );
  }
  if (!full && sizeAfter >= sizeBefore && deadBefore > 0) {
    notes.push(
      'plain VACUUM makes the space reusable inside the table but rarely returns it to the operating system; ' +
        '`--full` rewrites the table (exclusive lock, approval needed)',
    );
  }
  if (analyze) notes.push('statistics were refreshed as well (ANALYZE)');
  notes.push(...skippedAndFailedNotes(plan, rows, (o) => o === 'vacuumed' || o === 'rewritten', 'vacuum'));
  if (plan.partitioned.length > 0) {
    notes.push(
      `partitioned tables get statistics across their partitions only from an explicit ANALYZE of the parent ` +
        `(autovacuum never does it): \`/db analyze ${ctx.target.name} <parent>\` for ${namesText(plan.partitioned)}`,
    );
  }

  const cap = ctx.limits.row_cap;
  const sorted = plan.named
    ? rows
    : [...rows].sort(
        (a, b) =>
          (b.dead_tuples_before ?? 0) - (a.dead_tuples_before ?? 0) ||
          (b.total_bytes_before ?? 0) - (a.total_bytes_before ?? 0),
      );
  const truncated = sorted.length > cap;
  if (truncated) notes.push(`showing the ${cap} tables with the most dead tuples of ${sorted.length}`);

  return {
    headline,
    columns: RESULT_COLUMNS,
    rows: sorted.slice(0, cap),
    truncated,
    notes,
    data: {
      scope: plan.named ? 'table' : 'database',
      full,
      analyze,
      seconds: Math.round(seconds * 1000) / 1000,
      relations: processed.length,
      totalBytesBefore: sizeBefore,
      totalBytesAfter: sizeAfter,
      deadTuplesBefore: deadBefore,
      deadTuplesAfter: deadAfter,
      skipped: plan.skipped.map((r) => r.relation),
    },
  };
}

/** A whole-database plan with nothing the bot role may vacuum: refused when user tables were skipped. */
function nothingPermitted(ctx: Ctx, plan: Plan): OperationResult {
  if (plan.skipped.some((r) => !r.system)) throw noPermission(plan);
  return {
    headline: `nothing to vacuum: ${ctx.target.name} has no tables the bot role may vacuum`,
    columns: RESULT_COLUMNS,
    rows: [],
    truncated: false,
    notes: [`${plural(plan.skipped.length, 'system catalog')} only a superuser may vacuum`],
    data: { scope: 'database', relations: 0, skipped: plan.skipped.map((r) => r.relation) },
  };
}

function noPermission(plan: Plan): UserError {
  const first = plan.skipped.find((r) => !r.system) ?? plan.skipped[0];
  return new UserError(
    'permission',
    `the bot role ${roleText(plan.bot.role)} may vacuum none of the tables of this database (PostgreSQL ` +
      `would skip each with only a warning): ${maintainFix(plan.version, plan.bot.role, first)}`,
  );
}

const PREVIEW_COLUMNS: Column[] = [
  { key: 'relation', label: 'relation', kind: 'text' },
  { key: 'total_bytes', label: 'size', kind: 'bytes' },
  { key: 'live_tuples', label: 'live tuples', kind: 'count' },
  { key: 'dead_tuples', label: 'dead tuples (est.)', kind: 'count' },
  { key: 'last_vacuum', label: 'last vacuum', kind: 'timestamp' },
];

/** What an approval binds: the exact table (by oid), or the whole database. */
const stateSchema = z.object({
  oid: z.number().int().positive().nullable(),
  relation: z.string().nullable(),
});
export type VacuumState = z.infer<typeof stateSchema>;

async function previewPlan(ctx: Ctx): Promise<Preview> {
  const { full, analyze } = ctx.args;
  if (full && ctx.args.table === undefined) throw new UserError('invalid_argument', FULL_NEEDS_TABLE);
  const plan = await planFor(ctx);
  if (!plan.named && plan.statements.length === 0) {
    return { result: nothingPermitted(ctx, plan), state: { oid: null, relation: null }, empty: true };
  }
  const holders = plan.named
    ? await ctx.db.read((session) =>
        lockHolders(
          session,
          plan.statements.flatMap((s) => s.oids),
        ),
      )
    : 0;
  const rows: Row[] = plan.relations.slice(0, ctx.limits.row_cap).map((r) => ({
    relation: r.relation,
    total_bytes: r.total_bytes,
    live_tuples: r.live_tuples,
    dead_tuples: r.dead_tuples,
    last_vacuum: r.last_vacuum,
  }));
  const size = sumOf(plan.relations.map((r) => r.total_bytes));
  const dead = sumOf(plan.relations.map((r) => r.dead_tuples));
  const subject = plan.named ? relationText(plan.named) : `the whole database ${ctx.target.name}`;
  const notes: string[] = [];
  let headline: string;
  if (full) {
    headline =
      `VACUUM FULL${analyze ? ' ANALYZE' : ''} would rewrite ${subject} (${formatBytes(size)}, ` +
      `~${plural(dead, 'dead tuple')}) under an ACCESS EXCLUSIVE lock`;
    notes.push(
      `WARNING: VACUUM FULL takes an ACCESS EXCLUSIVE lock on ${subject}: every read and every write on it ` +
        'blocks for the whole duration, while the table and all its indexes are copied. Plain `vacuum` ' +
        '(no --full) removes dead tuples without blocking anyone; use --full only when the space must go ' +
        'back to the operating system',
      `it needs up to ${formatBytes(size)} of free disk space while it runs: the new copy is written before the old one is removed`,
      `it waits at most ${formatDuration(ctx.limits.lock_timeout)} for the lock (a queued exclusive lock would block ` +
        `everyone behind it) and is stopped after ${formatDuration(maintenanceSeconds(ctx))}; stopped, it leaves the table as it was`,
    );
    if (holders > 0) {
      notes.push(
        `${plural(holders, 'session')} hold${holders === 1 ? 's' : ''} a lock on ${subject} right now; ` +
          'the rewrite can only start once they are done',
      );
    }
  } else {
    headline =
      plan.named !== undefined
        ? `VACUUM${analyze ? ' ANALYZE' : ''} would process ${subject} (${formatBytes(size)}, ~${plural(dead, 'dead tuple')})`
        : `VACUUM${analyze ? ' ANALYZE' : ''} would process ${plural(plan.statements.length, 'table')} of ${ctx.target.name} ` +
          `(${formatBytes(size)}, ~${plural(dead, 'dead tuple')})`;
    notes.push('plain VACUUM takes SHARE UPDATE EXCLUSIVE: reads and writes go on while it runs');
    const userSkipped = plan.skipped.filter((r) => !r.system);
    if (userSkipped.length > 0) {
      notes.push(
        `${plural(userSkipped.length, 'table')} the bot role may not vacuum would be skipped: ` +
          namesText(userSkipped.map((r) => r.relation)),
      );
    }
  }
  if (plan.relations.length > ctx.limits.row_cap) {
    notes.push(`showing ${ctx.limits.row_cap} of ${plan.relations.length} tables`);
  }
  const state: VacuumState = plan.named
    ? { oid: plan.named.oid, relation: plan.named.qualified }
    : { oid: null, relation: null };
  return {
    result: {
      headline,
      columns: PREVIEW_COLUMNS,
      rows,
      truncated: plan.relations.length > ctx.limits.row_cap,
      notes,
      data: {
        scope: plan.named ? 'table' : 'database',
        full,
        analyze,
        totalBytes: size,
        deadTuples: dead,
        lockHolders: holders,
      },
    },
    state,
  };
}

function maintenanceSeconds(ctx: Ctx): number {
  return Math.max(ctx.limits.statement_timeout, MAINTENANCE_STATEMENT_SECONDS);
}

export default defineOperation({
  name: 'vacuum',
  summary: 'VACUUM one table or the whole database (--analyze too; --full rewrites a table, with approval)',
  usage: 'vacuum <target> [table] [--analyze] [--full]',
  description:
    'Removes dead tuples with VACUUM (and refreshes statistics with --analyze), reporting each table’s size ' +
    '(pg_total_relation_size) and dead tuples before and after, and the time taken. Without a table it ' +
    'vacuums every table and materialized view of the database one by one (progress in the thread; a ' +
    'table that is locked or dropped meanwhile is skipped and named). Tables the bot role may not vacuum, ' +
    'which PostgreSQL would skip with only a warning, are refused (one table) or listed (whole database), ' +
    'with the grant that fixes it. --full rewrites one table with VACUUM FULL: it takes an ACCESS EXCLUSIVE ' +
    'lock (no reads or writes for the duration), so it is destructive and waits for approval; it is refused ' +
    'without a table. Statements run outside a transaction with a one-hour statement_timeout.',
  positionals: ['table'],
  args,
  risk: 'write',
  riskFor: (a): Risk => (a.full ? 'destructive' : 'write'),

  async run(ctx) {
    if (ctx.args.full) {
      // Only reachable outside dispatch: --full is destructive and goes through preview and approval.
      throw new UserError('invalid_argument', 'vacuum --full needs approval: it is previewed first');
    }
    const plan = await planFor(ctx);
    if (!plan.named && plan.statements.length === 0) return nothingPermitted(ctx, plan);
    return await vacuumNow(ctx, plan);
  },

  async preview(ctx) {
    return await previewPlan(ctx);
  },

  async execute(ctx, previewState) {
    const parsed = stateSchema.safeParse(previewState);
    if (!parsed.success) throw new Error(`vacuum: malformed preview state: ${parsed.error.message}`);
    const previewed = parsed.data;
    if (ctx.args.full && ctx.args.table === undefined)
      throw new UserError('invalid_argument', FULL_NEEDS_TABLE);
    let plan: Plan;
    try {
      plan = await planFor(ctx);
    } catch (err) {
      if (err instanceof UserError && err.code === 'invalid_argument' && previewed.relation !== null) {
        throw new UserError(
          'invalid_argument',
          `${previewed.relation} no longer exists as the table that was previewed (dropped or renamed since); ` +
            'nothing was done — request it again',
        );
      }
      throw err;
    }
    if (previewed.oid !== null && plan.named?.oid !== previewed.oid) {
      throw new UserError(
        'invalid_argument',
        `${previewed.relation ?? 'the table'} is not the table that was previewed any more (it was dropped and ` +
          `re-created: oid ${previewed.oid} → ${plan.named?.oid ?? 'none'}); nothing was done — request it again`,
      );
    }
    if (!plan.named && plan.statements.length === 0) return nothingPermitted(ctx, plan);
    return await vacuumNow(ctx, plan);
  },
});
