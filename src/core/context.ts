// What the core's modules share: the invocation under way, audit inputs, and the services built-ins get.
import type { AlertBook } from '../alerts/store.js';
import type { Config, ResolvedPerson, ResolvedTarget } from '../config/schema.js';
import type { TargetDb } from '../engine/types.js';
import type { HistoryStore } from '../history/store.js';
import type { ScheduleService } from '../schedules/service.js';
import type { OutcomeJournal } from '../state/journal.js';
import type { Actor, ApprovalRequest, AuditEvent, StateStore } from '../state/types.js';
import type { Catalog } from './catalog.js';
import type { UserError } from './errors.js';
import type { Token } from './grammar.js';
import type { Standing } from './judgement.js';
import type { Logger } from './log.js';
import type { AnyOperation } from './operation.js';
import type { Reply } from './reply.js';
import type { Invocation, Risk } from './types.js';

/** What changed on an approval request, for adapters that keep cards and threads up to date. */
export type RequestChange =
  | 'created'
  | 'voted'
  | 'approved'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'denied'
  | 'cancelled'
  | 'expired';

export interface CoreDeps {
  config: Config;
  catalog: Catalog;
  targets: { get(name: string): TargetDb };
  state: StateStore;
  log: Logger;
  clock?: () => Date;
  /** Called after every transition of an approval request (after it is stored). */
  onRequestChange?: (request: ApprovalRequest, change: RequestChange) => void;
  /**
   * Progress lines of long operations, for the request's thread; `about` is the approval request's number,
   * or the invocation's reference (`r7f3kq`) for a direct run.
   */
  onProgress?: (about: number | string, invocation: Invocation, line: string) => void;
  /** Called once per dispatch with its reply and the time from entering dispatch to the reply (metrics). */
  onDispatched?: (invocation: Invocation, reply: Reply, durationMs: number) => void;
  /** Called after each step an operation ran against its target (metrics). */
  onOperationRun?: (run: OperationRun) => void;
  /**
   * How long an approved run is leased to this replica before it must renew (renewed every third of it);
   * a run whose lease ran out is reported interrupted by whichever replica sweeps next. Default 60 s.
   */
  runLeaseMs?: number;
  /** This replica's name on the runs it leases (default: host, pid and a random part). */
  runner?: string;
  /** Where run outcomes the state database cannot take are kept until it is back (none: logged only). */
  journal?: OutcomeJournal;
  /** Waits between attempts to record a run's outcome before it is journaled (tests shorten them). */
  outcomeRetryDelaysMs?: readonly number[];
  /** Alert state in the state database (`/db alerts`); absent: the built-in says it is not set up. */
  alerts?: AlertBook;
  /** History samples in the state database (`/db history`); absent likewise. */
  history?: HistoryStore;
  /** Schedules (`/db schedules`, `/db run-schedule`); absent: those built-ins say none are available. */
  schedules?: ScheduleService;
}

/** One step of an operation against its target: a direct run, an approval preview, or an approved execution. */
export interface OperationRun {
  operation: string;
  target: string;
  phase: 'run' | 'preview' | 'execute';
  ok: boolean;
  durationMs: number;
}

/** What an audit record or reply says about the operation concerned (undefined fields are left out). */
export interface About {
  requestId?: number | undefined;
  operation?: string | undefined;
  target?: string | undefined;
  args?: Record<string, unknown> | undefined;
  risk?: Risk | undefined;
  approvers?: string[] | undefined;
  durationMs?: number | undefined;
}

export interface AuditInput extends About {
  event: AuditEvent['event'];
  outcome: string;
  error?: string | undefined;
  detail?: Record<string, unknown> | undefined;
}

/** Everything known about one invocation while it is handled. */
export interface InvocationContext {
  inv: Invocation;
  /**
   * The reference of this invocation's replies and audit records (`r7f3kq`): every invocation has one,
   * and it can never be taken for a request number.
   */
  ref: string;
  /**
   * The approval request this invocation is about: set when it creates one (only then is a request
   * number taken) or when dbops acts on one by itself.
   */
  requestId?: number | undefined;
  now: Date;
  person: ResolvedPerson | undefined;
  /** "slack:T01/U01" — the identity as audited. */
  identity: string;
  log: Logger;
  /** The `--reason` given with the command (set by intake once parsed); in every audit record of it. */
  reason?: string;
  /** The delivery to claim (Invocation.delivery) and whether it was claimed yet: first, or a repeat. */
  delivery?: { key: string; state: 'unclaimed' | 'first' | 'repeat' };
}

/** What built-in commands may use of the core: the seam that keeps imports pointing one way. */
export interface CoreServices {
  readonly config: Config;
  /** The schedules service of this process, if it has one. */
  readonly schedules: ScheduleService | undefined;
  readonly catalog: Catalog;
  readonly state: StateStore;
  /** Alert state and history samples, when this process keeps them (see CoreDeps). */
  readonly alerts?: AlertBook | undefined;
  readonly history?: HistoryStore | undefined;
  now(): Date;
  /** The database handle of a configured target (nothing is opened until it is used). */
  targetDb(name: string): TargetDb;
  /** Expires overdue requests and reports abandoned runs (idempotent across replicas). */
  sweepExpired(): Promise<ApprovalRequest[]>;
  /** Targets whose environment lets this person read. */
  visibleTargets(person: ResolvedPerson | undefined): ResolvedTarget[];
  boundTarget(inv: Invocation): Promise<ResolvedTarget | undefined>;
  channelKey(inv: Invocation): string | undefined;
  actor(ctx: InvocationContext): Actor;
  changed(request: ApprovalRequest, change: RequestChange): void;
  audit(ctx: InvocationContext, event: AuditInput): Promise<void>;
  /** Several events: written in one statement, in order. */
  auditOrStop(ctx: InvocationContext, event: AuditInput | readonly AuditInput[]): Promise<void>;
  refuse(ctx: InvocationContext, code: UserError['code'], message: string, about?: About): Promise<Reply>;
  /** Binds arguments, decides by policy, then runs at once or stores a request for approval. */
  runOperation(
    ctx: InvocationContext,
    spec: AnyOperation,
    target: ResolvedTarget | undefined,
    rest: readonly Token[],
  ): Promise<Reply>;
  /**
   * The request judged on the current config: which votes count now, or — when its target changed
   * environment or is gone — the refusal reply, after dbops voided (cancelled and audited) the request.
   */
  standing(ctx: InvocationContext, request: ApprovalRequest): Promise<Standing | Reply>;
  /** Aborts a run of this replica that a person cancelled; false when it does not run here. */
  stopRun(id: number, by: Actor): boolean;
  /** Runs an approved request exactly once. */
  /** `audited`: the caller has just written the approval's audit record (else runApproved writes one). */
  runApproved(
    ctx: InvocationContext,
    approved: ApprovalRequest,
    options?: { audited?: boolean },
  ): Promise<Reply>;
}
