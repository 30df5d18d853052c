// `/db table-sizes <target> [--limit 20] [--schema s]`: tables and materialized views by total size, split.
import { z } from 'zod';
import { identifierArg, intArg } from '../src/core/args.js';
import { UserError } from '../src/core/errors.js';
import { defineOperation } from '../src/core/operation.js';
import { formatBytes, formatCount } from '../src/core/render.js';
import { closest } from '../src/core/suggest.js';
import type { Column, Row } from '../src/core/types.js';
import type { Session } from '../src/engine/types.js';
import {
  DDL_LOCKED_CTE,
  LOCKED_LISTED,
  skippedNote,
  tableDdlLocked,
  toastBytes,
  userSchema,
} from './lib/relation-sizes.js';

const MAX_LIMIT = 1000;

/**
 * One statement, so the sized rows and the skipped ones come from the same look at pg_locks. $1 = how
 * many to size, $2 = a schema name or null. `matching` counts every sized (or every skipped) relation.
 * Each relation is measured once (pg_table_size, pg_indexes_size: the total orders them); only the rows
 * shown measure their TOAST apart. The same bytes as tableSizeColumns, with a third of the size calls.
 */
export const TABLE_SIZES_SQL = `
WITH ${DDL_LOCKED_CTE},
relations AS (
  SELECT c.oid, c.relkind, c.reltoastrelid, c.reltuples,
         format('%I.%I', n.nspname, c.relname) AS relation,
         ${tableDdlLocked('c')} AS locked
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'm')
    AND ${userSchema('n')}
    AND ($2::text IS NULL OR n.nspname = $2::text)
),
measured AS MATERIALIZED (
  SELECT r.relation, r.relkind, r.reltuples, r.reltoastrelid,
         pg_table_size(r.oid) AS with_toast, pg_indexes_size(r.oid) AS index_bytes
  FROM relations r
  WHERE NOT r.locked
),
largest AS (
  SELECT m.*, m.with_toast + m.index_bytes AS total_bytes,
         count(*) OVER () AS matching,
         sum(m.with_toast + m.index_bytes) OVER () AS all_bytes
  FROM measured m
  ORDER BY total_bytes DESC, m.relation
  LIMIT $1
)
(SELECT l.relation,
        CASE l.relkind WHEN 'm' THEN 'materialized view' ELSE 'table' END AS kind,
        l.total_bytes, l.with_toast - t.toast_bytes AS table_bytes, l.index_bytes, t.toast_bytes,
        CASE WHEN l.reltuples < 0 THEN NULL ELSE l.reltuples::bigint END AS rows,
        false AS locked,
        l.matching,
        l.all_bytes
 FROM largest l
 CROSS JOIN LATERAL (SELECT ${toastBytes('l')} AS toast_bytes OFFSET 0) t
 ORDER BY l.total_bytes DESC, l.relation)
UNION ALL
(SELECT r.relation, NULL, NULL, NULL, NULL, NULL, NULL, true, count(*) OVER (), NULL
 FROM relations r
 WHERE r.locked
 ORDER BY r.relation
 LIMIT ${LOCKED_LISTED})
`;

/** Schemas people created, for the did-you-mean of an unknown --schema. */
const SCHEMAS_SQL = `
SELECT n.nspname AS name FROM pg_namespace n WHERE ${userSchema('n')} ORDER BY 1 LIMIT 5000
`;

export interface SizeRow {
  relation: string;
  kind: string | null;
  total_bytes: number | null;
  table_bytes: number | null;
  index_bytes: number | null;
  toast_bytes: number | null;
  rows: number | null;
  locked: boolean;
  matching: number;
  all_bytes: number | null;
}

export const TABLE_SIZE_COLUMNS: Column[] = [
  { key: 'relation', label: 'relation', kind: 'text' },
  { key: 'kind', label: 'kind', kind: 'text' },
  { key: 'total_bytes', label: 'total', kind: 'bytes' },
  { key: 'table_bytes', label: 'table', kind: 'bytes' },
  { key: 'index_bytes', label: 'indexes', kind: 'bytes' },
  { key: 'toast_bytes', label: 'toast', kind: 'bytes' },
  { key: 'rows', label: 'rows (est.)', kind: 'count' },
];

