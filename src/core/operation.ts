// The contract every runbook operation in commands/ follows: typed arguments, a risk, and its SQL steps.
import type { z } from 'zod';
import type { Limits, ResolvedTarget } from '../config/schema.js';
import type { TargetDb } from '../engine/types.js';
import type { Action } from './policy.js';
import type { OperationResult, Risk } from './types.js';

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
  /**
   * Who asked (for approved requests: the requester), when the core passes it; operations that show
   * values by role (sensitive columns) treat an absent person as holding no role.
   */
  person?: { name: string; roles: readonly string[] };
}

/** What a destructive operation shows before approval, and the facts it re-checks at execution. */
export interface Preview {
  result: OperationResult;
  /** JSON-serializable facts bound to the approval (e.g. the exact pids and their backend_start). */
  state: unknown;
  /** True when there is nothing to do: no approval request is created. */
  empty?: boolean;
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
}

/** Identity helper that keeps the spec's argument types flowing into run/preview/execute. */
export function defineOperation<S extends z.ZodObject>(spec: OperationSpec<S>): OperationSpec<S> {
  return spec;
}

export type AnyOperation = OperationSpec<z.ZodObject>;
