// Keeps sensitive values out of error messages: PostgreSQL quotes row and key values in some errors, which the chat and the audit would show.

import type { z } from 'zod';
import type { ResolvedTarget } from '../config/schema.js';
import { isUserError, UserError } from '../core/errors.js';
import type { OperationContext, OperationSpec } from '../core/operation.js';
import { seesSensitive } from './sensitive-columns.js';

/**
 * Errors whose text can quote stored values: integrity violations (class 23: "Failing row contains (…)",
 * "Key (email)=(…) already exists") and data exceptions (class 22: `invalid input syntax for type
 * integer: "…"`).
 */
function quotesValues(sqlstate: unknown): boolean {
  return typeof sqlstate === 'string' && (sqlstate.startsWith('22') || sqlstate.startsWith('23'));
}

const WITHHELD = "PostgreSQL's detail is not shown: it may quote sensitive values";

/**
 * The error as a person without a role allowed to see the target's sensitive columns may read it: for
 * class 22 and 23 errors the server's own text after what failed is withheld; the SQLSTATE stays, so
 * the failure can still be told apart. Other errors, targets without sensitive columns and people
 * who may see them get the error unchanged.
 */
export function withoutSensitiveValues(
  err: unknown,
  target: ResolvedTarget,
  person: { roles: readonly string[] } | undefined,
): unknown {
  if (!isUserError(err) || !quotesValues(err.detail?.sqlstate)) return err;
  if ((target.sensitive?.columns.length ?? 0) === 0 || seesSensitive(target, person)) return err;
  const state = String(err.detail?.sqlstate);
  // Class 23 messages name the constraint, column and table only; the values are in the detail after " — ".
  // Class 22 messages quote the value itself, after the last colon.
  const head = state.startsWith('23')
    ? err.message.split(' — ')[0]
    : err.message.replace(/:\s*"[\s\S]*$/, '').replace(/ — [\s\S]*$/, '');
  return new UserError(err.code, `${head?.replace(/\.$/, '')} (SQLSTATE ${state}; ${WITHHELD})`, err.detail);
}

/** The operation with every step's errors passed through withoutSensitiveValues. */
export function hidingSensitiveErrors<S extends z.ZodObject>(spec: OperationSpec<S>): OperationSpec<S> {
  type Ctx = OperationContext<z.output<S>>;
  const guard = async <R>(ctx: Ctx, work: () => Promise<R>): Promise<R> => {
    try {
      return await work();
    } catch (err) {
      throw withoutSensitiveValues(err, ctx.target, ctx.person);
    }
  };
  const { run, preview, execute } = spec;
  return {
    ...spec,
    ...(run ? { run: (ctx: Ctx) => guard(ctx, () => run.call(spec, ctx)) } : {}),
    ...(preview ? { preview: (ctx: Ctx) => guard(ctx, () => preview.call(spec, ctx)) } : {}),
    ...(execute
      ? { execute: (ctx: Ctx, state: unknown) => guard(ctx, () => execute.call(spec, ctx, state)) }
      : {}),
  };
}
