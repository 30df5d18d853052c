// How a read operation declares checks in its structured result, so schedules can keep alert state on it.
import { z } from 'zod';
import { CHECK_STATUSES, type CheckStatus } from './store.js';

/**
 * The contract: the operation's `data` (what --json prints) has `checks`, an object keyed by check name,
 * each with a `status` of ok / warn / fail, optionally a one-line `detail` and `next`: names of read
 * operations on the same target that a person would run next when it is not ok (their answers go into
 * the alert's thread). Other keys are the check's own values and are ignored here. `health` declares its
 * checks this way.
 */
const OPERATION_NAME = /^[a-z][a-z0-9-]{0,40}$/;

const checkSchema = z
  .object({
    status: z.enum(CHECK_STATUSES),
    detail: z.string().optional(),
    next: z.array(z.string().regex(OPERATION_NAME)).max(3).optional(),
  })
  .loose();

const declaredSchema = z.object({ checks: z.record(z.string().min(1).max(100), z.unknown()) }).loose();

export interface DeclaredCheck {
  name: string;
  status: CheckStatus;
  detail: string;
  next: string[];
}

/** The checks a result declares; a check not in the contract's shape is left out, never guessed at. */
export function declaredChecks(data: unknown): DeclaredCheck[] {
  const parsed = declaredSchema.safeParse(data);
  if (!parsed.success) return [];
  return Object.entries(parsed.data.checks).flatMap(([name, raw]) => {
    const check = checkSchema.safeParse(raw);
    if (!check.success) return [];
    const c = check.data;
    return [{ name, status: c.status, detail: c.detail ?? '', next: c.next ?? [] }];
  });
}
