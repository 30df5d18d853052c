// `/db privileges <target> [role]`: what the application's role and dbops' own role may do, against the runbook's advice.
import { z } from 'zod';
import { textArg } from '../src/core/args.js';
import { UserError } from '../src/core/errors.js';
import { defineOperation } from '../src/core/operation.js';
import { closest } from '../src/core/suggest.js';
import { quoteIdent } from '../src/engine/relations.js';
import type { Session } from '../src/engine/types.js';
import { userSchema } from './lib/relation-sizes.js';
import { nameList, textResult, wrap } from './lib/text-lines.js';

/** A role's attributes, memberships (direct or inherited) and rights on this database. $1 = role name. */
export const ROLE_SQL = `
SELECT r.oid::int8 AS oid, r.rolname AS name, r.rolsuper AS superuser, r.rolcreaterole AS createrole,
       r.rolcreatedb AS createdb, r.rolbypassrls AS bypassrls, r.rolcanlogin AS login,
       r.rolreplication AS replication,
       current_database() AS database,
       has_database_privilege(r.oid, current_database(), 'CONNECT') AS connect,
       has_database_privilege(r.oid, current_database(), 'CREATE') AS create_schema,
       has_database_privilege(r.oid, current_database(), 'TEMP') AS temp,
       ARRAY(SELECT m.rolname::text FROM pg_roles m
             WHERE m.oid <> r.oid AND pg_has_role(r.oid, m.oid, 'MEMBER') ORDER BY m.rolname) AS member_of
FROM pg_roles r WHERE r.rolname = $1::text`;

/** Schemas people made, with the role's USAGE and CREATE. $1 = role oid. */
export const SCHEMAS_SQL = `
SELECT n.nspname AS schema, pg_get_userbyid(n.nspowner) AS owner,
       has_schema_privilege($1::oid, n.oid, 'USAGE') AS usage,
       has_schema_privilege($1::oid, n.oid, 'CREATE') AS "create"
FROM pg_namespace n
WHERE ${userSchema('n')}
ORDER BY n.nspname`;

export const TABLE_PRIVILEGES = [
  'SELECT',
  'INSERT',
  'UPDATE',
  'DELETE',
  'TRUNCATE',
  'REFERENCES',
  'TRIGGER',
] as const;

/**
 * Every table, view and sequence of the schemas people made (partitions are reached through their parent),
 * with what the role may do on it and whether it owns it. $1 = role oid.
 */
export const RELATIONS_SQL = `
SELECT n.nspname AS schema, c.relname AS name, format('%I.%I', n.nspname, c.relname) AS qualified,
       CASE WHEN c.relkind = 'S' THEN 'sequence' WHEN c.relkind IN ('r', 'p') THEN 'table' ELSE 'view' END AS kind,
       pg_get_userbyid(c.relowner) AS owner,
       pg_has_role($1::oid, c.relowner, 'USAGE') AS owns,
       CASE WHEN c.relkind = 'S' THEN ARRAY(
         SELECT p FROM unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) WITH ORDINALITY u(p, i)
         WHERE has_sequence_privilege($1::oid, c.oid, p) ORDER BY i)
       ELSE ARRAY(
         SELECT p FROM unnest(ARRAY[${TABLE_PRIVILEGES.map((p) => `'${p}'`).join(', ')}]) WITH ORDINALITY u(p, i)
         WHERE has_table_privilege($1::oid, c.oid, p) ORDER BY i) END AS privileges
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND NOT c.relispartition AND ${userSchema('n')}
ORDER BY n.nspname, c.relname
LIMIT 20000`;

/** Default privileges that give the role (or PUBLIC) rights on objects created later. $1 = role oid. */
export const DEFAULTS_SQL = `
SELECT pg_get_userbyid(d.defaclrole) AS creator, n.nspname AS schema,
       CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions'
            WHEN 'T' THEN 'types' WHEN 'n' THEN 'schemas' ELSE d.defaclobjtype::text END AS objects,
       a.grantee = 0 AS to_public,
       string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type) AS privileges
FROM pg_default_acl d
LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
CROSS JOIN LATERAL aclexplode(d.defaclacl) a
WHERE a.grantee IN ($1::oid, 0)
GROUP BY 1, 2, 3, 4
ORDER BY 2 NULLS FIRST, 1, 3`;

const SUPERUSERS_SQL = `SELECT rolname AS name, rolcanlogin AS login FROM pg_roles WHERE rolsuper ORDER BY 1`;
const ROLES_SQL = `SELECT rolname AS name FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1 LIMIT 5000`;

/** What the application needs on its tables and sequences (the runbook's GRANTs). */
const APP_TABLE_RIGHTS = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'];
const APP_SEQUENCE_RIGHTS = ['USAGE', 'SELECT'];
/** Predefined roles dbops' reads and actions use. */
const MONITOR_ROLES = ['pg_monitor', 'pg_read_all_stats'];

