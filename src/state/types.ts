// Persistent state shared by every dbops replica: approval requests, votes and the audit log.
import type { OperationResult, RequestStatus, Risk, Surface } from '../core/types.js';

export interface Actor {
  /** Person name from config.people. */
  person: string;
  /** The identity used for this action, e.g. "slack:T01/U02BOB" or "cli:bob". */
  identity: string;
  surface: Surface;
}

export interface Vote extends Actor {
  vote: 'approve' | 'deny';
  reason?: string;
  at: Date;
}

export interface ApprovalRequest {
  id: number;
  status: RequestStatus;
  operation: string;
  target: string;
  environment: string;
  /** Normalized arguments; approval binds exactly these. */
  args: Record<string, unknown>;
  /** The canonical command, e.g. "kill-idle staging --older-than 5m". */
  command: string;
  risk: Risk;
  requester: Actor;
  channel?: string;
  thread?: string;
  preview: { result: OperationResult; state: unknown };
  approvalsRequired: number;
  votes: Vote[];
  createdAt: Date;
  expiresAt: Date;
  updatedAt: Date;
  /** While running: which replica runs it, and until when it has to renew its lease. */
  runner?: string;
  leaseUntil?: Date;
  /** Set while running when a person asked to stop it (the runner notices and aborts). */
  cancelRequest?: { by: Actor; at: Date };
  /** Set when it ran. */
  result?: OperationResult;
  error?: string;
  /** Reason given with a deny. */
  reason?: string;
  /** The requester's `--reason`. */
  requestReason?: string;
  /** When it was escalated to a second group (at most once). */
  escalatedAt?: Date;
  /** Surface-specific references (e.g. Slack channel + message ts of the approval card). */
  refs: Record<string, unknown>;
}

export interface NewRequest {
  id: number;
  operation: string;
  target: string;
  environment: string;
  args: Record<string, unknown>;
  command: string;
  risk: Risk;
  requester: Actor;
  channel?: string;
  thread?: string;
  preview: { result: OperationResult; state: unknown };
  approvalsRequired: number;
  expiresAt: Date;
  now: Date;
  /** The requester's `--reason`, if given. */
  requestReason?: string;
}

/** Why a transition did not happen. */
export type TransitionRefusal =
  | { ok: false; code: 'not_found' }
  | { ok: false; code: 'self_approval'; request: ApprovalRequest }
  | { ok: false; code: 'already_voted'; request: ApprovalRequest }
  | { ok: false; code: 'not_pending'; request: ApprovalRequest }
  | { ok: false; code: 'expired'; request: ApprovalRequest }
  | { ok: false; code: 'not_requester'; request: ApprovalRequest }
  | { ok: false; code: 'target_busy'; request: ApprovalRequest };

export type Transition = { ok: true; request: ApprovalRequest } | TransitionRefusal;

export const AUDIT_EVENTS = [
  'invalid', // could not be parsed or validated
  'refused', // policy, self-approval, expired, ... (any refusal)
  'requested', // a read/write about to run, or a destructive request created
  'pending', // a destructive request waits for approval
  'vote', // an approve or deny vote recorded
  'approved',
  'denied',
  'cancelled',
  'expired',
  'executed', // ran and succeeded
  'failed', // ran and failed
  'interrupted', // the replica running it stopped before it finished: outcome unknown
  'builtin', // help, targets, pending, status, audit
] as const;
export type AuditEventKind = (typeof AUDIT_EVENTS)[number];

export interface AuditEvent {
  requestId: number | null;
  /** The reference of the invocation that wrote it (`r7f3kq`); dbops' own records have none. */
  ref?: string;
  event: AuditEventKind;
  person: string | null;
  identity: string;
  surface: Surface;
  channel?: string;
  thread?: string;
  operation?: string;
  target?: string;
  args?: Record<string, unknown>;
  risk?: Risk;
  approvers?: string[];
  outcome: string;
  durationMs?: number;
  error?: string;
  detail?: Record<string, unknown>;
}

