// The audit trail of the core: records of invocations and requests, refusals and failures as replies.

import { systemRecord } from '../state/system-record.js';
import type { ApprovalRequest, AuditEvent, NewRequest, StateStore } from '../state/types.js';
import type { About, AuditInput, InvocationContext } from './context.js';
import { isUserError, UserError } from './errors.js';
import type { Logger } from './log.js';
import { type Reply, reply, statusOfCode } from './reply.js';

export class AuditTrail {
  readonly #state: StateStore;
  readonly #clock: () => Date;
  readonly #log: Logger;

  constructor(state: StateStore, clock: () => Date, log: Logger) {
    this.#state = state;
    this.#clock = clock;
    this.#log = log;
  }

  /** Writes the audit record (state database) and logs it as one line. Throws when the write fails. */
  async record(ctx: InvocationContext, event: AuditInput): Promise<void> {
    const record = this.build(ctx, event);
    const delivery = ctx.delivery;
    if (delivery?.state === 'unclaimed') {
      // The invocation's first record claims its delivery in the same statement (one round trip).
      const first = await this.#state.auditClaiming(delivery.key, record, this.#clock());
      delivery.state = first ? 'first' : 'repeat';
      if (!first) throw new RepeatedDelivery(delivery.key);
    } else await this.#state.audit(record, this.#clock());
    ctx.log.info({ audit: record }, 'audit');
  }

  /**
   * Stores a new pending request with its audit record `event`, taking its number, in one statement;
   * sets the invocation's request id. A failed write becomes a user-facing error: nothing was requested.
   */
  async request(
    ctx: InvocationContext,
    event: AuditInput,
    input: Omit<NewRequest, 'id'>,
  ): Promise<ApprovalRequest> {
    const record = this.build(ctx, event);
    let request: ApprovalRequest;
    try {
      request = await this.#state.createRequestAudited(input, record, this.#clock());
    } catch (err) {
      ctx.log.error({ err }, 'audit write failed; no request stored');
      throw new UserError(
        'state_unavailable',
        'the audit log cannot be written right now, so nothing was run; try again shortly',
      );
    }
    ctx.requestId = request.id;
    ctx.log.info({ audit: { ...record, requestId: request.id } }, 'audit');
    return request;
  }

  /**
   * Claims the invocation's delivery on its own (before a built-in or a request, which do more than
   * write their record first); throws RepeatedDelivery for a repeat. Nothing to do without one.
   */
  async claim(ctx: InvocationContext): Promise<void> {
    const delivery = ctx.delivery;
    if (delivery?.state !== 'unclaimed') {
      if (delivery?.state === 'repeat') throw new RepeatedDelivery(delivery.key);
      return;
    }
    let first: boolean;
    try {
      first = await this.#state.claimDelivery(delivery.key, this.#clock());
    } catch (err) {
      ctx.log.error({ err, delivery: delivery.key }, 'cannot record the delivery; refusing to run');
      throw new UserError(
        'state_unavailable',
        'the state database is unreachable, so nothing was run; try again shortly',
      );
    }
    delivery.state = first ? 'first' : 'repeat';
    if (!first) throw new RepeatedDelivery(delivery.key);
  }

  /** The audit record of an event of this invocation, as stored. */
  build(ctx: InvocationContext, event: AuditInput): AuditEvent {
    const detail = ctx.reason !== undefined ? { ...event.detail, reason: ctx.reason } : event.detail;
    const record: AuditEvent = {
      ...(withoutUndefined({ ...event, detail }) as Omit<
        AuditEvent,
        'requestId' | 'ref' | 'person' | 'identity' | 'surface'
      >),
      requestId: event.requestId ?? ctx.requestId ?? null,
      ref: ctx.ref,
      person: ctx.person?.name ?? null,
      identity: ctx.identity,
      surface: ctx.inv.surface,
      ...(ctx.inv.channel !== undefined ? { channel: ctx.inv.channel } : {}),
      ...(ctx.inv.thread !== undefined ? { thread: ctx.inv.thread } : {}),
    };
    return record;
  }