interface RoleRow {
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
interface SchemaRow {
  schema: string;
  owner: string;
  usage: boolean;
  create: boolean;
}
interface RelationRow {
  schema: string;
  name: string;
  qualified: string;
  kind: 'table' | 'view' | 'sequence';
  owner: string;
  owns: boolean;
  privileges: string[];
}
interface DefaultRow {
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

interface RoleReport {
  role: RoleRow;
  schemas: SchemaRow[];
  relations: RelationRow[];
  defaults: DefaultRow[];
}

async function report(session: Session, name: string): Promise<RoleReport> {
  const [role] = await session.query<RoleRow>(ROLE_SQL, [name]);
  if (!role) {
    const roles = (await session.query<{ name: string }>(ROLES_SQL)).map((r) => r.name);
    const guesses = closest(name, roles);
    throw new UserError(
      'invalid_argument',
      `no role matching ${name}` +
        (guesses.length > 0 ? ` — did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?` : ''),
    );
  }
  const oid = [role.oid];
  return {
    role,
    schemas: await session.query<SchemaRow>(SCHEMAS_SQL, oid),
    relations: await session.query<RelationRow>(RELATIONS_SQL, oid),
    defaults: await session.query<DefaultRow>(DEFAULTS_SQL, oid),
  };
}

function rightsText(r: RelationRow): string {
  if (r.owns) return 'owner (everything)';
  if (r.kind !== 'sequence' && r.privileges.length === TABLE_PRIVILEGES.length) return 'all privileges';
  return r.privileges.length === 0 ? 'none' : r.privileges.join(', ');
}

/** "12 tables: SELECT, INSERT — a, b, c and 9 more": relations of one schema grouped by identical rights. */
function groupLines(relations: readonly RelationRow[], kind: string, plural: string): string[] {
  const groups = new Map<string, string[]>();
  for (const r of relations) {
    const key = rightsText(r);
    groups.set(key, [...(groups.get(key) ?? []), r.qualified]);
  }
  return [...groups.entries()]
    .sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0]))
    .flatMap(([rights, names]) =>
      wrap(`    ${names.length} ${names.length === 1 ? kind : plural}: ${rights} — ${nameList(names)}`, 8),
    );
}

function attributes(role: RoleRow): string {
  const yes = [
    role.superuser ? 'SUPERUSER' : '',
    role.createrole ? 'CREATEROLE' : '',
    role.createdb ? 'CREATEDB' : '',
    role.bypassrls ? 'BYPASSRLS' : '',
    role.replication ? 'REPLICATION' : '',
    role.login ? 'LOGIN' : 'NOLOGIN',
  ].filter((a) => a !== '');
  return yes.join(' ');
}

function memberOf(role: RoleRow): string {
  if (role.superuser) return 'every role (superuser)';
  return role.member_of.length === 0 ? 'no role' : role.member_of.join(', ');
}

