// Whether a relation holds the target database's own data: export refuses system catalogs, views shared
// across databases, and any view whose definition reaches them (decided by oid and dependencies, not by name).
import { UserError } from '../../src/core/errors.js';
import type { Relation } from '../../src/engine/relations.js';
import type { Session } from '../../src/engine/types.js';

/**
 * Everything a view or materialized view reads, followed through other views: the relations its rewrite
 * rules depend on, and the functions it calls directly, through operators or through casts. Tables are
 * leaves (their rows are this database's own). pg_depend records these whatever the names or the
 * search_path were, but not references to pinned objects (the bootstrap catalogs such as pg_authid and
 * built-in functions such as pg_stat_get_activity): those are found in the views' definitions below.
 */
const REACH_SQL = `
WITH RECURSIVE reach(oid) AS (
  SELECT $1::oid
  UNION
  SELECT d.refobjid
  FROM reach r
  JOIN pg_rewrite w ON w.ev_class = r.oid
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
   AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.oid
),
called(oid) AS (
  SELECT CASE d.refclassid WHEN 'pg_proc'::regclass THEN d.refobjid
                           WHEN 'pg_operator'::regclass THEN (SELECT o.oprcode::oid FROM pg_operator o WHERE o.oid = d.refobjid)
                           ELSE (SELECT k.castfunc FROM pg_cast k WHERE k.oid = d.refobjid) END
  FROM reach r
  JOIN pg_rewrite w ON w.ev_class = r.oid
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
   AND d.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass, 'pg_cast'::regclass)
)
SELECT 'relation' AS kind, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind,
       c.relisshared AS shared,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS definition,
       (SELECT x.extname FROM pg_depend e JOIN pg_extension x ON x.oid = e.refobjid
         WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e' LIMIT 1) AS extension
FROM reach r
JOIN pg_class c ON c.oid = r.oid
JOIN pg_namespace n ON n.oid = c.relnamespace
UNION ALL
SELECT DISTINCT 'function', n.nspname, p.proname, NULL, false, NULL,
       (SELECT x.extname FROM pg_depend e JOIN pg_extension x ON x.oid = e.refobjid
         WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e' LIMIT 1)
FROM called f
JOIN pg_proc p ON p.oid = f.oid
JOIN pg_namespace n ON n.oid = p.pronamespace`;

interface Reached {
  kind: 'relation' | 'function';
  schema: string;
  name: string;
  relkind: string | null;
  shared: boolean;
  definition: string | null;
  extension: string | null;
}

/** Names of the relations in the system schemas, which a view's definition may name without pg_depend. */
const SYSTEM_RELATIONS_SQL = `
SELECT DISTINCT c.relname AS name
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('pg_catalog', 'information_schema') AND c.relkind IN ('r', 'v', 'm', 'p', 'f')`;

/** Built-in functions that show the server, other databases, other sessions, files or settings. */
const SERVER_WIDE_FUNCTION_NAMES =
  'pg_stat_get_|pg_stat_statements|pg_show_|pg_read_|pg_ls_|pg_stat_file$|pg_get_replication_slots$|pg_get_wal_|pg_hba_file_rules$|pg_ident_file_mappings$|pg_get_shmem|pg_get_backend_memory|pg_lock_status$|pg_blocking_pids$|pg_safe_snapshot_blocking_pids$|pg_prepared_xact$|pg_control_|pg_config$|current_setting$|pg_settings_get_flags$|pg_logdir_ls$|pg_file_|inet_server_|inet_client_|pg_postmaster_start_time$|pg_conf_load_time$|pg_current_logfile$|pg_tablespace_location$|pg_database_size$|pg_tablespace_size$|pg_get_userbyid$|pg_listening_channels$|pg_get_keywords$|pg_get_multixact_members$|pg_replication_origin_|pg_stat_have_stats$|pg_get_wait_events$|pg_get_loaded_modules$';
const SERVER_WIDE_FUNCTIONS = new RegExp(`^(${SERVER_WIDE_FUNCTION_NAMES})`);

/** Extensions whose objects read the whole server, other databases or other servers. */
const SERVER_WIDE_EXTENSIONS = new Set([
  'pg_stat_statements',
  'dblink',
  'postgres_fdw',
  'file_fdw',
  'pg_buffercache',
  'adminpack',
  'pg_stat_kcache',
  'pg_wait_sampling',
  'pg_qualstats',
  'pg_walinspect',
  'pg_stat_monitor',
  'pg_proctab',
  'system_stats',
  'pg_logfile',
]);

