// Runs catalog operations directly (no policy, no approvals) against real targets, for operation tests.
import type { Limits, ResolvedTarget } from '../../src/config/schema.js';
import { bindArguments, tokenize } from '../../src/core/grammar.js';
import type { AnyOperation, OperationContext, Preview } from '../../src/core/operation.js';
import { operationContext } from '../../src/core/operation-context.js';
import type { OperationResult } from '../../src/core/types.js';
import { type SharedOwnPids, TargetPools } from '../../src/engine/target-db.js';

export const TEST_LIMITS: Limits = {
  statement_timeout: 5,
  lock_timeout: 1,
  row_cap: 200,
  pool_max: 4,
  pool_idle: 30,
  connect_timeout: 2,
};

export function testTarget(
  name: string,
  url: string,
  options: { environment?: string; limits?: Partial<Limits> } = {},
): ResolvedTarget {
  return {
    name,
    url,
    environment: options.environment ?? 'staging',
    packs: [],
    limits: { ...TEST_LIMITS, ...options.limits },
  };
}

/** Targets + pools; parses argument text exactly like the chat grammar does. */
export class OpHarness {
  readonly pools: TargetPools;
  readonly progressLines: string[] = [];
  readonly #targets: Record<string, ResolvedTarget>;
  readonly #backupsDir: string;

  constructor(
    targets: readonly ResolvedTarget[],
    options: { backupsDir?: string; sharedPids?: SharedOwnPids } = {},
  ) {
    this.#targets = Object.fromEntries(targets.map((t) => [t.name, t]));
    this.pools = new TargetPools(this.#targets, options.sharedPids ? { sharedPids: options.sharedPids } : {});
    this.#backupsDir = options.backupsDir ?? '/tmp/dbops-test-backups';
  }

  /** The context an operation gets, with `argText` (e.g. `users --limit 5`) bound to its arguments. */
  context(spec: AnyOperation, target: string, argText = ''): OperationContext<Record<string, unknown>> {
    const resolved = this.#targets[target];
    if (!resolved) throw new Error(`no test target ${target}`);
    return operationContext({
      spec,
      target: resolved,
      targets: this.pools,
      args: bindArguments(spec, tokenize(argText)),
      now: new Date(),
      requestId: 'test',
      backupsDir: this.#backupsDir,
      progress: (line) => this.progressLines.push(line),
    });
  }

  async run(spec: AnyOperation, target: string, argText = ''): Promise<OperationResult> {
    if (!spec.run) throw new Error(`${spec.name} has no run step`);
    return await spec.run(this.context(spec, target, argText));
  }

  async preview(spec: AnyOperation, target: string, argText = ''): Promise<Preview> {
    if (!spec.preview) throw new Error(`${spec.name} has no preview step`);
    return await spec.preview(this.context(spec, target, argText));
  }

  async execute(
    spec: AnyOperation,
    target: string,
    argText: string,
    state: unknown,
  ): Promise<OperationResult> {
    if (!spec.execute) throw new Error(`${spec.name} has no execute step`);
    return await spec.execute(this.context(spec, target, argText), state);
  }

  async close(): Promise<void> {
    await this.pools.closeAll();
  }
}
