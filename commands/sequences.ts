// `/db sequences <target>`: sequences close to running out, measured against the columns they feed.

import { z } from 'zod';
import { intArg } from '../src/core/args.js';
import { UserError } from '../src/core/errors.js';
import { defineOperation } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';
import { quoteIdent } from '../src/engine/relations.js';

/** pg_sequence and pg_sequence_last_value() (what the pg_sequences view reads) arrived in PostgreSQL 10. */
const SEQUENCE_CATALOG_SINCE = 100_000;
/** Unreadable sequences still listed by name (the rest are counted). */
const UNREADABLE_LISTED = 20;
/** Sequences not called since creation or RESTART whose position is read from the sequence itself. */
const UNCALLED_READ = 100;

export const WARN_PERCENT = 75;
export const FAIL_PERCENT = 90;

/*
 * Which columns a sequence feeds: serial and OWNED BY sequences ('a') and identity sequences ('i') depend
 * on their column; a column whose default calls nextval() has a pg_attrdef that depends on the sequence.
 * A domain counts as its base type. A sequence feeding several columns is bounded by the narrowest one.
 *
 * used % = values handed out / values available between start and bound, so it works for descending
 * sequences too: ((last - start) / increment + 1) / ((bound - start) / increment + 1). last_value is read
 * only where the bot role may (SELECT or USAGE), and never for an unlogged sequence on a standby (reading it
 * there is an error). pg_sequence_last_value() is NULL for a sequence not called since it was created,
 * RESTARTed or setval(..., false): its position comes from the sequence itself ($2 / $3: oids and the last
 * value handed out, i.e. the next value minus the increment), else it counts as unused.
 * Sequence values (start, increment, last value, remaining) are bigint quantities that pass 2^53: they come
 * back as exact decimal text, for every sequence, so each of those columns has one type in --json.
 */
