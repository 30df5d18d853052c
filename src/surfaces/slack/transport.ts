// Connects Bolt to Slack — Socket Mode (default) or HTTP with signed requests — and watches the connection.
import { App, LogLevel, type Logger as SdkLogger, SocketModeReceiver } from '@slack/bolt';
import type { Logger } from '../../core/log.js';
import { redactSecrets } from '../../core/log.js';
import type { Metrics } from '../../observability/metrics.js';
import { FastAckReceiver } from './fast-receiver.js';
import { keepAliveFetch, keptAliveHttp } from './keep-alive-fetch.js';
import type { SlackSettings } from './settings.js';
import type { RefusalReason } from './signed-requests.js';
import { SlackApi } from './web-api.js';

/** The path Slack posts commands, interactions and events to in HTTP mode. */
export const HTTP_EVENTS_PATH = '/slack/events';
export const HTTP_HEALTH_PATH = '/slack/healthz';

const FIRST_CONNECT_TIMEOUT_MS = 30_000;
const RECONNECT_TIMEOUT_MS = 30_000;
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 30_000;
/** After this many failed attempts the loss is logged as an error (it keeps retrying). */
const RECONNECT_ALARM_AFTER = 5;
const STOP_TIMEOUT_MS = 5_000;
/** A Web API call that hangs longer than this fails instead of holding a reply forever. */
const API_TIMEOUT_MS = 15_000;

export interface SlackTransport {
  bolt: App;
  /** The reply path's Web API calls (web-api.ts), over the same kept-alive connections as the Bolt client. */
  api: SlackApi;
  /** Connects (Socket Mode) or listens (HTTP); throws when Slack cannot be reached or refuses the tokens. */
  start(): Promise<void>;
  stop(): Promise<void>;
  healthy(): boolean;
  problem(): string | undefined;
}

const CONNECTION_NOISE = /WebSocket|WSS URL|pong|ping/i;

/** The SDK's logger interface over the dbops pino logger; every line goes through redactSecrets. */
function sdkLogger(log: Logger): SdkLogger {
  const text = (parts: unknown[]) =>
    redactSecrets(
      parts
        .map((p) => (p instanceof Error ? p.message : typeof p === 'string' ? p : JSON.stringify(p)))
        .join(' '),
    );
  // The SDK's debug lines cost a join and a redaction each: only built when debug logging is on.
  const debug = (msg: unknown[]) => {
    if (log.isLevelEnabled('debug')) log.debug(text(msg));
  };
  return {
    // The SDK's info lines (connections, retries) are routine: debug for dbops.
    debug: (...msg: unknown[]) => debug(msg),
    info: (...msg: unknown[]) => debug(msg),
    warn: (...msg: unknown[]) => log.warn(text(msg)),
    error: (...msg: unknown[]) => {
      const line = text(msg);
      // Connection trouble is reported by dbops itself (a warning when lost, an error when it cannot come
      // back, and the health check), so the SDK's per-attempt lines stay warnings.
      if (CONNECTION_NOISE.test(line)) log.warn(line);
      else log.error(line);
    },
    setLevel: () => {},
    getLevel: () => (log.isLevelEnabled('debug') ? LogLevel.DEBUG : LogLevel.INFO),
    setName: () => {},
  };
}