export interface AuditRecord extends AuditEvent {
  id: number;
  at: Date;
  /** A run's start with no later record of its reference (listAudit only): still running, or never closed. */
  unfinished?: boolean;
}

/** Which audit records to read (every field narrows). */
export interface AuditFilter {
  target?: string;
  /** The records of one invocation, by its reference (`r7f3kq`). */
  ref?: string;
  /** A person's name (all their identities) or one identity ("slack:T1/U2"). */
  person?: string;
  operation?: string;
  /** An event ("refused", "executed", …) or an outcome ("ok", "denied", …). */
  outcome?: string;
  /** Records at or after this time. */
  since?: Date;
  /** Records before this time. */
  until?: Date;
  /** Oldest first, after this record id (export pages); default newest first. */
  afterId?: number;
  limit?: number;
}

export interface ChannelBinding {
  channel: string;
  target: string;
  boundBy: string;
  boundAt: Date;
}

/** A read answered in pages, as a "Next page" button names it (by reference only). */
export interface PagedRead {
  /** The reference of the invocation that first asked (`r7f3kq`). */
  ref: string;
  /** The canonical command without `--page`, e.g. `connections kasm --limit 20`. */
  command: string;
  operation: string;
  target: string;
  /** Who first asked, as audited ("slack:T01/U01ALICE"); a button press runs as whoever pressed. */
  identity: string;
  createdAt: Date;
}

export interface RunLease {
  /** The replica running the request (host, pid and a random part). */
  runner: string;
  until: Date;
}

