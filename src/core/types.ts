// The neutral vocabulary shared by the core, the operations and every surface (no SDK types here).

/** `schedule`: a run dbops starts by itself (src/schedules), as a service person; no adapter sends it. */
export const SURFACES = ['slack', 'discord', 'cli', 'console', 'schedule'] as const;
export type Surface = (typeof SURFACES)[number];

/** Which key of a person's identities a surface authenticates against. */
export const IDENTITY_KIND_OF_SURFACE = {
  slack: 'slack',
  discord: 'discord',
  cli: 'cli',
  console: 'cli',
  // Never looked up: a schedule's invocation names its service person directly (Core.#dispatch).
  schedule: 'cli',
} as const satisfies Record<Surface, IdentityKind>;

export const IDENTITY_KINDS = ['slack', 'discord', 'cli'] as const;
export type IdentityKind = (typeof IDENTITY_KINDS)[number];

export const RISKS = ['read', 'write', 'destructive'] as const;
export type Risk = (typeof RISKS)[number];

/** One command typed by one person on one surface: what an adapter hands to `dispatch()`. */
export interface Invocation {
  surface: Surface;
  /** Immutable platform id: Slack `T01/U01ALICE`, Discord user id, or the CLI user name. */
  identity: string;
  /** Channel id where the command was typed (used for target binding), if any. */
  channel?: string;
  /** Thread / message reference where answers belong, if any. */
  thread?: string;
  /** The command text, with or without the leading `/db`. */
  text: string;
  /** Files that came with the command (a CSV for `import`): read by the surface, already size-capped. */
  attachments?: readonly InvocationFile[];
}

/** One file sent with a command: its name as the sender gave it, and its exact bytes. */
export interface InvocationFile {
  name: string;
  size: number;
  bytes: Uint8Array;
}

/** A configured person, with every identity that counts as them. */
export interface Person {
  name: string;
  roles: readonly string[];
  identities: Partial<Record<IdentityKind, string>>;
}

/** How a column reads: `id` is a number shown plainly (pids, request ids), `count` with thousands separators. */
export const COLUMN_KINDS = [
  'text',
  'id',
  'bytes',
  'seconds',
  'count',
  'number',
  'percent',
  'timestamp',
  'bool',
] as const;
export type ColumnKind = (typeof COLUMN_KINDS)[number];

export interface Column {
  key: string;
  label: string;
  kind: ColumnKind;
}

/** A row keyed by column with machine values: bytes and counts as numbers, durations as seconds. */
export type Row = Record<string, string | number | boolean | null>;

/** What an operation returns: a headline, one main table, and notes for the reader. */
export interface OperationResult {
  /** One line above the table, e.g. "Database kasm: 12.3 MB". */
  headline?: string;
  columns: Column[];
  rows: Row[];
  /** True when more rows existed than the row cap allowed. */
  truncated: boolean;
  /** Lines below the table: skipped relations, differences from the preview, hints. */
  notes?: string[];
  /** Extra machine values for `--json` (e.g. `{ databaseBytes: 123 }`). */
  data?: Record<string, unknown>;
  /**
   * How it reads best: a table (default), a card of `field: value` lines (lookups), or `text`: the first
   * column's values as preformatted lines (a command's output, SQL).
   */
  display?: 'table' | 'card' | 'text';
  /** Files that go with the answer (CSV exports, full results): uploaded by chat surfaces. */
  attachments?: Attachment[];
}

export interface Attachment {
  filename: string;
  /** e.g. `text/csv` */
  contentType: string;
  content: string;
}

export const REQUEST_STATUSES = [
  'pending',
  'approved',
  'running',
  'succeeded',
  'failed',
  'denied',
  'cancelled',
  'expired',
] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];
