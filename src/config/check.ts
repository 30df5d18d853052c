// `dbops check-config`: tries the state database and every target, and reports what the bot's role can do there.
import pg from 'pg';
import { redactSecrets } from '../core/log.js';
import { wrapWords } from '../core/operation.js';
import { checkPackExpectations, type PackExpectations } from '../packs/expectations.js';
import type { LoadedPack } from '../packs/load.js';
import { readTargetSchema, type TargetSchema } from '../packs/target-schema.js';
import { type UnavailableOperation, unavailableOperations } from '../packs/variants.js';
import type { Config } from './schema.js';

export interface RoleMemberships {
  pg_monitor: boolean;
  pg_read_all_stats: boolean;
  pg_signal_backend: boolean;
}

export interface TargetCheck {
  /** "state" or the target's name. */
  name: string;
  kind: 'state' | 'target';
  environment?: string;
  /** `user@host:port/database`, never the password. */
  endpoint: string;
  reachable: boolean;
  /** Why it is not reachable, in plain words ("connection refused"). */
  reason?: string;
  /** The server's own words, with credentials redacted (for the curious). */
  detail?: string;
  /** e.g. "16.4". */
  serverVersion?: string;
  /** e.g. 160004. */
  serverVersionNum?: number;
  currentUser?: string;
  superuser?: boolean;
  /** True on a standby: write and destructive operations cannot run there. */
  inRecovery?: boolean;
  roles?: RoleMemberships;
  /** One line each: what to grant, and why. */
  hints: string[];
  /** The schema expectations of the target's packs (when packs were given and the target is reachable). */
  packs?: PackCheck[];
  elapsedMs: number;
}

export interface PackCheck {
  pack: string;
  /** Unmet expectations ("pack kasm expects table session_tokens, not found"); empty when all are met. */
  problems: string[];
  /**
   * The pack's operations that cannot run there, with what the schema lacks (when the pack's operations
   * were given); they are refused with the same reason when called.
   */
  unavailable?: UnavailableOperation[];
}

export interface CheckOptions {
  /** Check only these targets (default: all). */
  targets?: readonly string[];
  /** Check the state database too (default: true). */
  includeState?: boolean;
  /** Connect timeout for the state database (default 5 s). */
  stateConnectTimeoutSeconds?: number;
  /** statement_timeout for the check query (default 5 s). */
  statementTimeoutSeconds?: number;
  /**
   * The loaded packs: each target's packs have their `expects` checked against its schema, and, for a
   * loaded pack with its operations, which operations its schema cannot serve.
   */
  packs?: readonly (PackExpectations | LoadedPack)[];
}

const PROBE_SQL = `
SELECT current_setting('server_version') AS server_version,
       current_setting('server_version_num')::int AS server_version_num,
       current_user::text AS current_user,
       COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false) AS superuser,
       pg_is_in_recovery() AS in_recovery,
       CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_monitor')
            THEN pg_has_role(current_user, 'pg_monitor', 'MEMBER') ELSE false END AS pg_monitor,
       CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_read_all_stats')
            THEN pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER') ELSE false END AS pg_read_all_stats,
       CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_signal_backend')
            THEN pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') ELSE false END AS pg_signal_backend`;

interface ProbeRow {
  server_version: string;
  server_version_num: number;
  current_user: string;
  superuser: boolean;
  in_recovery: boolean;
  pg_monitor: boolean;
  pg_read_all_stats: boolean;
  pg_signal_backend: boolean;
}

