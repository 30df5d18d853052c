// `/db check-indexes <target> [table] [--heapallindexed] [--parent]`: amcheck's B-tree checks, index by index, with what to run next.
import { z } from 'zod';
import { durationArg, flagArg, quoteWord, textArg } from '../src/core/args.js';
import { UserError } from '../src/core/errors.js';
import { defineOperation } from '../src/core/operation.js';
import { formatBytes, formatCount } from '../src/core/render.js';
import { quoteIdent } from '../src/engine/relations.js';
import type { Session } from '../src/engine/types.js';
import { resolveTable } from './lib/table-name.js';
import { nameList, textResult, wrap } from './lib/text-lines.js';

/** Where amcheck is (if installed), whether this server could install it, and what dbops' role may run. */
export const AMCHECK_SQL = `
SELECT current_user AS role, current_database() AS database, pg_is_in_recovery() AS in_recovery,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'amcheck') AS schema,
       EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck') AS available,
       (SELECT string_agg(quote_ident(rolname), ', ' ORDER BY rolname) FROM pg_roles
        WHERE rolsuper AND rolcanlogin) AS superusers,
       (SELECT bool_and(has_function_privilege(p.oid, 'EXECUTE')) FROM pg_proc p
        JOIN pg_extension e ON e.extname = 'amcheck' AND p.pronamespace = e.extnamespace
        WHERE p.oid = to_regprocedure(format('%I.bt_index_check(regclass, boolean)', (
          SELECT n.nspname FROM pg_namespace n WHERE n.oid = e.extnamespace)))) AS may_check,
       (SELECT bool_and(has_function_privilege(p.oid, 'EXECUTE')) FROM pg_proc p
        JOIN pg_extension e ON e.extname = 'amcheck' AND p.pronamespace = e.extnamespace
        WHERE p.oid = to_regprocedure(format('%I.bt_index_parent_check(regclass, boolean)', (
          SELECT n.nspname FROM pg_namespace n WHERE n.oid = e.extnamespace)))) AS may_check_parent`;

/**
 * The B-tree indexes to check, in schema/name order: $1 = a table's oid (its partitions and TOAST too)
 * or null for the whole database, $2 = include pg_catalog and information_schema. Sizes come from the
 * catalog (pg_relation_size would wait for a lock).
 */
export const INDEXES_SQL = `
WITH family AS (
  -- pg_partition_tree has no rows for a table outside any partition tree: the table itself comes first.
  SELECT $1::regclass AS relid UNION SELECT relid FROM pg_partition_tree($1::regclass)
),
tree AS (
  SELECT relid FROM family
  UNION SELECT c.reltoastrelid FROM pg_class c
        WHERE c.oid IN (SELECT relid FROM family) AND c.reltoastrelid <> 0
)
SELECT i.indexrelid::int8 AS oid,
       format('%I.%I', n.nspname, ic.relname) AS name,
       CASE WHEN o.relname IS NULL THEN format('%I.%I', tn.nspname, tc.relname)
            ELSE format('TOAST of %I.%I', o.nspname, o.relname) END AS table_name,
       ic.relpersistence::text AS persistence,
       i.indisvalid AND i.indisready AS valid,
       i.indisunique AS is_unique,
       ic.relpages::int8 * current_setting('block_size')::int8 AS bytes
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_am am ON am.oid = ic.relam
JOIN pg_namespace n ON n.oid = ic.relnamespace
JOIN pg_class tc ON tc.oid = i.indrelid
JOIN pg_namespace tn ON tn.oid = tc.relnamespace
-- The table a TOAST table belongs to: its schema decides whether the TOAST index is a system one.
LEFT JOIN LATERAL (SELECT oc.relname, on2.nspname FROM pg_class oc
                   JOIN pg_namespace on2 ON on2.oid = oc.relnamespace
                   WHERE tc.relkind = 't' AND oc.reltoastrelid = tc.oid) o ON true
WHERE am.amname = 'btree' AND ic.relkind = 'i'
  AND ($1::oid IS NULL OR i.indrelid IN (SELECT relid FROM tree))
  AND ($2::boolean OR COALESCE(o.nspname, tn.nspname) NOT IN ('pg_catalog', 'information_schema'))
ORDER BY n.nspname, ic.relname`;

