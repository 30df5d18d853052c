// `/db import <target> <table>` with a CSV attached: a dry run with every rejected line, then one COPY.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { flagArg, identifierArg } from '../src/core/args.js';
import { UserError } from '../src/core/errors.js';
import { defineOperation, type OperationContext } from '../src/core/operation.js';
import { formatBytes, formatCount } from '../src/core/render.js';
import type { Column, InvocationFile, OperationResult, Row } from '../src/core/types.js';
import { serverError } from '../src/engine/pg-errors.js';
import { resolveRelation } from '../src/engine/relations.js';
import {
  type CsvFile,
  DEFAULT_IMPORT_MAX_BYTES,
  DEFAULT_IMPORT_MAX_ROWS,
  readCsv,
  visible,
  wrapLine,
} from './lib/csv-file.js';
import {
  advanceSequences,
  checkSequences,
  copyCsv,
  copyErrorLine,
  type DryRunOutcome,
  dryRun,
  type Rejection,
  setvalSql,
} from './lib/import-load.js';
import {
  type ImportTable,
  loadImportTable,
  type MappedColumn,
  mapHeader,
  requireImportPrivileges,
  tableSignature,
  unmappedNote,
} from './lib/import-table.js';

/** Rejected rows the dry run looks for before it stops, and how many the answer lists. */
const MAX_REJECTIONS = 200;
const LISTED_REJECTIONS = 20;
/** Stored CSVs of requests that never ran are removed after this long. */
const STORED_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

const previewStateSchema = z.object({
  file: z.string().regex(/^[A-Za-z0-9_-]+\.csv$/),
  name: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  rows: z.number().int().min(0),
  table: z.object({ oid: z.number(), schema: z.string(), name: z.string() }),
  columns: z.array(z.string()),
  signature: z.array(z.string()),
});
type ImportState = z.infer<typeof previewStateSchema>;

type ImportArgs = { table: string; advance_sequences: boolean };
type Ctx = OperationContext<ImportArgs>;

const MAPPING_COLUMNS: Column[] = [
  { key: 'csv', label: 'CSV column', kind: 'text' },
  { key: 'column', label: 'table column', kind: 'text' },
  { key: 'type', label: 'type', kind: 'text' },
  { key: 'note', label: 'note', kind: 'text' },
];

const RESULT_COLUMNS: Column[] = [
  { key: 'field', label: 'field', kind: 'text' },
  { key: 'value', label: 'value', kind: 'text' },
];

/** Where a request's CSV waits for its approval: beside the backups, never in logs or the state database. */
function storeDir(ctx: Ctx): string {
  return join(ctx.backupsDir, '.imports', ctx.target.name);
}

function storedName(requestId: string, sha256: string): string {
  return `${requestId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40)}-${sha256.slice(0, 16)}.csv`;
}

function rowsText(n: number): string {
  return `${formatCount(n)} ${n === 1 ? 'row' : 'rows'}`;
}

function sha256Of(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function caps(ctx: Ctx): { maxBytes: number; maxRows: number } {
  return {
    maxBytes: ctx.limits.import_max_bytes ?? DEFAULT_IMPORT_MAX_BYTES,
    maxRows: ctx.limits.import_max_rows ?? DEFAULT_IMPORT_MAX_ROWS,
  };
}

function attachedCsv(ctx: Ctx): InvocationFile {
  const files = ctx.files ?? [];
  if (files.length === 0) {
    throw new UserError(
      'invalid_argument',
      'attach the CSV to import: in Slack, mention @dbops with the command and the file in one message; ' +
        'in Discord, the `file` option of /db; on the command line, --file PATH',
    );
  }
  if (files.length > 1) {
    throw new UserError(
      'invalid_argument',
      `${files.length} files are attached; attach exactly one CSV per import`,
    );
  }
  return files[0] as InvocationFile;
}

async function tableOf(ctx: Ctx, typed: string): Promise<ImportTable> {
  return await ctx.db.read(async (session) => {
    const relation = await resolveRelation(session, typed, ['r', 'p'], '<table>');
    const table = await loadImportTable(session, relation);
    await requireImportPrivileges(session, table);
    return table;
  });
}

/** Thrown to end the dry run's transaction with a rollback while carrying its findings out. */
class RolledBack extends Error {
  constructor(readonly outcome: DryRunOutcome) {
    super('dry run rolled back');
  }
}

async function runDry(
  ctx: Ctx,
  table: ImportTable,
  mapping: MappedColumn[],
  bytes: Uint8Array,
  csv: CsvFile,
) {
  try {
    await ctx.db.write(async (session) => {
      throw new RolledBack(await dryRun(session, table, mapping, bytes, csv, MAX_REJECTIONS));
    });
  } catch (err) {
    if (err instanceof RolledBack) return err.outcome;
    throw err;
  }
  throw new Error('the dry run committed');
}

function rejectionLine(r: Rejection): string {
  return wrapLine(`line ${formatCount(r.line)}${r.column ? ` (${r.column})` : ''}: ${r.problem}`);
}

function rejectionReport(csv: CsvFile, outcome: DryRunOutcome, label: string): UserError {
  const n = outcome.rejections.length;
  const count = outcome.stoppedEarly ? `at least ${formatCount(n)}` : formatCount(n);
  const listed = outcome.rejections.slice(0, LISTED_REJECTIONS).map(rejectionLine);
  const more = n > LISTED_REJECTIONS ? [`… and ${formatCount(n - LISTED_REJECTIONS)} more`] : [];
  return new UserError(
    'invalid_argument',
    `dry run: ${count} of ${formatCount(csv.records.length)} rows would be rejected by ${label}, ` +
      'so nothing can be imported (the load is all or nothing).\nFix these lines and send the CSV again:\n' +
      [...listed, ...more].join('\n'),
    { rejected: outcome.rejections.slice(0, MAX_REJECTIONS) },
  );
}

function mappingRows(table: ImportTable, mapping: readonly MappedColumn[]): Row[] {
  const mapped = new Set(mapping.map((m) => m.column.name));
  return [
    ...mapping.map((m) => ({
      csv: visible(m.header),
      column: m.column.name,
      type: m.column.type,
      note: m.column.notNull ? 'NOT NULL' : '',
    })),
    ...table.columns
      .filter((c) => !mapped.has(c.name))
      .map((c) => ({ csv: '(not in CSV)', column: c.name, type: c.type, note: unmappedNote(c) })),
  ];
}

/** Removes stored CSVs of requests that expired or were denied long ago. */
async function sweepStored(dir: string, now: Date): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const path = join(dir, name);
    const info = await stat(path).catch(() => undefined);
    if (info && now.getTime() - info.mtimeMs > STORED_MAX_AGE_MS) await rm(path, { force: true });
  }
}

