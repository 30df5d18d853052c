// The benchmark's memory part for issue 15 item 4: the real `dbops start` (dist/src/cli.js, as the image
// runs it) with the Slack HTTP surface against the fake Slack, four concurrent `/db sql` reads of 100,000
// rows each sent as signed slash commands, the process's resident memory sampled from /proc meanwhile
// (and its kernel high-water mark, VmHWM), compared with the memory limit of deploy/kubernetes.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/demo/embedded.js';
import { HTTP_EVENTS_PATH, HTTP_HEALTH_PATH } from '../src/surfaces/slack/transport.js';
import type { BurstReport, Load } from './slack-load.js';
import { round } from './stats.js';

const HOST = '127.0.0.1';
const TEAM = 'T1';
const LOAD_SCRIPT = fileURLToPath(new URL('./slack-load.js', import.meta.url));
const FAKE_SLACK_SCRIPT = fileURLToPath(new URL('./fake-slack-process.js', import.meta.url));
export const BIG_READ_ROWS = 100_000;
export const BIG_READS = 4;
const MIB = 1024 * 1024;
const SAMPLE_MS = 10;

/** What each of the four reads runs: 100,000 rows of a 1,000,000-row table, ~90 bytes a row as CSV. */
const BIG_READ_SQL = `SELECT id, payload, created_at FROM big ORDER BY id LIMIT ${BIG_READ_ROWS}`;

/** The container memory limit of the Deployment in the repository (deploy/kubernetes/deployment.yaml). */
export async function kubernetesMemoryLimit(root: string): Promise<{ file: string; mib: number }> {
  const file = join('deploy', 'kubernetes', 'deployment.yaml');
  const text = await readFile(join(root, file), 'utf8');
  const limits = text.slice(text.indexOf('limits:'));
  const found = /memory:\s*"?(\d+)(Mi|Gi|M|G)"?/.exec(limits);
  if (!found?.[1]) throw new Error(`no memory limit under limits: in ${file}`);
  const n = Number(found[1]);
  const unit = found[2];
  const mib = unit === 'Gi' ? n * 1024 : unit === 'G' ? (n * 1e9) / MIB : unit === 'M' ? (n * 1e6) / MIB : n;
  return { file, mib };
}

/**
 * The old-space size V8 gives itself on 64-bit Node when the machine (or the container's cgroup limit,
 * which Node passes to V8) has `limitMiB` of memory: a quarter of it, times two for 8-byte pointers.
 */
export function containerOldSpaceMiB(limitMiB: number): number {
  return Math.round((limitMiB / 4) * 2);
}

/** VmRSS and VmHWM (peak) of a process, in MiB, from /proc/<pid>/status. */
async function rssOf(pid: number): Promise<{ rss: number; hwm: number }> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return { rss: kib('VmRSS') / 1024, hwm: kib('VmHWM') / 1024 };
}

function getStatus(url: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    }).on('error', reject);
  });
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const end = text.indexOf('\n');
      if (end >= 0) resolve(text.slice(0, end));
    });
    child.once('exit', (code) => reject(new Error(`exited (code ${code}) before answering`)));
  });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((done) => (child.exitCode !== null ? done() : child.once('exit', () => done())));
}

export interface BotMemory {
  command: string;
  reads: number;
  rowsEach: number;
  idleRssMiB: number;
  peakRssMiB: number;
  /** The kernel's high-water mark of the process's RSS at the end (between samples too; includes start-up). */
  highWaterMiB: number;
  limitMiB: number;
  limitFile: string;
  ofLimit: number;
  seconds: number;
  replies: number;
  /** CSV attachments uploaded: one per read that succeeded (a failed read posts its error instead). */
  uploads: number;
  /** Node flags of the bot: none (V8 sizes its heap from this machine's memory) or the container's size. */
  nodeOptions: string;
}

