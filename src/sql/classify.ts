// What an ad-hoc statement is (read, write or DDL) and what is refused whatever the role, from its parse tree.
import { type Fields, type ParsedStatement, SqlRefusal, walk } from './parse.js';

export const SQL_KINDS = ['read', 'write', 'ddl'] as const;
export type SqlKind = (typeof SQL_KINDS)[number];

export interface Classified {
  kind: SqlKind;
  parsed: ParsedStatement;
  /** For EXPLAIN statements: true when it would run the query (ANALYZE). */
  explainAnalyze?: boolean;
}

const WRITES = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/** Schema changes an approver can judge from the text and that run inside a transaction. */
const DDL = new Set([
  'CreateStmt',
  'AlterTableStmt',
  'DropStmt',
  'TruncateStmt',
  'IndexStmt',
  'CreateTableAsStmt',
  'ViewStmt',
  'RenameStmt',
  'CommentStmt',
  'CreateSeqStmt',
  'AlterSeqStmt',
  'CreateEnumStmt',
  'AlterEnumStmt',
  'CompositeTypeStmt',
  'CreateDomainStmt',
  'AlterDomainStmt',
  'CreateFunctionStmt',
  'AlterFunctionStmt',
  'CreateSchemaStmt',
  'CreateTrigStmt',
  'AlterObjectSchemaStmt',
  'RefreshMatViewStmt',
  'CreatePolicyStmt',
  'AlterPolicyStmt',
  'GrantStmt',
  'AlterDefaultPrivilegesStmt',
  'AlterOwnerStmt',
]);

/** Statements refused outright, with the reason or the operation to use instead. */
const REFUSED: Record<string, string> = {
  TransactionStmt:
    'transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT) is refused: dbops runs every statement in its own transaction',
  VariableSetStmt:
    'SET (including SET ROLE and SET SESSION AUTHORIZATION) is refused: it would change the bot session, not your query',
  AlterSystemStmt: 'ALTER SYSTEM is refused: server configuration is not changed from chat',
  CopyStmt: 'COPY is refused: use /db export to read a table, /db import to load one',
  DoStmt: 'DO blocks are refused: an anonymous code block cannot be reviewed as one statement',
  CallStmt: 'CALL is refused: a procedure may commit on its own, which a dry run cannot undo',
  VacuumStmt: 'VACUUM/ANALYZE is refused here: use /db vacuum or /db analyze',
  ReindexStmt: 'REINDEX is refused here: use /db reindex',
  CreatedbStmt: 'CREATE DATABASE is refused: databases are managed outside dbops',
  DropdbStmt: 'DROP DATABASE is refused: databases are managed outside dbops',
  AlterDatabaseStmt: 'ALTER DATABASE is refused: databases are managed outside dbops',
  AlterDatabaseSetStmt: 'ALTER DATABASE … SET is refused: databases are managed outside dbops',
  CreateRoleStmt: 'role management is refused: roles are managed outside dbops',
  AlterRoleStmt: 'role management is refused: roles are managed outside dbops',
  AlterRoleSetStmt: 'role management is refused: roles are managed outside dbops',
  DropRoleStmt: 'role management is refused: roles are managed outside dbops',
  GrantRoleStmt: 'granting roles is refused: roles are managed outside dbops',
  ReassignOwnedStmt: 'REASSIGN OWNED is refused: roles are managed outside dbops',
  DropOwnedStmt: 'DROP OWNED is refused: roles are managed outside dbops',
  LoadStmt: 'LOAD is refused: it loads a shared library into the server',
  ListenStmt: 'LISTEN is refused: it would outlive the request on a pooled connection',
  UnlistenStmt: 'UNLISTEN is refused',
  NotifyStmt: 'NOTIFY is refused',
  LockStmt: 'LOCK is refused: dbops takes no explicit locks for ad-hoc SQL',
  CheckPointStmt: 'CHECKPOINT is refused: it is a server-wide action',
  DiscardStmt: 'DISCARD is refused: it would reset the bot session',
  PrepareStmt: 'PREPARE is refused: send the statement itself',
  ExecuteStmt: 'EXECUTE is refused: send the statement itself',
  DeallocateStmt: 'DEALLOCATE is refused',
  DeclareCursorStmt: 'cursors are refused: dbops reads results with its own cursor',
  FetchStmt: 'cursors are refused: dbops reads results with its own cursor',
  ClosePortalStmt: 'cursors are refused',
  CreateExtensionStmt: 'extensions are installed by an admin, not from chat',
  AlterExtensionStmt: 'extensions are managed by an admin, not from chat',
  CreateFdwStmt: 'foreign data wrappers are refused: they reach other servers',
  CreateForeignServerStmt: 'foreign servers are refused: they reach other servers',
  CreateForeignTableStmt: 'foreign tables are refused: they reach other servers',
  CreateUserMappingStmt: 'user mappings are refused: they hold credentials of other servers',
  AlterUserMappingStmt: 'user mappings are refused: they hold credentials of other servers',
  ImportForeignSchemaStmt: 'IMPORT FOREIGN SCHEMA is refused: it reaches other servers',
  CreateSubscriptionStmt: 'subscriptions are refused: replication is managed outside dbops',
  CreatePublicationStmt: 'publications are refused: replication is managed outside dbops',
  CreateTableSpaceStmt: 'tablespaces are refused: they name server files',
  ClusterStmt: 'CLUSTER is refused: it rewrites the table under an ACCESS EXCLUSIVE lock',
  SecLabelStmt: 'security labels are refused',
  CreateEventTrigStmt: 'event triggers are refused: they act on every later DDL',
  RuleStmt: 'rules are refused: they silently rewrite later statements',
};