const SEQUENCES_SQL = `
WITH sequences AS (
  SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS sequence, n.nspname AS schema, c.relname AS name,
         format_type(s.seqtypid, NULL) AS sequence_type,
         s.seqstart::numeric AS start_value, s.seqincrement::numeric AS increment,
         s.seqmin::numeric AS min_value, s.seqmax::numeric AS max_value, s.seqcycle AS cycle,
         CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'SELECT,USAGE') END AS readable,
         c.relpersistence = 'u' AND pg_is_in_recovery() AS unlogged_on_standby
  FROM pg_sequence s
  JOIN pg_class c ON c.oid = s.seqrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'S' AND NOT pg_is_other_temp_schema(n.oid)
),
feeds AS (
  SELECT d.objid AS sequence_oid, d.refobjid AS table_oid, d.refobjsubid::int2 AS attnum
  FROM pg_depend d
  WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
    AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
  UNION
  SELECT d.refobjid, ad.adrelid, ad.adnum
  FROM pg_depend d
  JOIN pg_attrdef ad ON ad.oid = d.objid
  WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
),
fed_columns AS (
  SELECT f.sequence_oid,
         format('%I.%I.%I', n.nspname, c.relname, a.attname) AS column_name,
         format_type(a.atttypid, a.atttypmod) AS column_type,
         CASE COALESCE(NULLIF(t.typbasetype, 0), a.atttypid)
           WHEN 'int2'::regtype THEN 32767::numeric
           WHEN 'int4'::regtype THEN 2147483647::numeric
           WHEN 'int8'::regtype THEN 9223372036854775807::numeric
         END AS type_max,
         CASE COALESCE(NULLIF(t.typbasetype, 0), a.atttypid)
           WHEN 'int2'::regtype THEN -32768::numeric
           WHEN 'int4'::regtype THEN -2147483648::numeric
           WHEN 'int8'::regtype THEN -9223372036854775808::numeric
         END AS type_min
  FROM feeds f
  JOIN sequences s ON s.oid = f.sequence_oid
  JOIN pg_class c ON c.oid = f.table_oid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = f.table_oid AND a.attnum = f.attnum AND NOT a.attisdropped
  JOIN pg_type t ON t.oid = a.atttypid
),
fed AS (
  SELECT sequence_oid,
         string_agg(column_name, ', ' ORDER BY column_name) AS columns,
         string_agg(DISTINCT column_type, ', ') AS column_types,
         min(type_max) AS column_max, max(type_min) AS column_min
  FROM fed_columns
  GROUP BY sequence_oid
),
current_values AS (
  SELECT s.*, f.columns, f.column_types,
         CASE WHEN s.increment > 0 THEN s.max_value ELSE s.min_value END AS sequence_bound,
         CASE WHEN s.increment > 0 THEN f.column_max ELSE f.column_min END AS column_bound,
         CASE WHEN s.readable AND NOT s.unlogged_on_standby
              THEN pg_sequence_last_value(s.oid::regclass)::numeric END AS last_value,
         u.last_value AS uncalled_position
  FROM sequences s
  LEFT JOIN fed f ON f.sequence_oid = s.oid
  LEFT JOIN unnest($2::oid[], $3::numeric[]) AS u(oid, last_value) ON u.oid = s.oid
),
measured AS (
  SELECT r.*,
         CASE WHEN r.increment > 0 THEN least(r.sequence_bound, COALESCE(r.column_bound, r.sequence_bound))
              ELSE greatest(r.sequence_bound, COALESCE(r.column_bound, r.sequence_bound)) END AS bound,
         COALESCE(floor((COALESCE(r.last_value, r.uncalled_position) - r.start_value) / r.increment) + 1, 0)
           AS used
  FROM current_values r
),
judged AS (
  SELECT m.*,
         CASE WHEN m.column_bound IS NOT NULL THEN
           round(100 * m.used / greatest(floor((m.column_bound - m.start_value) / m.increment) + 1, 1), 3)
         END AS column_percent,
         round(100 * m.used / greatest(floor((m.sequence_bound - m.start_value) / m.increment) + 1, 1), 3)
           AS sequence_percent,
         greatest(floor((m.bound - COALESCE(m.last_value, m.uncalled_position, m.start_value - m.increment))
                        / m.increment), 0) AS remaining
  FROM measured m
),
results AS (
  SELECT j.sequence, j.schema, j.name, j.sequence_type, j.columns, j.column_types,
         j.start_value::text AS start_value, j.increment::text AS increment, j.cycle,
         j.readable AND NOT j.unlogged_on_standby AS readable,
         j.unlogged_on_standby, j.last_value::text AS last_value, j.column_percent, j.sequence_percent,
         greatest(COALESCE(j.column_percent, 0), j.sequence_percent) AS used_percent,
         CASE WHEN j.readable AND NOT j.unlogged_on_standby THEN j.remaining::text END AS remaining
  FROM judged j
)
(SELECT r.*, count(*) OVER () AS matching
 FROM results r
 WHERE r.readable
 ORDER BY r.used_percent DESC, r.sequence
 LIMIT $1)
UNION ALL
(SELECT r.*, count(*) OVER ()
 FROM results r
 WHERE NOT r.readable
 ORDER BY r.sequence
 LIMIT ${UNREADABLE_LISTED})
`;

const CONTEXT_SQL = 'SELECT current_database() AS database, current_user AS role';

/** Readable sequences for which pg_sequence_last_value() cannot say where they are. */
const UNCALLED_SQL = `
SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, s.seqincrement AS increment
FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S'
  AND NOT pg_is_other_temp_schema(n.oid)
  -- CASE keeps the sequence functions away from rows the planner may test before the join
  -- reading the sequence itself also needs USAGE on its schema
  AND CASE WHEN c.relkind = 'S' AND has_sequence_privilege(c.oid, 'SELECT') AND has_schema_privilege(n.oid, 'USAGE')
                AND NOT (c.relpersistence = 'u' AND pg_is_in_recovery())
           THEN pg_sequence_last_value(c.oid::regclass) IS NULL
           ELSE false END
ORDER BY c.oid
LIMIT ${UNCALLED_READ}
`;

interface UncalledRow {
  oid: number;
  schema: string;
  name: string;
  increment: number | string;
}

/**
 * One statement reading last_value and is_called from each sequence: the names come from the catalog and
 * are quoted; `i` is our own loop index.
 */
function sequenceStateSql(sequences: readonly UncalledRow[]): string {
  return sequences
    .map(
      (s, i) =>
        `SELECT ${i} AS i, last_value::text AS last_value, is_called ` +
        `FROM ${quoteIdent(s.schema)}.${quoteIdent(s.name)}`,
    )
    .join(' UNION ALL ');
}

