// Shared by vacuum, analyze and reindex: maintenance timeouts, the relations' catalog facts and statistics, the bot role's rights, and the wording of outcomes.
import { performance } from 'node:perf_hooks';
import { formatBytes, formatCount } from '../../src/core/render.js';
import { serverError } from '../../src/engine/pg-errors.js';
import { quoteIdent, type Relation } from '../../src/engine/relations.js';
import type { QueryLimits, Session } from '../../src/engine/types.js';

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