/** A row COPY refused at execution: nothing was loaded, and the person is told which CSV line. */
function copyFailure(err: unknown, csv: CsvFile): UserError | undefined {
  const e = serverError(err);
  if (!e) return undefined;
  const line = copyErrorLine(err, csv);
  const detail = e.detail ? ` (${visible(e.detail, 160)})` : '';
  return new UserError(
    'query_failed',
    'nothing was imported (one transaction, rolled back): ' +
      `${line ? `line ${formatCount(line)}: ` : ''}${visible(e.message, 200)}${detail}. ` +
      'The table changed since the dry run; request the import again to see which rows are rejected now',
  );
}

function sameColumns(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export default defineOperation({
  name: 'import',
  summary: 'Load a CSV into a table (dry run first, then one COPY transaction)',
  usage: 'import <target> <table> [--advance-sequences]  (attach the CSV)',
  description:
    'The CSV must start with a header naming table columns. The preview maps the header to the columns ' +
    "(with types; left-out columns get their defaults), counts the rows, and does a dry run in a transaction that is rolled back: every row the table's types, NOT NULL, unique, check and foreign-key " +
    'constraints would reject is listed with its CSV line, and then nothing is requested. After approval ' +
    'the exact previewed file (checked by sha256) is loaded with COPY in one transaction: all rows or none. ' +
    '--advance-sequences moves sequences owned by imported columns past the largest id. Size caps: ' +
    'limits.import_max_bytes (10 MB) and limits.import_max_rows (100,000).',
  positionals: ['table'],
  args: z.object({ table: identifierArg(), advance_sequences: flagArg() }),
  risk: 'destructive',
  limits: { statement_timeout: 300 },

  async preview(ctx) {
    const file = attachedCsv(ctx);
    const csv = readCsv(file.bytes, caps(ctx));
    const table = await tableOf(ctx, ctx.args.table);
    const mapping = mapHeader(csv.header, table);
    const label = `${table.relation.schema}.${table.relation.name}`;
    const sha256 = sha256Of(file.bytes);
    const shownName = visible(file.name, 60);
    if (csv.records.length === 0) {
      return {
        empty: true,
        state: null,
        result: {
          headline: `${shownName} has a header and no rows: nothing to import into ${label}`,
          columns: MAPPING_COLUMNS,
          rows: mappingRows(table, mapping),
          truncated: false,
        },
      };
    }
    const outcome = await runDry(ctx, table, mapping, file.bytes, csv);
    if (outcome.rejections.length > 0) throw rejectionReport(csv, outcome, label);

    const dir = storeDir(ctx);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await sweepStored(dir, ctx.now);
    const stored = storedName(ctx.requestId, sha256);
    await writeFile(join(dir, stored), file.bytes, { mode: 0o600 });

    const notes = [
      csv.records.length === 1
        ? "dry run (rolled back): the row passes the table's types and constraints"
        : `dry run (rolled back): all ${formatCount(csv.records.length)} rows pass the table's types and constraints`,
      `on approval: COPY of this exact file (sha256 ${sha256.slice(0, 12)}…), all rows or none`,
    ];
    for (const check of outcome.sequences.filter((s) => s.behind)) {
      notes.push(
        ctx.args.advance_sequences
          ? wrapLine(`sequence ${check.sequence} will be set to ${check.max} (the largest ${check.column})`)
          : `${wrapLine(
              `${check.column} goes up to ${check.max}, but ${check.sequence} hands out ${check.next} next: ` +
                'new rows would collide. Add --advance-sequences, or after the import run:',
            )}\n${setvalSql(table, check)}`,
      );
    }
    const state: ImportState = {
      file: stored,
      name: file.name,
      sha256,
      rows: csv.records.length,
      table: { oid: table.relation.oid, schema: table.relation.schema, name: table.relation.name },
      columns: mapping.map((m) => m.column.name),
      signature: tableSignature(table),
    };
    const result: OperationResult = {
      headline:
        `import ${rowsText(csv.records.length)} from ${shownName} (${formatBytes(file.bytes.length)}) ` +
        `into ${label} on ${ctx.target.name}`,
      columns: MAPPING_COLUMNS,
      rows: mappingRows(table, mapping),
      truncated: false,
      notes,
      data: {
        file: file.name,
        bytes: file.bytes.length,
        sha256,
        rows: csv.records.length,
        table: label,
        rejected: 0,
        sequences: outcome.sequences,
      },
    };
    return { result, state };
  },

  async execute(ctx, previewState) {
    const parsed = previewStateSchema.safeParse(previewState);
    if (!parsed.success) throw new Error(`import: malformed preview state: ${parsed.error.message}`);
    const previewed = parsed.data;
    const path = join(storeDir(ctx), previewed.file);
    try {
      const bytes = await readFile(path).catch(() => undefined);
      if (!bytes || sha256Of(bytes) !== previewed.sha256) {
        throw new UserError(
          'stale_preview',
          `the CSV stored with this request is ${bytes ? 'changed' : 'missing'} (${previewed.file}); ` +
            'nothing was imported. Request the import again',
        );
      }
      const csv = readCsv(bytes, caps(ctx));
      const label = `${previewed.table.schema}.${previewed.table.name}`;
      const table = await tableOf(ctx, `${previewed.table.schema}.${previewed.table.name}`).catch((err) => {
        throw new UserError(
          'stale_preview',
          `${label} cannot be used any more (${(err as Error).message}); nothing was imported`,
        );
      });
      const mapping = mapHeader(csv.header, table);
      if (
        table.relation.oid !== previewed.table.oid ||
        !sameColumns(tableSignature(table), previewed.signature) ||
        !sameColumns(
          mapping.map((m) => m.column.name),
          previewed.columns,
        )
      ) {
        throw new UserError(
          'stale_preview',
          `${label} changed since the preview (its columns, types, defaults or the table itself); ` +
            'nothing was imported. Request the import again to see the new mapping and dry run',
        );
      }
      const outcome = await ctx.db.write(async (session) => {
        let loaded: number;
        try {
          loaded = await copyCsv(session, table, mapping, bytes);
        } catch (err) {
          throw copyFailure(err, csv) ?? err;
        }
        if (loaded !== csv.records.length)
          throw new Error(`COPY loaded ${loaded} rows where the CSV holds ${csv.records.length}`);
        const advanced = ctx.args.advance_sequences ? await advanceSequences(session, table, mapping) : [];
        const behind = ctx.args.advance_sequences
          ? []
          : (await checkSequences(session, table, mapping)).filter((c) => c.behind);
        return { loaded, advanced, behind };
      });
      const rows: Row[] = [
        { field: 'table', value: label },
        { field: 'rows imported', value: formatCount(outcome.loaded) },
        { field: 'file', value: `${visible(previewed.name, 60)} (${formatBytes(bytes.length)})` },
        { field: 'sha256', value: previewed.sha256 },
        ...outcome.advanced.map((a) => ({ field: `sequence ${a.sequence}`, value: `set to ${a.value}` })),
      ];
      const notes = outcome.behind.map(
        (c) =>
          `${wrapLine(`${c.sequence} is behind ${c.column} (largest ${c.max}, next ${c.next}); run:`)}\n` +
          setvalSql(table, c),
      );
      return {
        headline: `imported ${rowsText(outcome.loaded)} into ${label} on ${ctx.target.name} (one transaction)`,
        columns: RESULT_COLUMNS,
        rows,
        truncated: false,
        display: 'card',
        ...(notes.length > 0 ? { notes } : {}),
        data: {
          table: label,
          rows: outcome.loaded,
          sha256: previewed.sha256,
          sequencesAdvanced: outcome.advanced,
        },
      };
    } finally {
      // The request runs once, whatever its outcome: its copy of the CSV is not needed again.
      await rm(path, { force: true });
    }
  },
});