interface SequenceStateRow {
  i: number;
  last_value: string;
  is_called: boolean;
}

/** The last value handed out, as exact decimal text: the next value minus the increment when not called. */
function positionOf(state: SequenceStateRow, increment: number | string): string {
  const last = BigInt(state.last_value);
  return (state.is_called ? last : last - BigInt(increment)).toString();
}

interface SequenceRow {
  sequence: string;
  schema: string;
  name: string;
  sequence_type: string;
  columns: string | null;
  column_types: string | null;
  start_value: string;
  increment: string;
  cycle: boolean;
  readable: boolean;
  unlogged_on_standby: boolean;
  last_value: string | null;
  column_percent: number | null;
  sequence_percent: number;
  used_percent: number;
  remaining: string | null;
  matching: number;
}

export type SequenceLevel = 'ok' | 'warn' | 'fail';

export function sequenceLevel(usedPercent: number): SequenceLevel {
  if (usedPercent >= FAIL_PERCENT) return 'fail';
  if (usedPercent >= WARN_PERCENT) return 'warn';
  return 'ok';
}

const COLUMNS: Column[] = [
  { key: 'sequence', label: 'sequence', kind: 'text' },
  { key: 'columns', label: 'feeds column', kind: 'text' },
  { key: 'column_type', label: 'column type', kind: 'text' },
  { key: 'last_value', label: 'last value', kind: 'count' },
  { key: 'column_percent', label: '% of column', kind: 'percent' },
  { key: 'sequence_percent', label: '% of seq max', kind: 'percent' },
  { key: 'remaining', label: 'remaining', kind: 'count' },
  { key: 'cycle', label: 'cycle', kind: 'bool' },
  { key: 'level', label: 'level', kind: 'text' },
];

function grantFix(unreadable: readonly SequenceRow[], role: string): string {
  const names = unreadable
    .filter((r) => !r.unlogged_on_standby)
    .map((r) => `${quoteIdent(r.schema)}.${quoteIdent(r.name)}`);
  const shown = names.slice(0, 5).join(', ');
  const schemas = [...new Set(unreadable.map((r) => quoteIdent(r.schema)))];
  return (
    `GRANT SELECT ON SEQUENCE ${shown}${names.length > 5 ? ', …' : ''} TO ${quoteIdent(role)}` +
    ` (or GRANT SELECT ON ALL SEQUENCES IN SCHEMA ${schemas.slice(0, 3).join(', ')} TO ${quoteIdent(role)})`
  );
}

