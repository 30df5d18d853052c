// `/db tables <target> [schema] [--search pattern] [--page n]`: psql's `\dt` in chat, with sizes and owners.
import { z } from 'zod';
import { intArg, textArg } from '../src/core/args.js';
import { UserError } from '../src/core/errors.js';
import { defineOperation } from '../src/core/operation.js';
import { formatBytes, formatCount } from '../src/core/render.js';
import { closest } from '../src/core/suggest.js';
import { DDL_LOCKED_CTE, tableDdlLocked, userSchema } from './lib/relation-sizes.js';
import { columns, TEXT_WIDTH, textResult } from './lib/text-lines.js';

/**
 * One page of tables, ordered like `\dt` (schema, name). $1 = schema or null (every schema people made),
 * $2 = LIKE pattern on the table name or null, $3 = page size, $4 = offset. Only the page's tables are
 * sized, and a table locked by DDL (a migration) is not sized at all: its size would wait for the lock.
 */
export const TABLES_SQL = `
WITH ${DDL_LOCKED_CTE},
listed AS (
  SELECT c.oid, c.reltoastrelid, n.nspname AS schema, c.relname AS name,
         format('%I.%I', n.nspname, c.relname) AS qualified,
         CASE c.relkind WHEN 'p' THEN 'partitioned' WHEN 'f' THEN 'foreign' ELSE 'table' END AS kind,
         pg_get_userbyid(c.relowner) AS owner,
         CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END AS rows,
         c.relispartition AS is_partition,
         count(*) OVER () AS matching
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'f')
    AND ($1::text IS NULL AND ${userSchema('n')} OR n.nspname = $1::text)
    AND ($2::text IS NULL OR c.relname ILIKE $2::text)
  ORDER BY n.nspname, c.relname
  LIMIT $3 OFFSET $4
),
-- A partitioned table is the sum of its partitions: locked when any of them is.
page AS (
  SELECT l.*,
         EXISTS (SELECT 1 FROM pg_partition_tree(l.oid) t JOIN pg_class pc ON pc.oid = t.relid
                 WHERE ${tableDdlLocked('pc')}) OR ${tableDdlLocked('l')} AS locked
  FROM listed l
)
SELECT p.schema, p.name, p.qualified, p.kind, p.owner, p.rows, p.is_partition, p.matching, p.locked,
       CASE WHEN p.locked OR p.kind = 'foreign' THEN NULL
            WHEN p.kind = 'partitioned' THEN (SELECT COALESCE(sum(pg_total_relation_size(t.relid)), 0)::bigint
                                              FROM pg_partition_tree(p.oid) t WHERE t.isleaf)
            ELSE pg_total_relation_size(p.oid) END AS total_bytes
FROM page p
ORDER BY p.schema, p.name`;

/** Every schema, for the did-you-mean of an unknown one (system schemas included: they may be asked for). */
const SCHEMAS_SQL = `SELECT nspname AS name FROM pg_namespace ORDER BY 1 LIMIT 5000`;

interface TableRow {
  schema: string;
  name: string;
  qualified: string;
  kind: string;
  owner: string;
  rows: number | null;
  total_bytes: number | null;
  locked: boolean;
  is_partition: boolean;
  matching: number;
}

/**
 * A `--search` word as a LIKE pattern: `*` and `?` are wildcards; without any, the word matches anywhere
 * in the name. LIKE's own `%`, `_` and `\\` match themselves.
 */
export function searchPattern(search: string): string {
  const escaped = search.replace(/[\\%_]/g, (ch) => `\\${ch}`);
  const pattern = escaped.replace(/\*/g, '%').replace(/\?/g, '_');
  return /[*?]/.test(search) ? pattern : `%${pattern}%`;
}

async function resolveSchema(
  session: { query: <T extends object>(sql: string) => Promise<T[]> },
  typed: string,
) {
  const schemas = (await session.query<{ name: string }>(SCHEMAS_SQL)).map((s) => s.name);
  if (schemas.includes(typed)) return typed;
  const folded = typed.toLowerCase();
  if (schemas.includes(folded)) return folded;
  const guesses = closest(typed, schemas);
  throw new UserError(
    'invalid_argument',
    `no schema matching ${typed}` +
      (guesses.length > 0 ? ` — did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?` : ''),
  );
}

const HEADER = ['table', 'owner', 'rows (est.)', 'size'];

