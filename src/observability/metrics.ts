// Prometheus metrics of one dbops process, kept by prom-client: commands, approvals, operation time, pools.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { OperationRun, RequestChange } from '../core/dispatch.js';
import { parseCommand } from '../core/grammar.js';
import type { Reply } from '../core/reply.js';
import type { Invocation } from '../core/types.js';
import type { PoolStats } from '../engine/target-db.js';
import type { ApprovalRequest } from '../state/types.js';
import type { RunningSurface } from '../surfaces/types.js';
import { describeStuck, STUCK_AFTER_MS } from './stuck.js';

/** What the metrics need to know of a chat surface (a RunningSurface satisfies it). */
export type SurfaceHealth = Pick<RunningSurface, 'name' | 'healthy' | 'lanes'>;

/** Sources read at scrape time, set by createApp (pools, core) and by `dbops start` (surfaces). */
interface Sources {
  pools: () => Record<string, PoolStats>;
  inFlight: () => number;
  draining: () => boolean;
  surfaces: () => readonly SurfaceHealth[];
}

/** Command words outside the catalog are counted under this label, so typos can not grow the series. */
export const UNKNOWN_OPERATION = 'unknown';

// From a quick read (5 ms) to a long maintenance step (10 min).
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180, 600];
// Acknowledgements take well under a millisecond when nothing waits; Slack gives up after 3 s.
const ACK_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3];
// People take seconds to minutes to approve; requests expire after 15 minutes by default.
const APPROVAL_BUCKETS = [5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];

