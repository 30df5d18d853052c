// Turns a declarative pack operation into an OperationSpec the core runs like any other operation.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { ResolvedTarget } from '../config/schema.js';
import { isUserError, UserError } from '../core/errors.js';
import type { AnyOperation, OperationContext, Preview } from '../core/operation.js';
import type { Column, ColumnKind, OperationResult, Row } from '../core/types.js';
import type { Session, TargetDb } from '../engine/types.js';
import { argSchema, usageOf } from './args.js';
import type { LoadedPack, LoadedPackOperation, LoadedVariant } from './load.js';
import type { CompiledSql } from './named-params.js';
import type { PackSetting } from './schema.js';
import { forgetTargetSchema, targetSchemaOf } from './target-schema.js';
import { chooseVariant } from './variants.js';

/** Runs a pack's external command (e.g. alembic); supplied by the engine's tool runner. */
export type CommandRunner = (input: {
  argv: string[];
  cwd?: string;
  timeoutSeconds: number;
  target: ResolvedTarget;
  /** An environment variable that receives the target's URL (pack setting `url_env`). */
  urlEnv?: string;
  onLine?: (line: string) => void;
  /** A person cancelled the run: the command (and its process group) is stopped. */
  signal?: AbortSignal;
}) => Promise<{ stdout: string; stderr: string }>;

/** The value of each named parameter: arguments first, then the target's settings for the pack. */
function bind(
  compiled: CompiledSql,
  args: Record<string, unknown>,
  settings: Readonly<Record<string, unknown>>,
): unknown[] {
  return compiled.names.map((name) => {
    const value = name in args ? args[name] : settings[name];
    return value === undefined ? null : value;
  });
}

function toCell(value: unknown): Row[string] {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return `\\x${value.toString('hex')}`;
  return JSON.stringify(value);
}

function kindOf(values: readonly unknown[]): ColumnKind {
  const sample = values.find((v) => v !== null && v !== undefined);
  if (typeof sample === 'boolean') return 'bool';
  if (sample instanceof Date) return 'timestamp';
  if (typeof sample === 'number') return 'number';
  return 'text';
}

/** Rows as the core wants them, with columns from the pack (labels, kinds) or inferred from the values. */
function tabulate(
  raw: readonly Record<string, unknown>[],
  declared: LoadedPackOperation['def']['columns'],
): { columns: Column[]; rows: Row[] } {
  // An optional column is shown when the variant that ran returns it.
  const first = raw[0];
  const keys =
    declared?.filter((c) => !c.optional || (first !== undefined && c.key in first)).map((c) => c.key) ??
    Object.keys(first ?? {});
  const columns: Column[] = keys.map((key) => {
    const d = declared?.find((c) => c.key === key);
    const column: Column = { key, label: d?.label ?? key, kind: d?.kind ?? kindOf(raw.map((r) => r[key])) };
    return d?.importance ? { ...column, importance: d.importance } : column;
  });
  const rows = raw.map((r) => Object.fromEntries(keys.map((k) => [k, toCell(r[k])])) as Row);
  return { columns, rows };
}

function digest(rows: readonly Row[]): string {
  return createHash('sha256').update(JSON.stringify(rows)).digest('hex');
}

interface PackPreviewState {
  /** Which variant previewed: the same one must act. */
  variant?: number;
  count: number;
  truncated: boolean;
  digest: string;
}

function isPreviewState(value: unknown): value is PackPreviewState {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Record<string, unknown>).count === 'number' &&
    typeof (value as Record<string, unknown>).digest === 'string'
  );
}

/** Expands `{name}` placeholders; an argv element that is exactly an array setting becomes several. */
export function expandArgv(
  argv: readonly string[],
  args: Record<string, unknown>,
  settings: Readonly<Record<string, unknown>>,
  state: Readonly<Record<string, unknown>> = {},
): string[] {
  const lookupValue = (name: string): unknown => {
    if (name in args) return args[name];
    if (name in state) {
      const value = state[name];
      if (value === null || value === undefined) {
        throw new UserError('invalid_argument', `the target's current state gives no value for {${name}}`);
      }
      return value;
    }
    return settings[name];
  };
  return argv.flatMap((element) => {
    const whole = /^\{([a-z0-9_]+)\}$/.exec(element);
    if (whole?.[1]) {
      const value = lookupValue(whole[1]);
      if (Array.isArray(value)) return value.map(String);
      if (value === undefined || value === null) return [];
    }
    return [
      element.replace(/\{([a-z0-9_]+)\}/g, (_, name: string) => {
        const value = lookupValue(name);
        return value === undefined || value === null ? '' : String(value);
      }),
    ];
  });
}

export interface PackOperationOptions {
  runCommand?: CommandRunner;
}

