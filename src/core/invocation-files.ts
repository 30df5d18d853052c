// Carries the files sent with a command from the surface to the operation it runs, for that dispatch only.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Invocation, InvocationFile } from './types.js';

const current = new AsyncLocalStorage<readonly InvocationFile[]>();

/**
 * Dispatches `inv` with its attachments visible to the operation's preview or run (the core passes
 * arguments, not files, so they travel beside the call rather than through every layer).
 */
export function withInvocationFiles<R>(inv: Invocation, fn: () => Promise<R>): Promise<R> {
  return current.run(inv.attachments ?? [], fn);
}

/** The files of the invocation being dispatched, or none. */
export function invocationFiles(): readonly InvocationFile[] {
  return current.getStore() ?? [];
}