/** Functions refused anywhere in a statement: server files, large objects, other servers, signals, hidden SQL. */
const REFUSED_FUNCTIONS: Record<string, string> = {
  pg_read_file: 'reads server files',
  pg_read_binary_file: 'reads server files',
  pg_stat_file: 'reads server files',
  pg_ls_dir: 'lists server directories',
  pg_file_write: 'writes server files',
  pg_file_rename: 'renames server files',
  pg_file_unlink: 'deletes server files',
  pg_file_sync: 'touches server files',
  lo_import: 'reads server files into large objects',
  lo_export: 'writes large objects to server files',
  loread: 'reads large objects',
  lowrite: 'writes large objects',
  pg_terminate_backend: 'terminates sessions (use /db terminate or /db kill-idle)',
  pg_cancel_backend: 'cancels queries (use /db cancel-query)',
  pg_reload_conf: 'reloads the server configuration',
  pg_rotate_logfile: 'rotates the server log',
  pg_promote: 'promotes a standby',
  pg_switch_wal: 'switches the WAL file',
  pg_create_restore_point: 'writes a WAL restore point',
  pg_backup_start: 'starts a base backup',
  pg_backup_stop: 'stops a base backup',
  pg_start_backup: 'starts a base backup',
  pg_stop_backup: 'stops a base backup',
  pg_wal_replay_pause: 'pauses WAL replay',
  pg_wal_replay_resume: 'resumes WAL replay',
  pg_log_backend_memory_contexts: 'signals another backend',
  pg_drop_replication_slot: 'drops a replication slot',
  pg_replication_slot_advance: 'moves a replication slot',
  pg_logical_emit_message: 'writes to the WAL',
  pg_stat_reset: 'resets statistics',
  pg_stat_statements_reset: 'resets statistics',
  set_config: 'changes the bot session settings (SET ROLE by another name)',
  setseed: 'changes the bot session state',
  nextval: 'advances a sequence, which no rollback undoes',
  setval: 'moves a sequence, which no rollback undoes',
  query_to_xml: 'runs SQL given as text, which cannot be reviewed',
  query_to_xmlschema: 'runs SQL given as text, which cannot be reviewed',
  query_to_xml_and_xmlschema: 'runs SQL given as text, which cannot be reviewed',
  cursor_to_xml: 'reads a cursor',
  cursor_to_xmlschema: 'reads a cursor',
  database_to_xml: 'dumps the whole database',
  database_to_xmlschema: 'dumps the whole database',
  database_to_xml_and_xmlschema: 'dumps the whole database',
  ts_stat: 'runs SQL given as text, which cannot be reviewed',
  ts_rewrite: 'may run SQL given as text, which cannot be reviewed',
  pg_stat_get_activity: "shows other databases' sessions",
  pg_show_all_settings: 'shows server-wide settings',
  pg_show_all_file_settings: 'shows server configuration files',
  pg_hba_file_rules: 'shows server configuration files',
  pg_ident_file_mappings: 'shows server configuration files',
  pg_get_replication_slots: 'shows server-wide replication',
  pg_stat_get_wal_senders: 'shows server-wide replication',
  pg_stat_statements: "shows other databases' queries",
  pg_lock_status: "shows other databases' locks",
  pg_prepared_xact: "shows other databases' prepared transactions",
  pg_database_size: 'sizes other databases (use /db sizes)',
  pg_tablespace_size: 'sizes server-wide tablespaces',
};

