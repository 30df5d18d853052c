// The benchmark's Slack HTTP part: bursts of signed slash commands from a separate process over connections
// opened and warmed before each burst, against the bot's receiver and a bare node:http server measured the
// same way; acknowledgements seen by the client and inside the server, throughput and the CPU split.
import { type ChildProcess, spawn } from 'node:child_process';
import { get } from 'node:http';
import { cpus } from 'node:os';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { App } from '../src/app.js';
import type { Config } from '../src/config/schema.js';
import { silentLogger } from '../src/core/log.js';
import { freePort } from '../src/demo/embedded.js';
import type { Metrics } from '../src/observability/metrics.js';
import { startSlack } from '../src/surfaces/slack/index.js';
import { HTTP_EVENTS_PATH, HTTP_HEALTH_PATH } from '../src/surfaces/slack/transport.js';
import { startBareServer } from './bare-server.js';
import {
  mainThreadCpuMs,
  ownCpuMs,
  pinTo,
  postmasterPid,
  processCpuMs,
  serverCpuMs,
  serverPids,
} from './cpu.js';
import type { BurstReport, Load } from './slack-load.js';
import { round, type Stats, stats } from './stats.js';

const HOST = '127.0.0.1';
const TEAM = 'T1';
const LOAD_SCRIPT = fileURLToPath(new URL('./slack-load.js', import.meta.url));
const FAKE_SLACK_SCRIPT = fileURLToPath(new URL('./fake-slack-process.js', import.meta.url));
export const SLACK_CONCURRENCY = 100;
export const SLACK_ROUNDS = 5;
/**
 * Windows of SLACK_ROUNDS bursts of `/db sizes` measured one after another while the bot warms up. V8
 * stops recompiling the hot paths after about 3,000 commands (--trace-opt: 105 ms of background
 * compiling in commands 2,000–3,000, 29–33 ms per 1,000 after, no deoptimisation): six windows put the
 * last, the steady state, at commands 3,600–4,100.
 */
export const WARMING_WINDOWS = 6;

/** Reads one line of JSON at a time from a child's stdout; fails the waiting reads if the child exits. */
function lineReader(child: ChildProcess): () => Promise<string> {
  const waiting: { resolve: (line: string) => void; reject: (err: Error) => void }[] = [];
  const ready: string[] = [];
  let exited: Error | undefined;
  if (!child.stdout) throw new Error('the child has no stdout');
  createInterface({ input: child.stdout }).on('line', (line) => {
    const next = waiting.shift();
    if (next) next.resolve(line);
    else ready.push(line);
  });
  child.once('exit', (code) => {
    exited = new Error(`the child exited (code ${code})`);
    for (const w of waiting.splice(0)) w.reject(exited);
  });
  return () => {
    const line = ready.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (exited) return Promise.reject(exited);
    return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  };
}

/** A GET answered with JSON, over node:http (the bench process is the bot's: no undici for it). */
function getJson<T>(url: string): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as T }));
    }).on('error', reject);
  });
}

/**
 * The bot's acknowledgement times as its receiver reports them (the thread's 'request' event to the
 * response's 'finish'; FastAckReceiver's onAcked → Metrics.slackAcked), kept in a preallocated array.
 */
class AckRecorder {
  readonly #ms = new Float64Array(1 << 16);
  #count = 0;

  slackAcked(ms: number): void {
    this.#ms[this.#count % this.#ms.length] = ms;
    this.#count += 1;
  }

  slackRequestRefused(): void {}

