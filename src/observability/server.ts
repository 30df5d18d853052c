// The service's HTTP endpoints for orchestrators and Prometheus: /healthz, /readyz and /metrics.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import pg from 'pg';
import { parseDuration } from '../core/duration.js';
import { ConfigError } from '../core/errors.js';
import { type Logger, redactSecrets } from '../core/log.js';
import type { RunningSurface } from '../surfaces/types.js';
import type { Metrics } from './metrics.js';

/** How `dbops start` serves HTTP and shuts down, from its environment. */
export interface ServiceSettings {
  host: string;
  /** 0 picks a free port (tests); the address is logged. */
  port: number;
  /** How long SIGTERM waits for running commands before giving up on them. */
  shutdownTimeoutMs: number;
  /** How long an approved run is leased to this replica (renewed while it runs); see CoreDeps.runLeaseMs. */
  runLeaseMs: number;
}

export const SERVICE_DEFAULTS = {
  host: '0.0.0.0',
  port: 8080,
  shutdownTimeoutMs: 25_000,
  runLeaseMs: 60_000,
} as const;

/** Reads DBOPS_HTTP_HOST, DBOPS_HTTP_PORT, DBOPS_SHUTDOWN_TIMEOUT and DBOPS_RUN_LEASE ("25s", "1m", or seconds). */
export function serviceSettings(env: Readonly<Record<string, string | undefined>>): ServiceSettings {
  const problems: string[] = [];
  const host = env.DBOPS_HTTP_HOST?.trim() || SERVICE_DEFAULTS.host;
  let port: number = SERVICE_DEFAULTS.port;
  const portText = env.DBOPS_HTTP_PORT?.trim();
  if (portText) {
    port = Number(portText);
    if (!/^\d+$/.test(portText) || port > 65535) {
      problems.push(`DBOPS_HTTP_PORT: expected a port number (0-65535), got "${portText}"`);
    }
  }
  let shutdownTimeoutMs: number = SERVICE_DEFAULTS.shutdownTimeoutMs;
  const timeoutText = env.DBOPS_SHUTDOWN_TIMEOUT?.trim();
  if (timeoutText) {
    const seconds = /^\d+(\.\d+)?$/.test(timeoutText) ? Number(timeoutText) : parseDuration(timeoutText);
    if (seconds === undefined || seconds <= 0) {
      problems.push(`DBOPS_SHUTDOWN_TIMEOUT: expected a duration like 25s or 1m, got "${timeoutText}"`);
    } else {
      shutdownTimeoutMs = Math.round(seconds * 1000);
    }
  }
  let runLeaseMs: number = SERVICE_DEFAULTS.runLeaseMs;
  const leaseText = env.DBOPS_RUN_LEASE?.trim();
  if (leaseText) {
    const seconds = /^\d+(\.\d+)?$/.test(leaseText) ? Number(leaseText) : parseDuration(leaseText);
    if (seconds === undefined || seconds < 1) {
      problems.push(`DBOPS_RUN_LEASE: expected a duration of at least 1s like 60s or 2m, got "${leaseText}"`);
    } else {
      runLeaseMs = Math.round(seconds * 1000);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { host, port, shutdownTimeoutMs, runLeaseMs };
}

/** Whether the state database answers; its own one-connection pool, so a busy app pool can not mask it. */
export interface StateProbe {
  /** Resolves when `SELECT 1` answered within the timeout; rejects with why not (secrets redacted). */
  check(): Promise<void>;
  close(): Promise<void>;
}

export function stateProbe(url: string, options: { timeoutMs?: number; log?: Logger } = {}): StateProbe {
  const timeoutMs = options.timeoutMs ?? 2_000;
  const pool = new pg.Pool({
    connectionString: url,
    max: 1,
    application_name: 'dbops-health',
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
    idleTimeoutMillis: 60_000,
    allowExitOnIdle: true,
  });
  // A dropped idle connection is what the next check reports; it must never crash the process.
  pool.on('error', (err) => {
    options.log?.debug({ error: redactSecrets(err.message) }, 'state probe connection lost');
  });
  let running: Promise<void> | undefined;
  const once = async (): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer to SELECT 1 within ${timeoutMs} ms`)),
        timeoutMs + 250,
      );
    });
    try {
      await Promise.race([pool.query('SELECT 1'), late]);
    } catch (err) {
      throw new Error(redactSecrets(err instanceof Error ? err.message : String(err)));
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    // Probes arriving together (two kubelets, a curl) share one query.
    check() {
      running ??= once().finally(() => {
        running = undefined;
      });
      return running;
    },
    async close() {
      await pool.end().catch(() => {});
    },
  };
}

export interface HealthServerOptions {
  host: string;
  port: number;
  metrics: Metrics;
  /** The state database check behind /readyz. */
  checkState(): Promise<void>;
  /** The enabled chat surfaces, each of which must be healthy for /readyz. */
  surfaces(): readonly Pick<RunningSurface, 'name' | 'healthy' | 'problem' | 'detail'>[];
  /** Why the process does not take commands right now ("starting: …", "shutting down"), or undefined. */
  notTakingCommands(): string | undefined;
  log: Logger;
}

export interface HealthServer {
  /** http://host:port of the running server. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

interface Check {
  ok: boolean;
  error?: string;
  ms?: number;
  /** What is wrong without making the bot not ready (a sick target's stuck work). */
  detail?: string[];
}

/** The /readyz verdict: every check by name, ready only when all pass. */
export async function readiness(
  options: Pick<HealthServerOptions, 'checkState' | 'surfaces' | 'notTakingCommands'> & {
    metrics?: Pick<Metrics, 'stuckWork'>;
  },
): Promise<{ ready: boolean; checks: Record<string, Check> }> {
  const checks: Record<string, Check> = {};
  const why = options.notTakingCommands();
  checks.dbops = why === undefined ? { ok: true } : { ok: false, error: why };
  const started = performance.now();
  try {
    await options.checkState();
    checks.state = { ok: true, ms: Math.round(performance.now() - started) };
  } catch (err) {
    checks.state = {
      ok: false,
      error: `state database: ${err instanceof Error ? err.message : String(err)}`,
      ms: Math.round(performance.now() - started),
    };
  }
  for (const surface of options.surfaces()) {
    const detail = surface.detail?.() ?? [];
    checks[surface.name] = surface.healthy()
      ? { ok: true, ...(detail.length > 0 ? { detail } : {}) }
      : { ok: false, error: surface.problem() ?? `${surface.name} is not connected` };
  }
  // A sick target is reported, but it does not make the bot not ready: other targets are served.
  const stuck = options.metrics?.stuckWork() ?? [];
  checks.targets = stuck.length > 0 ? { ok: true, detail: stuck } : { ok: true };
  return { ready: Object.values(checks).every((c) => c.ok), checks };
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`);
}

/** Starts listening; resolves once the port is bound (rejects when it can not be, e.g. in use). */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://dbops').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      json(res, 405, { error: 'method not allowed' });
      return;
    }
    switch (path) {
      case '/healthz':
        json(res, 200, { status: 'alive' });
        return;
      case '/readyz': {
        const verdict = await readiness(options);
        json(res, verdict.ready ? 200 : 503, {
          status: verdict.ready ? 'ready' : 'not ready',
          ...(verdict.ready
            ? {}
            : { failed: Object.keys(verdict.checks).filter((k) => !verdict.checks[k]?.ok) }),
          checks: verdict.checks,
        });
        return;
      }
      case '/metrics':
        send(res, 200, options.metrics.contentType, await options.metrics.text());
        return;
      default:
        json(res, 404, { error: 'not found', endpoints: ['/healthz', '/readyz', '/metrics'] });
    }
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      options.log.error({ err }, 'health endpoint failed');
      if (!res.headersSent) json(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => options.log.error({ err }, 'health server error'));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const shownHost = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${shownHost}:${port}`,
    port,
    async close() {
      // Idle keep-alive connections (Prometheus) are closed; a scrape under way may finish.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), 2_000);
      await closed;
      clearTimeout(timer);
    },
  };
}
