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
  /**
   * Discord: the role ids of the guild member from the interaction payload (never from typed text); an
   * empty list when the payload carried no roles. Absent in a DM (no guild member: the roles last
   * observed for the user apply) and on other surfaces.
   */
  memberRoles?: readonly string[];
  /**
   * A surface's key for this delivery (`slack:command:<trigger_id>`) when a platform may deliver it again:
   * the first claim of it across replicas runs, a repeat answers `duplicate` and runs nothing. Claimed
   * with the invocation's first audit record (one statement), or before a built-in or a request.
   */
  delivery?: string;
  /**
   * Where the command's large reads hold their rows until its answer is delivered: made by the surface
   * that delivers it (result-budget.ts withResultScope); without one a read releases its rows on return.
   */
  resultScope?: ResultScope;
}

/**
 * The grants one command holds until its answer is delivered (result-budget.ts). A surface makes it
 * (withResultScope) and hands it over on the Invocation; the core gives it to the operation's target
 * sessions with their limits, where a large read reserves its rows in it. Passed along, not kept in an
 * AsyncLocalStorage: on Node 20 one turns on promise hooks for every await of the process (about 34 KB
 * allocated per Slack command for them, and a hook call per promise and per socket write).
 */
export interface ResultScope {
  readonly releases: (() => void)[];
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

/**
 * How much a column matters when a table must fit a narrow screen: `key` values (ids, pids, names) are
 * never clipped or hidden, `low` ones are hidden first. Inferred from the kind, values and name if left out.
 */
export type Importance = 'key' | 'high' | 'normal' | 'low';

export interface Column {
  key: string;
  label: string;
  kind: ColumnKind;
  importance?: Importance;
  /** Free text that wraps within its column instead of being shortened (help's descriptions). */
  wrap?: boolean;
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
  /** Set when the rows are one page of a longer list (src/core/paging.ts). */
  page?: PageInfo;
}

/** Which page of a list a result shows, and how to ask for the next one. */
export interface PageInfo {
  /** 1 for the first page. */
  number: number;
  /** Rows per page. */
  size: number;
  /** The position of the page's first row in the whole list (1-based). */
  first: number;
  /** More rows exist after this page. */
  more: boolean;
  /** The exact command of the next page, e.g. `/db connections kasm --limit 20 --page 3`. */
  next?: string;
}

export interface Attachment {
  filename: string;
  /** e.g. `text/csv` */
  contentType: string;
  /** The file's text (CSV); empty when `bytes` holds a binary file. */
  content: string;
  /** A binary file's bytes (a PNG chart); when set, surfaces send these instead of `content`. */
  bytes?: Uint8Array;
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