/** The OperationSpec of one pack operation; `pack` settings come from each target's config. */
export function packOperationSpec(
  pack: LoadedPack,
  op: LoadedPackOperation,
  options: PackOperationOptions = {},
): AnyOperation {
  const def = op.def;
  const shape: Record<string, z.ZodType> = {};
  for (const arg of def.args) shape[arg.name] = argSchema(arg);
  const settingsOf = (ctx: OperationContext<Record<string, unknown>>): Readonly<Record<string, unknown>> => {
    const given = ctx.target.settings?.[pack.name] ?? {};
    const defaults = Object.fromEntries(
      Object.entries(pack.manifest.settings)
        .filter(([, s]: [string, PackSetting]) => s.default !== undefined)
        .map(([name, s]) => [name, s.default]),
    );
    return { ...defaults, ...given };
  };
  const display = def.display ?? (def.lookup ? 'card' : 'table');

  /**
   * The variant that fits the target's schema as last read; a refusal naming what is missing when none
   * does, so no SQL naming a missing table or column is ever sent.
   */
  const variantFor = async (
    ctx: OperationContext<Record<string, unknown>>,
  ): Promise<{ variant: LoadedVariant; index: number }> => {
    const only = op.variants[0];
    if (op.variants.length === 1 && only && !only.requires) return { variant: only, index: 0 };
    const choice = chooseVariant(op, await targetSchemaOf(ctx.db));
    if (!choice.ok) {
      throw new UserError(
        'unavailable',
        `${def.lookup ? `lookup ${def.lookup}` : def.name} is not available on ${ctx.target.name}: ${choice.reason}; nothing was run`,
      );
    }
    return choice;
  };

  const readRows = async (
    session: Session,
    compiled: CompiledSql,
    ctx: OperationContext<Record<string, unknown>>,
  ): Promise<{ columns: Column[]; rows: Row[]; truncated: boolean }> => {
    const { rows, truncated } = await session.cursor(
      compiled.text,
      bind(compiled, ctx.args, settingsOf(ctx)),
    );
    return { ...tabulate(rows, def.columns), truncated };
  };

  /** The one row of command.state_sql (e.g. the current alembic revision), as placeholder values. */
  const readState = async (
    ctx: OperationContext<Record<string, unknown>>,
  ): Promise<Record<string, unknown>> => {
    const state = op.state;
    if (!state) return {};
    const rows = await ctx.db.read((s) => s.query(state.text, bind(state, ctx.args, settingsOf(ctx))));
    const row = rows[0] ?? {};
    return Object.fromEntries(Object.entries(row).map(([k, v]) => [k, toCell(v)]));
  };

  const runCommand = async (
    ctx: OperationContext<Record<string, unknown>>,
    argv: readonly string[],
    state: Readonly<Record<string, unknown>> = {},
  ): Promise<OperationResult> => {
    const command = def.command;
    if (!command || !options.runCommand)
      throw new UserError('tool_failed', `${def.name}: no command runner is available`);
    const settings = settingsOf(ctx);
    const cwd = command.cwd_setting ? settings[command.cwd_setting] : undefined;
    const expanded = expandArgv(argv, ctx.args, settings, state);
    const urlEnv = settings.url_env;
    if (urlEnv !== undefined && (typeof urlEnv !== 'string' || !/^[A-Z_][A-Z0-9_]*$/.test(urlEnv))) {
      throw new UserError(
        'config_invalid',
        `targets.${ctx.target.name}.settings.${pack.name}.url_env must be an environment variable name like DATABASE_URL`,
      );
    }
    const out = await options.runCommand({
      argv: expanded,
      ...(typeof cwd === 'string' ? { cwd } : {}),
      ...(typeof urlEnv === 'string' && /^[A-Z_][A-Z0-9_]*$/.test(urlEnv) ? { urlEnv } : {}),
      timeoutSeconds: command.timeout,
      target: ctx.target,
      onLine: (line) => ctx.progress(line),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
    const lines = `${out.stdout}\n${out.stderr}`.split('\n').filter((l) => l.trim() !== '');
    const cap = ctx.limits.row_cap;
    return {
      headline: `${expanded.join(' ')}`,
      columns: [{ key: 'line', label: 'output', kind: 'text' }],
      rows: lines.slice(0, cap).map((line) => ({ line })),
      truncated: lines.length > cap,
      display: 'text',
      data: { argv: expanded, ...(Object.keys(state).length > 0 ? { state } : {}) },
    };
  };

  const spec: AnyOperation = {
    name: def.name,
    summary: def.summary,
    usage: usageOf(def.name, def.args),
    description: `${def.description ?? def.summary}\n(pack ${pack.name}${pack.manifest.runbook ? `, runbook ${pack.manifest.runbook}` : ''})`,
    positionals: def.args.filter((a) => a.positional).map((a) => a.name),
    args: z.object(shape),
    risk: def.risk,
    ...(def.limits
      ? {
          limits: {
            ...(def.limits.statement_timeout !== undefined
              ? { statement_timeout: def.limits.statement_timeout }
              : {}),
            ...(def.limits.lock_timeout !== undefined ? { lock_timeout: def.limits.lock_timeout } : {}),
            ...(def.limits.row_cap !== undefined ? { row_cap: def.limits.row_cap } : {}),
          },
        }
      : {}),
  };

  spec.unavailable = async (db) => {
    const only = op.variants[0];
    if (op.variants.length === 1 && only && !only.requires) return undefined;
    const choice = chooseVariant(op, await targetSchemaOf(db));
    return choice.ok ? undefined : choice.reason;
  };

  if (def.risk !== 'destructive') {
    spec.run = async (ctx) => {
      const { variant } = await variantFor(ctx);
      if (def.command) return await runCommand(ctx, def.command.argv, await readState(ctx));
      if (def.risk === 'read' && variant.sql) {
        const sql = variant.sql;
        const table = await ctx.db.read((s) => readRows(s, sql, ctx));
        return { ...table, display };
      }
      // write: statements in one transaction, with their affected row counts.
      const steps = variant.steps ?? (variant.sql ? [{ label: def.name, sql: variant.sql }] : []);
      const counts = await ctx.db.write(async (s) => {
        const out: Row[] = [];
        for (const step of steps) {
          const { rowCount } = await s.execute(step.sql.text, bind(step.sql, ctx.args, settingsOf(ctx)));
          out.push({ step: step.label, rows: rowCount });
        }
        return out;
      });
      return {
        headline: `${def.name}: done`,
        columns: [
          { key: 'step', label: 'step', kind: 'text' },
          { key: 'rows', label: 'rows changed', kind: 'count' },
        ],
        rows: counts,
        truncated: false,
      };
    };
    return forgettingSchemaOnError(spec);
  }

  spec.preview = async (ctx): Promise<Preview> => {
    const { variant, index } = await variantFor(ctx);
    if (def.command) {
      const command = def.command;
      const state = await readState(ctx);
      const result = command.preview_argv
        ? await runCommand(ctx, command.preview_argv, state)
        : {
            headline: `Will run: ${expandArgv(command.argv, ctx.args, settingsOf(ctx), state).join(' ')}`,
            columns: [],
            rows: [],
            truncated: false,
          };
      const stateNote = Object.entries(state).map(([k, v]) => `${k}: ${v === null ? '(none)' : String(v)}`);
      return {
        result: {
          ...result,
          notes: [
            ...(stateNote.length > 0 ? [`Now: ${stateNote.join(', ')} (checked again before it runs)`] : []),
            ...(def.warning ? [`WARNING: ${def.warning}`] : []),
          ],
        },
        state: { command: true, values: state },
      };
    }
    const preview = variant.preview;
    if (!preview) throw new Error(`${def.name}: destructive pack operation without preview`);
    const table = await ctx.db.read((s) => readRows(s, preview, ctx));
    const state: PackPreviewState = {
      variant: index,
      count: table.rows.length,
      truncated: table.truncated,
      digest: digest(table.rows),
    };
    const count = `${table.rows.length}${table.truncated ? '+' : ''}`;
    const what = variant.previewHeadline ?? 'rows concerned';
    // A headline with {count} is written whole by the pack ("{count} manager(s) would be renamed").
    // A one-card preview is a summary row: "1 summary of …" means nothing to the reader.
    const headline = what.includes('{count}')
      ? `${def.name} on ${ctx.target.name}: ${what.replaceAll('{count}', count)}`
      : display === 'card' && table.rows.length === 1 && !table.truncated
        ? `${def.name} on ${ctx.target.name}: ${what}`
        : `${def.name} on ${ctx.target.name}: ${count} ${what}`;
    return {
      result: {
        ...table,
        display,
        headline,
        notes: def.warning ? [`WARNING: ${def.warning}`] : [],
      },
      state,
      empty: table.rows.length === 0,
      // A preview row with a non-empty `blocked` column says the operation cannot succeed, and why.
      ...blockedBy(table.rows),
    };
  };

  spec.execute = async (ctx, previewState): Promise<OperationResult> => {
    const { variant, index } = await variantFor(ctx);
    if (def.command) {
      const now = await readState(ctx);
      const then =
        typeof previewState === 'object' && previewState !== null && 'values' in previewState
          ? (previewState as { values: unknown }).values
          : {};
      if (JSON.stringify(now) !== JSON.stringify(then ?? {})) {
        throw new UserError(
          'stale_preview',
          `${ctx.target.name} changed since the preview (${JSON.stringify(then)} → ${JSON.stringify(now)}), so nothing was run; ask again to see a fresh preview`,
        );
      }
      return await runCommand(ctx, def.command.argv, now);
    }
    const preview = variant.preview;
    if (!preview || !isPreviewState(previewState)) throw new Error(`${def.name}: preview state is missing`);
    if ((previewState.variant ?? 0) !== index) {
      throw new UserError(
        'stale_preview',
        `the schema of ${ctx.target.name} changed since the preview, so nothing was run; ask again to see a fresh preview`,
      );
    }
    const notes: string[] = [];
    const compare = (now: { rows: Row[]; truncated: boolean }) => {
      if (digest(now.rows) !== previewState.digest) {
        const rows = (n: number, more: boolean) => `${n}${more ? '+' : ''} row${n === 1 && !more ? '' : 's'}`;
        notes.push(
          previewState.count === now.rows.length && !now.truncated
            ? `The data changed since the preview (same ${rows(now.rows.length, false)}, different values); the operation acted on the data as it is now.`
            : `The data changed since the preview: it showed ${rows(previewState.count, previewState.truncated)}, now ${rows(now.rows.length, now.truncated)}; the operation acted on the data as it is now.`,
        );
      }
    };
    const counts: Row[] = [];
    if (variant.batch) {
      const batch = variant.batch;
      const now = await ctx.db.read((s) => readRows(s, preview, ctx));
      compare(now);
      let total = 0;
      let batches = 0;
      for (; batches < batch.maxBatches; batches++) {
        const { rowCount } = await ctx.db.write((s) =>
          s.execute(batch.sql.text, bind(batch.sql, ctx.args, settingsOf(ctx))),
        );
        if (rowCount === 0) break;
        total += rowCount;
        if (batches % 10 === 9) ctx.progress(`${batch.label}: ${total} rows so far`);
      }
      if (batches === batch.maxBatches)
        notes.push(`Stopped after ${batches} batches (max_batches); run it again for the rest.`);
      counts.push({ step: batch.label, rows: total, batches });
    } else {
      const steps = variant.steps ?? (variant.sql ? [{ label: def.name, sql: variant.sql }] : []);
      await ctx.db.write(async (s) => {
        // Re-check inside the same transaction that acts.
        const { rows, truncated } = await s.cursor(preview.text, bind(preview, ctx.args, settingsOf(ctx)));
        compare({ ...tabulate(rows, def.columns), truncated });
        for (const step of steps) {
          const { rowCount } = await s.execute(step.sql.text, bind(step.sql, ctx.args, settingsOf(ctx)));
          counts.push({ step: step.label, rows: rowCount });
        }
      });
    }
    const total = counts.reduce((sum, r) => sum + (typeof r.rows === 'number' ? r.rows : 0), 0);
    return {
      headline: `${def.name} on ${ctx.target.name}: ${total} row${total === 1 ? '' : 's'} changed`,
      columns: [
        { key: 'step', label: 'step', kind: 'text' },
        { key: 'rows', label: 'rows changed', kind: 'count' },
        ...(variant.batch ? [{ key: 'batches', label: 'batches', kind: 'count' as const }] : []),
      ],
      rows: counts,
      truncated: false,
      notes,
    };
  };
  return forgettingSchemaOnError(spec);
}

/**
 * PostgreSQL saying a table or column does not exist means the schema changed since it was read: the
 * cached schema is forgotten, so the next call reads it again and picks the variant that fits now.
 */
function forgettingSchemaOnError(spec: AnyOperation): AnyOperation {
  const forget = async <R>(db: TargetDb, work: () => Promise<R>): Promise<R> => {
    try {
      return await work();
    } catch (err) {
      const state = isUserError(err) ? err.detail?.sqlstate : undefined;
      if (state === '42P01' || state === '42703') forgetTargetSchema(db);
      throw err;
    }
  };
  const { run, preview, execute } = spec;
  if (run) spec.run = (ctx) => forget(ctx.db, () => run(ctx));
  if (preview) spec.preview = (ctx) => forget(ctx.db, () => preview(ctx));
  if (execute) spec.execute = (ctx, state) => forget(ctx.db, () => execute(ctx, state));
  return spec;
}

/** The first non-empty `blocked` value of a preview's rows, as Preview.blocked. */
function blockedBy(rows: readonly Record<string, unknown>[]): { blocked?: string } {
  const reason = rows.map((r) => r.blocked).find((v) => typeof v === 'string' && v.trim() !== '');
  return typeof reason === 'string' ? { blocked: reason } : {};
}
