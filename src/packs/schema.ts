// The declarative runbook pack format: a directory per pack, pack.yaml plus one YAML file per operation.
import { z } from 'zod';
import { durationSchema } from '../config/schema.js';
import { COLUMN_KINDS, RISKS } from '../core/types.js';

const SNAKE = /^[a-z][a-z0-9_]{0,40}$/;
const KEBAB = /^[a-z][a-z0-9-]{0,40}$/;

export const ARG_TYPES = [
  'text',
  'int',
  'duration',
  'date',
  'timestamp',
  'bool',
  'email',
  'uuid',
  'identifier',
  'hostname',
  'enum',
  'revision',
] as const;
export type ArgType = (typeof ARG_TYPES)[number];

export const packArgSchema = z
  .object({
    name: z.string().regex(SNAKE, 'argument names are snake_case: lower-case letters, digits and _'),
    type: z.enum(ARG_TYPES),
    description: z.string().optional(),
    /** Given by position (`/db change-email capsul old@x new@y`) rather than as `--name value`. */
    positional: z.boolean().default(false),
    required: z.boolean().default(false),
    default: z.union([z.string(), z.number(), z.boolean()]).optional(),
    /** enum: the allowed values. */
    values: z.array(z.string().min(1)).optional(),
    /** text: the longest value accepted (default 200). */
    max_length: z.number().int().min(1).max(10_000).optional(),
    /** int: bounds. */
    min: z.number().int().optional(),
    max: z.number().int().optional(),
  })
  .strict();
export type PackArg = z.infer<typeof packArgSchema>;

export const packColumnSchema = z
  .object({
    key: z.string().min(1),
    label: z.string().optional(),
    kind: z.enum(COLUMN_KINDS).default('text'),
    /**
     * Shown only when the chosen variant's SQL returns it (e.g. images.name, which only some versions
     * of an application have); a result without rows shows only the columns that are not optional.
     */
    optional: z.boolean().default(false),
    /**
     * How much the column matters on a narrow screen: `key` (an id or name typed back: never clipped or
     * hidden), `high` (kept), `normal`, `low` (hidden first). Inferred from the name and values if left out.
     */
    importance: z.enum(['key', 'high', 'normal', 'low']).optional(),
  })
  .strict();

const COLUMN_NAME = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

/**
 * What SQL needs of the target's schema: table (or `schema.table`) → the columns it reads. dbops reads the
 * target's catalog and never sends SQL whose requirements are not met.
 */
export const packRequiresSchema = z.record(
  z.string().regex(/^([A-Za-z_][A-Za-z0-9_$]{0,62}\.)?[A-Za-z_][A-Za-z0-9_$]{0,62}$/, 'a table name'),
  z.array(z.string().regex(COLUMN_NAME, 'a column name')),
);
export type PackRequires = z.infer<typeof packRequiresSchema>;

const sqlText = z.string().min(1, 'the SQL is empty');

export const packStepSchema = z
  .object({
    /** Shown in the result: "accounts: 1 row". */
    label: z.string().min(1),
    sql: sqlText,
  })
  .strict();

export const packCommandSchema = z
  .object({
    /**
     * The program and its arguments. `{setting}` placeholders take a pack setting (an array setting expands
     * to several arguments), `{arg}` placeholders take a validated argument. Never run through a shell.
     */
    argv: z.array(z.string().min(1)).min(1),
    /** The same command for the preview (e.g. `alembic upgrade head --sql`); its output is shown. */
    preview_argv: z.array(z.string().min(1)).min(1).optional(),
    /**
     * A SELECT returning one row whose columns become placeholders too (e.g. `{current}` from
     * alembic_version). Read at the preview and again just before the command runs: if it changed,
     * nothing runs and the person is told to ask again.
     */
    state_sql: z.string().min(1).optional(),
    /** Name of the pack setting holding the working directory. */
    cwd_setting: z.string().optional(),
    timeout: durationSchema.default(300),
  })
  .strict();

const packPreviewSchema = z
  .object({
    /** Read-only SQL showing exactly what would change (given here or in each variant). */
    sql: sqlText.optional(),
    /**
     * Words after the row count ("expired session tokens that would be deleted"), or a whole sentence with
     * a `{count}` placeholder ("{count} manager(s) would be renamed").
     */
    headline: z.string().optional(),
  })
  .strict();

