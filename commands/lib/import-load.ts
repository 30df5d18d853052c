// The dry run of an `import` (every rejected row with its CSV line) and the real load through COPY.

import { UserError } from '../../src/core/errors.js';
import { formatCount } from '../../src/core/render.js';
import { serverError } from '../../src/engine/pg-errors.js';
import { quoteIdent } from '../../src/engine/relations.js';
import type { Session } from '../../src/engine/types.js';
import { type CsvFile, visible } from './csv-file.js';
import type { ImportTable, MappedColumn } from './import-table.js';

export interface Rejection {
  /** The line of the CSV where the rejected row starts. */
  line: number;
  column: string | null;
  problem: string;
  sqlstate: string;
}

export interface SequenceCheck {
  column: string;
  sequence: string;
  /** Largest value of the column once the CSV is in (text: bigint). */
  max: string | null;
  /** The value the sequence hands out next (text: bigint). */
  next: string | null;
  /** True when the sequence would hand out an id the table already has. */
  behind: boolean;
}

export interface DryRunOutcome {
  rejections: Rejection[];
  /** True when checking stopped at the cap of reported rejections (more rows may be rejected). */
  stoppedEarly: boolean;
  sequences: SequenceCheck[];
}

/** Rows inserted per statement in the dry run; a failing batch is halved until the bad rows are found. */
const BATCH = 5000;
/**
 * Failures that belong to a row's values, not to the session: data exceptions, constraints, WITH CHECK
 * OPTION, a value too large for an index (54000), a trigger's RAISE.
 */
const ROW_ERROR_CLASSES = ['22', '23', '44', '54', 'P0'];
const STAGE = 'pg_temp.dbops_import_stage';

/** `COPY "s"."t" ("a", "b") FROM STDIN …`: the header row is skipped by COPY, columns in the CSV's order. */
export function copySql(table: ImportTable, mapping: readonly MappedColumn[]): string {
  const columns = mapping.map((m) => quoteIdent(m.column.name)).join(', ');
  return `COPY ${table.relation.qualified} (${columns}) FROM STDIN WITH (FORMAT csv, HEADER true, ENCODING 'UTF8')`;
}

function chunks(bytes: Uint8Array, size = 64 * 1024): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

/** Loads the exact bytes with COPY; the caller's transaction makes it all or nothing. */
export async function copyCsv(
  session: Session,
  table: ImportTable,
  mapping: readonly MappedColumn[],
  bytes: Uint8Array,
): Promise<number> {
  return (await session.copyFrom(copySql(table, mapping), chunks(bytes))).rowCount;
}

/**
 * The CSV line a COPY error is about. COPY's error context names the physical line it was reading (a
 * record's last line when a quoted value spans several); the person needs the line where it starts.
 */
export function copyErrorLine(err: unknown, csv: CsvFile): number | undefined {
  const where = err instanceof Error && 'where' in err && typeof err.where === 'string' ? err.where : '';
  const physical = Number(/COPY [^,]+, line (\d+)/.exec(where)?.[1] ?? 0);
  return physical > 1 ? csv.lines.findLast((start) => start <= physical) : undefined;
}

function isRowError(err: unknown): boolean {
  const code = serverError(err)?.code;
  return code !== undefined && ROW_ERROR_CLASSES.includes(code.slice(0, 2));
}

async function underSavepoint<R>(session: Session, fn: () => Promise<R>): Promise<R> {
  await session.execute('SAVEPOINT dbops_import');
  try {
    const result = await fn();
    await session.execute('RELEASE SAVEPOINT dbops_import');
    return result;
  } catch (err) {
    await session.execute('ROLLBACK TO SAVEPOINT dbops_import');
    await session.execute('RELEASE SAVEPOINT dbops_import');
    throw err;
  }
}

/** Says what was wrong with one row, in words that fit a chat line (values shown, never run). */
function describe(err: unknown, column: string | null): Omit<Rejection, 'line'> {
  const e = serverError(err);
  const code = e?.code ?? '';
  const named = err instanceof Error && 'column' in err && typeof err.column === 'string' ? err.column : null;
  const constraint =
    err instanceof Error && 'constraint' in err && typeof err.constraint === 'string' ? err.constraint : '';
  const detail = e?.detail ? visible(e.detail.replace(/\.$/, ''), 160) : '';
  let problem: string;
  if (code === '23502') problem = 'no value, but the column is NOT NULL';
  else if (code === '23505') problem = detail ? `duplicate: ${detail}` : 'duplicate key';
  else if (code === '23503') problem = detail ? `foreign key: ${detail}` : 'foreign key violated';
  else if (code === '23514') problem = `check constraint ${constraint || '(unnamed)'} fails`;
  else problem = visible(e?.message ?? String(err), 160);
  return { column: named ?? column, problem, sqlstate: code };
}

function insertSql(table: ImportTable, mapping: readonly MappedColumn[]): string {
  const columns = mapping.map((m) => quoteIdent(m.column.name)).join(', ');
  const casts = mapping.map((m, i) => `CAST(s.c${i + 1} AS ${m.column.castType})`).join(', ');
  const overriding = mapping.some((m) => m.column.identity === 'a') ? ' OVERRIDING SYSTEM VALUE' : '';
  return (
    `INSERT INTO ${table.relation.qualified} (${columns})${overriding} ` +
    `SELECT ${casts} FROM ${STAGE} s WHERE s.row_number BETWEEN $1 AND $2 ORDER BY s.row_number`
  );
}

