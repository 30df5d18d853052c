// The runbook's advice on roles ("Database User Permissions"): findings about the application's role and dbops' own.
import { formatCount } from '../../src/core/render.js';
import { quoteIdent } from '../../src/engine/relations.js';
import { nameList } from './text-lines.js';

/** What the application needs on its tables and sequences (the runbook's GRANTs). */
const APP_TABLE_RIGHTS = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'];
const APP_SEQUENCE_RIGHTS = ['USAGE', 'SELECT'];
/** Predefined roles dbops' reads and actions use. */
const MONITOR_ROLES = ['pg_monitor', 'pg_read_all_stats'];

export interface RoleRow {
  oid: string | number;
  name: string;
  superuser: boolean;
  createrole: boolean;
  createdb: boolean;
  bypassrls: boolean;
  login: boolean;
  replication: boolean;
  database: string;
  connect: boolean;
  create_schema: boolean;
  temp: boolean;
  member_of: string[];
}
export interface SchemaRow {
  schema: string;
  owner: string;
  usage: boolean;
  create: boolean;
}
export interface RelationRow {
  schema: string;
  name: string;
  qualified: string;
  kind: 'table' | 'view' | 'sequence';
  owner: string;
  owns: boolean;
  privileges: string[];
}
export interface DefaultRow {
  creator: string;
  schema: string | null;
  objects: string;
  to_public: boolean;
  privileges: string;
}

export interface Finding {
  status: 'ok' | 'warn' | 'info';
  role: string;
  text: string;
}

export interface RoleReport {
  role: RoleRow;
  schemas: SchemaRow[];
  relations: RelationRow[];
  defaults: DefaultRow[];
}

