// `/db export <target> <table> [--where col=value,…] [--columns a,b] [--limit n] [--order col]`: rows as a CSV file.
import { z } from 'zod';
import { identifierArg, intArg, quoteInput } from '../src/core/args.js';
import { csvLine } from '../src/core/csv.js';
import { UserError } from '../src/core/errors.js';
import { defineOperation } from '../src/core/operation.js';
import { formatBytes, formatCount } from '../src/core/render.js';
import { closest } from '../src/core/suggest.js';
import type { Column, Row } from '../src/core/types.js';
import { quoteIdent, type Relation, resolveRelation } from '../src/engine/relations.js';
import type { Session } from '../src/engine/types.js';
import { MASK, SensitiveColumns, seesSensitive } from '../src/sql/sensitive-columns.js';
import { hidingSensitiveErrors } from '../src/sql/sensitive-errors.js';
import { requireOwnData } from './lib/own-data.js';

/** Rows exported without --limit, and the most --limit allows. */
const DEFAULT_ROWS = 1000;
const MAX_ROWS = 10_000;
/** The CSV never grows past this, whatever the rows hold (chat uploads and memory stay bounded). */
export const EXPORT_BYTE_BUDGET = 5 * 1024 * 1024;
/** Rows and columns shown in the chat table beside the attachment. */
const SHOWN_ROWS = 20;
const SHOWN_COLUMNS = 8;
/** A filter compares text (`col::text = $1`), which scans the table: more time than a catalog lookup. */
const EXPORT_STATEMENT_SECONDS = 30;
const MAX_CONDITIONS = 20;

const USAGE =
  'export <target> <table> [--where "col=value,col2=value2"] [--columns a,b] [--limit 1000] [--order col|-col]';

/** Columns of the relation as the bot role sees them: user columns only (no system or dropped ones). */
const COLUMNS_SQL = `
SELECT a.attname AS name,
       has_column_privilege(a.attrelid, a.attnum, 'SELECT') AS readable
FROM pg_attribute a
WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`;

const PRIMARY_KEY_SQL = `
SELECT a.attname AS name
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1::oid AND i.indisprimary
ORDER BY k.ord`;

/** Whether row-level security hides rows from the bot role (owners bypass it unless FORCEd). */
const ROW_SECURITY_SQL = `
SELECT c.relrowsecurity
       AND NOT COALESCE((SELECT r.rolsuper OR r.rolbypassrls FROM pg_roles r WHERE r.rolname = current_user), false)
       AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE')) AS filtered,
       current_user AS role
FROM pg_class c
WHERE c.oid = $1::oid`;

interface ColumnRow {
  name: string;
  readable: boolean;
}

interface Condition {
  column: string;
  value: string;
}

const ORDER = /^-?[^\s,]{1,63}$/;

const args = z.object({
  table: identifierArg(),
  where: z.string().min(1).max(4000).optional(),
  columns: z.string().min(1).max(4000).optional(),
  limit: intArg({ min: 1, max: MAX_ROWS, default: DEFAULT_ROWS }),
  order: z.string().regex(ORDER, 'expected a column name, or -name for descending order').optional(),
});

function invalid(message: string): UserError {
  return new UserError('invalid_argument', `${message}\nusage: /db ${USAGE}`);
}

/**
 * `--where "a=1,b=x y"` → [a = "1", b = "x y"]. The grammar takes an option once, so several conditions
 * share one value: a comma starts a new condition only when a column name and `=` follow it, so values
 * may hold commas ("name=Smith, John") and `=` ("note=a=b"). Surrounding spaces are ignored.
 */
export function parseWhere(text: string): Condition[] {
  const parts = text.split(/,(?=\s*[A-Za-z_][A-Za-z0-9_$]*\s*=)/);
  if (parts.length > MAX_CONDITIONS) throw invalid(`--where: at most ${MAX_CONDITIONS} conditions`);
  return parts.map((part) => {
    const eq = part.indexOf('=');
    const column = eq < 0 ? '' : part.slice(0, eq).trim();
    if (column === '') {
      throw invalid(`--where: expected col=value (several as "a=1,b=2"), got ${quoteInput(part.trim())}`);
    }
    return { column, value: part.slice(eq + 1).trim() };
  });
}