/** `user@host:port/database` from a connection URL; nothing secret. */
export function describeEndpoint(url: string): string {
  try {
    const parsed = new URL(url);
    const user = parsed.username ? `${decodeURIComponent(parsed.username)}@` : '';
    const host = parsed.hostname || parsed.searchParams.get('host') || 'localhost';
    const port = parsed.port || '5432';
    const database = decodeURIComponent(parsed.pathname.replace(/^\//, '')) || '(default database)';
    return `${user}${host}:${port}/${database}`;
  } catch {
    return '(connection string is not a URL)';
  }
}

function errorField(err: unknown, field: string): string | undefined {
  if (typeof err !== 'object' || err === null || !(field in err)) return undefined;
  const value: unknown = Reflect.get(err, field);
  return typeof value === 'string' ? value : undefined;
}

/** A connection failure in plain words; `detail` is the redacted original message. */
export function explainConnectError(err: unknown): { reason: string; detail: string } {
  const message = err instanceof Error ? err.message : String(err);
  const detail = redactSecrets(message).slice(0, 300);
  const code = errorField(err, 'code');
  switch (code) {
    case 'ECONNREFUSED':
      return { reason: 'connection refused (nothing listens on that host and port)', detail };
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return { reason: 'host not found (check the host name and DNS)', detail };
    case 'ETIMEDOUT':
      return { reason: 'timed out connecting', detail };
    case 'ECONNRESET':
      return { reason: 'connection reset by the server or a proxy', detail };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return { reason: 'host unreachable (network or firewall)', detail };
    case '28P01':
      return { reason: 'authentication failed (wrong password)', detail };
    case '28000':
      return { reason: 'authentication failed (role does not exist or pg_hba.conf refuses it)', detail };
    case '3D000':
      return { reason: 'database does not exist', detail };
    case '53300':
      return { reason: 'too many connections on the server', detail };
    case '57P03':
      return { reason: 'the server is starting up or shutting down', detail };
    case '57014':
      return { reason: 'timed out (statement_timeout) running the check query', detail };
  }
  if (/timeout/i.test(message)) return { reason: 'timed out connecting', detail };
  if (/password authentication failed/i.test(message)) return { reason: 'authentication failed', detail };
  if (/ssl|tls|certificate/i.test(message)) return { reason: `TLS/SSL problem: ${detail}`, detail };
  if (/invalid url|invalid connection/i.test(message)) return { reason: 'invalid connection URL', detail };
  return { reason: detail === '' ? 'connection failed' : detail, detail };
}

function quoteRole(role: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(role) ? role : `"${role.replace(/"/g, '""')}"`;
}

function hintsFor(row: ProbeRow): string[] {
  const hints: string[] = [];
  const role = quoteRole(row.current_user);
  if (row.superuser) {
    hints.push(
      'connected as a superuser; a role with pg_monitor and pg_signal_backend is enough and safer for a bot',
    );
    return hints;
  }
  if (!row.pg_monitor) {
    hints.push(`GRANT pg_monitor TO ${role};  -- to see other sessions' queries, locks and statistics`);
  }
  if (!row.pg_signal_backend) {
    hints.push(`GRANT pg_signal_backend TO ${role};  -- for kill-idle and terminate`);
  }
  return hints;
}

interface Probe {
  name: string;
  kind: 'state' | 'target';
  environment?: string;
  url: string;
  connectTimeoutSeconds: number;
  /** Packs whose expectations to check there; undefined when not asked for. */
  packs?: readonly (PackExpectations | LoadedPack | string)[];
}

async function closeQuietly(client: pg.Client): Promise<void> {
  try {
    await client.end();
  } catch {
    // The connection is already gone; nothing to release.
  }
}

/** The target's packs in the order it lists them; a pack that is not loaded is named as a problem. */
async function checkPacks(
  client: pg.Client,
  packs: readonly (PackExpectations | LoadedPack | string)[],
): Promise<PackCheck[]> {
  const checks: PackCheck[] = [];
  // The catalog as the bot reads it, freshly (one query), for every pack given with its operations.
  let schema: TargetSchema | undefined;
  for (const pack of packs) {
    if (typeof pack === 'string') {
      checks.push({ pack, problems: [`pack ${pack} is not loaded, so its expectations were not checked`] });
      continue;
    }
    try {
      const problems = await checkPackExpectations(client, pack);
      if ('operations' in pack) {
        schema ??= await readTargetSchema(client);
        checks.push({ pack: pack.name, problems, unavailable: unavailableOperations(pack, schema) });
      } else checks.push({ pack: pack.name, problems });
    } catch (err) {
      const { reason } = explainConnectError(err);
      checks.push({
        pack: pack.name,
        problems: [`could not check pack ${pack.name}'s expectations: ${reason}`],
      });
    }
  }
  return checks;
}

async function probe(target: Probe, statementTimeoutSeconds: number): Promise<TargetCheck> {
  const started = performance.now();
  const base = {
    name: target.name,
    kind: target.kind,
    ...(target.environment !== undefined ? { environment: target.environment } : {}),
    endpoint: describeEndpoint(target.url),
  };
  const elapsed = () => Math.round(performance.now() - started);
  let client: pg.Client;
  try {
    client = new pg.Client({
      connectionString: target.url,
      connectionTimeoutMillis: Math.max(1, Math.round(target.connectTimeoutSeconds * 1000)),
      statement_timeout: Math.max(1, Math.round(statementTimeoutSeconds * 1000)),
      query_timeout: Math.round(statementTimeoutSeconds * 1000) + 1000,
      application_name: 'dbops check-config',
    });
  } catch (err) {
    return { ...base, reachable: false, ...explainConnectError(err), hints: [], elapsedMs: elapsed() };
  }
  // A server that goes away after connecting emits 'error' on the client; the query reports it instead.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    await closeQuietly(client);
    return { ...base, reachable: false, ...explainConnectError(err), hints: [], elapsedMs: elapsed() };
  }
  try {
    const { rows } = await client.query<ProbeRow>(PROBE_SQL);
    const row = rows[0];
    if (!row) throw new Error('the check query returned no row');
    const packs = target.packs ? await checkPacks(client, target.packs) : undefined;
    return {
      ...base,
      reachable: true,
      serverVersion: row.server_version,
      serverVersionNum: row.server_version_num,
      currentUser: row.current_user,
      superuser: row.superuser,
      inRecovery: row.in_recovery,
      roles: {
        pg_monitor: row.pg_monitor,
        pg_read_all_stats: row.pg_read_all_stats,
        pg_signal_backend: row.pg_signal_backend,
      },
      hints: hintsFor(row),
      ...(packs ? { packs } : {}),
      elapsedMs: elapsed(),
    };
  } catch (err) {
    const { reason, detail } = explainConnectError(err);
    return {
      ...base,
      reachable: false,
      reason: `connected, but the check failed: ${reason}`,
      detail,
      hints: [],
      elapsedMs: elapsed(),
    };
  } finally {
    await closeQuietly(client);
  }
}

/** Tries the state database and the targets concurrently; one failure never hides the others. */
export async function checkTargets(config: Config, opts: CheckOptions = {}): Promise<TargetCheck[]> {
  const statementTimeout = opts.statementTimeoutSeconds ?? 5;
  const probes: Probe[] = [];
  if (opts.includeState !== false) {
    probes.push({
      name: 'state',
      kind: 'state',
      url: config.state.url,
      connectTimeoutSeconds: opts.stateConnectTimeoutSeconds ?? 5,
    });
  }
  const loaded = new Map((opts.packs ?? []).map((p) => [p.name, p]));
  for (const target of Object.values(config.targets)) {
    if (opts.targets && !opts.targets.includes(target.name)) continue;
    probes.push({
      name: target.name,
      kind: 'target',
      environment: target.environment,
      url: target.url,
      connectTimeoutSeconds: target.limits.connect_timeout,
      ...(opts.packs && target.packs.length > 0
        ? { packs: target.packs.map((name) => loaded.get(name) ?? name) }
        : {}),
    });
  }
  return await Promise.all(probes.map((p) => probe(p, statementTimeout)));
}

/** Every unmet pack expectation, one line each: "target kasm: pack kasm expects table session_tokens, not found". */
export function expectationProblems(checks: readonly TargetCheck[]): string[] {
  return checks.flatMap((check) =>
    (check.packs ?? []).flatMap((p) => p.problems.map((problem) => `target ${check.name}: ${problem}`)),
  );
}

function yesNo(value: boolean): string {
  return value ? 'yes' : 'NO';
}

/** One block per database, for a terminal. */
export function formatCheckReport(checks: readonly TargetCheck[]): string {
  const blocks = checks.map((check) => {
    const title =
      check.kind === 'state' ? 'state database' : `${check.name} (${check.environment ?? 'no environment'})`;
    const unmet = expectationProblems([check]);
    const status = !check.reachable ? 'FAILED' : unmet.length > 0 ? 'MISMATCH' : 'ok';
    const lines = [`[${status}] ${title}  ${check.endpoint}  ${check.elapsedMs} ms`];
    if (!check.reachable) {
      lines.push(`  error:   ${check.reason ?? 'unreachable'}`);
      if (check.detail && check.detail !== check.reason) lines.push(`  detail:  ${check.detail}`);
      return lines.join('\n');
    }
    lines.push(
      `  server:  PostgreSQL ${check.serverVersion ?? '?'} (${check.serverVersionNum ?? '?'})${check.inRecovery ? ', standby (read-only)' : ''}`,
    );
    lines.push(
      `  user:    ${check.currentUser ?? '?'}${check.superuser ? ' (superuser)' : ' (not superuser)'}`,
    );
    if (check.roles) {
      const r = check.roles;
      lines.push(
        `  roles:   pg_monitor ${yesNo(r.pg_monitor)}, pg_read_all_stats ${yesNo(r.pg_read_all_stats)}, pg_signal_backend ${yesNo(r.pg_signal_backend)}`,
      );
    }
    for (const hint of check.hints) lines.push(`  hint:    ${hint}`);
    for (const pack of check.packs ?? []) {
      if (pack.problems.length === 0)
        lines.push(`  pack:    ${pack.pack}: every expected table and column found`);
    }
    for (const problem of unmet) lines.push(`  schema:  ${problem}`);
    for (const pack of check.packs ?? []) {
      // Within 80 columns: the operation, then the reason (names are never cut).
      for (const u of pack.unavailable ?? []) {
        lines.push(`  unavailable: ${pack.pack} ${u.shown}:`, ...wrapWords(u.reason, 80, '    '));
      }
    }
    return lines.join('\n');
  });
  const ok = checks.filter((c) => c.reachable).length;
  const packsChecked = checks.some((c) => c.packs !== undefined && c.packs.length > 0);
  const unmet = expectationProblems(checks).length;
  const expectations = !packsChecked
    ? ''
    : unmet === 0
      ? "; every pack's schema expectations met"
      : `; ${unmet} pack schema expectation${unmet === 1 ? '' : 's'} not met`;
  const unavailable = checks.reduce(
    (n, c) => n + (c.packs ?? []).reduce((m, p) => m + (p.unavailable?.length ?? 0), 0),
    0,
  );
  // On a line of its own, so the summary stays within 80 columns.
  const ops =
    unavailable === 0
      ? ''
      : `\n${unavailable} pack operation${unavailable === 1 ? '' : 's'} unavailable on their target's schema`;
  blocks.push(`${ok} of ${checks.length} reachable${expectations}${ops}`);
  // Last line of defence: nothing in the report may carry a credential.
  return redactSecrets(blocks.join('\n\n'));
}
