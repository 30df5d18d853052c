// `/db privileges <target> [role]`: what the application's role and dbops' own role may do, against the runbook's advice.

import { z } from 'zod';
import { textArg } from '../src/core/args.js';
import { UserError } from '../src/core/errors.js';
import { defineOperation } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import { closest } from '../src/core/suggest.js';
import { quoteIdent } from '../src/engine/relations.js';
import type { Session } from '../src/engine/types.js';
import {
  appFindings,
  botFindings,
  type DefaultRow,
  type Finding,
  type RelationRow,
  type RoleReport,
  type RoleRow,
  type SchemaRow,
} from './lib/privilege-findings.js';
import { userSchema } from './lib/relation-sizes.js';
import { nameList, textResult, wrap } from './lib/text-lines.js';

export type { Finding } from './lib/privilege-findings.js';

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

/** Relations whose rights are read; beyond, the answer says it looked at the first ones only. */
const RELATIONS_READ = 20_000;

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
LIMIT ${RELATIONS_READ}`;

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
      wrap(
        `    ${formatCount(names.length)} ${names.length === 1 ? kind : plural}: ${rights} — ${nameList(names)}`,
        8,
      ),
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
      const capped = [app, bot].some((r) => r !== null && r.relations.length >= RELATIONS_READ);
      const notes = capped
        ? [
            `only the first ${formatCount(RELATIONS_READ)} tables, views and sequences (by schema and name) were read`,
          ]
        : [];
      notes.push(
        ...(app === null
          ? [
              'no application role given: name one (privileges <target> <role>) or set ' +
                'settings.dbops.app_role for this target in the config',
            ]
          : []),
      );
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