  take(): number[] {
    const taken = [...this.#ms.subarray(0, Math.min(this.#count, this.#ms.length))];
    this.#count = 0;
    return taken;
  }
}

interface AckSide {
  /** Client-side: from the request being written by the load generator to its response read. */
  client: Stats;
  /** Server-side: from the 'request' event to the response's 'finish', inside the server. */
  server: Stats;
}

/** (d) The Slack HTTP receiver: signed slash commands, `concurrency` at once, against a fake Slack API. */
export async function slackHttp(
  app: App,
  config: Config,
  rounds: number,
  concurrency: number,
  pgPort: number,
) {
  // The fake Slack Web API runs in its own process, as Slack does: answering the bot's chat.postMessage
  // calls must not share the event loop of the bot whose acknowledgements are measured.
  const fakeProcess = spawn(process.execPath, [FAKE_SLACK_SCRIPT, TEAM], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const loadProcess = spawn(process.execPath, [LOAD_SCRIPT], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const bare = await startBareServer();
  const recorder = new AckRecorder();
  let surface: Awaited<ReturnType<typeof startSlack>> | undefined;
  try {
    const fake = JSON.parse(await lineReader(fakeProcess)()) as { apiUrl: string; url: string };
    const readLoad = lineReader(loadProcess);
    type Counts = { total: number; replies: number; responses: number };
    const counts = async () => (await getJson<Counts>(`${fake.url}/_counts`)).body;
    const waitFor = async (kind: 'replies' | 'responses', want: number, what: string) => {
      const answer = await getJson<Counts>(`${fake.url}/_wait?${kind}=${want}`);
      if (answer.status !== 200) throw new Error(`timed out waiting for ${what}`);
    };
    const secret = 'bench-signing-secret';
    const port = await freePort();
    surface = await startSlack({
      app,
      config,
      env: {
        SLACK_BOT_TOKEN: 'xoxb-bench',
        SLACK_MODE: 'http',
        SLACK_SIGNING_SECRET: secret,
        SLACK_PORT: String(port),
        SLACK_API_URL: fake.apiUrl,
        SLACK_API_RETRIES: '0',
      },
      log: silentLogger(),
      // Only the Slack receiver's two hooks are called through this; the recorder keeps the ack times.
      metrics: recorder as unknown as Metrics,
    });
    if (!surface) throw new Error('the Slack surface did not start');
    const load: Load = {
      url: `http://${HOST}:${port}${HTTP_EVENTS_PATH}`,
      warmUrl: `http://${HOST}:${port}${HTTP_HEALTH_PATH}`,
      secret,
      respondUrl: `${fake.url}/respond/`,
      count: concurrency,
      team: TEAM,
      user: 'UBENCH',
      channel: 'CBENCH',
      text: 'sizes app',
    };
    const send = async (target: Load): Promise<BurstReport> => {
      loadProcess.stdin?.write(`${JSON.stringify(target)}\n`);
      const report = JSON.parse(await readLoad()) as BurstReport & { error?: string };
      if (report.error) throw new Error(`the Slack load generator failed: ${report.error}`);
      return report;
    };
    for (let i = 0; i < 5; i++) {
      const from = (await counts()).replies;
      await send({ ...load, count: 1 });
      await waitFor('replies', from + 1, 'a warm-up reply');
    }
    // The same bursts against a bare node:http server that answers at once: this machine's floor.
    const bareUrl = `http://${HOST}:${bare.port}`;
    const bareLoad = { ...load, url: `${bareUrl}/slack/events`, warmUrl: `${bareUrl}/warm` };
    await send(bareLoad);
    await bare.take();
    const floor: number[] = [];
    const floorServer: number[] = [];
    const idle = async () => {
      // Each burst starts on an idle bot: the previous burst's last commands (audit, card, final posts)
      // have finished, so every burst measures `concurrency` concurrent commands, not those plus a tail.
      const idleBy = Date.now() + 30_000;
      while (app.core.inFlight > 0 && Date.now() < idleBy) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 200));
    };
    const burst = async (text = load.text) => {
      await idle();
      const kind = text.startsWith('targets') ? 'responses' : 'replies';
      const from = (await counts())[kind];
      const report = await send({ ...load, text });
      await waitFor(kind, from + concurrency, `${concurrency} ${kind} to ${text}`);
      return {
        acks: report.acks,
        serverAcks: recorder.take(),
        reused: report.reused,
        perSecond: concurrency / ((Date.now() - report.startedAt) / 1000),
        loadCpuMs: report.cpuMs,
      };
    };
    /**
     * Warm bursts of one command with the CPU each process spent on them, per command. `pinned`: the
     * PostgreSQL server gets the last CPU to itself and everything else (the bot, the load generator, the
     * fake Slack) shares the others, so the ceiling is what PostgreSQL's own CPUs allow and the bursts show
     * whether the bot keeps them busy; `shared`: every process may run on every CPU, as a one-box install.
     */
    const sustained = async (text: string, layout: 'shared' | 'pinned' = 'shared') => {
      const postmaster = postmasterPid(pgPort);
      const all = cpus().length;
      const pgCpus = layout === 'pinned' ? 1 : all;
      const others = [process.pid, fakeProcess.pid, loadProcess.pid].filter(
        (p): p is number => p !== undefined,
      );
      if (layout === 'pinned') {
        if (!postmaster || all < 2) return undefined;
        const pinned =
          pinTo(serverPids(postmaster), String(all - 1)) && pinTo(others, all === 2 ? '0' : `0-${all - 2}`);
        if (!pinned) return undefined;
      }
      try {
        return await measureSustained(text, layout, postmaster, pgCpus);
      } finally {
        if (layout === 'pinned' && postmaster) pinTo([...serverPids(postmaster), ...others], `0-${all - 1}`);
      }
    };
    const measureSustained = async (
      text: string,
      layout: 'shared' | 'pinned',
      postmaster: number | undefined,
      pgCpus: number,
    ) => {
      const cpu0 = {
        bot: ownCpuMs(),
        botMain: mainThreadCpuMs(),
        pg: postmaster ? serverCpuMs(postmaster) : 0,
        fake: processCpuMs(fakeProcess.pid),
      };
      let loadCpuMs = 0;
      const rates: number[] = [];
      for (let r = 0; r < rounds; r++) {
        const b = await burst(text);
        rates.push(b.perSecond);
        loadCpuMs += b.loadCpuMs;
      }
      const commands = rounds * concurrency;
      const per = (ms: number) => round(ms / commands, 3);
      const pgMs = per((postmaster ? serverCpuMs(postmaster) : 0) - cpu0.pg);
      const commandsPerSecond = round(stats(rates).medianMs, 1);
      // What PostgreSQL alone could serve with its CPUs (every core, or its own when pinned): the bound
      // no bot can pass.
      const ceiling = pgMs > 0 ? round((pgCpus * 1000) / pgMs, 1) : undefined;
      return {
        text,
        layout,
        postgresCpus: pgCpus,
        commandsPerSecond,
        cpuMsPerCommand: {
          bot: per(ownCpuMs() - cpu0.bot),
          botMainThread: per(mainThreadCpuMs() - cpu0.botMain),
          postgres: pgMs,
          loadGenerator: per(loadCpuMs),
          fakeSlack: per(processCpuMs(fakeProcess.pid) - cpu0.fake),
        },
        ...(ceiling !== undefined
          ? { postgresBoundCeiling: ceiling, ofCeiling: round(commandsPerSecond / ceiling, 3) }
          : {}),
      };
    };
    // The first burst also opens the pools up to pool_max and warms the concurrent paths: reported apart.
    // The bot's event-loop delay and GC pauses are recorded across the bursts, to tell the bot's own
    // stalls from time spent elsewhere (the other processes on this machine's cores).
    const loop = monitorEventLoopDelay({ resolution: 5 });
    const gcs: number[] = [];
    const gcObserver = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) gcs.push(e.duration);
    });
    gcObserver.observe({ entryTypes: ['gc'] });
    loop.enable();
    const cold = await burst();
    const acks: number[] = [];
    const serverAcks: number[] = [];
    const throughput: number[] = [];
    let reused = 0;
    let bareReused = 0;
    // Bare and bot bursts alternate, and which goes first alternates too (bare, bot, bot, bare, …): the
    // second burst of a pair ran measurably slower whichever server it hit, so neither side always gets it.
    const bareBurst = async () => {
      await idle();
      const b = await send(bareLoad);
      floor.push(...b.acks);
      floorServer.push(...(await bare.take()));
      bareReused += b.reused;
    };
    const botBurst = async () => {
      const warm = await burst();
      acks.push(...warm.acks);
      serverAcks.push(...warm.serverAcks);
      throughput.push(warm.perSecond);
      reused += warm.reused;
    };
    for (let round = 0; round < rounds * 2; round++) {
      if (round % 2 === 0) {
        await bareBurst();
        await botBurst();
      } else {
        await botBurst();
        await bareBurst();
      }
    }
    loop.disable();
    gcObserver.disconnect();
    // The same warm bursts again with each process's CPU counted: a read with SQL, one with almost none.
    // The bot's CPU per command falls while V8 is still optimising the hot paths on its background
    // threads (counted in the process's CPU): the read is measured in consecutive windows until it is
    // warm, each window reported, and the last taken as the steady state.
    const windows: NonNullable<Awaited<ReturnType<typeof sustained>>>[] = [];
    for (let w = 0; w < WARMING_WINDOWS; w++) {
      const window = await sustained(load.text);
      if (window) windows.push(window);
    }
    const cpuSplit = [
      windows.at(-1),
      await sustained('targets'),
      await sustained(load.text, 'pinned'),
    ].filter((split) => split !== undefined);
    const bot: AckSide = { client: stats(acks), server: stats(serverAcks) };
    const bareSide: AckSide = { client: stats(floor), server: stats(floorServer) };
    return {
      cpuSplit,
      /** Bot CPU ms per `/db sizes` in each window of `rounds` bursts, in order, after `warmedBy` commands. */
      warming: {
        botCpuMs: windows.map((w) => w.cpuMsPerCommand.bot),
        commandsPerWindow: rounds * concurrency,
        warmedBy: (1 + 2 * rounds) * concurrency,
      },
      measured: true as const,
      // Where an ack could wait inside the bot: its event loop and garbage collection during the bursts.
      botEventLoopDelay: { maxMs: round(loop.max / 1e6, 1), p99Ms: round(loop.percentile(99) / 1e6, 1) },
      botGc: { count: gcs.length, maxMs: round(Math.max(0, ...gcs), 1) },
      rounds,
      concurrency,
      /** Requests of the measured bursts sent on a connection opened and warmed before the burst. */
      warmConnections: { bot: reused, bare: bareReused, of: 2 * rounds * concurrency },
      ack: bot.client,
      serverAck: bot.server,
      ackSlowestMs: [...acks]
        .sort((a, b) => b - a)
        .slice(0, 8)
        .map((a) => round(a, 1)),
      firstBurstAck: stats(cold.acks),
      firstBurstServerAck: stats(cold.serverAcks),
      firstBurstCommandsPerSecond: round(cold.perSecond, 1),
      bareServerAck: bareSide.client,
      bareServerServerAck: bareSide.server,
      commandsPerSecond: round(stats(throughput).medianMs, 1),
    };
  } finally {
    await surface?.stop();
    await bare.close();
    loadProcess.stdin?.end();
    fakeProcess.kill('SIGTERM');
    await Promise.all(
      [loadProcess, fakeProcess].map(
        (child) =>
          new Promise((done) => (child.exitCode !== null ? done(undefined) : child.once('exit', done))),
      ),
    );
  }
}