/** The runbook's advice for the application role: not a superuser, only what it needs, grants for future tables. */
export function appFindings(r: RoleReport): Finding[] {
  const { role } = r;
  const name = quoteIdent(role.name);
  const out: Finding[] = [];
  const add = (status: Finding['status'], text: string) => out.push({ status, role: role.name, text });
  if (role.superuser) {
    add(
      'warn',
      `${name} is a superuser: the runbook says to give the application a limited user instead (CREATE USER … and GRANT only what it needs)`,
    );
  } else add('ok', `${name} is not a superuser`);
  for (const [flag, word] of [
    [role.createrole, 'CREATEROLE'],
    [role.createdb, 'CREATEDB'],
    [role.bypassrls, 'BYPASSRLS'],
    [role.replication, 'REPLICATION'],
  ] as const) {
    if (flag && !role.superuser)
      add('warn', `${name} has ${word}, which the application does not need: ALTER ROLE ${name} NO${word};`);
  }
  if (!role.login)
    add(
      'info',
      `${name} cannot log in (NOLOGIN): it is a group role; check the role the application logs in as`,
    );
  if (!role.connect)
    add(
      'warn',
      `${name} may not connect: GRANT CONNECT ON DATABASE ${quoteIdent(role.database)} TO ${name};`,
    );
  if (role.superuser) return out;

  for (const s of r.schemas) {
    const tables = r.relations.filter((x) => x.schema === s.schema && x.kind === 'table');
    const sequences = r.relations.filter((x) => x.schema === s.schema && x.kind === 'sequence');
    const schema = quoteIdent(s.schema);
    if (tables.length === 0 && sequences.length === 0) continue;
    const used = s.usage || tables.some((t) => t.privileges.length > 0 || t.owns);
    if (!used) continue; // a schema the application does not use at all
    if (!s.usage)
      add(
        'warn',
        `${name} has rights on tables of ${schema} but no USAGE on it: GRANT USAGE ON SCHEMA ${schema} TO ${name};`,
      );
    const lacking = tables.filter((t) => !t.owns && APP_TABLE_RIGHTS.some((p) => !t.privileges.includes(p)));
    if (lacking.length > 0) {
      add(
        'warn',
        `${formatCount(lacking.length)} of ${formatCount(tables.length)} tables in ${schema} lack some of ${APP_TABLE_RIGHTS.join(', ')} ` +
          `(${nameList(lacking.map((t) => t.qualified))}): GRANT ${APP_TABLE_RIGHTS.join(', ')} ON ALL TABLES IN SCHEMA ${schema} TO ${name}; (or table by table, if on purpose)`,
      );
    } else if (tables.length > 0)
      add('ok', `${name} may read and write all ${formatCount(tables.length)} tables of ${schema}`);
    const extra = tables.filter((t) => !t.owns && t.privileges.some((p) => !APP_TABLE_RIGHTS.includes(p)));
    if (extra.length > 0) {
      add(
        'warn',
        `${name} has TRUNCATE, REFERENCES or TRIGGER on ${formatCount(extra.length)} tables of ${schema} (${nameList(extra.map((t) => t.qualified))}): more than the runbook grants`,
      );
    }
    const owned = tables.filter((t) => t.owns);
    if (owned.length > 0) {
      add(
        'info',
        `${name} owns ${formatCount(owned.length)} tables of ${schema} (may ALTER and DROP them): right only if the application runs its own migrations`,
      );
    }
    const seqLacking = sequences.filter(
      (q) => !q.owns && APP_SEQUENCE_RIGHTS.some((p) => !q.privileges.includes(p)),
    );
    if (seqLacking.length > 0) {
      add(
        'warn',
        `${formatCount(seqLacking.length)} sequences in ${schema} lack USAGE or SELECT (${nameList(seqLacking.map((q) => q.qualified))}): GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ${schema} TO ${name};`,
      );
    }
    // Future tables: the owners of today's tables are who will create tomorrow's.
    const creators = [...new Set(tables.filter((t) => !t.owns).map((t) => t.owner))];
    const covered = (creator: string) =>
      r.defaults.some(
        (d) =>
          d.objects === 'tables' &&
          d.creator === creator &&
          (d.schema === null || d.schema === s.schema) &&
          APP_TABLE_RIGHTS.every((p) => d.privileges.split(', ').includes(p)),
      );
    const uncovered = creators.filter((c) => !covered(c));
    for (const creator of uncovered) {
      add(
        'warn',
        `tables ${quoteIdent(creator)} creates in ${schema} later will not be granted to ${name}: ALTER DEFAULT PRIVILEGES FOR ROLE ${quoteIdent(creator)} IN SCHEMA ${schema} GRANT ${APP_TABLE_RIGHTS.join(', ')} ON TABLES TO ${name};`,
      );
    }
  }
  return out;
}

/** What dbops' own role needs: no superuser, pg_monitor for the reads, pg_signal_backend for its actions. */
export function botFindings(r: RoleReport, appRole: string | null): Finding[] {
  const { role } = r;
  const name = quoteIdent(role.name);
  const out: Finding[] = [];
  const add = (status: Finding['status'], text: string) => out.push({ status, role: role.name, text });
  if (appRole !== null && appRole === role.name) {
    add(
      'warn',
      `dbops connects as the application's own role ${name}: give dbops a role of its own, so its rights and audit stay apart`,
    );
  }
  if (role.superuser) {
    add(
      'warn',
      `dbops' role ${name} is a superuser: it needs only pg_monitor (reads) and pg_signal_backend (kill-idle, terminate); use a role with just those`,
    );
    return out;
  }
  add('ok', `dbops' role ${name} is not a superuser`);
  if (MONITOR_ROLES.some((m) => role.member_of.includes(m))) {
    add(
      'ok',
      `dbops' role ${name} sees every session's queries (${MONITOR_ROLES.filter((m) => role.member_of.includes(m)).join(', ')})`,
    );
  } else {
    add(
      'warn',
      `dbops' role ${name} sees other roles' queries as <insufficient privilege>: GRANT pg_monitor TO ${name};`,
    );
  }
  if (!role.member_of.includes('pg_signal_backend')) {
    add(
      'info',
      `dbops' role ${name} may end only its own roles' sessions (kill-idle, terminate): GRANT pg_signal_backend TO ${name}; for others`,
    );
  }
  return out;
}
