// The checks of an ad-hoc statement that need the target: function volatility and what its relations reach.
import type { Session } from '../engine/types.js';
import { type Classified, refusedFunction } from './classify.js';
import {
  loadSqlParser,
  type ParsedStatement,
  parseStatement,
  type RelationRef,
  SqlRefusal,
} from './parse.js';

/** Volatile functions a read may still call: they return values and change nothing. */
const VOLATILE_READ_ALLOWLIST = new Set([
  'random',
  'random_normal',
  'clock_timestamp',
  'timeofday',
  'gen_random_uuid',
  'pg_sleep',
  // VOLATILE only because their answer changes as the database does: sizes, WAL position, recovery state
  'pg_relation_size',
  'pg_table_size',
  'pg_indexes_size',
  'pg_total_relation_size',
  'pg_partition_tree',
  'pg_is_in_recovery',
  'pg_current_wal_lsn',
  'pg_last_wal_receive_lsn',
  'pg_last_wal_replay_lsn',
  'pg_last_xact_replay_timestamp',
  'pg_is_wal_replay_paused',
  'pg_get_wal_replay_pause_state',
  'pg_jit_available',
]);

/**
 * Catalog relations that show other databases' or the server's data (sessions, queries, settings, roles,
 * replication); shared catalogs (pg_database, pg_authid, …) are refused by `relisshared` as well.
 */
export const SERVER_WIDE_RELATIONS = new Set([
  'pg_stat_activity',
  'pg_stat_statements',
  'pg_stat_statements_info',
  'pg_settings',
  'pg_file_settings',
  'pg_hba_file_rules',
  'pg_ident_file_mappings',
  'pg_database',
  'pg_authid',
  'pg_auth_members',
  'pg_roles',
  'pg_user',
  'pg_shadow',
  'pg_group',
  'pg_user_mapping',
  'pg_user_mappings',
  'user_mapping_options',
  'pg_stat_replication',
  'pg_stat_replication_slots',
  'pg_replication_slots',
  'pg_stat_wal_receiver',
  'pg_stat_subscription',
  'pg_stat_subscription_stats',
  'pg_stat_database',
  'pg_stat_database_conflicts',
  'pg_stat_archiver',
  'pg_stat_bgwriter',
  'pg_stat_checkpointer',
  'pg_stat_wal',
  'pg_stat_io',
  'pg_stat_slru',
  'pg_stat_ssl',
  'pg_stat_gssapi',
  'pg_stat_recovery_prefetch',
  'pg_locks',
  'pg_prepared_xacts',
  'pg_shmem_allocations',
  'pg_config',
  'pg_tablespace',
]);

interface ResolvedRelation {
  oid: number;
  schema: string;
  name: string;
  relkind: string;
  shared: boolean;
  /** Reached through a view rather than named in the statement. */
  via: string | null;
}

interface ResolvedFunction {
  schema: string;
  name: string;
  volatility: 'i' | 's' | 'v';
  via: string | null;
}

const RESOLVE_RELATIONS = `
SELECT r.ord, to_regclass(CASE WHEN r.schema = '' THEN quote_ident(r.name)
                               ELSE format('%I.%I', r.schema, r.name) END)::oid AS oid
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS r(schema, name, ord)
`;

/** Every relation the given ones reach through view definitions, with the view that reached it. */
const REACHED_RELATIONS = `
WITH RECURSIVE reached(oid, via) AS (
  SELECT o, $2::text COLLATE "default" FROM unnest($1::oid[]) AS o
  UNION
  SELECT d.refobjid, COALESCE(r.via, format('%I.%I', vn.nspname, v.relname)) COLLATE "default"
  FROM reached r
  JOIN pg_class v ON v.oid = r.oid
  JOIN pg_namespace vn ON vn.oid = v.relnamespace
  JOIN pg_rewrite w ON w.ev_class = r.oid
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.oid
)
SELECT DISTINCT ON (c.oid) c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name,
       c.relkind::text AS relkind, c.relisshared AS shared, r.via
FROM reached r
JOIN pg_class c ON c.oid = r.oid
JOIN pg_namespace n ON n.oid = c.relnamespace
ORDER BY c.oid, r.via NULLS FIRST
`;

/**
 * Definitions of the views among the relations: parsed like the statement itself, since calls of built-in
 * functions are not recorded in pg_depend (they are pinned).
 */
const VIEW_DEFINITIONS = `
SELECT format('%I.%I', n.nspname, c.relname) AS via, pg_get_viewdef(c.oid) AS definition
FROM unnest($1::oid[]) AS o
JOIN pg_class c ON c.oid = o
JOIN pg_namespace n ON n.oid = c.relnamespace
`;

/** Every overload of the named functions visible to the statement (its schema, or the search path). */
const NAMED_FUNCTIONS = `
SELECT DISTINCT n.nspname AS schema, p.proname AS name, p.provolatile::text AS volatility,
       NULLIF(f.via, '') AS via
FROM unnest($1::text[], $2::text[], $3::text[]) AS f(schema, name, via)
JOIN pg_proc p ON p.proname = f.name
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE CASE WHEN f.schema = '' THEN n.nspname = ANY (current_schemas(true)) ELSE n.nspname = f.schema END
UNION
SELECT DISTINCT n.nspname, p.proname, p.provolatile::text, 'operator ' || o.oprname
FROM pg_operator o
JOIN pg_namespace n ON n.oid = o.oprnamespace
JOIN pg_proc p ON p.oid = o.oprcode
WHERE o.oprname = ANY ($4::text[]) AND n.nspname = ANY (current_schemas(true))
`;