/**
 * The schema named by `--schema`, as SQL would read an unquoted name (folded to lower case), checked
 * against the catalog; an unknown one fails with the closest existing names.
 */
async function resolveSchema(session: Session, typed: string): Promise<string> {
  const schemas = (await session.query<{ name: string }>(SCHEMAS_SQL)).map((s) => s.name);
  const folded = typed.toLowerCase();
  if (schemas.includes(folded)) return folded;
  const guesses = closest(typed, schemas);
  throw new UserError(
    'invalid_argument',
    `argument --schema: no schema matching ${typed.slice(0, 60)} on this target` +
      (guesses.length > 0 ? ` — did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?` : ''),
  );
}

export default defineOperation({
  name: 'table-sizes',
  summary: 'Largest tables and materialized views, with table / index / TOAST split',
  usage: 'table-sizes <target> [--limit 20] [--schema public]',
  description:
    'Lists tables and materialized views (system schemas excluded, or only those of --schema) by ' +
    'pg_total_relation_size, split into heap (pg_table_size without TOAST), indexes (pg_indexes_size) ' +
    'and TOAST bytes, with the planner’s row estimate. Relations locked by DDL are skipped and named, ' +
    'so the command never waits behind a migration.',
  args: z.object({
    limit: intArg({ min: 1, max: MAX_LIMIT, default: 20 }),
    schema: identifierArg().optional(),
  }),
  risk: 'read',
  async run(ctx) {
    const shown = Math.min(ctx.args.limit, ctx.limits.row_cap);
    return await ctx.db.read(async (session) => {
      const schema = ctx.args.schema === undefined ? null : await resolveSchema(session, ctx.args.schema);
      const found = await session.query<SizeRow>(TABLE_SIZES_SQL, [shown, schema]);
      const sized = found.filter((r) => !r.locked);
      const locked = found.filter((r) => r.locked);
      const matching = sized[0]?.matching ?? 0;
      const lockedCount = locked[0]?.matching ?? 0;
      const where = schema === null ? '' : ` in schema ${schema}`;

      const rows: Row[] = sized.map((r) => ({
        relation: r.relation,
        kind: r.kind,
        total_bytes: r.total_bytes,
        table_bytes: r.table_bytes,
        index_bytes: r.index_bytes,
        toast_bytes: r.toast_bytes,
        rows: r.rows,
      }));

      const notes: string[] = [];
      if (matching > sized.length) {
        const more =
          ctx.args.limit < MAX_LIMIT && sized.length === ctx.args.limit
            ? `; --limit (up to ${MAX_LIMIT}) shows more`
            : '';
        notes.push(`${formatCount(matching)} tables and materialized views in all, largest first${more}`);
      }
      if (lockedCount > 0) {
        notes.push(
          skippedNote(
            locked.map((r) => r.relation),
            lockedCount,
            ['relation', 'relations'],
          ),
        );
      }

      return {
        headline:
          matching === 0
            ? `no tables or materialized views${where === '' ? ' outside the system schemas' : where}` +
              (lockedCount > 0 ? ' that are not locked by DDL' : '')
            : `${matching === 1 ? '1 table or materialized view' : `${formatCount(matching)} tables and materialized views`}` +
              `${where}: ${formatBytes(Number(sized[0]?.all_bytes ?? 0))} in all`,
        columns: TABLE_SIZE_COLUMNS,
        rows,
        // The row cap, not --limit, cut the list short.
        truncated: shown < ctx.args.limit && matching > shown,
        notes,
        data: {
          schema,
          relations: matching,
          totalBytes: Number(sized[0]?.all_bytes ?? 0),
          skippedLocked: locked.map((r) => r.relation),
        },
      };
    });
  },
});
