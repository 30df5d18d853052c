// `/db reindex <target> <table|index> [--concurrently]`: rebuilds indexes, then looks for invalid ones left behind.
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { flagArg, identifierArg } from '../src/core/args.js';
import { formatDuration } from '../src/core/duration.js';
import { isUserError, UserError } from '../src/core/errors.js';
import { defineOperation, type OperationContext } from '../src/core/operation.js';
import { formatBytes, formatCount } from '../src/core/render.js';
import type { Column, OperationResult, Row } from '../src/core/types.js';
import { watchLockWaits } from '../src/engine/lock-watch.js';
import { type Relation, resolveRelation } from '../src/engine/relations.js';
import type { Session } from '../src/engine/types.js';
import {
  botRole,
  lockHolders,
  MAINTENANCE_STATEMENT_SECONDS,
  maintainFix,
  maintenanceLimits,
  namesText,
  plural,
  relationText,
  roleText,
  sumOf,
} from './lib/maintenance.js';

/** REINDEX … CONCURRENTLY exists from PostgreSQL 12. */
const CONCURRENTLY_SINCE = 120000;

/**
 * The table a REINDEX concerns. REINDEX needs ownership up to 16 (REINDEX INDEX: of the index, which is
 * always the table owner's), MAINTAIN on the table from 17; the database owner has no say here.
 * System catalogs are the relations with pinned oids in pg_catalog and pg_toast: information_schema is not.
 */
function tableSql(version: number): string {
  const permitted =
    version >= 170000 ? "has_table_privilege(c.oid, 'MAINTAIN')" : "pg_has_role(c.relowner, 'USAGE')";
  return `
SELECT c.oid::int8 AS oid,
       format('%I.%I', n.nspname, c.relname) AS relation,
       pg_get_userbyid(c.relowner) AS owner,
       COALESCE((SELECT r.rolsuper FROM pg_roles r WHERE r.oid = c.relowner), false) AS owner_superuser,
       (c.oid < 16384 AND n.nspname IN ('pg_catalog', 'pg_toast')) AS catalog,
       ${permitted} AS permitted
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = $1::oid`;
}

const TABLE_OF_INDEX_SQL = 'SELECT i.indrelid::int8 AS oid FROM pg_index i WHERE i.indexrelid = $1::oid';

/**
 * The indexes a REINDEX rebuilds: one index ($2), or every index of the table and of its TOAST table
 * ($2 NULL). pg_relation_filenode changes with every rebuild (also for mapped catalogs, whose relfilenode is 0).
 */
const INDEXES_SQL = `
SELECT c.oid::int8 AS oid,
       format('%I.%I', n.nspname, c.relname) AS index,
       pg_relation_size(c.oid) AS bytes,
       pg_relation_filenode(c.oid)::int8 AS filenode,
       i.indisvalid AS valid,
       i.indisunique AS unique,
       i.indisprimary AS primary,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid AND k.contype = 'x') AS exclusion,
       i.indrelid <> $1::oid AS toast
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (i.indrelid = $1::oid OR i.indrelid = (SELECT t.reltoastrelid FROM pg_class t WHERE t.oid = $1::oid))
  AND ($2::oid IS NULL OR c.oid = $2::oid)
ORDER BY toast, index`;

/** Invalid indexes on the table (and its TOAST table): what a failed CREATE/REINDEX CONCURRENTLY leaves. */
const INVALID_SQL = `
SELECT format('%I.%I', n.nspname, c.relname) AS index, pg_relation_size(c.oid) AS bytes
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (i.indrelid = $1::oid OR i.indrelid = (SELECT t.reltoastrelid FROM pg_class t WHERE t.oid = $1::oid))
  AND NOT i.indisvalid
ORDER BY 1`;

interface TableRow {
  oid: number;
  relation: string;
  owner: string;
  owner_superuser: boolean;
  catalog: boolean;
  permitted: boolean;
}

interface IndexRow {
  oid: number;
  index: string;
  bytes: number;
  filenode: number;
  valid: boolean;
  unique: boolean;
  primary: boolean;
  exclusion: boolean;
  toast: boolean;
}

