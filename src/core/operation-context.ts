// Builds the context an operation step runs with: its target connection with the operation's limits.
import type { ResolvedTarget } from '../config/schema.js';
import type { QueryLimits, TargetDb } from '../engine/types.js';
import type { AnyOperation, OperationContext } from './operation.js';

export interface ContextInput {
  spec: AnyOperation;
  target: ResolvedTarget;
  targets: { get(name: string): TargetDb };
  args: Record<string, unknown>;
  now: Date;
  requestId: string;
  backupsDir: string;
  progress?: (line: string) => void;
  /** Who asked; absent means no role (sensitive values stay masked). */
  person?: { name: string; roles: readonly string[] };
}

export function operationContext(input: ContextInput): OperationContext<Record<string, unknown>> {
  const limits = { ...input.target.limits, ...input.spec.limits };
  const db = withLimits(input.targets.get(input.target.name), {
    statementTimeoutMs: limits.statement_timeout * 1000,
    lockTimeoutMs: limits.lock_timeout * 1000,
    rowCap: limits.row_cap,
  });
  return {
    args: input.args,
    target: input.target,
    db,
    limits,
    now: input.now,
    requestId: input.requestId,
    backupsDir: input.backupsDir,
    progress: input.progress ?? (() => {}),
    ...(input.person ? { person: input.person } : {}),
  };
}

/** Applies an operation's limits as the defaults of every transaction it opens. */
function withLimits(db: TargetDb, defaults: QueryLimits): TargetDb {
  return {
    name: db.name,
    read: (fn, limits) => db.read(fn, { ...defaults, ...limits }),
    write: (fn, limits) => db.write(fn, { ...defaults, ...limits }),
    direct: (fn, limits) => db.direct(fn, { ...defaults, ...limits }),
    ownPids: () => db.ownPids(),
    serverVersion: () => db.serverVersion(),
  };
}
