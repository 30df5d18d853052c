// The shape of dbops.yaml (see PRODUCT.md "Configuration"), validated with zod at start-up.
import { z } from 'zod';
import { parseDuration } from '../core/duration.js';
import { parseSize, SIZE_HINT } from '../core/size.js';
import { isTimeZone } from '../core/time-format.js';
import { type ResolvedSchedule, schedulesSchema } from '../schedules/schema.js';

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

/** How soon a forecast limit must be reached for `health` to warn, unless a target says otherwise. */
export const DEFAULT_FORECAST_HORIZON_SECONDS = 14 * 86_400;

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
    /**
     * Forecasts (`/db trend`, `health`): `disk_budget` is the size the database may reach (e.g. "50GB");
     * `horizon` is how soon a forecast limit must be reached for `health` to warn (default 14 days).
     */
    forecast: z
      .object({
        disk_budget: z
          .union([z.string(), z.number()])
          .transform((value, ctx) => {
            const bytes = parseSize(value);
            if (bytes === undefined || bytes <= 0) {
              ctx.addIssue({ code: 'custom', message: `${SIZE_HINT}, got "${String(value).slice(0, 40)}"` });
              return z.NEVER;
            }
            return bytes;
          })
          .optional(),
        horizon: durationSchema.default(DEFAULT_FORECAST_HORIZON_SECONDS),
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
    /** A service person: no chat identity; schedules run as it, and the policy checks its roles. */
    service: z.boolean().optional(),
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
    /** When true, every request on this environment needs `--reason "…"` (matching `reason_pattern`, if set). */
    require_reason: z.boolean().optional(),
    /** A regular expression a reason must contain, e.g. `INC-\\d+` for a ticket reference. */
    reason_pattern: z.string().refine(isRegex, 'expected a regular expression, e.g. "INC-\\d+"').optional(),
    /** How approvers hear of a request: the approver groups mentioned on the card, a DM each, or neither. */
    notify: z.enum(['mention', 'dm', 'none']).optional(),
    /** After this long without a decision, the request is escalated once to `escalate_to`. */
    escalate_after: durationSchema.optional(),
    /** The roles whose groups are told when a request is escalated. */
    escalate_to: z.array(z.string()).optional(),
    /**
     * Where the running bot posts the cards of requests made outside chat (`dbops exec`, the console,
     * schedules), which have no thread of their own: a Slack channel id and/or a Discord channel id.
     */
    approvals_channel: z
      .object({
        slack: z
          .string()
          .regex(/^[CG][A-Z0-9]{2,31}$/, 'expected a Slack channel id such as C0123ABCD (not a #name)')
          .optional(),
        discord: z
          .string()
          .regex(/^\d{5,25}$/, 'expected a Discord channel id (a snowflake such as "1122334455667788")')
          .optional(),
        /** How `dbops exec` names it ("#ops-approvals"); the ids when left out. */
        name: z.string().max(80).optional(),
      })
      .strict()
      .refine((c) => c.slack !== undefined || c.discord !== undefined, 'expected slack and/or discord')
      .optional(),
  })
  .strict();
export type EnvironmentPolicy = z.infer<typeof environmentPolicySchema>;

function isRegex(text: string): boolean {
  try {
    new RegExp(text, 'u');
    return true;
  } catch {
    return false;
  }
}

/** Where a role's members are read from on the chat platforms (besides people listed by hand). */
export const roleSourceSchema = z
  .object({
    /** Slack user group ids (`S…`), read with usergroups.users.list. */
    slack_groups: z
      .array(z.string().regex(/^S[A-Z0-9]{2,31}$/, 'write Slack user group ids, e.g. S0123DBA'))
      .default([]),
    /** Discord guild role ids (snowflakes), read from the member of each interaction. */
    discord_roles: z
      .array(z.string().regex(/^\d{5,25}$/, 'write Discord role ids, e.g. "1234567890"'))
      .default([]),
  })
  .strict();

export const roleSourcesSchema = z
  .object({
    /** How often Slack group membership is read again. */
    refresh: durationSchema.default(5 * 60),
    /** How long the last known membership is kept while it cannot be read; after that the group grants nothing. */
    keep_last_known: durationSchema.default(60 * 60),
    /**
     * Opt-in: also read the members of the bot's guilds over REST every `refresh` (needs the privileged
     * Server Members intent), so holders of a Discord role are known before they act.
     */
    discord_member_listing: z.boolean().default(false),
    roles: z.record(z.string().regex(NAME, nameMessage), roleSourceSchema).default({}),
  })
  .strict();

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
    /** Alerts of scheduled checks: how often a failing alert nobody silenced is posted again. */
    alerts: z
      .object({ remind_every: durationSchema.default(3600) })
      .strict()
      .optional(),
    /** History samples: how long they are kept, and how many of the largest tables are sampled. */
    history: z
      .object({
        retention: durationSchema.default(90 * 86_400),
        top_tables: z.number().int().min(1).max(100).default(10),
      })
      .strict()
      .optional(),
    /** How text answers show times: an IANA zone such as Europe/Berlin (default UTC); --json stays ISO 8601. */
    display: z
      .object({
        time_zone: z
          .string()
          .refine(isTimeZone, 'use an IANA time zone name such as UTC or Europe/Berlin')
          .default('UTC'),
      })
      .strict()
      .optional(),
    /** Roles that may bind and unbind channels to targets. */
    admin_roles: z.array(z.string()).default(['admin']),
    targets: z.record(z.string().regex(NAME, nameMessage), targetSchema),
    people: z.record(z.string().regex(NAME, nameMessage), personSchema),
    /** Roles held through Slack user groups and Discord roles (see docs/roles.md). */
    role_sources: roleSourcesSchema.optional(),
    policy: z.record(z.string().regex(NAME, nameMessage), environmentPolicySchema),
    channels: z
      .record(
        z.string().regex(/^(slack|discord):.+$/, 'write channels as "slack:C0123" or "discord:1234"'),
        channelSchema,
      )
      .default({}),
    /** Operations dbops runs by itself on a cron, as a service person (src/schedules). */
    schedules: schedulesSchema.default({}),
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
  /** `alerts:` (absent: defaults, reminders every hour). */
  alerts?: { remindEverySeconds: number };
  /** `history:` (absent: defaults, 90 days and the 10 largest tables). */
  history?: { retentionSeconds: number; topTables: number };
  /** The IANA zone text answers show times in (`display.time_zone`, default UTC). */
  timeZone: string;
  /** Roles held through chat platform groups (absent: only people listed by hand hold roles). */
  roleSources?: RoleSources;
  /** Scheduled runs by name (none: {}). */
  schedules: Readonly<Record<string, ResolvedSchedule>>;
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
  /** Forecast limits of this target: the disk budget in bytes (absent: none) and the warning horizon. */
  forecast?: { diskBudgetBytes?: number; horizonSeconds: number };
}

export interface RoleSources {
  refreshSeconds: number;
  keepSeconds: number;
  /** role_sources.discord_member_listing: guild members are read over REST, not only seen in payloads. */
  discordMemberListing?: boolean;
  roles: Readonly<Record<string, { slackGroups: readonly string[]; discordRoles: readonly string[] }>>;
}

export interface ResolvedPerson {
  name: string;
  roles: readonly string[];
  identities: { slack?: string; discord?: string; cli?: string };
  /** A service person (schedules run as it); it has no identity anyone could present. */
  service?: true;
}
