// A table named by a person — `users`, `app.users`, `"My Table"`, `app."Odd ""name"""` — found in the catalog.
import { UserError } from '../../src/core/errors.js';
import { closest } from '../../src/core/suggest.js';
import {
  isRelKind,
  quoteIdent,
  RELATION_KINDS,
  type Relation,
  type RelKind,
} from '../../src/engine/relations.js';
import type { Session } from '../../src/engine/types.js';

/**
 * `to_regclass` reads the name as SQL would (search_path, unquoted names folded to lower case). Before
 * PostgreSQL 16 it raises "invalid name syntax" instead of returning NULL (e.g. for `My Table`), which
 * would abort the read-only transaction, so it runs behind a savepoint.
 */
const BY_REGCLASS = `
SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass($1::text)`;

/**
 * The name exactly as typed (case and spaces kept), for `My Table` or `MixedCase` typed without SQL
 * quotes: visible on the search path, or `schema.name` split at its first dot. Both halves are bound.
 */
const BY_LITERAL = `
SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (c.relname = $1::text AND pg_table_is_visible(c.oid))
   OR (n.nspname = split_part($1::text, '.', 1)
       AND c.relname = substr($1::text, length(split_part($1::text, '.', 1)) + 2))
ORDER BY pg_table_is_visible(c.oid) DESC
LIMIT 1`;

/** Every relation of the wanted kinds outside the system schemas, as a person would type it. */
const CANDIDATES = `
SELECT CASE WHEN n.nspname = 'public' THEN quote_ident(c.relname)
            ELSE format('%I.%I', n.nspname, c.relname) END AS name
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = ANY ($1::"char"[])
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
  AND n.nspname !~ '^pg_temp'
ORDER BY 1 LIMIT 5000`;

interface Found {
  oid: string | number;
  schema: string;
  name: string;
  relkind: string;
}

async function byRegclass(session: Session, typed: string): Promise<Found | undefined> {
  await session.query('SAVEPOINT dbops_table_name');
  try {
    const [row] = await session.query<Found>(BY_REGCLASS, [typed]);
    await session.query('RELEASE SAVEPOINT dbops_table_name');
    return row;
  } catch (err) {
    // Not a name SQL can read: invalid name (42602), improper qualification (42601), cross-database
    // reference `a.b.c` (0A000), missing schema (3F000) — the literal lookup gets its turn.
    await session.query('ROLLBACK TO SAVEPOINT dbops_table_name');
    await session.query('RELEASE SAVEPOINT dbops_table_name');
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && (code.startsWith('42') || code === '0A000' || code === '3F000')) {
      return undefined;
    }
    throw err;
  }
}

function article(word: string): string {
  return `${/^[aeiou]/.test(word) ? 'an' : 'a'} ${word}`;
}

/**
 * The relation a person means by `typed`, of one of `kinds`; otherwise a UserError "no table matching
 * <name>" with the closest names of the catalog (whole, quoted where SQL needs quotes).
 */
export async function resolveTable(
  session: Session,
  typed: string,
  kinds: readonly RelKind[],
  noun = 'table',
): Promise<Relation> {
  const found = (await byRegclass(session, typed)) ?? (await session.query<Found>(BY_LITERAL, [typed]))[0];
  if (found && isRelKind(found.relkind)) {
    if (kinds.includes(found.relkind)) {
      return {
        oid: Number(found.oid),
        schema: found.schema,
        name: found.name,
        relkind: found.relkind,
        qualified: `${quoteIdent(found.schema)}.${quoteIdent(found.name)}`,
      };
    }
    throw new UserError(
      'invalid_argument',
      `${quoteIdent(found.schema)}.${quoteIdent(found.name)} is ${article(RELATION_KINDS[found.relkind])}, not ${article(noun)}`,
    );
  }
  const candidates = (await session.query<{ name: string }>(CANDIDATES, [kinds])).map((c) => c.name);
  const guesses = closest(typed, candidates);
  throw new UserError(
    'invalid_argument',
    `no ${noun} matching ${typed}` +
      (guesses.length > 0 ? ` — did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?` : ''),
  );
}
