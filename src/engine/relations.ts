// Names typed by people, checked against the target's catalog and quoted — never spliced in raw.
import { UserError } from '../core/errors.js';
import { closest } from '../core/suggest.js';
import type { Session } from './types.js';

export const RELATION_KINDS = {
  r: 'table',
  p: 'partitioned table',
  m: 'materialized view',
  i: 'index',
  I: 'partitioned index',
  v: 'view',
  S: 'sequence',
} as const;
export type RelKind = keyof typeof RELATION_KINDS;

export interface Relation {
  oid: number;
  schema: string;
  name: string;
  relkind: RelKind;
  /** `"schema"."name"`, safe to put in SQL text where a bind parameter is not allowed. */
  qualified: string;
}

/** Quotes one identifier the way PostgreSQL's quote_ident does for any name. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Whether a pg_class.relkind is one dbops names (table, view, …). */
export function isRelKind(value: string): value is RelKind {
  return value in RELATION_KINDS;
}

/**
 * Resolves `users` or `public.users` (search_path rules, like SQL would) to one relation of the given
 * kinds. Unknown or wrong-kind names fail with a did-you-mean over what exists; `argument` names the
 * argument as the user typed it (e.g. `<table>`).
 */
export async function resolveRelation(
  session: Session,
  typed: string,
  kinds: readonly RelKind[],
  argument: string,
): Promise<Relation> {
  const kindList = [...new Set(kinds.map((k) => RELATION_KINDS[k]))];
  // "table", "table or index", "table, partitioned table or view".
  const kindWords =
    kindList.length <= 2
      ? kindList.join(' or ')
      : `${kindList.slice(0, -1).join(', ')} or ${kindList.at(-1)}`;
  const rows = await session.query<{ oid: number; schema: string; name: string; relkind: string }>(
    `SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.oid = to_regclass($1)`,
    [typed],
  );
  const found = rows[0];
  if (found && isRelKind(found.relkind) && kinds.includes(found.relkind)) {
    return {
      oid: Number(found.oid),
      schema: found.schema,
      name: found.name,
      relkind: found.relkind,
      qualified: `${quoteIdent(found.schema)}.${quoteIdent(found.name)}`,
    };
  }
  if (found && isRelKind(found.relkind)) {
    throw new UserError(
      'invalid_argument',
      `argument ${argument}: ${found.schema}.${found.name} is ${article(RELATION_KINDS[found.relkind])}, not ${article(kindWords)}`,
    );
  }
  const candidates = await session.query<{ name: string }>(
    `SELECT CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END AS name
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = ANY ($1::"char"[])
        AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
      ORDER BY 1 LIMIT 5000`,
    [kinds],
  );
  const guesses = closest(
    typed,
    candidates.map((c) => c.name),
  );
  throw new UserError(
    'invalid_argument',
    `argument ${argument}: no ${kindWords} matching ${typed.slice(0, 60)} on this target` +
      (guesses.length > 0 ? ` — did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?` : ''),
  );
}

function article(words: string): string {
  return `${/^[aeiou]/.test(words) ? 'an' : 'a'} ${words}`;
}

/** Whether the current role is a superuser or a member of `role` (e.g. pg_read_all_stats). */
export async function hasRole(session: Session, role: string): Promise<boolean> {
  const [row] = await session.query<{ ok: boolean }>(
    `SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
            OR pg_has_role(current_user, $1, 'MEMBER') AS ok`,
    [role],
  );
  return row?.ok === true;
}