export default defineOperation({
  name: 'sequences',
  summary: 'Sequences near overflow, measured against the column type they feed and their own max',
  usage: 'sequences <target> [--limit 20]',
  description:
    'For every sequence of the target database: the columns it feeds (serial, identity or a nextval() ' +
    'default), how much of the range is used against the narrowest column type (smallint, integer, bigint) ' +
    `and against the sequence's own max_value, values remaining, and whether it cycles. Level warn from ` +
    `${WARN_PERCENT}%, fail from ${FAIL_PERCENT}%. Sequences the bot role may not read are listed with the GRANT that fixes it.`,
  args: z.object({ limit: intArg({ min: 1, max: 100, default: 20 }) }),
  risk: 'read',
  async run(ctx) {
    const version = await ctx.db.serverVersion();
    if (version < SEQUENCE_CATALOG_SINCE) {
      throw new UserError(
        'query_failed',
        `sequences needs PostgreSQL 10 or later (pg_sequence); ${ctx.target.name} runs ${Math.floor(version / 10000)}`,
      );
    }
    return await ctx.db.read(async (session) => {
      const [context] = await session.query<{ database: string; role: string }>(CONTEXT_SQL);
      if (!context) throw new Error('sequences: no row from current_database()');
      const uncalled = await session.query<UncalledRow>(UNCALLED_SQL);
      const states =
        uncalled.length > 0 ? await session.query<SequenceStateRow>(sequenceStateSql(uncalled)) : [];
      const positions = states.flatMap((state) => {
        const sequence = uncalled[state.i];
        return sequence ? [{ oid: sequence.oid, position: positionOf(state, sequence.increment) }] : [];
      });
      const { rows: found } = await session.cursor<SequenceRow>(SEQUENCES_SQL, [
        ctx.args.limit,
        positions.map((p) => p.oid),
        positions.map((p) => p.position),
      ]);
      const readable = found.filter((r) => r.readable);
      const unreadable = found.filter((r) => !r.readable);

      const rows: Row[] = found.map((r) => ({
        sequence: r.sequence,
        sequence_type: r.sequence_type,
        columns: r.columns,
        column_type: r.column_types,
        last_value: r.last_value,
        start_value: r.start_value,
        increment: r.increment,
        column_percent: r.readable ? r.column_percent : null,
        sequence_percent: r.readable ? r.sequence_percent : null,
        used_percent: r.readable ? r.used_percent : null,
        remaining: r.remaining,
        cycle: r.cycle,
        level: r.readable
          ? sequenceLevel(r.used_percent)
          : r.unlogged_on_standby
            ? 'unlogged: not on a standby'
            : 'no privilege',
      }));

      const readableCount = readable[0]?.matching ?? 0;
      const unreadableCount = unreadable[0]?.matching ?? 0;
      const failing = readable.filter((r) => sequenceLevel(r.used_percent) === 'fail');
      const warning = readable.filter((r) => sequenceLevel(r.used_percent) === 'warn');
      const top = readable[0];

      let headline: string;
      if (readableCount + unreadableCount === 0) headline = `${context.database}: no sequences`;
      else if (failing.length > 0) {
        headline = `${formatCount(failing.length)} sequence${failing.length === 1 ? '' : 's'} over ${FAIL_PERCENT}% used — most: ${top?.sequence} at ${top?.used_percent.toFixed(1)}%`;
      } else if (warning.length > 0) {
        headline = `${formatCount(warning.length)} sequence${warning.length === 1 ? '' : 's'} over ${WARN_PERCENT}% used — most: ${top?.sequence} at ${top?.used_percent.toFixed(1)}%`;
      } else if (top) {
        headline = `no sequence near overflow; most used: ${top.sequence} at ${top.used_percent.toFixed(1)}%`;
      } else
        headline = `${context.database}: none of ${formatCount(unreadableCount)} sequences is readable by the bot role`;
      if (unreadableCount > 0 && readableCount > 0)
        headline += ` (${formatCount(unreadableCount)} not readable)`;

      const notes: string[] = [];
      if (readableCount > readable.length) {
        notes.push(
          `showing the ${formatCount(readable.length)} most used of ${formatCount(readableCount)} sequences` +
            (ctx.args.limit < 100 ? '; --limit (up to 100) shows more' : ''),
        );
      }
      const cycling = readable.filter((r) => r.cycle && sequenceLevel(r.used_percent) !== 'ok');
      if (cycling.length > 0) {
        notes.push(
          `${cycling.map((r) => r.sequence).join(', ')} cycle: at the end they restart from the start value ` +
            'instead of failing, which gives duplicate keys if the column is unique',
        );
      }
      const noPrivilege = unreadable.filter((r) => !r.unlogged_on_standby);
      if (noPrivilege.length > 0) {
        notes.push(
          `the bot role cannot read ${unreadableCount === noPrivilege.length ? unreadableCount : noPrivilege.length} ` +
            `sequence${noPrivilege.length === 1 ? '' : 's'} (needs SELECT or USAGE on them): ${grantFix(noPrivilege, context.role)}`,
        );
      }
      if (unreadable.some((r) => r.unlogged_on_standby)) {
        notes.push('unlogged sequences cannot be read on a standby; ask the primary');
      }
      if (uncalled.length >= UNCALLED_READ) {
        notes.push(
          `more than ${UNCALLED_READ} sequences were not called since creation or RESTART; ` +
            'those beyond the first ones read count as unused',
        );
      }
      notes.push(
        '% used = values handed out / values between the start value and the bound (column type or max_value)',
      );

      return {
        headline,
        columns: COLUMNS,
        rows,
        truncated: false,
        notes,
        data: {
          database: context.database,
          sequences: readableCount + unreadableCount,
          unreadable: unreadableCount,
          warnPercent: WARN_PERCENT,
          failPercent: FAIL_PERCENT,
        },
      };
    });
  },
});
