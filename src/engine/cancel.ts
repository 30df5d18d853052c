// The recognisable error of work stopped by its caller's AbortSignal (cancel a running operation).
import { UserError } from '../core/errors.js';

/** Thrown by TargetDb read/write/direct and runTool when their `signal` aborts. */
export class OperationCancelledError extends UserError {
  constructor(what: string) {
    super('cancelled', `${what} was cancelled`);
  }
}

export function isCancelled(err: unknown): err is OperationCancelledError {
  return err instanceof UserError && err.code === 'cancelled';
}
