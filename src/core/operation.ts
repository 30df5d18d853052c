// The contract every runbook operation in commands/ follows: typed arguments, a risk, and its SQL steps.

import type { z } from 'zod';
import type { Limits, ResolvedTarget } from '../config/schema.js';
import type { TargetDb } from '../engine/types.js';
import type { HistoryStore } from '../history/store.js';
import { wrapText } from './layout.js';
import type { Action } from './policy.js';
import type { InvocationFile, OperationResult, Risk } from './types.js';

export interface OperationContext<A> {
  /** Validated, normalized arguments. */
  args: A;
  target: ResolvedTarget;
  db: TargetDb;
  /** Effective limits (config defaults < target < operation). */
  limits: Limits;
  now: Date;
  requestId: string;
  /** Directory for backups (config `backups.dir`); operations keep files in a sub-directory per target. */
  backupsDir: string;
  /** Posts a progress line to the request's thread (long operations). */
  progress(line: string): void;
  /** Files sent with the command (a preview or a direct run; an approved execution has none). */
  files?: readonly InvocationFile[];
  /**
   * Aborted when a person cancels the run (`/db cancel <id>`): `db` calls carry it already; an operation
   * running its own loop or tool checks it and stops.
   */
  signal?: AbortSignal;
  /**
   * Who asked (for approved requests: the requester), when the core passes it; operations that show
   * values by role (sensitive columns) treat an absent person as holding no role.
   */
  person?: { name: string; roles: readonly string[] };
  /** Stored history samples of the targets, when this dbops keeps them: `health` forecasts from them. */
  history?: HistoryStore;
}

/** What a destructive operation shows before approval, and the facts it re-checks at execution. */
export interface Preview {
  result: OperationResult;
  /** JSON-serializable facts bound to the approval (e.g. the exact pids and their backend_start). */
  state: unknown;
  /** True when there is nothing to do: no approval request is created. */
  empty?: boolean;
  /**
   * Set when the preview already knows the operation cannot succeed as things are: why, and the fix
   * (e.g. "activities_archive is missing: CREATE TABLE …"). The request is refused, not queued.
   */
  blocked?: string;
}

export interface OperationSpec<S extends z.ZodObject = z.ZodObject> {
  name: string;
  summary: string;
  /** e.g. `kill-idle <target> [--older-than 5m]` */
  usage: string;
  /** Longer help: what it does and what it never does. */
  description?: string;
  /** Names of positional arguments, in order, as keys of `args`. */
  positionals?: readonly string[];
  /** Zod object for every argument; option names are the keys (`older_than` ← `--older-than`). */
  args: S;
  risk: Risk;
  /**
   * False for a read that is not one list (a file, a plan, a checklist, sections with their own limits):
   * it takes no `--page`, and its answer is never cut into pages (src/core/paging.ts).
   */
  paged?: false;
  /**
   * Loads what riskFor and actionFor need that the process loads lazily (ad-hoc SQL: the SQL parser);
   * awaited before the arguments are judged.
   */
  preload?(): Promise<void>;
  /** Raises the risk for some arguments (e.g. `vacuum --full` is destructive). */
  riskFor?(args: z.output<S>): Risk;
  /**
   * The permission running it needs, when not the one its risk implies (ad-hoc SQL: `sql_read` or
   * `sql_write`, so granting `read` never grants SQL). The core consults it before `actionForRisk`.
   */
  actionFor?(args: z.output<S>): Action;
  /** False for operations that need no target. */
  needsTarget?: boolean;
  /** Per-operation overrides of statement_timeout / lock_timeout (seconds) and row_cap. */
  limits?: Partial<Pick<Limits, 'statement_timeout' | 'lock_timeout' | 'row_cap'>>;
  /** Read and write operations. */
  run?(ctx: OperationContext<z.output<S>>): Promise<OperationResult>;
  /** Destructive operations: what would happen, stored with the approval request. */
  preview?(ctx: OperationContext<z.output<S>>): Promise<Preview>;
  /** Destructive operations, after approval: re-check the preview's facts, act, and say what changed. */
  execute?(ctx: OperationContext<z.output<S>>, previewState: unknown): Promise<OperationResult>;
  /**
   * Why it cannot run on this target (e.g. a pack operation whose tables the schema lacks), or undefined
   * when it can; operations that run everywhere leave it out.
   */
  unavailable?(db: TargetDb): Promise<string | undefined>;
}

/** Identity helper that keeps the spec's argument types flowing into run/preview/execute. */
export function defineOperation<S extends z.ZodObject>(spec: OperationSpec<S>): OperationSpec<S> {
  return spec;
}

export type AnyOperation = OperationSpec<z.ZodObject>;

/**
 * The operations that cannot run on a target, each with the reason (`/db help <target>`). When the
 * target cannot be asked, one entry without a name says why, instead of listing every operation.
 */
export async function unavailableOn(
  specs: readonly AnyOperation[],
  db: TargetDb,
): Promise<{ name: string; reason: string }[]> {
  const out: { name: string; reason: string }[] = [];
  for (const spec of specs) {
    if (!spec.unavailable) continue;
    try {
      const reason = await spec.unavailable(db);
      if (reason !== undefined) out.push({ name: spec.name, reason });
    } catch (err) {
      // The target cannot be asked (down, timeout): say so once rather than guess per operation.
      return [{ name: '', reason: err instanceof Error ? err.message : String(err) }];
    }
  }
  return out;
}

/**
 * Words laid out in lines of at most `width` characters, every line indented by `indent` (a longer word
 * stands alone, never cut; a time in the one format stays on one line).
 */
export function wrapWords(text: string, width: number, indent: string): string[] {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat === '') return [];
  return wrapText(flat, width - indent.length).map((line) => indent + line);
}

/**
 * The unavailable operations as help shows them, within 80 columns: a heading, then each operation
 * (a lookup under the name people type) and its reason; nothing when every operation is available.
 */
export function unavailableLines(
  unavailable: readonly { name: string; reason: string }[],
  lookupNames: ReadonlyMap<string, string> = new Map(),
): string[] {
  if (unavailable.length === 0) return [];
  const [first] = unavailable;
  if (first && first.name === '') {
    return wrapWords(`Which operations its schema can serve is unknown: ${first.reason}`, 80, '');
  }
  return [
    'Unavailable here (the schema lacks what they need):',
    ...unavailable.flatMap((u) => {
      const lookup = lookupNames.get(u.name);
      return [`  ${lookup !== undefined ? `lookup ${lookup}` : u.name}:`, ...wrapWords(u.reason, 80, '    ')];
    }),
  ];
}