/**
 * One form of an operation's SQL for one shape of the application's schema. dbops picks the first variant
 * whose `requires` the target meets; when none does, the operation is unavailable there, with the reason.
 */
export const packVariantSchema = z
  .object({
    /** Shown in the reason an operation is unavailable ("Kasm 1.12+", "the runbook's schema"). */
    label: z.string().min(1).optional(),
    requires: packRequiresSchema,
    sql: sqlText.optional(),
    steps: z.array(packStepSchema).min(1).optional(),
    batch: z
      .object({
        label: z.string().min(1),
        sql: sqlText,
        max_batches: z.number().int().min(1).max(100_000).default(1000),
      })
      .strict()
      .optional(),
    preview: packPreviewSchema.optional(),
  })
  .strict();
export type PackVariantDef = z.infer<typeof packVariantSchema>;

export const packOperationSchema = z
  .object({
    name: z.string().regex(KEBAB, 'operation names are kebab-case: lower-case letters, digits and -'),
    summary: z.string().min(1),
    description: z.string().optional(),
    risk: z.enum(RISKS),
    args: z.array(packArgSchema).default([]),
    limits: z
      .object({
        statement_timeout: durationSchema.optional(),
        lock_timeout: durationSchema.optional(),
        row_cap: z.number().int().min(1).max(100_000).optional(),
      })
      .strict()
      .optional(),
    columns: z.array(packColumnSchema).optional(),
    /** Makes this a keyed lookup: `/db lookup <target> <lookup> <key>`; the first positional is the key. */
    lookup: z.string().regex(SNAKE).optional(),
    /** How a result reads: a table, or a card of `field: value` lines (lookups default to card). */
    display: z.enum(['table', 'card']).optional(),
    /** read/write: one statement. */
    sql: sqlText.optional(),
    /** write/destructive: several statements, run in order in one transaction. */
    steps: z.array(packStepSchema).min(1).optional(),
    /**
     * destructive with batches: this one statement is repeated, each time in its own transaction, until it
     * affects no rows (or max_batches) — for moving or deleting millions of rows without one long lock.
     */
    batch: z
      .object({
        label: z.string().min(1),
        sql: sqlText,
        max_batches: z.number().int().min(1).max(100_000).default(1000),
      })
      .strict()
      .optional(),
    /** An external program instead of SQL (e.g. alembic). */
    command: packCommandSchema.optional(),
    /** destructive: read-only SQL showing exactly what would change; re-run at execution to compare. */
    preview: packPreviewSchema.optional(),
    /** What the SQL above needs of the target's schema (tables and columns); see `variants` for several forms. */
    requires: packRequiresSchema.optional(),
    /**
     * Alternative forms of sql / steps / batch / preview, each with what it requires, tried in order;
     * instead of the top-level ones (a top-level preview may still give the headline).
     */
    variants: z.array(packVariantSchema).min(1).optional(),
    /** An extra warning printed with the preview (e.g. "logs out every user"). */
    warning: z.string().optional(),
    /**
     * Argument strings `dbops pack test` runs the operation with (`["admin@kasm.local", "--limit 5"]`;
     * `""` runs it without arguments); each must bind to the declared args.
     */
    examples: z.array(z.string().max(500)).max(20).optional(),
  })
  .strict();
export type PackOperationDef = z.infer<typeof packOperationSchema>;

export const packSettingSchema = z
  .object({
    type: z.enum(['text', 'int', 'bool', 'argv', 'path']),
    required: z.boolean().default(false),
    description: z.string().optional(),
    default: z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]).optional(),
  })
  .strict();
export type PackSetting = z.infer<typeof packSettingSchema>;

export const packManifestSchema = z
  .object({
    name: z.string().regex(SNAKE),
    description: z.string().min(1),
    /** The runbook it comes from. */
    runbook: z.string().optional(),
    /** Per-target settings, given in the config as `targets.<name>.settings.<pack>.<setting>`. */
    settings: z.record(z.string().regex(SNAKE), packSettingSchema).default({}),
    /**
     * The least the pack needs of the target's schema (the runbook's own tables and columns);
     * `dbops check-config` verifies it. Richer columns belong in the operations' variants.
     */
    expects: z
      .object({
        tables: z.record(z.string(), z.array(z.string())).default({}),
      })
      .strict()
      .default({ tables: {} }),
  })
  .strict();
export type PackManifest = z.infer<typeof packManifestSchema>;
