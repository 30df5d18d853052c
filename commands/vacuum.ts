// `/db vacuum <target> [table] [--analyze] [--full]`: reclaims dead tuples of one table or of the whole database.
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { flagArg, identifierArg } from '../src/core/args.js';
import { formatDuration } from '../src/core/duration.js';
import { UserError } from '../src/core/errors.js';
import { defineOperation, type OperationContext, type Preview } from '../src/core/operation.js';
import { formatBytes, formatCount } from '../src/core/render.js';
import type { Column, OperationResult, Risk, Row } from '../src/core/types.js';
import { serverError } from '../src/engine/pg-errors.js';
import { quoteIdent, type Relation, resolveRelation } from '../src/engine/relations.js';
import type { QueryLimits, Session } from '../src/engine/types.js';

/*
 * Timeouts. VACUUM and ANALYZE take SHARE UPDATE EXCLUSIVE: reads and writes go on beside them, so a long
 * run harms nobody while cancelling it throws the work away. A manual VACUUM is not cost-throttled like
 * autovacuum, and an hour covers tables of hundreds of GB on ordinary storage; a target configured with a
 * longer statement_timeout keeps its own. Waiting for that lock only queues DDL and other maintenance
 * (never queries), and autovacuum yields to it within deadlock_timeout, so 30 s of lock wait is harmless.
 * VACUUM FULL and plain REINDEX instead ask for locks that block readers and writers the moment they are
 * queued: they wait no longer than the target's lock_timeout (1 s by default).
 */
export const MAINTENANCE_STATEMENT_SECONDS = 3600;
export const MAINTENANCE_LOCK_WAIT_SECONDS = 30;

/** Before/after statistics of PostgreSQL < 15 reach other sessions through the stats collector, ~0.5 s late. */
const STATS_COLLECTOR_LAG_MS = 700;
/** A progress line at most this often during a whole-database run. */
const PROGRESS_EVERY_MS = 10_000;
/** A relation this large is announced in the thread before its (long) statement starts. */
const ANNOUNCE_BYTES = 1024 ** 3;
/** How many relation names a note lists before "and N more". */
const NAMES_LISTED = 15;

const ISO = (expr: string) => `to_char(${expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/**
 * SQL: whether the current role may VACUUM or ANALYZE relation `c`; PostgreSQL skips every other one with
 * nothing but a WARNING. Up to 16: the owner (or a member of the owning role), a superuser, or the database
 * owner for non-shared relations. 17 replaced ownership by the MAINTAIN privilege (which owners hold, and
 * which GRANT MAINTAIN or the pg_maintain role give); the database-owner rule remains.
 */
export function maintainableSql(version: number): string {
  const own =
    version >= 170000 ? "has_table_privilege(c.oid, 'MAINTAIN')" : "pg_has_role(c.relowner, 'USAGE')";
  return `(${own} OR (NOT c.relisshared AND pg_has_role(
            (SELECT d.datdba FROM pg_database d WHERE d.datname = current_database()), 'USAGE')))`;
}

/** Relations locked AccessExclusive by DDL: their size would wait behind it, so it is left out (NULL). */
const DDL_LOCKED_CTE = `ddl_locked AS (
  SELECT l.relation
  FROM pg_locks l
  WHERE l.locktype = 'relation'
    AND l.mode = 'AccessExclusiveLock'
    AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
)`;

function relationsSql(version: number, where: string): string {
  return `