export class Metrics {
  readonly registry = new Registry();
  readonly #sources: Sources = {
    pools: () => ({}),
    inFlight: () => 0,
    draining: () => false,
    surfaces: () => [],
  };
  #operationNames: ReadonlySet<string> = new Set();
  #processMetrics = false;

  readonly #commands = new Counter({
    name: 'dbops_commands_total',
    help: 'Commands dispatched, by operation (the command word), outcome (reply status) and risk',
    labelNames: ['operation', 'outcome', 'risk'] as const,
    registers: [this.registry],
  });

  readonly #commandDuration = new Histogram({
    name: 'dbops_command_duration_seconds',
    help: 'Time from an invocation entering the core to its reply being ready, by surface',
    labelNames: ['surface'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });

  readonly #operationDuration = new Histogram({
    name: 'dbops_operation_duration_seconds',
    help: 'Time an operation step spent against its target (queries, external tools), by target, operation, phase (run, preview, execute) and outcome (ok, error)',
    labelNames: ['target', 'operation', 'phase', 'outcome'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });

  readonly #approvalLatency = new Histogram({
    name: 'dbops_approval_latency_seconds',
    help: 'Time from an approval request being created to it being approved, by environment',
    labelNames: ['environment'] as const,
    buckets: APPROVAL_BUCKETS,
    registers: [this.registry],
  });

  readonly #auditFailures = new Counter({
    name: 'dbops_audit_write_failures_total',
    help: 'Audit records that could not be written to the state database (the operation then does not run), by event',
    labelNames: ['event'] as const,
    registers: [this.registry],
  });

  readonly #slackRefused = new Counter({
    name: 'dbops_slack_requests_refused_total',
    help: 'Slack HTTP requests refused before anything read them, by reason (bad_signature, stale_timestamp, too_large, unparseable)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly #slackAck = new Histogram({
    name: 'dbops_slack_ack_seconds',
    help: "Slack HTTP mode: time from a request's headers being read to its 200 being written (Slack allows 3 s)",
    buckets: ACK_BUCKETS,
    registers: [this.registry],
  });

  constructor() {
    const sources = this.#sources;
    new Gauge({
      name: 'dbops_target_pool_connections',
      help: 'Connections open to each target (idle or checked out); pools open lazily, on first use',
      labelNames: ['target'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [target, stats] of Object.entries(sources.pools())) this.set({ target }, stats.total);
      },
    });
    new Gauge({
      name: 'dbops_target_pool_idle_connections',
      help: 'Idle connections kept open to each target',
      labelNames: ['target'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [target, stats] of Object.entries(sources.pools())) this.set({ target }, stats.idle);
      },
    });
    new Gauge({
      name: 'dbops_target_pool_waiting',
      help: 'Operations waiting for a connection to each target because its pool is at pool_max',
      labelNames: ['target'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [target, stats] of Object.entries(sources.pools())) this.set({ target }, stats.waiting);
      },
    });
    new Gauge({
      name: 'dbops_target_operations_in_flight',
      help: 'Units of work against each target under way (running, or waiting for a connection)',
      labelNames: ['target'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [target, stats] of Object.entries(sources.pools())) this.set({ target }, stats.inFlight);
      },
    });
    new Gauge({
      name: 'dbops_target_oldest_operation_seconds',
      help: 'Age of the oldest unit of work under way against each target (0 when none): a sick target shows here',
      labelNames: ['target'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [target, stats] of Object.entries(sources.pools()))
          this.set({ target }, stats.oldestMs / 1000);
      },
    });
    new Gauge({
      name: 'dbops_surface_queue_commands',
      help: 'Chat deliveries being worked on or queued, by surface, lane (target:<name>, builtins, channel:…) and state',
      labelNames: ['surface', 'lane', 'state'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const surface of sources.surfaces()) {
          for (const [lane, stats] of Object.entries(surface.lanes?.() ?? {})) {
            this.set({ surface: surface.name, lane, state: 'running' }, stats.running);
            this.set({ surface: surface.name, lane, state: 'queued' }, stats.waiting);
          }
        }
      },
    });
    new Gauge({
      name: 'dbops_surface_queue_oldest_seconds',
      help: 'Age of the oldest chat delivery in each lane of a surface (running or queued)',
      labelNames: ['surface', 'lane'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const surface of sources.surfaces()) {
          for (const [lane, stats] of Object.entries(surface.lanes?.() ?? {}))
            this.set({ surface: surface.name, lane }, stats.oldestMs / 1000);
        }
      },
    });
    new Gauge({
      name: 'dbops_surface_up',
      help: 'Whether each enabled chat surface is connected and taking commands (1) or not (0)',
      labelNames: ['surface'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const surface of sources.surfaces())
          this.set({ surface: surface.name }, surface.healthy() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'dbops_commands_in_flight',
      help: 'Dispatches (and expiry sweeps) under way',
      registers: [this.registry],
      collect() {
        this.set(sources.inFlight());
      },
    });
    new Gauge({
      name: 'dbops_shutting_down',
      help: '1 while the process drains for shutdown and refuses new commands',
      registers: [this.registry],
      collect() {
        this.set(sources.draining() ? 1 : 0);
      },
    });
  }

  /** Node.js process metrics (CPU, memory, event loop lag, handles) beside dbops' own; for `dbops start`. */
  collectProcessMetrics(): void {
    if (this.#processMetrics) return;
    this.#processMetrics = true;
    collectDefaultMetrics({ register: this.registry });
  }

  /** Wired by createApp: the catalog's names (anything else counts as "unknown"), pools and the core. */
  attachApp(app: {
    operationNames: Iterable<string>;
    pools: () => Record<string, PoolStats>;
    inFlight: () => number;
    draining: () => boolean;
  }): void {
    this.#operationNames = new Set(app.operationNames);
    this.#sources.pools = app.pools;
    this.#sources.inFlight = app.inFlight;
    this.#sources.draining = app.draining;
  }

  /** Wired by `dbops start` once the chat surfaces run: each one's health, read at scrape time. */
  observeSurfaces(surfaces: () => readonly SurfaceHealth[]): void {
    this.#sources.surfaces = surfaces;
  }

  commandDispatched(invocation: Invocation, reply: Reply, durationMs: number): void {
    this.#commands.inc({
      operation: this.#operationLabel(invocation, reply),
      outcome: reply.status,
      risk: reply.risk ?? 'none',
    });
    this.#commandDuration.observe({ surface: invocation.surface }, durationMs / 1000);
  }

  operationRan(run: OperationRun): void {
    this.#operationDuration.observe(
      { target: run.target, operation: run.operation, phase: run.phase, outcome: run.ok ? 'ok' : 'error' },
      run.durationMs / 1000,
    );
  }

  /** Approval latency, observed once per request: by the replica whose vote approved it. */
  requestChanged(request: ApprovalRequest, change: RequestChange): void {
    if (change !== 'approved') return;
    const approvedAt = Math.max(
      ...request.votes.filter((v) => v.vote === 'approve').map((v) => v.at.getTime()),
      request.updatedAt.getTime(),
    );
    const seconds = Math.max(0, (approvedAt - request.createdAt.getTime()) / 1000);
    this.#approvalLatency.observe({ environment: request.environment }, seconds);
  }

  slackRequestRefused(reason: string): void {
    this.#slackRefused.inc({ reason });
  }

  slackAcked(ms: number): void {
    this.#slackAck.observe(ms / 1000);
  }

  auditWriteFailed(event: string): void {
    this.#auditFailures.inc({ event });
  }

  /** Per target, work under way for longer than `afterMs`, in words (for /readyz); empty when none. */
  stuckWork(afterMs: number = STUCK_AFTER_MS): string[] {
    const queues = this.#sources
      .surfaces()
      .map((surface) => ({ surface: surface.name, lanes: surface.lanes?.() ?? {} }));
    return describeStuck(this.#sources.pools(), queues, afterMs);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition of every metric. */
  async text(): Promise<string> {
    return await this.registry.metrics();
  }

  /** The command word typed ("sizes", "approve"), when the catalog knows it. */
  #operationLabel(invocation: Invocation, reply: Reply): string {
    let word: string | undefined;
    try {
      word = parseCommand(invocation.text).operation;
    } catch {
      word = undefined;
    }
    if (word !== undefined && this.#operationNames.has(word)) return word;
    if (reply.operation !== undefined && this.#operationNames.has(reply.operation)) return reply.operation;
    return UNKNOWN_OPERATION;
  }
}
