// Escalation: a request pending longer than its environment's `escalate_after` is escalated once, across replicas.
import type { Config } from '../config/schema.js';
import type { Logger } from '../core/log.js';
import { systemRecord } from '../state/system-record.js';
import type { ApprovalRequest, StateStore } from '../state/types.js';

export type EscalationListener = (request: ApprovalRequest) => void;

export class Escalations {
  readonly #config: Config;
  readonly #state: StateStore;
  readonly #clock: () => Date;
  readonly #log: Logger;
  readonly #listeners = new Set<EscalationListener>();

  constructor(deps: { config: Config; state: StateStore; clock: () => Date; log: Logger }) {
    this.#config = deps.config;
    this.#state = deps.state;
    this.#clock = deps.clock;
    this.#log = deps.log;
  }

  /** Called once per escalated request, on the replica that escalated it; returns an unsubscribe function. */
  onEscalate(listener: EscalationListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** True when some environment escalates (otherwise the sweep has nothing to do). */
  get configured(): boolean {
    return Object.values(this.#config.policy).some(
      (rules) => rules.escalate_after !== undefined && (rules.escalate_to?.length ?? 0) > 0,
    );
  }

  /** Escalates every pending request past its time that no replica escalated yet; returns them. */
  async sweep(): Promise<ApprovalRequest[]> {
    if (!this.configured || !this.#state.markEscalated) return [];
    const now = this.#clock();
    const escalated: ApprovalRequest[] = [];
    const pending = await this.#state.listRequests({ statuses: ['pending'], limit: 1000 });
    for (const request of pending) {
      const rules = this.#config.policy[request.environment];
      if (rules?.escalate_after === undefined || !rules.escalate_to?.length) continue;
      if (request.escalatedAt !== undefined) continue;
      if (now.getTime() - request.createdAt.getTime() < rules.escalate_after * 1000) continue;
      if (!(await this.#state.markEscalated(request.id, now))) continue;
      const marked = { ...request, escalatedAt: now };
      await this.#state
        .audit(
          systemRecord(request, {
            event: 'pending',
            outcome: `escalated to ${rules.escalate_to.join(', ')}`,
          }),
          now,
        )
        .catch((err: unknown) =>
          this.#log.error({ err, requestId: request.id }, 'audit of an escalation failed'),
        );
      escalated.push(marked);
      for (const listener of this.#listeners) {
        try {
          listener(marked);
        } catch (err) {
          this.#log.error({ err, requestId: request.id }, 'escalation listener failed');
        }
      }
    }
    return escalated;
  }
}