function message(err: unknown): string {
  return redactSecrets(err instanceof Error ? err.message : String(err));
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000}s`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export function createTransport(settings: SlackSettings, log: Logger, metrics?: Metrics): SlackTransport {
  const logger = sdkLogger(log.child({ component: 'slack-sdk' }));
  const retryConfig = {
    retries: settings.apiRetries,
    factor: 2,
    minTimeout: 1000,
    maxTimeout: 10_000,
    randomize: true,
  };
  // Web API calls over kept-alive connections, with the time limit on the socket (timeout 0: the SDK
  // then makes no abort signal per call).
  const http = keptAliveHttp(API_TIMEOUT_MS);
  const fetch = keepAliveFetch(http);
  const api = new SlackApi({
    apiUrl: settings.apiUrl,
    token: settings.botToken,
    http,
    retries: settings.apiRetries,
    log: log.child({ component: 'slack-api' }),
  });
  const clientOptions = { slackApiUrl: settings.apiUrl, retryConfig, timeout: 0, fetch };
  if (settings.mode === 'socket' && !settings.appToken) throw new Error('Socket Mode needs SLACK_APP_TOKEN');
  if (settings.mode !== 'socket' && !settings.signingSecret)
    throw new Error('HTTP mode needs SLACK_SIGNING_SECRET');
  const transport =
    settings.mode === 'socket'
      ? socketTransport(settings, settings.appToken ?? '', clientOptions, logger, log)
      : httpTransport(settings, settings.signingSecret ?? '', clientOptions, logger, log, metrics);
  return {
    ...transport,
    api,
    async stop() {
      await transport.stop();
      http.close();
    },
  };
}

type ClientOptions = {
  slackApiUrl: string;
  retryConfig: Record<string, unknown>;
  timeout: number;
  fetch: ReturnType<typeof keepAliveFetch>;
};

function socketTransport(
  settings: SlackSettings,
  appToken: string,
  clientOptions: ClientOptions,
  logger: SdkLogger,
  log: Logger,
): Omit<SlackTransport, 'api'> {
  const receiver = new SocketModeReceiver({
    appToken,
    logger,
    // dbops reconnects itself (below), so a connection that cannot come back is reported, not thrown away.
    autoReconnectEnabled: false,
    // apps.connections.open goes to SLACK_API_URL too; the reconnect loop does the retrying.
    installerOptions: { clientOptions: { ...clientOptions, retryConfig: { retries: 0 } } },
  });
  const bolt = new App({
    token: settings.botToken,
    receiver,
    logger,
    clientOptions: { ...clientOptions },
    deferInitialization: true,
  });
  const socket = receiver.client;
  type State = 'starting' | 'connected' | 'lost' | 'stopped';
  let state: State = 'starting';
  let attempts = 0;
  let lostAt: Date | undefined;
  let lastError: string | undefined;
  let connecting = false;
  let timer: NodeJS.Timeout | undefined;

  socket.on('connected', () => {
    if (state === 'lost') log.info({ attempts }, 'slack: Socket Mode connection is back');
    state = 'connected';
    attempts = 0;
    lostAt = undefined;
    lastError = undefined;
  });
  socket.on('error', (err: unknown) => {
    lastError = message(err);
  });
  socket.on('disconnected', () => {
    if (state === 'stopped' || state === 'starting') return;
    if (state === 'connected') {
      state = 'lost';
      lostAt = new Date();
      log.warn('slack: Socket Mode connection lost; reconnecting');
    }
    if (!connecting) schedule();
  });

  const connect = async (timeoutMs: number) => {
    connecting = true;
    try {
      await withTimeout(socket.start(), timeoutMs, 'connecting to Slack Socket Mode');
    } finally {
      connecting = false;
    }
  };

  function schedule(): void {
    if (timer || state === 'stopped') return;
    attempts += 1;
    if (attempts === RECONNECT_ALARM_AFTER) {
      log.error(
        { attempts, lastError },
        'slack: Socket Mode cannot reconnect; commands are not received until it does (still retrying)',
      );
    }
    const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** (attempts - 1));
    timer = setTimeout(() => {
      timer = undefined;
      if (state === 'stopped') return;
      connect(RECONNECT_TIMEOUT_MS).catch((err: unknown) => {
        lastError = err === undefined ? lastError : message(err);
        log.debug({ attempts, lastError }, 'slack: reconnect attempt failed');
        // A start that timed out may still hold a half-open socket: drop it before the next attempt.
        if (state !== 'stopped') void socket.disconnect().catch(() => {});
        schedule();
      });
    }, delay);
  }

  return {
    bolt,
    async start() {
      await bolt.init();
      try {
        await withTimeout(bolt.start(), FIRST_CONNECT_TIMEOUT_MS, 'connecting to Slack Socket Mode');
      } catch (err) {
        state = 'stopped';
        void socket.disconnect().catch(() => {});
        throw new Error(`Slack Socket Mode: ${err === undefined ? lastError : message(err)}`);
      }
      state = 'connected';
    },
    async stop() {
      state = 'stopped';
      clearTimeout(timer);
      timer = undefined;
      await withTimeout(socket.disconnect(), STOP_TIMEOUT_MS, 'closing the Socket Mode connection').catch(
        (err: unknown) => log.warn({ err: message(err) }, 'slack: Socket Mode did not close cleanly'),
      );
    },
    healthy: () => state === 'connected',
    problem() {
      switch (state) {
        case 'connected':
          return undefined;
        case 'starting':
          return 'connecting to Slack (Socket Mode)';
        case 'stopped':
          return 'stopped';
        case 'lost': {
          const since = lostAt ? ` since ${lostAt.toISOString()}` : '';
          const why = lastError ? `; last error: ${lastError}` : '';
          return attempts >= RECONNECT_ALARM_AFTER
            ? `cannot reconnect to Slack Socket Mode${since} (${attempts} attempts${why}); still retrying`
            : `Socket Mode connection lost${since}; reconnecting (attempt ${attempts}${why})`;
        }
      }
    },
  };
}

/** Refused requests are logged at most this often per reason (the rest are counted into the next line). */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

const REFUSAL_TEXT: Record<RefusalReason, string> = {
  bad_signature: 'slack: refused a request whose signature does not match the signing secret (401)',
  stale_timestamp:
    'slack: refused a request with a timestamp over 5 minutes off, a replay or a wrong clock (401)',
  too_large: 'slack: refused a request body over 1 MiB (413)',
  unparseable: 'slack: refused a signed request whose body could not be parsed (400)',
};

/**
 * A warning per refused request, but a flood of forged ones (anyone can post to the endpoint) becomes one
 * line per reason and interval with the count of the others, so it cannot drown the log. Every refusal is
 * also counted in the metrics.
 */
function refusalLogger(log: Logger): (reason: RefusalReason, remote: string | undefined) => void {
  const last = new Map<RefusalReason, { at: number; unlogged: number }>();
  return (reason, remote) => {
    const now = Date.now();
    const seen = last.get(reason);
    if (seen && now - seen.at < REFUSAL_LOG_INTERVAL_MS) {
      seen.unlogged += 1;
      return;
    }
    const alsoRefused = seen?.unlogged ?? 0;
    last.set(reason, { at: now, unlogged: 0 });
    log.warn({ reason, remote, ...(alsoRefused > 0 ? { alsoRefused } : {}) }, REFUSAL_TEXT[reason]);
  };
}

function httpTransport(
  settings: SlackSettings,
  signingSecret: string,
  clientOptions: ClientOptions,
  logger: SdkLogger,
  log: Logger,
  metrics: Metrics | undefined,
): Omit<SlackTransport, 'api'> {
  let started = false;
  const logRefusal = refusalLogger(log);
  // Our receiver answers Slack's 200 from a thread of its own as soon as the signature checks out, then
  // hands the body to Bolt here.
  const receiver = new FastAckReceiver({
    signingSecret,
    path: HTTP_EVENTS_PATH,
    healthPath: HTTP_HEALTH_PATH,
    onError: (err) => log.error({ err: message(err) }, 'slack: an acknowledged request failed'),
    onRefused: (reason, remote) => {
      metrics?.slackRequestRefused(reason);
      logRefusal(reason, remote);
    },
    onAcked: (ms) => metrics?.slackAcked(ms),
    onThreadLost: (why) => log.error({ why }, 'slack: the HTTP receiver stopped; starting it again'),
  });
  const bolt = new App({
    token: settings.botToken,
    receiver,
    logger,
    clientOptions: { ...clientOptions },
    deferInitialization: true,
  });
  const listening = () => started && receiver.listening;
  return {
    bolt,
    async start() {
      await bolt.init();
      await bolt.start(settings.port);
      started = true;
      log.info({ port: settings.port, path: HTTP_EVENTS_PATH }, 'slack: listening for signed requests');
    },
    async stop() {
      if (!started) return;
      started = false;
      await withTimeout(bolt.stop(), STOP_TIMEOUT_MS, 'closing the Slack HTTP server').catch((err: unknown) =>
        log.warn({ err: message(err) }, 'slack: HTTP server did not close cleanly'),
      );
    },
    healthy: listening,
    problem: () =>
      listening()
        ? undefined
        : started
          ? 'the HTTP receiver stopped and is being started again'
          : 'not listening',
  };
}
