// Operations that run at once (reads, and writes the policy lets through): audited before they run and,
// off the reply's path, after; a read answered in pages (paging.ts) remembered under the invocation's
// reference for its page button.
import type { ResolvedTarget } from '../config/schema.js';
import type { StateStore } from '../state/types.js';
import type { AuditTrail } from './audit.js';
import type { About, AuditInput, InvocationContext } from './context.js';
import { formatDuration } from './duration.js';
import { widthFor, wrapLines } from './layout.js';
import type { AnyOperation } from './operation.js';
import { type PagePlan, pageResult } from './paging.js';
import { renderResult } from './render.js';
import { type Reply, reply } from './reply.js';
import type { OperationResult, Risk } from './types.js';

export interface RunNowInfo {
  command: string;
  risk: Risk;
  about: About;
  /** The operation answers in pages (a read that returns rows). */
  pages?: boolean;
  /** The page asked for (or, for operations with their own `limit`, page 1 by default). */
  page?: PagePlan | undefined;
}

export interface RunNowDeps {
  audit: AuditTrail;
  state: StateStore;
  /**
   * Writes the record of how the run ended after the reply is on its way: durably (retried, then the
   * local journal), failures logged. A process killed before it is written leaves the record of the start.
   */
  recordAfterReply(ctx: InvocationContext, event: AuditInput): void;
  /** Runs `work` once the reply is on its way (tracked; shutdown waits for it). */
  afterReply(work: () => Promise<void>): void;
  /** Runs the operation's run step with these arguments, and a row cap above its own when given. */
  run(
    ctx: InvocationContext,
    spec: AnyOperation,
    target: ResolvedTarget,
    args: Record<string, unknown>,
    rowCap: number | undefined,
  ): Promise<OperationResult>;
}

export async function runNow(
  deps: RunNowDeps,
  ctx: InvocationContext,
  spec: AnyOperation,
  target: ResolvedTarget,
  args: Record<string, unknown>,
  info: RunNowInfo,
): Promise<Reply> {
  const { audit } = deps;
  const plan = info.page;
  const shown =
    plan && plan.page > 1 ? `${info.command}${plan.limitOption} --page ${plan.page}` : info.command;
  // Nothing runs unless its audit record is written first.
  await audit.orStop(ctx, { event: 'requested', outcome: 'running', ...info.about });
  const started = Date.now();
  try {
    const read = await deps.run(ctx, spec, target, plan?.args ?? args, plan?.rowCap);
    const { result, remember } = pageResult({
      ctx,
      spec,
      target,
      args,
      read,
      command: info.command,
      plan,
      pages: info.pages,
    });
    const durationMs = Date.now() - started;
    deps.recordAfterReply(ctx, { event: 'executed', outcome: 'ok', durationMs, ...info.about });
    // The command in the note works when pasted anyway; only the page button needs this.
    // Off the reply's path too: nobody presses the page button before the page is posted.
    if (remember) {
      deps.afterReply(() =>
        deps.state
          .savePagedRead(remember)
          .catch((err: unknown) => ctx.log.warn({ err }, 'could not remember the paged read')),
      );
    }
    const width = widthFor(ctx.inv.surface);
    const answer = reply({
      status: 'ok',
      requestId: null,
      ref: ctx.ref,
      operation: spec.name,
      target: target.name,
      risk: info.risk,
      result,
      message: `${shown} — done in ${formatDuration(durationMs / 1000)}`,
      text: '',
    });
    // Chat surfaces draw the result themselves: the text is laid out only when something reads it.
    return lazyText(
      answer,
      () =>
        `${renderResult(result, { maxWidth: width })}\n${wrapLines(`(${shown} · ref ${ctx.ref} · ${formatDuration(durationMs / 1000)})`, width)}`,
    );
  } catch (err) {
    const durationMs = Date.now() - started;
    return await audit.fail(ctx, err, { ...info.about, durationMs });
  }
}

/**
 * The reply with its `text` made by `make` on first read (then kept, like any value; assignable): an
 * enumerable property all the same, so spreading or serializing the reply sees the text.
 */
export function lazyText(answer: Reply, make: () => string): Reply {
  const settle = (target: Reply, value: string) =>
    Object.defineProperty(target, 'text', { value, writable: true, enumerable: true, configurable: true });
  Object.defineProperty(answer, 'text', {
    enumerable: true,
    configurable: true,
    get(this: Reply) {
      const value = make();
      settle(this, value);
      return value;
    },
    set(this: Reply, value: string) {
      settle(this, value);
    },
  });
  return answer;
}