const SYSTEM_SCHEMAS = /^(pg_catalog|information_schema|pg_toast.*)$/;

/** Why `reached` (found while following `relation`) is not the database's own data, if it is not. */
function problem(relation: Relation, r: Reached): string | undefined {
  const name = `${r.schema}.${r.name}`;
  const via =
    `${relation.schema}.${relation.name}` === name ? '' : ` (${relation.schema}.${relation.name} reads it)`;
  if (r.kind === 'relation') {
    if (r.shared) return `${name} is a catalog shared by every database of the server${via}`;
    if (SYSTEM_SCHEMAS.test(r.schema))
      return `${name} is a system catalog or view, not this database's data${via}`;
    if (r.relkind === 'f') return `${name} is a foreign table: its rows belong to another server${via}`;
    if (r.extension !== null && r.relkind !== 'r' && r.relkind !== 'p') {
      return `${name} is a view of the extension ${r.extension}, which shows server-wide data${via}`;
    }
    return undefined;
  }
  if (r.extension !== null) {
    return SERVER_WIDE_EXTENSIONS.has(r.extension)
      ? `${relation.schema}.${relation.name} calls ${name}() of the extension ${r.extension}, which reads beyond this database`
      : undefined;
  }
  if (r.schema === 'pg_catalog') {
    return SERVER_WIDE_FUNCTIONS.test(r.name)
      ? `${relation.schema}.${relation.name} calls ${r.name}(), which shows server-wide data`
      : undefined;
  }
  return `${relation.schema}.${relation.name} calls ${name}(), a function whose body dbops cannot check`;
}

/** A name as a token of a deparsed definition: unqualified or qualified by a system schema, maybe quoted. */
function token(name: string): string {
  return `(?:^|[^A-Za-z0-9_$."]|(?:pg_catalog|information_schema).)"?${name}"?(?![A-Za-z0-9_$])`;
}

/**
 * pg_get_viewdef names a pinned catalog or built-in function without qualification (or qualified by
 * pg_catalog when a user object shadows it), and a user relation of the same name with its schema
 * unless it is first on the search_path: a bare system name is a reference to the system one, or
 * ambiguous, and either way refused. String literals are not told apart (refusing is the safe side).
 */
function definitionProblem(relation: Relation, r: Reached, system: readonly string[]): string | undefined {
  if (r.definition === null) return undefined;
  const view = `${r.schema}.${r.name}`;
  const via =
    `${relation.schema}.${relation.name}` === view ? '' : ` (${relation.schema}.${relation.name} reads it)`;
  const calls = new RegExp(
    `${token(`((?:${SERVER_WIDE_FUNCTION_NAMES.replace(/\$/g, '')})[A-Za-z0-9_]*)`)}\\s*\\(`,
  ).exec(r.definition);
  if (calls) return `${view} calls ${calls[1]}(), which shows server-wide data${via}`;
  for (const name of system) {
    if (new RegExp(token(name.replace(/[$]/g, '\\$'))).test(r.definition)) {
      return `${view} reads the system relation ${name}, not this database's data${via}`;
    }
  }
  return undefined;
}

/**
 * Refuses a relation that is not the target database's own data: system catalogs and views (shared or
 * per database), foreign tables, server-wide extension views, and views or materialized views whose
 * definition reaches any of these, calls a function that shows server-wide data, or calls a
 * user-defined function (its body is opaque to the dependency graph). Tables are always their own data.
 */
export async function requireOwnData(session: Session, relation: Relation): Promise<void> {
  const reached = await session.query<Reached>(REACH_SQL, [relation.oid]);
  const system = reached.some((r) => r.definition !== null)
    ? (await session.query<{ name: string }>(SYSTEM_RELATIONS_SQL)).map((r) => r.name)
    : [];
  const problems = [
    ...reached.map((r) => problem(relation, r)),
    ...reached.map((r) => definitionProblem(relation, r, system)),
  ];
  for (const why of problems) {
    if (why !== undefined) {
      throw new UserError(
        'permission',
        `export reads only this target database's own tables and views: ${why}. ` +
          'Server-wide views are read through their operations (activity, locks, settings, slow-queries), ' +
          "which show only this database's part.",
      );
    }
  }
}