export interface StateStore {
  /** Applies pending schema migrations (versioned, under an advisory lock so replicas can race). */
  migrate(): Promise<void>;
  /** A new request number from a database sequence (only approval requests take one). */
  nextRequestId(): Promise<number>;
  createRequest(input: NewRequest): Promise<ApprovalRequest>;
  /**
   * Takes the next request number and stores `record` (as that request's audit record) and the pending
   * request in one statement: both or neither.
   */
  createRequestAudited(
    input: Omit<NewRequest, 'id'>,
    record: AuditEvent,
    now: Date,
  ): Promise<ApprovalRequest>;
  getRequest(id: number): Promise<ApprovalRequest | undefined>;
  listRequests(filter: {
    statuses?: RequestStatus[];
    target?: string;
    limit?: number;
  }): Promise<ApprovalRequest[]>;
  /**
   * Records an approve vote in one transaction with the request row locked: refuses a missing request,
   * the requester (same person, any identity), a second vote by the same person, a request that is not
   * pending, or one past its expiry (which it marks expired). When the votes reach approvalsRequired (or,
   * given `reached`, when it says so of the request with the new vote) the status becomes `approved` in the
   * same transaction.
   */
  approve(
    id: number,
    voter: Actor,
    now: Date,
    reached?: (request: ApprovalRequest) => boolean,
  ): Promise<Transition & { reached?: boolean }>;
  /**
   * pending | approved → cancelled by dbops, with the reason (e.g. its target changed environment): the
   * request no longer stands under the policy in force.
   */
  voidRequest(id: number, reason: string, now: Date): Promise<Transition>;
  /** approved → pending: the votes that approved it no longer count under the policy in force. */
  reopen(id: number, now: Date): Promise<Transition>;
  /** pending → denied, with the reason; same refusals as approve (the requester cancels instead). */
  deny(id: number, voter: Actor, reason: string | undefined, now: Date): Promise<Transition>;
  /** pending | approved (not started) → cancelled, only by the requester (same person). */
  cancel(id: number, actor: Actor, now: Date): Promise<Transition>;
  /**
   * Compare-and-set approved → running; refuses with target_busy while another request runs on the target,
   * and with expired (marking it so) when it is past its expiry.
   * The run is leased to `lease.runner` until `lease.until` (default: ten minutes, runner "unnamed").
   */
  startRun(id: number, now: Date, lease?: RunLease): Promise<Transition>;
  /**
   * Records that `by` asked to stop a running request (the first ask is kept); refuses one that is not
   * running. The replica running it notices through cancelRequested().
   */
  requestCancel(id: number, by: Actor, now: Date): Promise<Transition>;
  /** Who asked to stop this running request, if anyone. */
  cancelRequested(id: number): Promise<Actor | undefined>;
  /** Extends a running request's lease; false when it is no longer running under this runner. */
  renewLease(id: number, lease: RunLease): Promise<boolean>;
  /**
   * running → failed for every run whose lease ran out before `now` (its replica died or lost the state
   * database), with an error saying the outcome is unknown; returns those this call changed (exactly once).
   */
  interruptAbandoned(now: Date): Promise<ApprovalRequest[]>;
  /**
   * running → succeeded | failed, storing the result or error. Given its `runner`, a run that was reported
   * interrupted while it was in fact still going (its replica lost the state database longer than the
   * lease) is corrected to its real outcome by that runner.
   */
  finishRun(
    id: number,
    outcome: { status: 'succeeded' | 'failed' | 'cancelled'; result?: OperationResult; error?: string },
    now: Date,
    runner?: string,
  ): Promise<Transition>;
  /**
   * Marks every pending or approved-but-not-started request past its expiry as expired; returns those this
   * call changed (exactly once).
   */
  expireDue(now: Date): Promise<ApprovalRequest[]>;
  /** interruptAbandoned and expireDue in one statement (one round trip), each list as those calls return it. */
  sweepDue(now: Date): Promise<{ interrupted: ApprovalRequest[]; expired: ApprovalRequest[] }>;
  /** Merges surface references into the request (e.g. the Slack card's ts). */
  setRefs(id: number, refs: Record<string, unknown>): Promise<void>;
  /** Marks a pending request escalated; true for exactly one caller across replicas. */
  markEscalated?(id: number, now: Date): Promise<boolean>;
  /** A channel bound to a target at run time (`/db bind`); keys look like "slack:C0INCIDENT". */
  getBinding(channel: string): Promise<ChannelBinding | undefined>;
  listBindings(): Promise<ChannelBinding[]>;
  setBinding(binding: ChannelBinding): Promise<void>;
  /** Returns whether there was a binding to remove. */
  removeBinding(channel: string): Promise<boolean>;
  /**
   * Claims a chat delivery (e.g. "slack:event:Ev123", "discord:interaction:9876") exactly once across
   * replicas: true for the first claim, false for a retried or duplicate delivery. Claims older than a day
   * are forgotten.
   */
  claimDelivery(key: string, now: Date): Promise<boolean>;
  /** Remembers a read answered in pages, for its page buttons. */
  savePagedRead(read: PagedRead): Promise<void>;
  /** The paged read of a reference, unless unknown or too old for its buttons to work. */
  getPagedRead(ref: string, now: Date): Promise<PagedRead | undefined>;
  /** Writes one audit record; throws if it cannot (callers then run nothing). */
  audit(event: AuditEvent, now: Date): Promise<void>;
  /**
   * Like audit(), for a record that follows a reply already on its way (a run's closing record): it may
   * wait a few milliseconds to share its statement with others. Without it, audit() is used.
   */
  auditLater?(event: AuditEvent, now: Date): Promise<void>;
  /** Sends what waits for company at once, and lets nothing wait until it is written (settled, stop). */
  hurry?(): void;
  /**
   * claimDelivery and audit in one statement: the record is written only when this is the first claim of
   * `key`; false (nothing written) for a repeat. Throws when it cannot.
   */
  auditClaiming(key: string, event: AuditEvent, now: Date): Promise<boolean>;
  /** Writes several audit records in one statement, in this order: all of them or none. */
  auditAll(events: readonly AuditEvent[], now: Date): Promise<void>;
  /** Newest first, or oldest first after `afterId` (see AuditFilter). */
  listAudit(filter: AuditFilter): Promise<AuditRecord[]>;
  close(): Promise<void>;
}
