// Turns node-postgres and network failures into UserErrors that say what failed and what to do.
import { formatDuration } from '../core/duration.js';
import { isUserError, UserError } from '../core/errors.js';
import { redactSecrets } from '../core/log.js';

/** What the caller knows about the limits in force, so messages can name them. */
export interface ErrorLimits {
  statementTimeoutMs?: number;
  lockTimeoutMs?: number;
  connectTimeoutMs?: number;
  poolMax?: number;
}

/** A PostgreSQL error as node-postgres reports it (an ErrorResponse from the server). */
export interface ServerError {
  code: string;
  message: string;
  detail?: string | undefined;
  hint?: string | undefined;
}

const SQLSTATE = /^[0-9A-Z]{5}$/;

/** The server's error fields when `err` is an ErrorResponse from PostgreSQL (duck-typed across module copies). */
export function serverError(err: unknown): ServerError | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = 'code' in err ? err.code : undefined;
  const severity = 'severity' in err ? err.severity : undefined;
  if (typeof code !== 'string' || !SQLSTATE.test(code) || typeof severity !== 'string') return undefined;
  const detail = 'detail' in err && typeof err.detail === 'string' ? err.detail : undefined;
  const hint = 'hint' in err && typeof err.hint === 'string' ? err.hint : undefined;
  return { code, message: err.message, detail, hint };
}

/** The SQLSTATE of a PostgreSQL error, if `err` is one. */
export function sqlState(err: unknown): string | undefined {
  return serverError(err)?.code;
}

/** Socket-level failures, by Node's error code, and how to say them. */
const NETWORK_REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed (DNS)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EHOSTDOWN: 'host is down',
  ENETDOWN: 'network is down',
  ETIMEDOUT: 'connection timed out',
  ECONNRESET: 'connection reset by the server',
  ECONNABORTED: 'connection aborted',
  EPIPE: 'connection closed by the server',
};

function nodeCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  return typeof err.code === 'string' ? err.code : undefined;
}

/** The first network reason found on the error, its AggregateError members (happy eyeballs) or its cause. */
function networkReason(err: unknown, depth = 0): string | undefined {
  if (depth > 3 || typeof err !== 'object' || err === null) return undefined;
  const code = nodeCode(err);
  if (code !== undefined && code in NETWORK_REASONS) return NETWORK_REASONS[code];
  if (err instanceof AggregateError) {
    for (const member of err.errors) {
      const reason = networkReason(member, depth + 1);
      if (reason) return reason;
    }
  }
  if (err instanceof Error && err.cause !== undefined) return networkReason(err.cause, depth + 1);
  return undefined;
}

const TLS_CODE = /CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_VERIFY/;

const ms = (value: number): string => formatDuration(value / 1000);

function unreachable(
  target: string,
  reason: string,
  fix = 'check that the server is up',
  detail?: Record<string, unknown>,
): UserError {
  return new UserError(
    'target_down',
    `target ${target} is unreachable: ${reason}. Other targets are unaffected; ${fix}`,
    detail,
  );
}

function connectTimeout(target: string, limits: ErrorLimits | undefined): UserError {
  const within = limits?.connectTimeoutMs ? ` within ${ms(limits.connectTimeoutMs)}` : '';
  const pool = limits?.poolMax ? ` of ${limits.poolMax}` : '';
  return new UserError(
    'target_down',
    `target ${target} did not give dbops a connection${within}: the server is unreachable or too slow to answer, ` +
      `or all${pool} dbops connections to it are busy. Other targets are unaffected; try again shortly`,
  );
}

/** Messages node-postgres uses when a connection dies or never comes up. */
function clientConnectionFailure(
  target: string,
  err: Error,
  limits: ErrorLimits | undefined,
): UserError | undefined {
  const message = err.message;
  if (
    message === 'timeout exceeded when trying to connect' ||
    message.includes('due to connection timeout')
  ) {
    return connectTimeout(target, limits);
  }
  if (/^Connection terminated/.test(message) || /is not queryable$/.test(message)) {
    return new UserError(
      'target_down',
      `the connection to target ${target} was closed while the operation ran; the server may be restarting ` +
        'or another session terminated dbops. Other targets are unaffected; try again shortly',
    );
  }
  if (message === 'The server does not support SSL connections') {
    return unreachable(target, 'the server does not accept TLS', "fix the target URL's sslmode");
  }
  if (message.startsWith('SASL:')) {
    return new UserError(
      'auth_failed',
      `target ${target} asked for a password that dbops does not have; check the credentials in the target's configuration`,
    );
  }
  const code = nodeCode(err);
  if (code !== undefined && TLS_CODE.test(code)) {
    return unreachable(
      target,
      `TLS failed (${redactSecrets(message)})`,
      "check the server's certificate and sslmode",
    );
  }
  return undefined;
}