/** Starts `dbops start`, sends the reads, samples RSS until every answer is posted, stops it. */
export async function botMemory(options: {
  root: string;
  configYaml: string;
  env: Record<string, string>;
  /** Node flags for the bot, e.g. the heap size V8 would pick under the container's limit. */
  nodeOptions?: string;
}): Promise<BotMemory> {
  const limit = await kubernetesMemoryLimit(options.root);
  const dir = await mkdtemp(join(tmpdir(), 'dbops-bench-rss-'));
  const configFile = join(dir, 'dbops.yaml');
  await writeFile(configFile, options.configYaml);
  const fake = spawn(process.execPath, [FAKE_SLACK_SCRIPT, TEAM], { stdio: ['ignore', 'pipe', 'inherit'] });
  let bot: ChildProcess | undefined;
  let load: ChildProcess | undefined;
  try {
    const slack = JSON.parse(await firstLine(fake)) as { apiUrl: string; url: string };
    const slackPort = await freePort();
    const httpPort = await freePort();
    const secret = 'bench-signing-secret';
    const cli = join(options.root, 'dist', 'src', 'cli.js');
    const nodeOptions = options.nodeOptions ?? '';
    bot = spawn(process.execPath, [cli, 'start', '--config', configFile], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ...options.env,
        NODE_OPTIONS: nodeOptions,
        DBOPS_LOG_LEVEL: 'warn',
        DBOPS_HTTP_PORT: String(httpPort),
        SLACK_BOT_TOKEN: 'xoxb-bench',
        SLACK_MODE: 'http',
        SLACK_SIGNING_SECRET: secret,
        SLACK_PORT: String(slackPort),
        SLACK_API_URL: slack.apiUrl,
        SLACK_API_RETRIES: '0',
      },
    });
    const pid = bot.pid;
    if (pid === undefined) throw new Error('dbops start did not start');
    const readyBy = Date.now() + 60_000;
    for (;;) {
      const ready = await getStatus(`http://${HOST}:${httpPort}/readyz`).catch(() => ({
        status: 0,
        text: '',
      }));
      if (ready.status === 200) break;
      if (bot.exitCode !== null) throw new Error(`dbops start exited (code ${bot.exitCode})`);
      if (Date.now() > readyBy) throw new Error(`dbops start not ready after 60 s: ${ready.text}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // Idle: after start-up settled (one small command first, so the Slack path's modules are loaded).
    load = spawn(process.execPath, [LOAD_SCRIPT], { stdio: ['pipe', 'pipe', 'inherit'] });
    const counts = async () =>
      JSON.parse((await getStatus(`${slack.url}/_counts`)).text) as { replies: number; uploads: number };
    const request: Load = {
      url: `http://${HOST}:${slackPort}${HTTP_EVENTS_PATH}`,
      warmUrl: `http://${HOST}:${slackPort}${HTTP_HEALTH_PATH}`,
      secret,
      respondUrl: `${slack.url}/respond/`,
      count: 1,
      team: TEAM,
      user: 'UBENCH',
      channel: 'CBENCH',
      text: 'sizes app',
    };
    const burst = async (what: Load): Promise<BurstReport> => {
      const reply = firstLine(load as ChildProcess);
      load?.stdin?.write(`${JSON.stringify(what)}\n`);
      const report = JSON.parse(await reply) as BurstReport & { error?: string };
      if (report.error) throw new Error(`the load generator failed: ${report.error}`);
      return report;
    };
    const waitReplies = async (want: number) => {
      const answer = await getStatus(`${slack.url}/_wait?replies=${want}`);
      if (answer.status !== 200) throw new Error(`timed out waiting for ${want} replies: ${answer.text}`);
    };
    let from = (await counts()).replies;
    await burst(request);
    await waitReplies(from + 1);
    await new Promise((r) => setTimeout(r, 1000));
    const idle = await rssOf(pid);
    from = (await counts()).replies;
    const uploads0 = (await counts()).uploads;
    let peak = idle.rss;
    const sampler = setInterval(() => {
      rssOf(pid).then(
        (m) => {
          peak = Math.max(peak, m.rss);
        },
        () => {},
      );
    }, SAMPLE_MS);
    const t0 = performance.now();
    try {
      await burst({ ...request, count: BIG_READS, text: `sql app "${BIG_READ_SQL}"` });
      await waitReplies(from + BIG_READS);
      // The last answers' uploads and the garbage they leave: keep sampling a moment longer.
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      clearInterval(sampler);
    }
    const seconds = (performance.now() - t0) / 1000;
    const end = await rssOf(pid);
    const after = await counts();
    return {
      command: `/db sql app "${BIG_READ_SQL}"`,
      reads: BIG_READS,
      rowsEach: BIG_READ_ROWS,
      idleRssMiB: round(idle.rss, 1),
      peakRssMiB: round(Math.max(peak, end.rss), 1),
      highWaterMiB: round(end.hwm, 1),
      limitMiB: limit.mib,
      limitFile: limit.file,
      ofLimit: round(Math.max(peak, end.hwm) / limit.mib, 3),
      seconds: round(seconds, 1),
      replies: after.replies - from,
      uploads: after.uploads - uploads0,
      nodeOptions,
    };
  } finally {
    load?.stdin?.end();
    bot?.kill('SIGTERM');
    fake.kill('SIGTERM');
    await Promise.all([bot, load, fake].map((c) => (c ? exited(c) : undefined)));
    await rm(dir, { recursive: true, force: true });
  }
}

/** The table's row for one run: peak RSS beside idle and the limit; met when under it with four CSVs. */
export function bigReadRow(b: BotMemory): string[] {
  const heap = b.nodeOptions
    ? `heap as in the pod (${b.nodeOptions.replace(/^--/, '')})`
    : "this machine's heap";
  return [
    `dbops start RSS, ${b.reads} x ${b.rowsEach.toLocaleString('en-US')}-row reads, peak, ${heap}`,
    `${b.peakRssMiB} MiB`,
    `idle ${b.idleRssMiB} MiB, limit ${b.limitMiB} MiB`,
    b.ofLimit.toFixed(2),
    `< 1.0 of the limit, ${b.reads} CSVs`,
    b.ofLimit < 1 && b.uploads === b.reads ? 'yes' : 'NO',
  ];
}