/** amcheck's own error codes: a broken invariant (XX002) or a broken heap tuple (XX001). */
const CORRUPTION = new Set(['XX002', 'XX001']);
const LOCK_TIMEOUT = '55P03';
const CANCELED = '57014';
/** The index went away between the listing and its check (dropped, or rebuilt under a new oid). */
const GONE = new Set(['42P01', 'XX000']);

/** A schema-qualified name that needs no SQL quotes, as `reindex` accepts it. */
const PLAIN_NAME = /^[a-z_][a-z0-9_$]*\.[a-z_][a-z0-9_$]*$/;

interface Amcheck {
  role: string;
  database: string;
  in_recovery: boolean;
  superuser: boolean;
  schema: string | null;
  available: boolean;
  superusers: string | null;
  may_check: boolean | null;
  may_check_parent: boolean | null;
}

interface IndexRow {
  oid: string | number;
  name: string;
  table_name: string;
  persistence: string;
  valid: boolean;
  is_unique: boolean;
  bytes: string | number;
}

type Status = 'ok' | 'corrupt' | 'skipped' | 'timeout' | 'locked' | 'gone' | 'error';

interface Outcome {
  index: string;
  unique: boolean;
  table: string;
  bytes: number;
  status: Status;
  detail: string | null;
}

function skipReason(index: IndexRow, inRecovery: boolean): string | null {
  if (index.persistence === 't') return 'temporary index of another session: only that session can read it';
  if (!index.valid) {
    return 'invalid (a failed CREATE INDEX CONCURRENTLY?): queries do not use it; rebuild or drop it';
  }
  if (index.persistence === 'u' && inRecovery) return 'unlogged: a standby holds no data for it';
  return null;
}

/** One check in its own read-only transaction, so its locks end with it and a failure hides nothing else. */
async function checkOne(
  session: Session,
  fn: string,
  index: IndexRow,
  heapallindexed: boolean,
): Promise<Pick<Outcome, 'status' | 'detail'>> {
  try {
    await session.query(`SELECT ${fn}($1::oid::regclass, $2::boolean)`, [index.oid, heapallindexed]);
    return { status: 'ok', detail: null };
  } catch (err) {
    const e = err as { code?: string; message?: string; detail?: string };
    const text = [e.message, e.detail].filter((t) => t !== undefined && t !== '').join(' — ');
    if (e.code !== undefined && CORRUPTION.has(e.code)) return { status: 'corrupt', detail: text };
    if (e.code === LOCK_TIMEOUT) {
      return { status: 'locked', detail: 'lock_timeout: DDL holds or awaits a lock on it; try again later' };
    }
    if (e.code === CANCELED)
      return { status: 'timeout', detail: 'statement_timeout; --timeout allows longer' };
    if (e.code !== undefined && GONE.has(e.code) && /could not open relation|does not exist/.test(text)) {
      return { status: 'gone', detail: 'dropped or rebuilt while the check ran' };
    }
    return { status: 'error', detail: `${e.code ?? ''} ${text}`.trim() };
  }
}

const STATUS_WORD: Record<Status, string> = {
  ok: 'ok',
  corrupt: 'CORRUPT',
  skipped: 'skipped',
  timeout: 'timeout',
  locked: 'locked',
  gone: 'gone',
  error: 'error',
};

function outcomeLines(o: Outcome): string[] {
  const head = `${STATUS_WORD[o.status].padEnd(8)} ${o.index} (${o.table}, ${formatBytes(o.bytes)})`;
  const lines = wrap(head, 9);
  if (o.detail !== null) lines.push(...wrap(`         ${o.detail}`, 9));
  return lines;
}

/** The GRANT lines dbops' role lacks, for exactly the functions this run calls. */
function grantsNeeded(amcheck: Amcheck, parent: boolean): string[] {
  const schema = quoteIdent(amcheck.schema ?? 'public');
  const role = quoteIdent(amcheck.role);
  const grants: string[] = [];
  if (amcheck.may_check !== true) {
    grants.push(`GRANT EXECUTE ON FUNCTION ${schema}.bt_index_check(regclass, boolean) TO ${role};`);
  }
  if (parent && amcheck.may_check_parent !== true) {
    grants.push(`GRANT EXECUTE ON FUNCTION ${schema}.bt_index_parent_check(regclass, boolean) TO ${role};`);
  }
  return grants;
}