/** Name prefixes refused the same way (families of functions). */
const REFUSED_PREFIXES: readonly [string, string][] = [
  ['pg_ls_', 'lists server directories'],
  ['lo_', 'large objects reach server files and outlive the transaction'],
  ['dblink', 'reaches another database or server'],
  ['postgres_fdw', 'reaches another server'],
  ['pg_advisory', 'advisory locks outlive the request on a pooled connection'],
  ['pg_try_advisory', 'advisory locks outlive the request on a pooled connection'],
  ['pg_create_', 'creates server-wide objects (replication slots, restore points)'],
  ['pg_copy_', 'copies replication slots'],
  ['pg_logical_slot_', 'consumes replication slots'],
  ['pg_stat_get_backend_', "shows other databases' sessions"],
  ['pg_stat_get_db_', "shows other databases' statistics"],
  ['pg_stat_reset', 'resets statistics'],
  ['pg_stat_get_subscription', 'shows server-wide replication'],
];

/** Why calling this function is refused, or undefined when the name is not on the list. */
export function refusedFunction(name: string): string | undefined {
  const exact = Object.hasOwn(REFUSED_FUNCTIONS, name) ? REFUSED_FUNCTIONS[name] : undefined;
  if (exact) return exact;
  return REFUSED_PREFIXES.find(([prefix]) => name.startsWith(prefix))?.[1];
}

function refuse(reason: string): never {
  throw new SqlRefusal(reason);
}

function explainOptions(node: Fields): { analyze: boolean; options: string[] } {
  const options: string[] = [];
  let analyze = false;
  for (const item of Array.isArray(node.options) ? node.options : []) {
    const def = (item as { DefElem?: Fields }).DefElem;
    const name = def?.defname;
    if (typeof name !== 'string') continue;
    options.push(name);
    // `ANALYZE false` is spelled with a boolean argument; any other spelling runs the query
    const arg = def?.arg as { String?: { sval?: string }; Boolean?: { boolval?: boolean } } | undefined;
    const off = arg?.Boolean !== undefined ? arg.Boolean.boolval !== true : arg?.String?.sval === 'false';
    if (name === 'analyze' && !off) analyze = true;
  }
  return { analyze, options };
}