function roleLines(title: string, r: RoleReport): string[] {
  const { role } = r;
  const db = [role.connect ? 'CONNECT' : '', role.create_schema ? 'CREATE' : '', role.temp ? 'TEMP' : '']
    .filter((p) => p !== '')
    .join(', ');
  const lines = [
    '',
    ...wrap(`${title} ${quoteIdent(role.name)}: ${attributes(role)}`),
    ...wrap(`  member of: ${memberOf(role)}`, 4),
    ...wrap(`  database ${role.database}: ${db === '' ? 'no privileges' : db}`, 4),
  ];
  for (const s of r.schemas) {
    const rights = [s.usage ? 'USAGE' : '', s.create ? 'CREATE' : ''].filter((p) => p !== '').join(', ');
    const inSchema = r.relations.filter((x) => x.schema === s.schema);
    if (inSchema.length === 0 && !s.usage && !s.create) continue;
    lines.push(
      ...wrap(
        `  schema ${quoteIdent(s.schema)} (owner ${s.owner}): ${rights === '' ? 'no access' : rights}`,
        4,
      ),
    );
    lines.push(
      ...groupLines(
        inSchema.filter((x) => x.kind === 'table'),
        'table',
        'tables',
      ),
    );
    lines.push(
      ...groupLines(
        inSchema.filter((x) => x.kind === 'view'),
        'view',
        'views',
      ),
    );
    lines.push(
      ...groupLines(
        inSchema.filter((x) => x.kind === 'sequence'),
        'sequence',
        'sequences',
      ),
    );
  }
  if (r.defaults.length > 0) {
    lines.push('  default privileges (objects created later):');
    for (const d of r.defaults) {
      const where = d.schema === null ? 'in every schema' : `in ${quoteIdent(d.schema)}`;
      const who = d.to_public ? 'to PUBLIC' : '';
      lines.push(
        ...wrap(`    ${d.objects} created by ${d.creator} ${where}: ${d.privileges} ${who}`.trimEnd(), 8),
      );
    }
  } else lines.push('  default privileges: none');
  return lines;
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
        `${lacking.length} of ${tables.length} tables in ${schema} lack some of ${APP_TABLE_RIGHTS.join(', ')} ` +
          `(${nameList(lacking.map((t) => t.qualified))}): GRANT ${APP_TABLE_RIGHTS.join(', ')} ON ALL TABLES IN SCHEMA ${schema} TO ${name}; (or table by table, if on purpose)`,
      );
    } else if (tables.length > 0)
      add('ok', `${name} may read and write all ${tables.length} tables of ${schema}`);
    const extra = tables.filter((t) => !t.owns && t.privileges.some((p) => !APP_TABLE_RIGHTS.includes(p)));
    if (extra.length > 0) {
      add(
        'warn',
        `${name} has TRUNCATE, REFERENCES or TRIGGER on ${extra.length} tables of ${schema} (${nameList(extra.map((t) => t.qualified))}): more than the runbook grants`,
      );
    }
    const owned = tables.filter((t) => t.owns);
    if (owned.length > 0) {
      add(
        'info',
        `${name} owns ${owned.length} tables of ${schema} (may ALTER and DROP them): right only if the application runs its own migrations`,
      );
    }
    const seqLacking = sequences.filter(
      (q) => !q.owns && APP_SEQUENCE_RIGHTS.some((p) => !q.privileges.includes(p)),
    );
    if (seqLacking.length > 0) {
      add(
        'warn',
        `${seqLacking.length} sequences in ${schema} lack USAGE or SELECT (${nameList(seqLacking.map((q) => q.qualified))}): GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ${schema} TO ${name};`,
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

const MARK: Record<Finding['status'], string> = { ok: 'ok  ', warn: 'warn', info: 'info' };

export default defineOperation({
  name: 'privileges',
  summary: 'What the application’s role and dbops’ role may do, and what the runbook recommends',
  usage: 'privileges <target> [role]',
  description:
    'For the application’s role (the argument, or the target’s settings.dbops.app_role) and dbops’ own ' +
    'role: attributes (SUPERUSER, CREATEROLE, CREATEDB, BYPASSRLS, LOGIN), memberships (pg_monitor, ' +
    'pg_read_all_stats, pg_signal_backend …), CONNECT/CREATE/TEMP on the database, USAGE/CREATE per ' +
    'schema, rights on every table, view and sequence grouped by identical sets (so 100 tables read as ' +
    'one line), default privileges for tables created later, and the superusers. Then the runbook’s advice ' +
    'as ok / warn lines with the exact GRANT or ALTER to run: the application role should not be a ' +
    'superuser and should have SELECT, INSERT, UPDATE, DELETE on its tables, USAGE, SELECT on its ' +
    'sequences and default privileges for future tables.',
  positionals: ['role'],
  args: z.object({
    role: textArg({ maxLength: 63, hint: 'a role name', example: 'app_user' }).optional(),
  }),
  risk: 'read',
  async run(ctx) {
    const configured = ctx.target.settings?.dbops?.app_role;
    const appRole = ctx.args.role ?? (typeof configured === 'string' ? configured : null);
    return await ctx.db.read(async (session) => {
      const [{ me } = { me: '' }] = await session.query<{ me: string }>('SELECT current_user AS me');
      const app = appRole === null ? null : await report(session, appRole);
      const bot = app !== null && app.role.name === me ? app : await report(session, me);
      const superusers = await session.query<{ name: string; login: boolean }>(SUPERUSERS_SQL);

      const findings = [
        ...(app === null ? [] : appFindings(app)),
        ...botFindings(bot, app?.role.name ?? null),
      ];
      const loginSupers = superusers.filter((s) => s.login).map((s) => quoteIdent(s.name));
      const who =
        app === null ? `dbops role ${me} only` : `application role ${app.role.name}, dbops role ${me}`;
      const lines: string[] = wrap(`database ${bot.role.database}: ${who}`, 4);
      for (const f of findings) lines.push(...wrap(`${MARK[f.status]}  ${f.text}`, 6));
      if (app !== null) lines.push(...roleLines('application role', app));
      if (app === null || bot !== app) lines.push(...roleLines('dbops role', bot));
      lines.push(
        '',
        ...wrap(
          `superusers that can log in: ${loginSupers.length === 0 ? 'none' : loginSupers.join(', ')}`,
          4,
        ),
      );

      const warnings = findings.filter((f) => f.status === 'warn').length;
      const notes =
        app === null
          ? [
              'no application role given: name one (privileges <target> <role>) or set ' +
                'settings.dbops.app_role for this target in the config',
            ]
          : [];
      const reportData = (r: RoleReport) => ({
        name: r.role.name,
        attributes: attributes(r.role).split(' '),
        memberOf: r.role.member_of,
        database: { connect: r.role.connect, create: r.role.create_schema, temp: r.role.temp },
        schemas: r.schemas,
        relations: r.relations.map((x) => ({
          relation: x.qualified,
          kind: x.kind,
          owner: x.owner,
          owns: x.owns,
          privileges: x.privileges,
        })),
        defaults: r.defaults,
      });
      return textResult(lines, {
        headline: `privileges: ${warnings === 0 ? 'nothing to fix' : `${warnings} warning${warnings === 1 ? '' : 's'}`}`,
        notes,
        data: {
          appRole: app === null ? null : reportData(app),
          botRole: reportData(bot),
          superusers: superusers.map((s) => s.name),
          findings,
        },
      });
    });
  },
});