function whoMayInstall(amcheck: Amcheck): string {
  if (amcheck.superuser) return `dbops' role ${amcheck.role} is a superuser and may run it`;
  const named = amcheck.superusers === null ? '' : ` (${amcheck.superusers})`;
  return (
    `amcheck is not a trusted extension: a superuser${named} must run it ` +
    '(on managed services, the admin role such as rds_superuser / cloudsqlsuperuser)'
  );
}

export default defineOperation({
  name: 'check-indexes',
  summary: 'Check B-tree indexes for corruption with amcheck, and say what to rebuild',
  usage: 'check-indexes <target> [table] [--heapallindexed] [--parent] [--timeout 5m] [--system]',
  description:
    'Runs amcheck’s bt_index_check on every B-tree index of the database (or of one table, its ' +
    'partitions and TOAST), each in its own read-only transaction so one failure hides none of the ' +
    'others and no lock outlives its check. --heapallindexed also verifies that every table row has its ' +
    'index entry (reads the whole table). --parent uses bt_index_parent_check, which checks parent/child ' +
    'page links too but holds a ShareLock that blocks writes to the table while each of its indexes is ' +
    'checked (at most the statement timeout; lock_timeout keeps it from queueing in front of writers), and ' +
    'cannot run on a standby: use it in a quiet hour. Temporary, invalid and (on a standby) unlogged indexes are ' +
    'skipped with the reason. A corrupt index gets the command that rebuilds it (REINDEX INDEX ' +
    'CONCURRENTLY). Without amcheck or without EXECUTE on it, the answer is the exact statement to run. ' +
    '--timeout is the statement timeout of each check (default: the target’s); --system includes ' +
    'the indexes of pg_catalog and their TOAST.',
  positionals: ['table'],
  args: z.object({
    table: textArg({ maxLength: 300, hint: 'a table name', example: 'public.users' }).optional(),
    heapallindexed: flagArg(),
    parent: flagArg(),
    timeout: durationArg().optional(),
    system: flagArg(),
  }),
  // --parent stays a read: it changes nothing, lock_timeout keeps its ShareLock from queueing in front of
  // writers, and the answer says how long writes to each table may have waited (one check at most).
  risk: 'read',
  // Findings in sections, not one list.
  paged: false,
  async run(ctx) {
    const { heapallindexed, parent } = ctx.args;
    const setup = await ctx.db.read(async (session) => {
      const [amcheck] = await session.query<Amcheck>(AMCHECK_SQL);
      if (!amcheck) throw new Error('the amcheck probe returned no row');
      const table =
        ctx.args.table === undefined ? null : await resolveTable(session, ctx.args.table, ['r', 'p', 'm']);
      const indexes = await session.query<IndexRow>(INDEXES_SQL, [table?.oid ?? null, ctx.args.system]);
      return { amcheck, table, indexes };
    });
    const { amcheck, table, indexes } = setup;
    const scope = table === null ? `database ${amcheck.database}` : `${table.schema}.${table.name}`;
    const data = { database: amcheck.database, table: table?.qualified ?? null, heapallindexed, parent };

    if (amcheck.schema === null) {
      return textResult([], {
        headline: `amcheck is not installed in database ${amcheck.database}: no index was checked`,
        notes: amcheck.available
          ? [
              `to install it, connected to ${amcheck.database}: CREATE EXTENSION amcheck;`,
              whoMayInstall(amcheck),
              `then dbops' role ${amcheck.role} needs: GRANT EXECUTE ON FUNCTION ` +
                'bt_index_check(regclass, boolean) (and bt_index_parent_check for --parent)',
            ]
          : [
              'the amcheck module is not on this server: install the PostgreSQL contrib package ' +
                '(e.g. postgresql-contrib), then CREATE EXTENSION amcheck;',
              whoMayInstall(amcheck),
            ],
        data: { ...data, installed: false, available: amcheck.available },
      });
    }
    const grants = grantsNeeded(amcheck, parent);
    if (grants.length > 0) {
      return textResult([], {
        headline: `dbops' role ${amcheck.role} may not run amcheck's checks: no index was checked`,
        notes: ['amcheck’s functions are for superusers unless granted; a superuser can run:', ...grants],
        data: { ...data, installed: true, grants },
      });
    }
    if (parent && amcheck.in_recovery) {
      throw new UserError(
        'invalid_argument',
        'argument --parent: bt_index_parent_check cannot run on a standby (it locks the table); ' +
          'check without --parent here, or with --parent on the primary',
      );
    }

    const fn = `${quoteIdent(amcheck.schema)}.${parent ? 'bt_index_parent_check' : 'bt_index_check'}`;
    // statement_timeout 0 would mean no limit at all: a check always has one.
    const limits =
      ctx.args.timeout === undefined ? {} : { statementTimeoutMs: Math.max(1, ctx.args.timeout) * 1000 };
    const outcomes: Outcome[] = [];
    for (const [n, index] of indexes.entries()) {
      const base = {
        index: index.name,
        unique: index.is_unique,
        table: index.table_name,
        bytes: Number(index.bytes),
      };
      const reason = skipReason(index, amcheck.in_recovery);
      if (reason !== null) {
        outcomes.push({ ...base, status: 'skipped', detail: reason });
        continue;
      }
      if (n > 0 && n % 50 === 0)
        ctx.progress(`checked ${formatCount(n)} of ${formatCount(indexes.length)} indexes`);
      const result = await ctx.db.read((session) => checkOne(session, fn, index, heapallindexed), limits);
      outcomes.push({ ...base, ...result });
    }

    const count = (s: Status) => outcomes.filter((o) => o.status === s).length;
    const corrupt = outcomes.filter((o) => o.status === 'corrupt');
    const checked = outcomes.filter((o) => o.status === 'ok' || o.status === 'corrupt').length;
    const check = `${parent ? 'bt_index_parent_check' : 'bt_index_check'}${heapallindexed ? ' + heapallindexed' : ''}`;
    const headline =
      indexes.length === 0
        ? `no B-tree indexes in ${scope}`
        : corrupt.length > 0
          ? `${corrupt.length} of ${formatCount(checked)} B-tree indexes CORRUPT in ${scope} (${check})`
          : `${formatCount(count('ok'))} of ${formatCount(indexes.length)} B-tree indexes ok in ${scope} (${check})`;

    // Every problem is listed; healthy ones too while the list stays within the row cap.
    const problems = outcomes.filter((o) => o.status !== 'ok');
    const listed = outcomes.length <= ctx.limits.row_cap ? outcomes : problems;
    const lines = listed.flatMap(outcomeLines);
    const notes: string[] = [];
    if (listed.length < outcomes.length) {
      notes.push(`${formatCount(count('ok'))} healthy indexes not listed (row cap); --json lists every one`);
    }
    for (const o of corrupt) {
      if (o.index.startsWith('pg_catalog.') || o.table.startsWith('TOAST of pg_catalog.')) {
        // System catalogs cannot be reindexed concurrently; a superuser rebuilds them under a lock.
        notes.push(`next: REINDEX INDEX ${o.index}; (a system catalog: as a superuser, in a quiet moment)`);
        continue;
      }
      // `reindex` takes plain names only; a name that needs SQL quotes gets the SQL alone.
      const chat = PLAIN_NAME.test(o.index)
        ? `or: /db reindex ${quoteWord(ctx.target.name)} ${o.index} --concurrently`
        : '';
      notes.push(`next: REINDEX INDEX CONCURRENTLY ${o.index};`);
      if (chat !== '') notes.push(chat);
    }
    if (corrupt.some((o) => o.unique)) {
      notes.push(
        'a corrupt UNIQUE index may have let duplicates in: if the rebuild fails with "could not create ' +
          'unique index", find and fix the duplicate rows first',
      );
    }
    if (corrupt.length > 0) {
      notes.push(
        'corruption often means failing storage or a crash without fsync: check the server logs and the ' +
          'disk, and that the latest backup verifies (verify-backup)',
      );
    }
    if (parent && checked > 0) {
      const limit = ctx.args.timeout ?? ctx.limits.statement_timeout;
      notes.push(
        'bt_index_parent_check held a ShareLock on each table while its indexes were checked: writes ' +
          `to it waited meanwhile (at most ${limit}s per index)`,
      );
    }
    const others = (['locked', 'timeout', 'gone', 'error'] as const).filter((s) => count(s) > 0);
    if (others.length > 0) {
      notes.push(
        `not checked: ${others.map((s) => `${count(s)} ${s}`).join(', ')} — ` +
          nameList(
            problems.filter((o) => others.includes(o.status as (typeof others)[number])).map((o) => o.index),
          ),
      );
    }
    return textResult(lines, {
      headline,
      notes: notes.flatMap((note) => wrap(note, 2)),
      data: {
        ...data,
        installed: true,
        checked,
        corrupt: corrupt.map((o) => o.index),
        indexes: outcomes,
      },
    });
  },
});