/** The kind of a plain (non-EXPLAIN) statement, or a refusal. */
function kindOf(type: string, node: Fields): SqlKind {
  const refused = Object.hasOwn(REFUSED, type) ? REFUSED[type] : undefined;
  if (refused) refuse(refused);
  if (type === 'SelectStmt') {
    if (node.intoClause) return 'ddl'; // SELECT … INTO creates a table
    return 'read';
  }
  if (type === 'VariableShowStmt') {
    if (node.name === 'all') refuse('SHOW ALL shows server-wide settings: use /db settings');
    return 'read';
  }
  if (WRITES.has(type)) return 'write';
  if (DDL.has(type)) {
    if (node.concurrent === true) {
      refuse(
        `${type === 'IndexStmt' ? 'CREATE' : 'DROP'} INDEX CONCURRENTLY cannot run inside a transaction, ` +
          'so it cannot be dry-run: use /db reindex, or run it without CONCURRENTLY in a quiet hour',
      );
    }
    return 'ddl';
  }
  return refuse(`${type.replace(/Stmt$/, '')} statements are not supported by /db sql`);
}

/**
 * Classifies one parsed statement and applies every refusal that holds whatever the role. Checks that need
 * the target (function volatility, shared catalogs) are in `checkAgainstTarget`.
 */
export function classify(parsed: ParsedStatement): Classified {
  if (parsed.crossDatabaseColumn !== undefined) {
    refuse(`"${parsed.crossDatabaseColumn}" refers to another database; name objects of the target only`);
  }
  for (const relation of parsed.relations) {
    if (relation.database !== undefined) {
      refuse(
        `${relation.database}.${relation.schema ?? ''}.${relation.name} refers to database ` +
          `"${relation.database}"; ad-hoc SQL reads and changes only the target database`,
      );
    }
  }
  let result: Classified;
  if (parsed.type === 'ExplainStmt') {
    const { analyze } = explainOptions(parsed.node);
    const inner = parsed.node.query as Fields | undefined;
    const [innerType, innerNode] = Object.entries(inner ?? {})[0] ?? [];
    if (typeof innerType !== 'string') refuse('EXPLAIN without a statement');
    const innerKind = kindOf(innerType, innerNode as Fields);
    if (analyze && innerKind !== 'read') {
      refuse(
        'EXPLAIN ANALYZE runs the statement, and this one changes data: a write is shown by the dry run ' +
          'of /db sql (which includes its plan) and runs only once approved',
      );
    }
    if (innerKind === 'ddl') refuse('EXPLAIN of a schema change is not supported');
    result = { kind: 'read', parsed, explainAnalyze: analyze };
  } else {
    result = { kind: kindOf(parsed.type, parsed.node), parsed };
  }

  // EXPLAIN without ANALYZE only plans: what it would run is not run.
  const plansOnly = parsed.type === 'ExplainStmt' && result.explainAnalyze !== true;
  // Anything nested (CTEs, sub-queries) must be no stronger than the top-level kind.
  for (const nested of plansOnly ? [] : parsed.statementTypes.slice(1)) {
    if (nested === 'SelectStmt') continue;
    if (WRITES.has(nested)) {
      if (result.kind === 'read') {
        refuse(
          `this "read" hides a data-modifying ${nested.replace(/Stmt$/, '').toUpperCase()} inside it ` +
            '(a CTE or sub-statement); send it as a write so it is dry-run and approved',
        );
      }
      continue;
    }
    if (parsed.type === 'ExplainStmt') continue;
    refuse(`${nested.replace(/Stmt$/, '')} nested inside a statement is not supported`);
  }
  if (result.kind === 'read') {
    let locking = Array.isArray(parsed.node.lockingClause);
    walk(parsed.node, (kind, fields) => {
      if (kind === 'SelectStmt' && Array.isArray(fields.lockingClause)) locking = true;
    });
    if (locking) refuse('SELECT … FOR UPDATE/SHARE locks rows, so it is not a read; send it as a write');
  }
  for (const fn of parsed.functions) {
    // A write may draw sequence values (defaults do too); a dry run leaves a gap, nothing worse.
    if (fn.name === 'nextval' && result.kind !== 'read') continue;
    const why = refusedFunction(fn.name);
    if (why) refuse(`${fn.name}() is refused: it ${why}`);
  }
  return result;
}
