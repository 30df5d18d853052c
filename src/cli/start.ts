// `dbops start`: the bot as a service: health endpoints, the state database (waited for), the chat
// surfaces, and a graceful stop on SIGTERM/SIGINT.
import { type App, createApp } from '../app.js';
import { ConfigError } from '../core/errors.js';
import { createLogger, redactSecrets } from '../core/log.js';
import { Metrics } from '../observability/metrics.js';
import { serviceSettings, startHealthServer, stateProbe } from '../observability/server.js';
import { checkCatalog } from '../packs/registry.js';
import { startSurfaces } from '../surfaces/start.js';
import type { parseCommand, START_OPTIONS } from './args.js';
import { configPath, env, loadConfigOrExit } from './shared.js';

export type StartArgs = ReturnType<typeof parseCommand<typeof START_OPTIONS>>;

export async function start({ values }: StartArgs): Promise<number> {
  const config = loadConfigOrExit(configPath(values.config));
  try {
    checkCatalog(config); // a broken pack stops start-up now, not after the state database is reached
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`dbops: ${err.message}\n`);
    return 2;
  }
  const log = createLogger({ level: env.DBOPS_LOG_LEVEL ?? 'info' });
  const settings = serviceSettings(env);
  // How often this replica looks for overdue approval requests (each request expires once whichever looks).
  const sweepText = env.DBOPS_SWEEP_INTERVAL?.trim();
  const sweepSeconds = sweepText ? Number(sweepText.replace(/s$/, '')) : 30;
  if (!(sweepSeconds > 0) || (sweepText && !/^\d+(\.\d+)?s?$/.test(sweepText))) {
    throw new ConfigError([`DBOPS_SWEEP_INTERVAL: expected seconds like 30 or 30s, got "${sweepText}"`]);
  }
  const metrics = new Metrics();
  metrics.collectProcessMetrics();
  const probe = stateProbe(config.state.url, { log });
  let surfaces: Awaited<ReturnType<typeof startSurfaces>> = [];
  let phase: 'starting' | 'running' | 'stopping' = 'starting';
  let startProblem = 'connecting to the state database';
  metrics.observeSurfaces(() => surfaces);

  const stopSignal = new Promise<NodeJS.Signals>((resolveStop) => {
    process.once('SIGTERM', () => resolveStop('SIGTERM'));
    process.once('SIGINT', () => resolveStop('SIGINT'));
  });
  // Unref'd: the health server keeps the process alive while it waits, and a stop must not wait for it.
  const pause = (ms: number) =>
    new Promise<undefined>((done) => setTimeout(() => done(undefined), ms).unref());
  /** True when `work` settled before `ms` passed. */
  const within = async (work: Promise<unknown>, ms: number): Promise<boolean> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((done) => {
      timer = setTimeout(() => done(false), Math.max(0, ms));
    });
    const settled = await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      late,
    ]);
    clearTimeout(timer);
    return settled;
  };

  // The health endpoints come first: while dbops connects, an orchestrator sees it alive but not ready.
  let server: Awaited<ReturnType<typeof startHealthServer>>;
  try {
    server = await startHealthServer({
      host: settings.host,
      port: settings.port,
      metrics,
      log,
      checkState: () => probe.check(),
      surfaces: () => surfaces,
      notTakingCommands: () =>
        phase === 'starting'
          ? `starting: ${startProblem}`
          : phase === 'stopping'
            ? 'shutting down'
            : undefined,
    });
  } catch (err) {
    await probe.close();
    throw err;
  }
  log.info({ endpoint: server.url }, 'health endpoints listening: /healthz /readyz /metrics');
  const closeEndpoints = async () => {
    await server.close();
    await probe.close();
  };

  // A state database that is down when the process starts is waited for (not ready meanwhile), not a crash
  // loop whose back-off would keep dbops away for minutes after the database is back.
  let app: App | undefined;
  for (let delay = 500; !app; delay = Math.min(delay * 2, 10_000)) {
    try {
      app = await createApp({ config, log, metrics, runLeaseMs: settings.runLeaseMs });
    } catch (err) {
      if (err instanceof ConfigError) {
        await closeEndpoints();
        throw err;
      }
      const error = redactSecrets(err instanceof Error ? err.message : String(err));
      startProblem = `the state database is not reachable yet (${error})`;
      log.warn({ error, retryInMs: delay }, 'could not open the state database; retrying');
      const signal = await Promise.race([stopSignal, pause(delay)]);
      if (signal) {
        log.info({ signal }, 'stopped before the state database was reachable');
        await closeEndpoints();
        return 0;
      }
    }
  }
  app.startSweeper(sweepSeconds);
  try {
    surfaces = await startSurfaces({ app, config, env, log, metrics });
  } catch (err) {
    phase = 'stopping';
    await app.close();
    await closeEndpoints();
    throw err;
  }
  phase = 'running';
  log.info(
    { targets: Object.keys(config.targets).length, surfaces: surfaces.map((s) => s.name) },
    surfaces.length > 0
      ? 'dbops started'
      : 'dbops started with no chat surface: set SLACK_BOT_TOKEN (+ SLACK_APP_TOKEN or SLACK_SIGNING_SECRET) or DISCORD_TOKEN',
  );

  const signal = await stopSignal;
  // Graceful shutdown: /readyz turns 503, the core refuses new commands and the surfaces disconnect (the
  // chat platforms deliver to the other replicas), what runs may finish until the deadline, pending
  // approvals stay in the state database, then the pools close.
  phase = 'stopping';
  const timeoutMs = settings.shutdownTimeoutMs;
  const deadline = Date.now() + timeoutMs;
  log.info(
    { signal, timeoutMs, running: app.core.inFlight },
    'stopping: no new commands; finishing those running',
  );
  const drained = app.core.drain(timeoutMs);
  if (!(await within(Promise.allSettled(surfaces.map((s) => s.stop())), deadline - Date.now()))) {
    log.warn('a chat surface did not stop before the shutdown deadline');
  }
  const clean = await drained;
  if (clean) log.info('every running command finished');
  else
    log.error(
      { abandoned: app.core.inFlight, timeoutMs },
      'shutdown deadline passed with commands still running',
    );
  if (!(await within(app.close(), 5_000))) log.warn('target or state connections did not close within 5 s');
  await closeEndpoints();
  const code = clean ? 0 : 1;
  log.info({ exitCode: code }, 'dbops stopped');
  // Whatever might still hold the event loop (a hung socket) must not keep a stopped process alive.
  setTimeout(() => process.exit(code), 5_000).unref();
  return code;
}