const MONITORING = /pg_stat|pg_read_all_stats|pg_monitor|pg_ls_|pg_read_all_settings|pg_stat_scan_tables/i;
const SIGNALLING = /terminat|pg_signal_backend|cancel|signal/i;

function permissionError(target: string, pgErr: ServerError): UserError {
  const what = redactSecrets(pgErr.message);
  const text = `${pgErr.message} ${pgErr.detail ?? ''}`;
  let fix: string;
  if (SIGNALLING.test(text)) {
    fix = /superuser/i.test(pgErr.message)
      ? 'sessions of a superuser can only be signalled by a superuser; the bot role needs pg_signal_backend for all others'
      : 'the bot role needs pg_signal_backend (GRANT pg_signal_backend TO <bot role>)';
  } else if (MONITORING.test(text)) {
    fix = 'the bot role needs pg_monitor (or pg_read_all_stats) to read server statistics';
  } else {
    fix = 'grant the bot role the privilege named above, or ask a DBA to run this by hand';
  }
  return new UserError('permission', `permission denied on target ${target}: ${what}. ${fix}`, {
    sqlstate: pgErr.code,
  });
}

function fromServer(target: string, pgErr: ServerError, limits: ErrorLimits | undefined): UserError {
  const said = redactSecrets(pgErr.message);
  const detail = { sqlstate: pgErr.code };
  switch (pgErr.code) {
    case '28P01':
    case '28000':
      return new UserError(
        'auth_failed',
        `target ${target} refused dbops' login: ${said}. Check the credentials in the target's configuration`,
        detail,
      );
    case '3D000':
      return unreachable(target, said, "check the database name in the target's configuration", detail);
    case '53300':
      return unreachable(target, said, 'free some connections or raise the connection limit', detail);
    case '57P01':
    case '57P02':
    case '57P03':
      return new UserError(
        'target_down',
        `target ${target} closed the connection: ${said}. The server may be restarting or another session ` +
          'terminated dbops; other targets are unaffected. Try again shortly',
        detail,
      );
    case '57014': {
      if (/statement timeout/i.test(pgErr.message)) {
        const limit = limits?.statementTimeoutMs ? ` of ${ms(limits.statementTimeoutMs)}` : '';
        return new UserError(
          'timeout',
          `the query on ${target} ran past its statement_timeout${limit} and was cancelled; ` +
            'try a narrower request or a quieter moment',
          detail,
        );
      }
      return new UserError('timeout', `the query on ${target} was cancelled: ${said}`, detail);
    }
    case '55P03': {
      const limit = limits?.lockTimeoutMs
        ? ` (lock_timeout of ${ms(limits.lockTimeoutMs)})`
        : ' (lock_timeout)';
      return new UserError(
        'timeout',
        `the query on ${target} waited for a lock held by another session${limit} and gave up; ` +
          `try \`/db blocking ${target}\``,
        detail,
      );
    }
    case '42501':
      return permissionError(target, pgErr);
    case '25006':
      return new UserError(
        'query_failed',
        `target ${target} refused: this operation runs read-only (${said})`,
        detail,
      );
    default: {
      // PostgreSQL's detail says which row or key ("Key (email)=(x) already exists"): worth showing.
      const why = pgErr.detail ? ` — ${redactSecrets(pgErr.detail).slice(0, 300)}` : '';
      return new UserError('query_failed', `the query on ${target} failed: ${said}${why}`, detail);
    }
  }
}

/**
 * The UserError for a PostgreSQL or connection failure on `target`, or undefined for anything else
 * (a programming error, which the caller reports as internal). A UserError is returned unchanged.
 * Messages never carry a URL or a password.
 */
export function toUserError(err: unknown, target: string, limits?: ErrorLimits): UserError | undefined {
  if (isUserError(err)) return err;
  const pgErr = serverError(err);
  if (pgErr) return fromServer(target, pgErr, limits);
  const reason = networkReason(err);
  if (reason) return unreachable(target, reason);
  if (err instanceof Error) return clientConnectionFailure(target, err, limits);
  return undefined;
}
