// Builds the context an operation step runs with: its target connection with the operation's limits.
import type { ResolvedTarget } from '../config/schema.js';
import type { QueryLimits, TargetDb } from '../engine/types.js';
import type { HistoryStore } from '../history/store.js';
import type { AnyOperation, OperationContext } from './operation.js';
import type { InvocationFile, ResultScope } from './types.js';

export interface ContextInput {
  spec: AnyOperation;
  target: ResolvedTarget;
  targets: { get(name: string): TargetDb };
  args: Record<string, unknown>;
  now: Date;
  requestId: string;
  backupsDir: string;
  progress?: (line: string) => void;
  /** Files sent with the command (none by default). */
  files?: readonly InvocationFile[];
  /** The command's result scope (result-budget.ts): its large reads hold their rows there. */
  resultScope?: ResultScope;
  /** Aborted when a person cancels the run: every `ctx.db` call carries it. */
  signal?: AbortSignal;
  /** Called each time a write or direct unit of work of the operation has completed (committed). */
  committed?: () => void;
  /** Who asked; absent means no role (sensitive values stay masked). */
  person?: { name: string; roles: readonly string[] };
  /** A row cap above the operation's own, so a page past it can be reached (src/core/paging.ts). */
  rowCap?: number;
  /** Stored history samples (forecasts in `health`). */
  history?: HistoryStore;
}

export function operationContext(input: ContextInput): OperationContext<Record<string, unknown>> {
  const own = { ...input.target.limits, ...input.spec.limits };
  const limits =
    input.rowCap !== undefined && input.rowCap > own.row_cap ? { ...own, row_cap: input.rowCap } : own;
  const signal = input.signal ?? new AbortController().signal;
  const db = withLimits(
    input.targets.get(input.target.name),
    {
      statementTimeoutMs: limits.statement_timeout * 1000,
      lockTimeoutMs: limits.lock_timeout * 1000,
      rowCap: limits.row_cap,
      ...(input.resultScope ? { resultScope: input.resultScope } : {}),
    },
    signal,
    input.committed ?? (() => {}),
  );
  return {
    args: input.args,
    target: input.target,
    db,
    limits,
    now: input.now,
    requestId: input.requestId,
    backupsDir: input.backupsDir,
    progress: input.progress ?? (() => {}),
    files: input.files ?? [],
    signal,
    ...(input.person ? { person: input.person } : {}),
    ...(input.history ? { history: input.history } : {}),
  };
}

/** Applies an operation's limits as the defaults of every transaction it opens, and the run's signal. */
function withLimits(
  db: TargetDb,
  defaults: QueryLimits,
  signal: AbortSignal,
  committed: () => void,
): TargetDb {
  const counted = async <R>(work: Promise<R>): Promise<R> => {
    const result = await work;
    committed();
    return result;
  };
  return {
    name: db.name,
    read: (fn, limits, own) => db.read(fn, { ...defaults, ...limits }, own ?? signal),
    write: (fn, limits, own) => counted(db.write(fn, { ...defaults, ...limits }, own ?? signal)),
    direct: (fn, limits, own) => counted(db.direct(fn, { ...defaults, ...limits }, own ?? signal)),
    ownPids: () => db.ownPids(),
    serverVersion: () => db.serverVersion(),
    ...(db.generation ? { generation: () => db.generation?.() ?? 0 } : {}),
    base: db.base ?? db,
  };
}