export function slackRows(
  slack: Awaited<ReturnType<typeof slackHttp>>,
  ms: (n: number) => string,
  yes: (ok: boolean) => string,
): string[][] {
  // Server-side times are tenths of a millisecond at the median: two decimals.
  const pct = (s: Stats) =>
    `${[s.medianMs, s.p90Ms, s.p99Ms, s.maxMs].map((n) => n.toFixed(2)).join(' / ')} ms`;
  const w = slack.warmConnections;
  return [
    [
      `Slack HTTP ack, ${SLACK_CONCURRENCY} concurrent, client: median`,
      ms(slack.ack.medianMs),
      `bare node:http ${ms(slack.bareServerAck.medianMs)}`,
      (slack.ack.medianMs / slack.bareServerAck.medianMs).toFixed(2),
      '-',
      '-',
    ],
    [
      `Slack HTTP ack, ${SLACK_CONCURRENCY} concurrent, client: p99`,
      ms(slack.ack.p99Ms),
      `bare node:http ${ms(slack.bareServerAck.p99Ms)}`,
      (slack.ack.p99Ms / slack.bareServerAck.p99Ms).toFixed(2),
      '<= 1.1x bare',
      yes(slack.ack.p99Ms <= 1.1 * slack.bareServerAck.p99Ms),
    ],
    [
      'Slack HTTP ack, server: median/p90/p99/max',
      pct(slack.serverAck),
      `bare ${pct(slack.bareServerServerAck)}`,
      (slack.serverAck.p99Ms / slack.bareServerServerAck.p99Ms).toFixed(2),
      '(p99 ratio)',
      '-',
    ],
    [
      'Slack HTTP ack, connections opened before',
      `${w.bot} of ${w.of}`,
      `bare ${w.bare} of ${w.of}`,
      '-',
      'all',
      yes(w.bot === w.of && w.bare === w.of),
    ],
    [
      'Slack HTTP ack, first burst after start, p99',
      ms(slack.firstBurstAck.p99Ms),
      `server ${ms(slack.firstBurstServerAck.p99Ms)}`,
      '-',
      '(cold pools)',
      '-',
    ],
    [
      'Slack HTTP throughput (ack to reply posted)',
      `${slack.commandsPerSecond} commands/s`,
      '-',
      '-',
      '-',
      '-',
    ],
    [
      'bot event-loop delay during bursts, max',
      ms(slack.botEventLoopDelay.maxMs),
      `p99 ${ms(slack.botEventLoopDelay.p99Ms)}`,
      '-',
      '-',
      '-',
    ],
    ['bot GC pauses during bursts, max', ms(slack.botGc.maxMs), `${slack.botGc.count} pauses`, '-', '-', '-'],
    [
      `Slack /db sizes: bot CPU per command, ${slack.warming.commandsPerWindow}-command windows`,
      slack.warming.botCpuMs.map((n) => n.toFixed(2)).join(' > '),
      `after ${slack.warming.warmedBy} commands`,
      '-',
      '(last = steady)',
      '-',
    ],
  ];
}
