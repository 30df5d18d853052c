// The shape of dbops.yaml (see PRODUCT.md "Configuration"), validated with zod at start-up.
import { z } from 'zod';
import { parseDuration } from '../core/duration.js';

/** A duration written as "5s", "15m", "1h30m"; parsed to seconds. */
export const durationSchema = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const seconds = typeof value === 'number' ? value : parseDuration(value);
  if (seconds === undefined || seconds < 0) {
    ctx.addIssue({ code: 'custom', message: `expected a duration like "5s", "15m" or "1h", got "${value}"` });
    return z.NEVER;
  }
  return seconds;
});

const NAME = /^[a-z][a-z0-9_-]{0,62}$/;
const nameMessage = 'use lower-case letters, digits, "-" and "_", starting with a letter';

/** What `import` accepts when limits.import_max_bytes / import_max_rows are not set. */
export const IMPORT_DEFAULTS = { maxBytes: 10 * 1024 * 1024, maxRows: 100_000 } as const;

/** Limits applied to every query; targets and operations may override. */
export const limitsSchema = z
  .object({
    statement_timeout: durationSchema.default(5),
    lock_timeout: durationSchema.default(1),
    row_cap: z.number().int().min(1).max(100_000).default(200),
    pool_max: z.number().int().min(1).max(100).default(4),
    pool_idle: durationSchema.default(30),
    connect_timeout: durationSchema.default(5),
    /** `import`: the largest CSV accepted, in bytes (default 10 MB), and the most data rows (default 100,000). */
    import_max_bytes: z
      .number()
      .int()
      .min(1)
      .max(1024 ** 3)
      .optional(),
    import_max_rows: z.number().int().min(1).max(10_000_000).optional(),
  })
  .strict();
export type Limits = z.infer<typeof limitsSchema>;

const limitOverridesSchema = z
  .object({
    statement_timeout: durationSchema.optional(),
    lock_timeout: durationSchema.optional(),
    row_cap: z.number().int().min(1).max(100_000).optional(),
    pool_max: z.number().int().min(1).max(100).optional(),
    pool_idle: durationSchema.optional(),
    connect_timeout: durationSchema.optional(),
    import_max_bytes: z
      .number()
      .int()
      .min(1)
      .max(1024 ** 3)
      .optional(),
    import_max_rows: z.number().int().min(1).max(10_000_000).optional(),
  })
  .strict();

export const targetSchema = z
  .object({
    url: z.string().min(1),
    environment: z.string(),
    description: z.string().optional(),
    packs: z.array(z.string()).default([]),
    /** Settings of the target's packs: `settings.capsul.expected_schema_version: 21`. */
    settings: z.record(z.string(), z.record(z.string(), z.unknown())).default({}),
    limits: limitOverridesSchema.optional(),
    /**
     * Operations' statements are prepared by name on each connection (parsed and planned once); false
     * for a connection pooler that cannot keep them (PgBouncer in transaction mode before 1.21).
     */
    prepared_statements: z.boolean().default(true),
    /**
     * Columns whose values ad-hoc SQL shows masked: `users.email`, `*.password_hash`, `public.users.ssn`
     * (`*` for any table or schema), unless the person holds one of `visible_to`.
     */
    sensitive: z
      .object({
        columns: z.array(
          z
            .string()
            .regex(
              /^([A-Za-z_*][\w$*]*\.){1,2}[A-Za-z_][\w$]*$/,
              'write columns as table.column, schema.table.column or *.column',
            ),
        ),
        visible_to: z.array(z.string()).default([]),
      })
      .strict()
      .optional(),
  })
  .strict();

export const personSchema = z
  .object({
    slack: z.string().optional(),
    discord: z.string().optional(),
    cli: z.string().optional(),
    roles: z.array(z.string().regex(NAME, nameMessage)).default([]),
  })
  .strict();

export const environmentPolicySchema = z
  .object({
    read: z.array(z.string()).default([]),
    write: z.array(z.string()).default([]),
    request: z.array(z.string()).default([]),
    approve: z.array(z.string()).default([]),
    /** Who may run ad-hoc SQL reads (`/db sql` with a SELECT, `/db explain`). Nobody unless listed. */
    sql_read: z.array(z.string()).optional(),
    /** Who may request ad-hoc SQL writes and DDL; they always wait for `approvals` approvers. */
    sql_write: z.array(z.string()).optional(),
    /** When true, ad-hoc SQL reads also wait for approval (the result goes to the thread once approved). */
    approve_sql_reads: z.boolean().optional(),
    /** How many distinct approvers a destructive request needs. */
    approvals: z.number().int().min(1).max(5).default(1),
    /** When true, write operations also wait for approval on this environment. */
    approve_writes: z.boolean().default(false),
    /** How long a request waits for approval. */
    expiry: durationSchema.optional(),
  })
  .strict();
export type EnvironmentPolicy = z.infer<typeof environmentPolicySchema>;

export const channelSchema = z.object({ target: z.string() }).strict();

export const configSchema = z
  .object({
    state: z
      .object({
        url: z.string().min(1),
        /** Default approval expiry. */
        expiry: durationSchema.default(15 * 60),
      })
      .strict(),
    limits: limitsSchema.default(limitsSchema.parse({})),
    backups: z
      .object({ dir: z.string().default('./backups') })
      .strict()
      .optional(),
    /** Directories of user-written runbook packs (each holds one sub-directory per pack). */
    packs: z
      .object({ dirs: z.array(z.string()).default([]) })
      .strict()
      .optional(),
    /** Roles that may bind and unbind channels to targets. */
    admin_roles: z.array(z.string()).default(['admin']),
    targets: z.record(z.string().regex(NAME, nameMessage), targetSchema),
    people: z.record(z.string().regex(NAME, nameMessage), personSchema),
    policy: z.record(z.string().regex(NAME, nameMessage), environmentPolicySchema),
    channels: z
      .record(
        z.string().regex(/^(slack|discord):.+$/, 'write channels as "slack:C0123" or "discord:1234"'),
        channelSchema,
      )
      .default({}),
  })
  .strict();

export type RawConfig = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
export type TargetConfig = ParsedConfig['targets'][string];

/** The validated configuration, with targets resolved to their effective limits. Frozen after load. */
export interface Config {
  state: { url: string; expirySeconds: number };
  targets: Readonly<Record<string, ResolvedTarget>>;
  people: Readonly<Record<string, ResolvedPerson>>;
  policy: Readonly<Record<string, EnvironmentPolicy>>;
  /** Keys like "slack:C0INCIDENT". */
  channels: Readonly<Record<string, { target: string }>>;
  backupsDir: string;
  /** User pack directories, resolved against the config file's directory. */
  packDirs: readonly string[];
  adminRoles: readonly string[];
  /** Where the file came from (for messages). */
  source: string;
}

export interface ResolvedTarget {
  name: string;
  url: string;
  environment: string;
  description?: string;
  packs: readonly string[];
  /** Per-pack settings for this target (absent: none). */
  settings?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  limits: Limits;
  /** false: never prepare statements by name on this target (absent: they are prepared). */
  preparedStatements?: boolean;
  /** Sensitive columns of this target and the roles that see them unmasked (absent: none). */
  sensitive?: { columns: readonly string[]; visibleTo: readonly string[] };
}

export interface ResolvedPerson {
  name: string;
  roles: readonly string[];
  identities: { slack?: string; discord?: string; cli?: string };
}