interface InvalidIndex {
  index: string;
  bytes: number;
}

const args = z.object({ name: identifierArg(), concurrently: flagArg() });
type Ctx = OperationContext<z.output<typeof args>>;

interface Plan {
  version: number;
  kind: 'TABLE' | 'INDEX';
  /** The relation named: the table, or the index. */
  named: Relation;
  table: TableRow;
  indexes: IndexRow[];
}

/** The exact statement that removes an invalid index without blocking the table. */
export function dropCommand(index: string): string {
  return `DROP INDEX CONCURRENTLY ${index};`;
}

/** Why REINDEX … CONCURRENTLY leaves an index alone (PostgreSQL skips them with a WARNING), if it does. */
function concurrentSkip(plan: Plan, index: IndexRow): string | undefined {
  if (plan.kind !== 'TABLE') return undefined;
  if (index.exclusion) return 'skipped: exclusion-constraint indexes cannot be rebuilt concurrently';
  if (!index.valid) return 'skipped: CONCURRENTLY does not rebuild invalid indexes';
  return undefined;
}

function plannedAction(plan: Plan, index: IndexRow, concurrently: boolean): string {
  const skip = concurrently ? concurrentSkip(plan, index) : undefined;
  if (skip) return skip;
  return index.valid ? 'rebuild' : 'rebuild (INVALID now)';
}

async function planFor(ctx: Ctx, session: Session): Promise<Plan> {
  const version = await ctx.db.serverVersion();
  const { concurrently } = ctx.args;
  if (concurrently && version < CONCURRENTLY_SINCE) {
    throw new UserError('invalid_argument', 'REINDEX CONCURRENTLY needs PostgreSQL 12 or later');
  }
  const named = await resolveRelation(session, ctx.args.name, ['r', 'm', 'i'], '<table|index>');
  const kind = named.relkind === 'i' ? 'INDEX' : 'TABLE';
  let tableOid = named.oid;
  if (kind === 'INDEX') {
    const [owner] = await session.query<{ oid: number }>(TABLE_OF_INDEX_SQL, [named.oid]);
    if (!owner) throw new Error(`index ${named.qualified} has no pg_index row`);
    tableOid = owner.oid;
  }
  const [table] = await session.query<TableRow>(tableSql(version), [tableOid]);
  if (!table) throw new Error(`table of ${named.qualified} not found`);
  if (concurrently && table.catalog) {
    throw new UserError(
      'invalid_argument',
      `${table.relation} is a system catalog: PostgreSQL cannot reindex system catalogs concurrently; ` +
        'run it without --concurrently (it blocks the catalog for its duration) or leave it alone',
    );
  }
  if (!table.permitted) {
    const bot = await botRole(session);
    throw new UserError(
      'permission',
      `the bot role ${roleText(bot.role)} may not reindex ${table.relation}: ` +
        maintainFix(version, bot.role, table, { database: false }),
    );
  }
  const indexes = await session.query<IndexRow>(INDEXES_SQL, [tableOid, kind === 'INDEX' ? named.oid : null]);
  const plan: Plan = { version, kind, named, table, indexes };
  const only = indexes[0];
  if (concurrently && kind === 'INDEX' && only?.exclusion) {
    throw new UserError(
      'invalid_argument',
      `${only.index} backs an exclusion constraint: PostgreSQL cannot rebuild it concurrently; run reindex without --concurrently`,
    );
  }
  return plan;
}

function statementOf(plan: Plan, concurrently: boolean): string {
  return `REINDEX ${plan.kind} ${concurrently ? 'CONCURRENTLY ' : ''}${plan.named.qualified}`;
}

function leftoverOfConcurrently(index: string): boolean {
  return /_cc(new|old)\d*"?$/.test(index);
}

