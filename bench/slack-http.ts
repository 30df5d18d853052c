// The benchmark's Slack HTTP part: bursts of signed slash commands from a separate process against the
// bot's receiver, the fake Web API in its own process; acknowledgements, throughput and the CPU split.
import { createServer as createHttpServer } from 'node:http';
import { cpus } from 'node:os';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { App } from '../src/app.js';
import type { Config } from '../src/config/schema.js';
import { silentLogger } from '../src/core/log.js';
import { freePort } from '../src/demo/embedded.js';
import { startSlack } from '../src/surfaces/slack/index.js';
import { TEAM } from '../test/fakes/slack.js';
import { ownCpuMs, postmasterPid, processCpuMs, serverCpuMs } from './cpu.js';
import { round, stats } from './stats.js';

const HOST = '127.0.0.1';
const LOAD_SCRIPT = fileURLToPath(new URL('./slack-load.js', import.meta.url));
const FAKE_SLACK_SCRIPT = fileURLToPath(new URL('./fake-slack-process.js', import.meta.url));
export const SLACK_CONCURRENCY = 100;
export const SLACK_ROUNDS = 5;

/** (d) The Slack HTTP receiver: signed slash commands, `concurrency` at once, against a local fake Slack API. */
export async function slackHttp(
  app: App,
  config: Config,
  rounds: number,
  concurrency: number,
  pgPort: number,
) {
  // The fake Slack Web API runs in its own process, as Slack does: answering the bot's chat.postMessage
  // calls must not share the event loop of the bot whose acknowledgements are measured.
  const fakeProcess = execa('node', [FAKE_SLACK_SCRIPT], { reject: false, buffer: false, stdout: 'pipe' });
  const fake = await new Promise<{ apiUrl: string; url: string; control: string }>((resolve, reject) => {
    let text = '';
    fakeProcess.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const line = text.split('\n')[0];
      if (text.includes('\n') && line)
        resolve(JSON.parse(line) as { apiUrl: string; url: string; control: string });
    });
    fakeProcess.catch(reject);
  });
  type Counts = { total: number; replies: number; responses: number };
  const counts = async (from: number): Promise<Counts> =>
    (await (await fetch(`${fake.control}/?from=${from}`)).json()) as Counts;
  /** Thread replies (a read's answer), or response_url answers (what only the person sees: targets). */
  const waitForReplies = async (
    from: number,
    want: number,
    what: string,
    timeoutMs: number,
    kind: 'replies' | 'responses' = 'replies',
  ) => {
    const deadline = Date.now() + timeoutMs;
    while ((await counts(from))[kind] < want) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const secret = 'bench-signing-secret';
  const port = await freePort();
  const url = `http://${HOST}:${port}/slack/events`;
  const surface = await startSlack({
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
  });
  if (!surface) throw new Error('the Slack surface did not start');
  const load = {
    url,
    secret,
    respondUrl: `${fake.url}/respond/`,
    count: concurrency,
    team: TEAM,
    user: 'UBENCH',
    channel: 'CBENCH',
    text: 'sizes app',
  };
  const send = async (target: typeof load) => {
    // The sender runs in its own process too: its work must not count as the bot's.
    const sent = await execa('node', [LOAD_SCRIPT, JSON.stringify(target)], { reject: false });
    if (sent.exitCode !== 0) throw new Error(`the Slack load generator failed: ${sent.stderr}`);
    return JSON.parse(sent.stdout) as { startedAt: number; acks: number[]; cpuMs: number };
  };
  try {
    for (let i = 0; i < 5; i++) {
      const from = (await counts(0)).total;
      await send({ ...load, count: 1 });
      await waitForReplies(from, 1, 'a warm-up reply', 30_000);
    }
    // What the same burst costs against a bare node:http server that answers at once: this machine's floor.
    const floor: number[] = [];
    const bare = createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => res.end());
    });
    await new Promise<void>((done) => bare.listen(0, HOST, done));
    const barePort = (bare.address() as { port: number }).port;
    try {
      for (let round = 0; round < rounds; round++) {
        floor.push(...(await send({ ...load, url: `http://${HOST}:${barePort}/slack/events` })).acks);
      }
    } finally {
      bare.closeAllConnections();
      await new Promise((done) => bare.close(done));
    }
    const burst = async (text = load.text) => {
      // Each burst starts on an idle bot: the previous burst's last commands (audit, card, final posts)
      // have finished, so every burst measures 100 concurrent commands, not 100 plus a tail.
      const idleBy = Date.now() + 30_000;
      while (app.core.inFlight > 0 && Date.now() < idleBy) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 200));
      const from = (await counts(0)).total;
      const report = await send({ ...load, text });
      const kind = text.startsWith('targets') ? 'responses' : 'replies';
      await waitForReplies(from, concurrency, `${concurrency} ${kind} to ${text}`, 120_000, kind);
      return {
        acks: report.acks,
        perSecond: concurrency / ((Date.now() - report.startedAt) / 1000),
        loadCpuMs: report.cpuMs,
      };
    };
    /** Warm bursts of one command with the CPU each process spent on them, per command. */
    const sustained = async (text: string) => {
      const postmaster = postmasterPid(pgPort);
      const cpu0 = {
        bot: ownCpuMs(),
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
      // What PostgreSQL alone could serve with every core of this machine: the bound no bot can pass.
      const ceiling = pgMs > 0 ? round((cpus().length * 1000) / pgMs, 1) : undefined;
      return {
        text,
        commandsPerSecond,
        cpuMsPerCommand: {
          bot: per(ownCpuMs() - cpu0.bot),
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
    const throughput: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const warm = await burst();
      acks.push(...warm.acks);
      throughput.push(warm.perSecond);
    }
    loop.disable();
    gcObserver.disconnect();
    // The same warm bursts again with each process's CPU counted: a read with SQL, one with almost none.
    const cpuSplit = [await sustained(load.text), await sustained('targets')];
    return {
      cpuSplit,
      measured: true as const,
      // Where an ack could wait inside the bot: its event loop and garbage collection during the bursts.
      botEventLoopDelay: { maxMs: round(loop.max / 1e6, 1), p99Ms: round(loop.percentile(99) / 1e6, 1) },
      botGc: { count: gcs.length, maxMs: round(Math.max(0, ...gcs), 1) },
      rounds,
      concurrency,
      ack: stats(acks),
      ackSlowestMs: [...acks]
        .sort((a, b) => b - a)
        .slice(0, 8)
        .map((a) => round(a, 1)),
      firstBurstAck: stats(cold.acks),
      firstBurstCommandsPerSecond: round(cold.perSecond, 1),
      bareServerAck: stats(floor),
      commandsPerSecond: round(stats(throughput).medianMs, 1),
    };
  } finally {
    await surface.stop();
    fakeProcess.kill('SIGTERM');
    await fakeProcess;
  }
}

export function slackRows(
  slack: Awaited<ReturnType<typeof slackHttp>>,
  ms: (n: number) => string,
  yes: (ok: boolean) => string,
): string[][] {
  return [
    [
      `Slack HTTP ack, ${SLACK_CONCURRENCY} concurrent, median`,
      ms(slack.ack.medianMs),
      `bare node:http ${ms(slack.bareServerAck.medianMs)}`,
      '-',
      '-',
      '-',
    ],
    [
      `Slack HTTP ack, ${SLACK_CONCURRENCY} concurrent, p99`,
      ms(slack.ack.p99Ms),
      `bare node:http ${ms(slack.bareServerAck.p99Ms)}`,
      (slack.ack.p99Ms / slack.bareServerAck.p99Ms).toFixed(2),
      '<= 1.1x bare',
      yes(slack.ack.p99Ms <= 1.1 * slack.bareServerAck.p99Ms),
    ],
    [
      'Slack HTTP ack, first burst after start, p99',
      ms(slack.firstBurstAck.p99Ms),
      '-',
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
  ];
}