/** For a row that failed on a value: the first column whose text does not convert to its type. */
async function badColumn(
  session: Session,
  mapping: readonly MappedColumn[],
  row: number,
): Promise<string | null> {
  for (const [i, m] of mapping.entries()) {
    try {
      await underSavepoint(session, () =>
        session.query(
          `SELECT CAST(s.c${i + 1} AS ${m.column.castType}) FROM ${STAGE} s WHERE s.row_number = $1`,
          [row],
        ),
      );
    } catch (err) {
      if (!isRowError(err)) throw err;
      return m.column.name;
    }
  }
  return null;
}

/**
 * Inside the caller's transaction (which must be rolled back): stages the CSV with COPY into a temporary
 * table of text columns, then inserts it into the table in batches under savepoints; a failing batch is
 * halved until each rejected row is found, so the good rows still count against unique keys as COPY
 * would see them. Stops after `maxRejections` rejected rows.
 */
export async function dryRun(
  session: Session,
  table: ImportTable,
  mapping: readonly MappedColumn[],
  bytes: Uint8Array,
  csv: CsvFile,
  maxRejections: number,
): Promise<DryRunOutcome> {
  // Deferred foreign keys would otherwise be checked only at a commit that never comes.
  await session.execute('SET CONSTRAINTS ALL IMMEDIATE');
  const stageColumns = mapping.map((_, i) => `c${i + 1} text`).join(', ');
  await session.execute(
    `CREATE TEMPORARY TABLE dbops_import_stage (row_number int8 GENERATED ALWAYS AS IDENTITY, ${stageColumns}) ON COMMIT DROP`,
  );
  const stageList = mapping.map((_, i) => `c${i + 1}`).join(', ');
  let staged: { rowCount: number };
  try {
    staged = await session.copyFrom(
      `COPY ${STAGE} (${stageList}) FROM STDIN WITH (FORMAT csv, HEADER true, ENCODING 'UTF8')`,
      chunks(bytes),
    );
  } catch (err) {
    // Text columns accept any value: what fails here is the file's shape as PostgreSQL reads it
    // (e.g. line endings that change within the file).
    const e = serverError(err);
    if (!e) throw err;
    const line = copyErrorLine(err, csv);
    throw new UserError(
      'invalid_argument',
      `the CSV is malformed${line ? ` at line ${formatCount(line)}` : ''}: ${visible(e.message, 160)}`,
    );
  }
  if (staged.rowCount !== csv.records.length) {
    throw new Error(`COPY read ${staged.rowCount} rows where the CSV parser read ${csv.records.length}`);
  }
  const sql = insertSql(table, mapping);
  const rejections: Rejection[] = [];
  const tryRange = async (first: number, last: number): Promise<void> => {
    if (rejections.length >= maxRejections) return;
    try {
      await underSavepoint(session, () => session.execute(sql, [first, last]));
    } catch (err) {
      if (!isRowError(err)) throw err;
      if (first === last) {
        const code = serverError(err)?.code ?? '';
        const column = code.startsWith('22') ? await badColumn(session, mapping, first) : null;
        rejections.push({ line: csv.lines[first - 1] ?? 0, ...describe(err, column) });
        return;
      }
      const mid = Math.floor((first + last) / 2);
      await tryRange(first, mid);
      await tryRange(mid + 1, last);
    }
  };
  for (let first = 1; first <= csv.records.length; first += BATCH) {
    await tryRange(first, Math.min(first + BATCH - 1, csv.records.length));
    if (rejections.length >= maxRejections) break;
  }
  const sequences = await checkSequences(session, table, mapping);
  return { rejections, stoppedEarly: rejections.length >= maxRejections, sequences };
}

function isInteger(value: string | null): value is string {
  return value !== null && /^-?\d{1,20}$/.test(value);
}

/** For each imported column that owns a sequence: would the sequence hand out an id the table has? */
export async function checkSequences(
  session: Session,
  table: ImportTable,
  mapping: readonly MappedColumn[],
): Promise<SequenceCheck[]> {
  const checks: SequenceCheck[] = [];
  for (const m of mapping) {
    const sequence = m.column.sequence;
    if (!sequence) continue;
    try {
      const [row] = await underSavepoint(session, () =>
        session.query<{ max: string | null; next: string | null; increment: string }>(
          `SELECT (SELECT max(${quoteIdent(m.column.name)})::text FROM ${table.relation.qualified}) AS max,
                  (SELECT CASE WHEN q.is_called THEN q.last_value + 1 ELSE q.last_value END FROM ${sequence} q)::text AS next`,
        ),
      );
      const max = row?.max ?? null;
      const next = row?.next ?? null;
      checks.push({
        column: m.column.name,
        sequence,
        max,
        next,
        behind: isInteger(max) && isInteger(next) && BigInt(max) >= BigInt(next),
      });
    } catch (err) {
      if (!serverError(err)) throw err;
      checks.push({ column: m.column.name, sequence, max: null, next: null, behind: false });
    }
  }
  return checks;
}

/** Moves each owned sequence past the largest imported id (never backwards); returns what was set. */
export async function advanceSequences(
  session: Session,
  table: ImportTable,
  mapping: readonly MappedColumn[],
): Promise<{ sequence: string; column: string; value: string }[]> {
  const set: { sequence: string; column: string; value: string }[] = [];
  for (const check of await checkSequences(session, table, mapping)) {
    if (!check.behind || !isInteger(check.max)) continue;
    await session.query('SELECT setval($1::regclass, $2::int8, true)', [check.sequence, check.max]);
    set.push({ sequence: check.sequence, column: check.column, value: check.max });
  }
  return set;
}

/** The SQL that advances a sequence by hand, as the preview suggests it. */
export function setvalSql(table: ImportTable, check: SequenceCheck): string {
  return (
    `SELECT setval('${check.sequence.replace(/'/g, "''")}',\n` +
    `  (SELECT max(${quoteIdent(check.column)}) FROM ${table.relation.qualified}));`
  );
}