function tableLines(rows: readonly TableRow[]): string[] {
  const nameWidth = Math.min(36, Math.max(HEADER[0]?.length ?? 0, ...rows.map((r) => r.qualified.length)));
  const ownerWidth = Math.min(16, Math.max(5, ...rows.map((r) => r.owner.length)));
  const cells = rows.map((r) => [
    r.qualified + (r.kind === 'table' ? '' : ` (${r.kind})`),
    r.owner,
    r.rows === null ? 'never analyzed' : formatCount(r.rows),
    r.total_bytes === null ? (r.locked ? 'locked' : '') : formatBytes(Number(r.total_bytes)),
  ]);
  const rowsWidth = Math.max(11, ...cells.map((c) => (c[2] ?? '').length));
  const widths = [nameWidth, ownerWidth, rowsWidth];
  const lines: string[] = [];
  for (const cell of [HEADER, ...cells]) {
    const [name = '', owner = '', count = '', size = ''] = cell;
    const rest = [owner.padEnd(ownerWidth), count.padStart(rowsWidth), size.padStart(9)];
    // A name longer than its column gets a line of its own; the numbers follow, aligned, below it.
    if (name.length > nameWidth) {
      lines.push(...columns([name], [], 2));
      lines.push(`${' '.repeat(nameWidth)}  ${rest.join('  ')}`.trimEnd().slice(0, TEXT_WIDTH));
    } else lines.push(...columns([name, rest.join('  ')], widths));
  }
  return lines;
}

export default defineOperation({
  name: 'tables',
  summary: 'Tables with owner, row estimate and size, like psql’s \\dt (paged)',
  usage: 'tables <target> [schema] [--search pattern] [--page 1]',
  description:
    'Lists tables, partitioned and foreign tables ordered by schema and name, with their owner, the ' +
    'planner’s row estimate and their size on disk (pg_total_relation_size: table, indexes and TOAST; for a ' +
    'partitioned table, the sum of its partitions; a ' +
    'table locked by DDL is marked instead of sized, so the listing never waits behind a migration). System schemas are left out ' +
    'unless named (`tables staging pg_catalog`). --search matches table names case-insensitively: a word ' +
    'matches anywhere, `*` and `?` are wildcards. Lists longer than the row cap come in pages (--page 2 …). ' +
    'Names are shown as SQL reads them, so `describe` takes them as they are.',
  positionals: ['schema'],
  args: z.object({
    schema: textArg({ maxLength: 63, hint: 'a schema name', example: 'public' }).optional(),
    search: textArg({ maxLength: 63, hint: 'a table name or pattern', example: 'user*' }).optional(),
    page: intArg({ min: 1, max: 100_000, default: 1 }),
  }),
  risk: 'read',
  async run(ctx) {
    const pageSize = ctx.limits.row_cap;
    return await ctx.db.read(async (session) => {
      const schema = ctx.args.schema === undefined ? null : await resolveSchema(session, ctx.args.schema);
      const pattern = ctx.args.search === undefined ? null : searchPattern(ctx.args.search);
      const offset = (ctx.args.page - 1) * pageSize;
      const found = await session.query<TableRow>(TABLES_SQL, [schema, pattern, pageSize, offset]);
      let matching = Number(found[0]?.matching ?? 0);
      if (found.length === 0 && offset > 0) {
        const [first] = await session.query<TableRow>(TABLES_SQL, [schema, pattern, 1, 0]);
        matching = Number(first?.matching ?? 0);
      }
      const pages = Math.max(1, Math.ceil(matching / pageSize));
      const where =
        (schema === null ? ' outside the system schemas' : ` in schema ${schema}`) +
        (ctx.args.search === undefined ? '' : ` matching ${ctx.args.search}`);
      const notes: string[] = [];
      if (pages > 1) {
        notes.push(
          `page ${ctx.args.page} of ${pages} (${pageSize} a page)` +
            (ctx.args.page < pages ? `; --page ${ctx.args.page + 1} shows the next` : ''),
        );
      }
      if (found.length === 0 && offset > 0 && matching > 0) {
        notes.push(`there are only ${pages} page${pages === 1 ? '' : 's'}`);
      }
      if (found.some((r) => r.locked)) {
        notes.push('locked: a DDL lock (a migration?) is held or awaited on it, so it was not sized');
      }
      if (found.some((r) => r.rows === null)) {
        notes.push('never analyzed: no row estimate yet (analyze <table> makes one)');
      }
      return textResult(found.length === 0 ? [] : tableLines(found), {
        headline:
          matching === 0
            ? `no tables${where}`
            : `${formatCount(matching)} table${matching === 1 ? '' : 's'}${where}`,
        truncated: ctx.args.page < pages,
        notes,
        data: {
          schema,
          search: ctx.args.search ?? null,
          page: ctx.args.page,
          pages,
          matching,
          tables: found.map((r) => ({
            schema: r.schema,
            name: r.name,
            kind: r.kind,
            owner: r.owner,
            rows: r.rows === null ? null : Number(r.rows),
            totalBytes: r.total_bytes === null ? null : Number(r.total_bytes),
            lockedByDdl: r.locked,
            partition: r.is_partition,
          })),
        },
      });
    });
  },
});