/** Matches a typed column name against the catalog's: exactly, else ignoring case when that is unambiguous. */
function findColumn(
  typed: string,
  columns: readonly ColumnRow[],
  relation: string,
  option: string,
): ColumnRow {
  const exact = columns.find((c) => c.name === typed);
  if (exact) return exact;
  const folded = columns.filter((c) => c.name.toLowerCase() === typed.toLowerCase());
  if (folded.length === 1 && folded[0]) return folded[0];
  const guesses = closest(
    typed,
    columns.map((c) => c.name),
  );
  throw invalid(
    `${option}: ${relation} has no column ${quoteInput(typed)}` +
      (guesses.length > 0 ? ` — did you mean ${guesses.map((g) => `\`${g}\``).join(' or ')}?` : ''),
  );
}

function requireReadable(column: ColumnRow, relation: string, role: string): void {
  if (column.readable) return;
  throw new UserError(
    'permission',
    `the bot role ${role} may not read column ${column.name} of ${relation}: ` +
      `GRANT SELECT (${quoteIdent(column.name)}) ON ${relation} TO ${quoteIdent(role)} (or SELECT on the whole table)`,
  );
}

interface Query {
  sql: string;
  params: unknown[];
}

/**
 * The rows in order, at most limit + 1 (one more says --limit cut it). A running total of the text
 * bytes stops the transfer at the byte budget: rows past it are not sent, except the first one, with
 * its values blanked, so the reader knows the budget (not the data) ended the export.
 */
function exportQuery(
  relation: Relation,
  columns: readonly string[],
  conditions: readonly Condition[],
  order: { column: string; descending: boolean }[],
  limit: number,
  masked: ReadonlySet<string>,
): Query {
  // A masked column's values never leave the server: only whether each is NULL.
  const mask = `$${conditions.length + 3}::text`;
  const select = columns
    .map((name, i) =>
      masked.has(name)
        ? `CASE WHEN ${quoteIdent(name)} IS NULL THEN NULL ELSE ${mask} END AS c${i}`
        : `${quoteIdent(name)}::text AS c${i}`,
    )
    .join(', ');
  const where = conditions.map((c, i) => `${quoteIdent(c.column)}::text = $${i + 3}`);
  const orderBy = order.map((o) => `${quoteIdent(o.column)} ${o.descending ? 'DESC' : 'ASC'}`);
  const inner =
    `SELECT ${select} FROM ${relation.qualified}` +
    (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '') +
    (orderBy.length > 0 ? ` ORDER BY ${orderBy.join(', ')}` : '') +
    ' LIMIT $1';
  const bytes = `${columns.map((_, i) => `COALESCE(octet_length(i.c${i}), 0)`).join(' + ')} + ${columns.length}`;
  const blanked = columns.map((_, i) => `CASE WHEN r.running <= $2 THEN r.c${i} END AS c${i}`).join(', ');
  const sql = `
SELECT ${blanked}, r.running <= $2 AS fits
FROM (
  SELECT q.*, sum(q.row_bytes) OVER win AS running, row_number() OVER win AS n
  FROM (SELECT i.*, ${bytes} AS row_bytes FROM (${inner}) i) q
  WINDOW win AS (ROWS UNBOUNDED PRECEDING)
) r
WHERE r.running - r.row_bytes <= $2
ORDER BY r.n`;
  const values = conditions.map((c) => c.value);
  return { sql, params: [limit + 1, EXPORT_BYTE_BUDGET, ...values, ...(masked.size > 0 ? [MASK] : [])] };
}

function fileName(relation: Relation, now: Date): string {
  const base = relation.schema === 'public' ? relation.name : `${relation.schema}.${relation.name}`;
  return `${base.replace(/[^A-Za-z0-9._-]/g, '_')}-${now.toISOString().slice(0, 10)}.csv`;
}

interface Prepared {
  relation: Relation;
  columns: string[];
  /** Columns exported masked: sensitive, and the person may not see them. */
  masked: Set<string>;
  conditions: Condition[];
  order: { column: string; descending: boolean }[];
  notes: string[];
}

function refuseSensitive(option: string, column: string): never {
  throw new UserError(
    'denied',
    `${option}: column ${column} is sensitive; it is exported only masked to people without a role ` +
      'allowed to see it, and filtering or ordering by it would reveal its values; nothing was exported',
  );
}

async function prepare(
  session: Session,
  input: {
    table: string;
    where?: string | undefined;
    columns?: string | undefined;
    order?: string | undefined;
  },
  /** The target's sensitive column patterns when the person may not see them, else none. */
  patterns: readonly string[],
): Promise<Prepared> {
  const relation = await resolveRelation(session, input.table, ['r', 'p', 'v', 'm'], '<table>');
  await requireOwnData(session, relation);
  const display = `${relation.schema}.${relation.name}`;
  // A view's columns count too: sensitive when they show a sensitive column of what the view reads.
  const found =
    patterns.length > 0 ? await new SensitiveColumns(session, patterns).relation(relation.oid) : undefined;
  const sensitive = new Set(found?.columns.filter((c) => found.sensitive.has(c.attnum)).map((c) => c.name));
  const [security] = await session.query<{ filtered: boolean; role: string }>(ROW_SECURITY_SQL, [
    relation.oid,
  ]);
  const role = security?.role ?? 'the bot role';
  const all = await session.query<ColumnRow>(COLUMNS_SQL, [relation.oid]);
  if (all.length === 0) throw invalid(`${display} has no columns to export`);
  const notes: string[] = [];

  let columns: ColumnRow[];
  if (input.columns !== undefined) {
    const typed = input.columns
      .split(',')
      .map((c) => c.trim())
      .filter((c) => c !== '');
    if (typed.length === 0) throw invalid('--columns: name at least one column, e.g. `--columns id,email`');
    columns = typed.map((t) => findColumn(t, all, display, '--columns'));
    for (const c of columns) requireReadable(c, display, role);
  } else {
    columns = all.filter((c) => c.readable);
    const hidden = all.filter((c) => !c.readable).map((c) => c.name);
    if (columns.length === 0) {
      throw new UserError(
        'permission',
        `the bot role ${role} may not read ${display}: GRANT SELECT ON ${display} TO ${quoteIdent(role)}`,
      );
    }
    if (hidden.length > 0) {
      notes.push(
        `left out ${hidden.length === 1 ? 'column' : 'columns'} ${hidden.join(', ')}: the bot role has no SELECT ` +
          `privilege on ${hidden.length === 1 ? 'it' : 'them'} (GRANT SELECT (…) ON ${display} TO ${quoteIdent(role)})`,
      );
    }
  }

  const conditions = (input.where === undefined ? [] : parseWhere(input.where)).map((c) => {
    const column = findColumn(c.column, all, display, '--where');
    if (sensitive.has(column.name)) refuseSensitive('--where', column.name);
    requireReadable(column, display, role);
    return { column: column.name, value: c.value };
  });

  let order: { column: string; descending: boolean }[] = [];
  if (input.order !== undefined) {
    const descending = input.order.startsWith('-');
    const column = findColumn(descending ? input.order.slice(1) : input.order, all, display, '--order');
    if (sensitive.has(column.name)) refuseSensitive('--order', column.name);
    requireReadable(column, display, role);
    order = [{ column: column.name, descending }];
  } else {
    // By primary key when there is one, so that the same export gives the same rows.
    const key = await session.query<{ name: string }>(PRIMARY_KEY_SQL, [relation.oid]);
    const readable = new Set(all.filter((c) => c.readable).map((c) => c.name));
    if (key.some((k) => sensitive.has(k.name))) {
      // The order of the rows would tell how the hidden values sort.
      notes.push('rows are in no particular order: the primary key is sensitive');
    } else if (key.length > 0 && key.every((k) => readable.has(k.name))) {
      order = key.map((k) => ({ column: k.name, descending: false }));
    }
  }
  if (security?.filtered) {
    notes.push(
      `row-level security applies to ${display}: only the rows the bot role ${role} may see are exported`,
    );
  }
  const names = columns.map((c) => c.name);
  const masked = new Set(names.filter((n) => sensitive.has(n)));
  if (masked.size > 0) notes.push(`masked (sensitive): ${[...masked].join(', ')}`);
  return { relation, columns: names, masked, conditions, order, notes };
}

type Truncation = 'limit' | 'bytes' | undefined;

const exportOperation = defineOperation({
  name: 'export',
  summary: 'Export rows of a table or view as a CSV attachment (capped)',
  usage: USAGE,
  description:
    `Streams up to --limit rows (default ${formatCount(DEFAULT_ROWS)}, at most ${formatCount(MAX_ROWS)}, and ` +
    `never more than ${formatBytes(EXPORT_BYTE_BUDGET)} of CSV) of a table, view or materialized view into a CSV ` +
    'attachment, and shows the first rows. --columns picks columns (checked against the table, with ' +
    'did-you-mean); --where "col=value" keeps rows whose column, as text, equals the value (bound as a ' +
    'parameter, never spliced into SQL); several conditions go in one option, all of which must hold: ' +
    '--where "status=active,role=admin" (a comma followed by name= starts the next one). --order col or ' +
    '-col (descending); by default the primary key. CSV per RFC 4180 with a header row, CRLF line ends, ' +
    'NULL as an empty field and an empty string as "". To guard against formula injection in spreadsheets, ' +
    "a value starting with =, +, -, @, tab or CR gets a leading ' (plain numbers like -42 are left alone). " +
    "Columns the bot role may not read are left out and named. Sensitive columns (the target's " +
    '`sensitive` config, also through views) are exported masked to people without a role allowed to ' +
    "see them, and may not be used in --where or --order. Only the target database's own data is " +
    'exported: system catalogs, views shared by the server (pg_stat_activity, pg_settings, ' +
    'pg_stat_statements…), foreign tables and views that reach them or call opaque functions are refused.',
  positionals: ['table'],
  args,
  risk: 'read',
  // One file, not a list of pages.
  paged: false,

  async run(ctx) {
    const { limit } = ctx.args;
    const timeout = Math.max(ctx.limits.statement_timeout, EXPORT_STATEMENT_SECONDS) * 1000;
    const { prepared, rows } = await ctx.db.read(
      async (session) => {
        const patterns = seesSensitive(ctx.target, ctx.person) ? [] : (ctx.target.sensitive?.columns ?? []);
        const found = await prepare(session, ctx.args, patterns);
        const query = exportQuery(
          found.relation,
          found.columns,
          found.conditions,
          found.order,
          limit,
          found.masked,
        );
        const read = await session.cursor<Record<string, string | boolean | null>>(
          query.sql,
          query.params,
          limit + 1,
        );
        return { prepared: found, rows: read.rows };
      },
      { statementTimeoutMs: timeout },
    );

    const { relation, columns } = prepared;
    const keys = columns.map((_, i) => `c${i}`);
    const lines = [csvLine(columns)];
    let bytes = Buffer.byteLength(lines[0] ?? '');
    let truncation: Truncation;
    const shown: Row[] = [];
    let exported = 0;
    for (const row of rows) {
      if (row.fits !== true) {
        truncation = 'bytes';
        break;
      }
      if (exported === limit) {
        truncation = 'limit';
        break;
      }
      const values = keys.map((k) => {
        const v = row[k];
        return typeof v === 'string' ? v : null;
      });
      const line = csvLine(values);
      const size = Buffer.byteLength(line);
      if (bytes + size > EXPORT_BYTE_BUDGET) {
        truncation = 'bytes';
        break;
      }
      lines.push(line);
      bytes += size;
      exported += 1;
      if (shown.length < Math.min(SHOWN_ROWS, ctx.limits.row_cap)) {
        shown.push(Object.fromEntries(keys.slice(0, SHOWN_COLUMNS).map((k, i) => [k, values[i] ?? null])));
      }
    }

    const display = `${relation.schema}.${relation.name}`;
    const noun = exported === 1 ? 'row' : 'rows';
    const cut =
      truncation === 'limit'
        ? ' (truncated at --limit)'
        : truncation === 'bytes'
          ? ` (truncated at the ${formatBytes(EXPORT_BYTE_BUDGET)} size limit)`
          : '';
    const notes = [...prepared.notes];
    if (truncation === 'limit') {
      notes.push(
        `more rows match: --limit ${formatCount(limit)} stopped the export` +
          (limit < MAX_ROWS ? `; --limit takes up to ${formatCount(MAX_ROWS)}` : '; narrow it with --where'),
      );
    } else if (truncation === 'bytes') {
      notes.push(
        `the CSV reached ${formatBytes(EXPORT_BYTE_BUDGET)} after ${formatCount(exported)} ${noun}: fewer ` +
          '--columns or a narrower --where export the rest',
      );
    }
    if (exported > shown.length)
      notes.push(`the first ${shown.length} rows are shown; the CSV has all ${formatCount(exported)}`);
    if (columns.length > SHOWN_COLUMNS) {
      notes.push(`${SHOWN_COLUMNS} of ${columns.length} columns are shown; the CSV has all of them`);
    }
    const tableColumns: Column[] = columns
      .slice(0, SHOWN_COLUMNS)
      .map((name, i) => ({ key: `c${i}`, label: name, kind: 'text' }));
    const filename = fileName(relation, ctx.now);
    return {
      headline: `exported ${formatCount(exported)} ${noun} of ${display}${cut}`,
      columns: tableColumns,
      rows: shown,
      truncated: truncation !== undefined,
      notes,
      data: {
        relation: display,
        rows: exported,
        columns,
        bytes,
        filename,
        truncatedBy: truncation ?? null,
      },
      attachments: [{ filename, contentType: 'text/csv', content: lines.join('') }],
    };
  },
});

// Errors that could quote a sensitive value (a failing row, a bad cast) are told without it.
export default hidingSensitiveErrors(exportOperation);