function invalidNote(invalid: readonly InvalidIndex[]): string {
  return (
    `${plural(invalid.length, 'INVALID index', 'INVALID indexes')} on the table: not used by queries but ` +
    `still updated by every write, so drop ${invalid.length === 1 ? 'it' : 'them'} (or rebuild without ` +
    `--concurrently): ${invalid.map((i) => `\`${dropCommand(i.index)}\``).join(' ')}`
  );
}

function lockNotes(plan: Plan, concurrently: boolean, bytes: number, holders: number): string[] {
  const table = plan.table.relation;
  const notes: string[] = [];
  if (concurrently) {
    notes.push(
      'REINDEX CONCURRENTLY does not block reads or writes (SHARE UPDATE EXCLUSIVE) but is slower: it builds ' +
        'each index anew with two scans of the table and waits for every transaction using it to finish. It ' +
        'needs PostgreSQL 12+ and cannot run inside a transaction block (dbops runs it outside one)',
      'if it fails or is cancelled it leaves an INVALID index named like <name>_ccnew (or _ccold) that slows ' +
        'every write until dropped with DROP INDEX CONCURRENTLY; dbops looks for such indexes afterwards and ' +
        'gives the exact command',
      `it needs free disk space for a second copy of each index while it runs (up to ${formatBytes(bytes)})`,
    );
  } else {
    notes.push(
      `WARNING: plain REINDEX locks out writes to ${table} (SHARE lock) and holds ACCESS EXCLUSIVE on each ` +
        'index while it is rebuilt; since the planner locks every index of a table, nearly every query on ' +
        `${table}, reads included, waits until it finishes. --concurrently avoids that (slower, PostgreSQL 12+)`,
    );
  }
  if (holders > 0) {
    notes.push(
      `${plural(holders, 'session')} hold${holders === 1 ? 's' : ''} a lock on ${table} right now` +
        (concurrently ? '; the rebuild waits for them' : '; REINDEX cannot start before they finish'),
    );
  }
  return notes;
}

const PREVIEW_COLUMNS: Column[] = [
  { key: 'index', label: 'index', kind: 'text' },
  { key: 'bytes', label: 'size', kind: 'bytes' },
  { key: 'valid', label: 'valid', kind: 'bool' },
  { key: 'unique', label: 'unique', kind: 'bool' },
  { key: 'primary', label: 'primary key', kind: 'bool' },
  { key: 'action', label: 'action', kind: 'text' },
];

const RESULT_COLUMNS: Column[] = [
  { key: 'index', label: 'index', kind: 'text' },
  { key: 'bytes_before', label: 'size before', kind: 'bytes' },
  { key: 'bytes_after', label: 'size after', kind: 'bytes' },
  { key: 'valid', label: 'valid', kind: 'bool' },
  { key: 'rebuilt', label: 'rebuilt', kind: 'bool' },
  { key: 'outcome', label: 'outcome', kind: 'text' },
];

/** What an approval binds: the relation by oid and the indexes shown. */
const stateSchema = z.object({
  kind: z.enum(['TABLE', 'INDEX']),
  oid: z.number().int().positive(),
  relation: z.string(),
  indexes: z.array(z.object({ oid: z.number().int().positive(), index: z.string() })),
});
export type ReindexState = z.infer<typeof stateSchema>;

async function invalidIndexes(session: Session, tableOid: number): Promise<InvalidIndex[]> {
  return await session.query<InvalidIndex>(INVALID_SQL, [tableOid]);
}

export default defineOperation({
  name: 'reindex',
  summary: 'Rebuild the indexes of a table, or one index (--concurrently: without blocking)',
  usage: 'reindex <target> <table|index> [--concurrently]',
  description:
    'Shows the indexes that would be rebuilt (size, valid, unique), the lock it takes and any index ' +
    'already INVALID; after approval checks that the table and its indexes are still the ones previewed, ' +
    'runs REINDEX TABLE or REINDEX INDEX outside a transaction, and reports each index’s size before and ' +
    'after. Plain REINDEX blocks writes and nearly all reads of the table; --concurrently blocks neither but ' +
    'is slower, skips invalid and exclusion-constraint indexes, is refused on system catalogs, and on ' +
    'failure can leave an INVALID <name>_ccnew index: dbops detects every invalid index on the table ' +
    'afterwards and gives the exact DROP INDEX CONCURRENTLY command.',
  positionals: ['name'],
  args,
  risk: 'destructive',

  async preview(ctx) {
    const { concurrently } = ctx.args;
    const { plan, holders, invalid } = await ctx.db.read(async (session) => {
      const found = await planFor(ctx, session);
      return {
        plan: found,
        holders: await lockHolders(session, [found.table.oid]),
        invalid: await invalidIndexes(session, found.table.oid),
      };
    });
    const rows: Row[] = plan.indexes.map((i) => ({
      index: i.index,
      bytes: i.bytes,
      valid: i.valid,
      unique: i.unique,
      primary: i.primary,
      action: plannedAction(plan, i, concurrently),
    }));
    const rebuilt = plan.indexes.filter((i) => !(concurrently && concurrentSkip(plan, i)));
    const bytes = sumOf(rebuilt.map((i) => i.bytes));
    const statement = statementOf(plan, concurrently);
    const notes = lockNotes(plan, concurrently, bytes, holders);
    if (invalid.length > 0) {
      notes.push(invalidNote(invalid));
      const leftovers = invalid.filter((i) => leftoverOfConcurrently(i.index));
      if (leftovers.length > 0) {
        notes.push(
          `${namesText(leftovers.map((i) => i.index))} ${leftovers.length === 1 ? 'is' : 'are'} left over from an ` +
            'interrupted REINDEX CONCURRENTLY',
        );
      }
      if (!concurrently && invalid.length > 0) {
        notes.push(
          'plain REINDEX rebuilds invalid indexes too, but if an invalid UNIQUE index still has duplicates the ' +
            'whole REINDEX fails and nothing is rebuilt: drop such an index first',
        );
      }
    }
    const state: ReindexState = {
      kind: plan.kind,
      oid: plan.named.oid,
      relation: plan.named.qualified,
      indexes: plan.indexes.map((i) => ({ oid: i.oid, index: i.index })),
    };
    const subject = relationText(plan.named);
    const result: OperationResult = {
      headline:
        rebuilt.length === 0
          ? `${statement}: nothing to rebuild — ${plan.indexes.length === 0 ? `${subject} has no indexes` : 'every index would be skipped'}`
          : `${statement} would rebuild ${plural(rebuilt.length, 'index', 'indexes')} (${formatBytes(bytes)})`,
      columns: PREVIEW_COLUMNS,
      rows,
      truncated: false,
      notes,
      data: {
        statement,
        kind: plan.kind,
        concurrently,
        indexes: rebuilt.length,
        bytes,
        lockHolders: holders,
        invalidIndexes: invalid.map((i) => ({ index: i.index, drop: dropCommand(i.index) })),
      },
    };
    return rebuilt.length === 0 ? { result, state, empty: true } : { result, state };
  },

  async execute(ctx, previewState) {
    const parsed = stateSchema.safeParse(previewState);
    if (!parsed.success) throw new Error(`reindex: malformed preview state: ${parsed.error.message}`);
    const previewed = parsed.data;
    const { concurrently } = ctx.args;
    const plan = await ctx.db.read(async (session) => {
      try {
        return await planFor(ctx, session);
      } catch (err) {
        if (
          isUserError(err) &&
          err.code === 'invalid_argument' &&
          / matching .* on this target/.test(err.message)
        ) {
          throw new UserError(
            'invalid_argument',
            `${previewed.relation} no longer exists (dropped or renamed since the preview); nothing was done`,
          );
        }
        throw err;
      }
    });
    if (plan.named.oid !== previewed.oid) {
      throw new UserError(
        'invalid_argument',
        `${previewed.relation} is not the relation that was previewed any more (dropped and re-created: oid ` +
          `${previewed.oid} → ${plan.named.oid}); nothing was done — request it again`,
      );
    }
    const notes: string[] = [];
    const nowOids = new Set(plan.indexes.map((i) => i.oid));
    const thenOids = new Set(previewed.indexes.map((i) => i.oid));
    const added = plan.indexes.filter((i) => !thenOids.has(i.oid)).map((i) => i.index);
    const gone = previewed.indexes.filter((i) => !nowOids.has(i.oid)).map((i) => i.index);
    if (added.length > 0) notes.push(`since the preview, new or re-created: ${namesText(added)}`);
    if (gone.length > 0) notes.push(`since the preview, dropped or re-created: ${namesText(gone)}`);

    const statement = statementOf(plan, concurrently);
    const bytes = sumOf(plan.indexes.map((i) => i.bytes));
    if (bytes >= 1024 ** 3) ctx.progress(`${statement}: ${formatBytes(bytes)} of indexes to rebuild…`);
    // Plain REINDEX queues an exclusive lock that blocks everyone behind it: short wait. CONCURRENTLY waits
    // for running transactions without blocking anybody, so its lock waits may last as long as the statement.
    const limits = maintenanceLimits(ctx.limits, 'short');
    if (concurrently) limits.lockTimeoutMs = limits.statementTimeoutMs;
    const t0 = performance.now();
    try {
      await ctx.db.direct(async (session) => {
        // Lock waits (on the table, or CONCURRENTLY's wait for older transactions) are shown with who blocks.
        const watch = watchLockWaits(ctx.db, session.backendPid, ctx.progress);
        try {
          await session.query(statement);
        } finally {
          watch.stop();
        }
      }, limits);
    } catch (err) {
      const invalid = await ctx.db.read((session) => invalidIndexes(session, plan.table.oid));
      const base = isUserError(err) ? err : undefined;
      if (!base) throw err;
      const cleanup =
        invalid.length > 0
          ? ` It left ${invalidNote(invalid)}`
          : ' No invalid index was left behind; the indexes are as they were.';
      throw new UserError(base.code, `${statement} failed: ${base.message}.${cleanup}`, {
        ...base.detail,
        invalidIndexes: invalid.map((i) => ({ index: i.index, drop: dropCommand(i.index) })),
      });
    }
    const seconds = (performance.now() - t0) / 1000;

    const { after, invalid } = await ctx.db.read(async (session) => ({
      // REINDEX CONCURRENTLY swaps in a new index (new oid) under the old name: match by name.
      after: await session.query<IndexRow>(INDEXES_SQL, [plan.table.oid, null]),
      invalid: await invalidIndexes(session, plan.table.oid),
    }));
    const afterByName = new Map(after.map((i) => [i.index, i]));
    const rows: Row[] = plan.indexes.map((before) => {
      const now = afterByName.get(before.index);
      const rebuilt = now !== undefined && now.filenode !== before.filenode;
      const skip = concurrently ? concurrentSkip(plan, before) : undefined;
      return {
        index: before.index,
        bytes_before: before.bytes,
        bytes_after: now ? now.bytes : null,
        valid: now ? now.valid : null,
        rebuilt,
        outcome: !now ? 'gone' : rebuilt ? 'rebuilt' : (skip ?? 'not rebuilt'),
      };
    });
    const rebuiltCount = rows.filter((r) => r.rebuilt === true).length;
    if (invalid.length > 0) notes.push(invalidNote(invalid));
    const headline =
      `${statement}: rebuilt ${formatCount(rebuiltCount)} of ${plural(plan.indexes.length, 'index', 'indexes')} in ` +
      `${formatDuration(seconds)}` +
      (invalid.length > 0
        ? `; ${plural(invalid.length, 'index', 'indexes')} on the table ${invalid.length === 1 ? 'is' : 'are'} INVALID — drop command below`
        : '');
    return {
      headline,
      columns: RESULT_COLUMNS,
      rows,
      truncated: false,
      notes,
      data: {
        statement,
        seconds: Math.round(seconds * 1000) / 1000,
        rebuilt: rebuiltCount,
        statementTimeoutSeconds: Math.max(ctx.limits.statement_timeout, MAINTENANCE_STATEMENT_SECONDS),
        invalidIndexes: invalid.map((i) => ({ index: i.index, drop: dropCommand(i.index) })),
      },
    };
  },
});