WITH ${DDL_LOCKED_CTE}
SELECT c.oid::int8 AS oid,
       format('%I.%I', n.nspname, c.relname) AS relation,
       c.relkind::text AS relkind,
       pg_get_userbyid(c.relowner) AS owner,
       COALESCE((SELECT r.rolsuper FROM pg_roles r WHERE r.oid = c.relowner), false) AS owner_superuser,
       n.nspname IN ('pg_catalog', 'information_schema') AS system,
       (SELECT i.inhparent::int8 FROM pg_inherits i WHERE c.relispartition AND i.inhrelid = c.oid LIMIT 1) AS parent,
       CASE WHEN c.oid IN (SELECT relation FROM ddl_locked) THEN NULL
            ELSE pg_total_relation_size(c.oid) END AS total_bytes,
       s.n_dead_tup AS dead_tuples,
       s.n_live_tup AS live_tuples,
       s.n_mod_since_analyze AS modified_since_analyze,
       CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::int8 END AS rows_estimate,
       ${ISO('s.last_vacuum')} AS last_vacuum,
       ${ISO('s.last_analyze')} AS last_analyze,
       ${ISO('s.last_autoanalyze')} AS last_autoanalyze,
       ${maintainableSql(version)} AS permitted
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
WHERE ${where}
ORDER BY n.nspname, c.relname`;
}

/** The given relations (a table and, for a partitioned one, its partitions). */
const byOidsSql = (version: number) => relationsSql(version, 'c.oid = ANY ($1::oid[])');

/** Every table and materialized view (and partitioned table) a database-wide VACUUM or ANALYZE would visit. */
const databaseSql = (version: number) =>
  relationsSql(version, "c.relkind IN ('r', 'm', 'p') AND c.relpersistence <> 't'");

/** The leaf partitions under a partitioned table: what VACUUM of the parent actually processes. */
const LEAF_PARTITIONS_SQL = `
SELECT t.relid::int8 AS oid
FROM pg_partition_tree($1::oid::regclass) t
JOIN pg_class c ON c.oid = t.relid
WHERE t.isleaf AND c.relkind IN ('r', 'm')`;

const ROLE_SQL = `SELECT current_user AS role,
       COALESCE((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user), false) AS superuser`;

const LOCK_HOLDERS_SQL = `
SELECT count(DISTINCT l.pid)::int AS sessions
FROM pg_locks l
WHERE l.locktype = 'relation' AND l.relation = ANY ($1::oid[]) AND l.pid <> pg_backend_pid()`;

/** One relation's catalog facts and statistics, as the maintenance operations read them. */
export interface RelationStats {
  oid: number;
  relation: string;
  relkind: string;
  owner: string;
  owner_superuser: boolean;
  system: boolean;
  parent: number | null;
  total_bytes: number | null;
  dead_tuples: number | null;
  live_tuples: number | null;
  modified_since_analyze: number | null;
  rows_estimate: number | null;
  last_vacuum: string | null;
  last_analyze: string | null;
  last_autoanalyze: string | null;
  permitted: boolean;
}

export async function relationStats(
  session: Session,
  version: number,
  oids: readonly number[],
): Promise<RelationStats[]> {
  return await session.query<RelationStats>(byOidsSql(version), [oids]);
}

export async function databaseRelations(session: Session, version: number): Promise<RelationStats[]> {
  return await session.query<RelationStats>(databaseSql(version), []);
}

export async function leafPartitions(session: Session, oid: number): Promise<number[]> {
  const rows = await session.query<{ oid: number }>(LEAF_PARTITIONS_SQL, [oid]);
  return rows.map((r) => r.oid);
}

export async function lockHolders(session: Session, oids: readonly number[]): Promise<number> {
  const [row] = await session.query<{ sessions: number }>(LOCK_HOLDERS_SQL, [oids]);
  return row?.sessions ?? 0;
}

export interface BotRole {
  role: string;
  superuser: boolean;
}

export async function botRole(session: Session): Promise<BotRole> {
  const [row] = await session.query<BotRole>(ROLE_SQL);
  if (!row) throw new Error('current_user returned no row');
  return row;
}

/** A name as it would be typed in SQL: bare when it needs no quotes (like format('%I')). */
export function identText(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : quoteIdent(name);
}

export const roleText = identText;

/** `schema.name` of a resolved relation, as people read and type it. */
export function relationText(relation: Pick<Relation, 'schema' | 'name'>): string {
  return `${identText(relation.schema)}.${identText(relation.name)}`;
}

/** A relation and who owns it, for the fix a refusal names. */
export interface OwnedRelation {
  relation: string;
  owner: string;
  owner_superuser: boolean;
}

/** What gives the bot role the right to VACUUM / ANALYZE (or, with `database: false`, REINDEX) a relation. */
export function maintainFix(
  version: number,
  role: string,
  target: OwnedRelation | undefined,
  options: { database?: boolean } = {},
): string {
  const table = target?.relation ?? '<table>';
  const bot = roleText(role);
  const dbOwner = options.database === false ? '' : ', the database owner';
  if (version >= 170000) {
    return `GRANT MAINTAIN ON TABLE ${table} TO ${bot} (or GRANT pg_maintain TO ${bot} for every table)`;
  }
  const major = Math.floor(version / 10000);
  const who = `only its owner${target ? ` (${roleText(target.owner)})` : ''}, members of the owning role${dbOwner} or a superuser may`;
  const fix =
    target && !target.owner_superuser
      ? `GRANT ${roleText(target.owner)} TO ${bot} makes the bot role a member of the owning role`
      : 'the table belongs to a superuser, so hand it to the application role (ALTER TABLE … OWNER TO …) and make the bot role a member of that';
  return `on PostgreSQL ${major} ${who}: ${fix}; PostgreSQL 17 adds GRANT MAINTAIN`;
}

/** "a, b, c and 4 more". */
export function namesText(names: readonly string[]): string {
  const shown = names.slice(0, NAMES_LISTED);
  const more = names.length > shown.length ? ` and ${names.length - shown.length} more` : '';
  return `${shown.join(', ')}${more}`;
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}

export function sumOf(values: readonly (number | null)[]): number {
  return values.reduce<number>((total, v) => total + (v ?? 0), 0);
}

/** Statement and lock timeouts for one maintenance statement run through `direct()`. */
export function maintenanceLimits(
  limits: { statement_timeout: number; lock_timeout: number },
  lockWait: 'short' | 'patient',
): Pick<QueryLimits, 'statementTimeoutMs' | 'lockTimeoutMs'> {
  return {
    statementTimeoutMs: Math.round(Math.max(limits.statement_timeout, MAINTENANCE_STATEMENT_SECONDS) * 1000),
    lockTimeoutMs: Math.round(
      (lockWait === 'short'
        ? limits.lock_timeout
        : Math.max(limits.lock_timeout, MAINTENANCE_LOCK_WAIT_SECONDS)) * 1000,
    ),
  };
}

/**
 * How a failure of one relation's statement ends up in a whole-database run; undefined stops the run.
 * A statement_timeout stops that table only; a cancel request from a person stops everything.
 */
export function perRelationOutcome(err: unknown): string | undefined {
  const pgErr = serverError(err);
  switch (pgErr?.code) {
    case '42P01':
      return 'skipped: dropped meanwhile';
    case '55P03':
      return 'skipped: lock not available (DDL or other maintenance running)';
    case '57014':
      return /statement timeout/i.test(pgErr?.message ?? '')
        ? 'stopped: ran past statement_timeout'
        : undefined;
    case '42501':
      return 'skipped: permission denied';
    default:
      return undefined;
  }
}

/** Throttled progress lines for long runs. */
export class ProgressReporter {
  #last = performance.now();
  constructor(private readonly post: (line: string) => void) {}

  /** Announces a statement when it is big or when nothing was said for a while. */
  before(verb: string, relation: string, bytes: number | null, done: number, total: number): void {
    const now = performance.now();
    const big = bytes !== null && bytes >= ANNOUNCE_BYTES;
    if (!big && now - this.#last < PROGRESS_EVERY_MS) return;
    this.#last = now;
    const size = bytes === null ? '' : ` (${formatBytes(bytes)})`;
    const count = total > 1 ? `${done} of ${total} done; ` : '';
    this.post(`${count}${verb} ${relation}${size}${big ? ' — large tables take minutes' : ''}…`);
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits out the stats collector of PostgreSQL < 15 so "after" figures include the run just done. */
export async function settleStats(version: number): Promise<void> {
  if (version < 150000) await sleep(STATS_COLLECTOR_LAG_MS);
}

// ---------------------------------------------------------------------------------------------------------

const args = z.object({
  table: identifierArg().optional(),
  analyze: flagArg(),
  full: flagArg(),
});
type VacuumArgs = z.output<typeof args>;
type Ctx = OperationContext<VacuumArgs>;

/** What a run will process: the relations whose figures are reported and the statements that do it. */
interface Plan {
  version: number;
  bot: BotRole;
  /** The relation named by the user (table scope), or undefined for the whole database. */
  named: Relation | undefined;
  /** Relations reported (tables, materialized views, leaf partitions). */
  relations: RelationStats[];
  /** One VACUUM per entry: the named relation, or each permitted relation of the database. */
  statements: { relation: string; oids: number[]; bytes: number | null }[];
  /** Relations the bot role may not vacuum (whole-database scope): PostgreSQL would skip them silently. */
  skipped: RelationStats[];
  /** Partitioned tables (whole-database scope with ANALYZE), whose own statistics a per-table run misses. */
  partitioned: string[];
}

function vacuumSql(relation: string, full: boolean, analyze: boolean): string {
  const options = [...(full ? ['FULL'] : []), ...(analyze ? ['ANALYZE'] : [])];
  return `VACUUM ${options.length > 0 ? `(${options.join(', ')}) ` : ''}${relation}`;
}

const FULL_NEEDS_TABLE =
  'vacuum --full needs a table: VACUUM FULL of a whole database rewrites every table in turn, each one ' +
  'unreadable and unwritable while it is copied, which is an outage; name the table to rewrite, or run ' +
  'plain `vacuum` (no exclusive lock) for the whole database';

async function planFor(ctx: Ctx): Promise<Plan> {
  const version = await ctx.db.serverVersion();
  return await ctx.db.read(async (session) => {
    const bot = await botRole(session);
    const typed = ctx.args.table;
    if (typed === undefined) {
      const all = await databaseRelations(session, version);
      const leaves = all.filter((r) => r.relkind !== 'p');
      const permitted = leaves.filter((r) => r.permitted);
      // Most dead tuples first: if the run is stopped, the tables that needed it most are done.
      const ordered = [...permitted].sort(
        (a, b) =>
          Number(a.system) - Number(b.system) ||
          (b.dead_tuples ?? 0) - (a.dead_tuples ?? 0) ||
          (b.total_bytes ?? 0) - (a.total_bytes ?? 0),
      );
      return {
        version,
        bot,
        named: undefined,
        relations: ordered,
        statements: ordered.map((r) => ({ relation: r.relation, oids: [r.oid], bytes: r.total_bytes })),
        skipped: leaves.filter((r) => !r.permitted),
        partitioned: ctx.args.analyze
          ? all.filter((r) => r.relkind === 'p' && r.parent === null).map((r) => r.relation)
          : [],
      };
    }
    const named = await resolveRelation(session, typed, ['r', 'm', 'p'], '<table>');
    const oids =
      named.relkind === 'p' ? [named.oid, ...(await leafPartitions(session, named.oid))] : [named.oid];
    const stats = await relationStats(session, version, oids);
    const refused = stats.filter((r) => !r.permitted);
    if (refused.length > 0) {
      const first = refused[0];
      throw new UserError(
        'permission',
        `the bot role ${roleText(bot.role)} may not vacuum ${namesText(refused.map((r) => r.relation))} ` +
          '(PostgreSQL would skip it with only a warning, doing nothing): ' +
          maintainFix(version, bot.role, first),
      );
    }
    const reported = stats.filter((r) => r.relkind !== 'p');
    return {
      version,
      bot,
      named,
      relations: reported,
      statements: [{ relation: named.qualified, oids, bytes: sumOf(stats.map((r) => r.total_bytes)) }],
      skipped: [],
      partitioned: [],
    };
  });
}

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

/** Notes on tables that failed or were skipped for lack of privilege, shared by vacuum and analyze. */
export function skippedAndFailedNotes(
  plan: { skipped: readonly (OwnedRelation & { system: boolean })[]; version: number; bot: { role: string } },
  rows: readonly { outcome: string; relation: string }[],
  done: (outcome: string) => boolean,
  verb: 'vacuum' | 'analyze',
): string[] {
  const notes: string[] = [];
  const failed = new Map<string, string[]>();
  for (const row of rows) {
    if (done(row.outcome)) continue;
    failed.set(row.outcome, [...(failed.get(row.outcome) ?? []), row.relation]);
  }
  for (const [outcome, names] of failed) notes.push(`${outcome}: ${namesText(names)}`);
  const userSkipped = plan.skipped.filter((r) => !r.system);
  const systemSkipped = plan.skipped.length - userSkipped.length;
  const first = userSkipped[0];
  if (first) {
    notes.push(
      `skipped ${plural(userSkipped.length, 'table')} the bot role may not ${verb} (PostgreSQL would only have ` +
        `warned): ${namesText(userSkipped.map((r) => r.relation))} — ` +
        maintainFix(plan.version, plan.bot.role, first),
    );
  }
  if (systemSkipped > 0) {
    notes.push(
      `skipped ${plural(systemSkipped, 'system catalog')} that only a superuser${plan.version >= 170000 ? ' (or pg_maintain)' : ''} may ${verb}`,
    );
  }
  return notes;
}