  /**
   * Like record(), but a failed write becomes a user-facing error: nothing runs without its record.
   * Several events are written in one statement, in order (all or none).
   */
  async orStop(ctx: InvocationContext, event: AuditInput | readonly AuditInput[]): Promise<void> {
    try {
      if (!isMany(event)) await this.record(ctx, event);
      else {
        const records = event.map((e) => this.build(ctx, e));
        await this.#state.auditAll(records, this.#clock());
        for (const record of records) ctx.log.info({ audit: record }, 'audit');
      }
    } catch (err) {
      if (err instanceof RepeatedDelivery) throw err;
      ctx.log.error({ err }, 'audit write failed; refusing to run');
      throw new UserError(
        'state_unavailable',
        'the audit log cannot be written right now, so nothing was run; try again shortly',
      );
    }
  }

  /** A refusal: audited, ephemeral, with the reason. */
  async refuse(
    ctx: InvocationContext,
    code: UserError['code'],
    message: string,
    about: About = {},
  ): Promise<Reply> {
    await this.record(ctx, { ...about, event: 'refused', outcome: code, error: message }).catch(
      (err: unknown) => ctx.log.error({ err }, 'audit write failed for a refusal'),
    );
    return reply({
      status: statusOfCode(code),
      requestId: about.requestId ?? null,
      ref: ctx.ref,
      ...replyAbout(about),
      code,
      message,
    });
  }

  /** Turns any error into a reply: user errors plainly, anything else as "internal error, ref <id>". */
  async fail(ctx: InvocationContext, err: unknown, about: About): Promise<Reply> {
    if (!isUserError(err)) {
      ctx.log.error({ err }, 'internal error');
      await this.record(ctx, { ...about, event: 'failed', outcome: 'internal', error: String(err) }).catch(
        () => {},
      );
      return reply({
        status: 'failed',
        requestId: about.requestId ?? null,
        ref: ctx.ref,
        ...replyAbout(about),
        code: 'internal',
        message: `internal error, ref ${ctx.ref}`,
      });
    }
    const status = statusOfCode(err.code);
    const event = status === 'invalid' ? 'invalid' : status === 'refused' ? 'refused' : 'failed';
    await this.record(ctx, { ...about, event, outcome: err.code, error: err.message }).catch(
      (auditErr: unknown) => ctx.log.error({ err: auditErr }, 'audit write failed for an error'),
    );
    return reply({
      status,
      requestId: about.requestId ?? null,
      ref: ctx.ref,
      ...replyAbout(about),
      code: err.code,
      message: err.message,
    });
  }

  /**
   * The audit record of a request dbops itself changed (expired, interrupted because its replica died,
   * voided because the policy changed), written as identity `dbops`; a failed write is logged, the
   * change stands.
   */
  async bySystem(
    request: ApprovalRequest,
    now: Date,
    what: Pick<AuditEvent, 'event' | 'outcome' | 'approvers' | 'error' | 'detail'>,
  ): Promise<void> {
    await this.#state
      .audit(systemRecord(request, what), now)
      .catch((err: unknown) =>
        this.#log.error(
          { err, requestId: request.id },
          `audit write failed for a request dbops changed (${what.event})`,
        ),
      );
  }
}

/** A delivery another dispatch (on this replica or another) claimed first: nothing is to run. */
export class RepeatedDelivery extends Error {
  constructor(readonly key: string) {
    super(`repeated delivery ${key}`);
  }
}

/** What a repeated delivery answers: nothing ran, and the surface posts nothing. */
export function repeated(ctx: InvocationContext): Reply {
  ctx.log.info({ delivery: ctx.delivery?.key }, 'repeated delivery dropped');
  return {
    ...reply({
      status: 'refused',
      requestId: null,
      ref: ctx.ref,
      message: 'this delivery was already taken; nothing was run',
      ephemeral: true,
    }),
    duplicate: true,
  };
}

function isMany(event: AuditInput | readonly AuditInput[]): event is readonly AuditInput[] {
  return Array.isArray(event);
}

export function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

export function replyAbout(about: About): Pick<Reply, 'operation' | 'target' | 'risk'> {
  return withoutUndefined({ operation: about.operation, target: about.target, risk: about.risk }) as Pick<
    Reply,
    'operation' | 'target' | 'risk'
  >;
}