function refuse(reason: string): never {
  throw new SqlRefusal(reason);
}

function via(thing: { via: string | null }): string {
  return thing.via ? ` (reached through ${thing.via})` : '';
}

/** Refuses relations that show other databases' or the server's data, and foreign tables. */
export function checkRelations(relations: readonly ResolvedRelation[]): void {
  for (const r of relations) {
    const name = `${r.schema}.${r.name}`;
    const catalog = r.schema === 'pg_catalog' || r.schema === 'information_schema';
    if (
      r.shared ||
      (catalog && SERVER_WIDE_RELATIONS.has(r.name)) ||
      r.name.startsWith('pg_stat_statements')
    ) {
      refuse(
        `${name}${via(r)} shows other databases' or the server's data; ad-hoc SQL (like /db export) ` +
          'reads only the target database — /db activity, /db settings and /db slow-queries show what is safe',
      );
    }
    if (r.relkind === 'f') refuse(`${name}${via(r)} is a foreign table: it reaches another server`);
  }
}

/**
 * Checks what the statement calls against the target: refused functions reached through views, and — for a
 * read — any volatile function not known to be harmless; for a write or DDL, volatile functions outside
 * pg_catalog (a dry run cannot undo what they do outside the transaction).
 */
export function checkFunctions(kind: Classified['kind'], functions: readonly ResolvedFunction[]): void {
  for (const f of functions) {
    const why = refusedFunction(f.name);
    if (why) refuse(`${f.schema}.${f.name}()${via(f)} is refused: it ${why}`);
  }
  for (const f of functions) {
    if (f.volatility !== 'v' || (f.schema === 'pg_catalog' && VOLATILE_READ_ALLOWLIST.has(f.name))) continue;
    if (kind === 'read') {
      refuse(
        `${f.schema}.${f.name}()${via(f)} is VOLATILE, so it may change data or state: a read may call ` +
          'only immutable and stable functions; send it as a write to have it dry-run and approved',
      );
    }
    if (f.schema !== 'pg_catalog') {
      refuse(
        `${f.schema}.${f.name}()${via(f)} is a VOLATILE function: what it does outside the transaction ` +
          '(other connections, files, sequences) a dry run cannot undo, so it is not run from chat',
      );
    }
  }
}

/**
 * Runs every target-side check of a classified statement inside `session` (the transaction the statement
 * will run in, so names resolve on the same search_path and snapshot). Throws SqlRefusal.
 */
export async function checkAgainstTarget(session: Session, classified: Classified): Promise<void> {
  // Views' definitions are parsed too.
  await loadSqlParser();
  const { parsed } = classified;
  const calls: { schema: string; name: string; via: string }[] = parsed.functions.map((f) => ({
    schema: f.schema ?? '',
    name: f.name,
    via: '',
  }));
  const operators = new Set(parsed.operators.map((o) => o.split('.').at(-1) ?? o));
  const seenViews = new Set<number>();
  // Relations named by the statement, then by each view definition reached (names of built-in catalogs a
  // view reads are not in pg_depend either, so definitions are parsed, to any depth).
  let queue: { refs: RelationRef[]; via: string | null }[] = [
    {
      refs: parsed.relations.filter((r) => r.schema !== undefined || !parsed.cteNames.has(r.name)),
      via: null,
    },
  ];
  while (queue.length > 0) {
    const next: typeof queue = [];
    for (const { refs, via } of queue) {
      const resolved = await session.query<{ ord: number; oid: number | null }>(RESOLVE_RELATIONS, [
        refs.map((r) => r.schema ?? ''),
        refs.map((r) => r.name),
      ]);
      const oids = resolved.flatMap((r) => (r.oid === null ? [] : [r.oid]));
      const relations = await session.query<ResolvedRelation>(REACHED_RELATIONS, [oids, via]);
      checkRelations(relations);
      const views = relations
        .filter((r) => (r.relkind === 'v' || r.relkind === 'm') && !seenViews.has(r.oid))
        .map((r) => r.oid);
      for (const oid of views) seenViews.add(oid);
      for (const view of await session.query<{ via: string; definition: string }>(VIEW_DEFINITIONS, [
        views,
      ])) {
        let inner: ParsedStatement;
        try {
          inner = parseStatement(view.definition);
        } catch {
          refuse(`the definition of view ${view.via} cannot be checked, so reading it is refused`);
        }
        for (const f of inner.functions) {
          const why = refusedFunction(f.name);
          if (why) refuse(`${f.name}() (reached through ${view.via}) is refused: it ${why}`);
          calls.push({ schema: f.schema ?? '', name: f.name, via: view.via });
        }
        for (const o of inner.operators) operators.add(o.split('.').at(-1) ?? o);
        next.push({
          refs: inner.relations.filter((r) => r.schema !== undefined || !inner.cteNames.has(r.name)),
          via: view.via,
        });
      }
    }
    queue = next;
  }
  const functions = await session.query<ResolvedFunction>(NAMED_FUNCTIONS, [
    calls.map((c) => c.schema),
    calls.map((c) => c.name),
    calls.map((c) => c.via),
    [...operators],
  ]);
  checkFunctions(classified.kind, functions);
}
