// The two families of failure: user-facing errors with a stable code, and internal ones shown as a ref.

export const USER_ERROR_CODES = [
  'invalid_command', // grammar: unbalanced quote, empty command
  'unknown_operation',
  'unknown_target',
  'missing_target',
  'invalid_argument',
  'unknown_person', // identity not in config.people
  'denied', // policy refusal
  'not_found', // request id does not exist
  'self_approval',
  'already_voted',
  'not_pending', // request decided, running or finished
  'expired',
  'not_requester', // cancel by someone else
  'target_busy', // another destructive operation runs on the target
  'stale_preview', // what the approval was for no longer holds: nothing ran
  'unavailable', // the target's schema lacks what the (pack) operation needs: nothing was sent
  'cannot_succeed', // the preview shows the request would fail: no request was created
  'cancelled', // a person stopped the run while it was going
  'target_down', // connection refused / DNS / timeout connecting
  'auth_failed',
  'timeout', // statement or lock timeout
  'permission', // PostgreSQL privilege missing on the bot role
  'query_failed', // any other PostgreSQL error, named plainly
  'tool_failed', // pg_dump etc.
  'state_unavailable', // the state database cannot be reached: nothing runs
  'config_invalid',
  'shutting_down', // this replica is stopping: nothing ran, send it again (another replica takes it)
  'busy', // too many large results held by this process at once: nothing was read, retry shortly
  'target_unresponsive', // the target stopped answering: a client-side deadline passed
] as const;
export type UserErrorCode = (typeof USER_ERROR_CODES)[number];

/** An error the person can act on; `message` says what failed and what to do. */
export class UserError extends Error {
  override readonly name = 'UserError';
  constructor(
    readonly code: UserErrorCode,
    message: string,
    readonly detail?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export function isUserError(err: unknown): err is UserError {
  return err instanceof UserError;
}

/** Config file problems, each naming the path in the file and the fix. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(`configuration is invalid:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}
