// The benchmark's Slack load generator, in its own process so that sending does not slow the bot it
// measures. It runs for the whole Slack part and takes one burst per line of JSON on stdin: it signs
// `count` slash commands, opens `count` keep-alive connections and warms each with one request (GET
// warmUrl), then posts the signed commands at once, one per warm connection, and prints a line of JSON
// with each one's acknowledgement time. The bot and the bare server are measured the same way; the
// connections are closed after each burst.
import { createHmac } from 'node:crypto';
import { Agent, request } from 'node:http';
import { createInterface } from 'node:readline';

export interface Load {
  url: string;
  /** Answered by the server at once (the receiver's health path); used to open and warm connections. */
  warmUrl: string;
  secret: string;
  /** Where Slack would take delayed responses (the fake's response_url prefix). */
  respondUrl: string;
  count: number;
  team: string;
  user: string;
  channel: string;
  text: string;
}

export interface BurstReport {
  startedAt: number;
  acks: number[];
  /** Sending and reading the burst's acknowledgements (warming excluded), CPU ms of this process. */
  cpuMs: number;
  /** Requests of the burst sent on a connection opened and warmed before it (should be all). */
  reused: number;
  /** Connections the agent opened for the warm-up and the burst together. */
  connections: number;
}

let serial = 0;

function signed(load: Load, index: number): { body: string; headers: Record<string, string> } {
  const trigger = `${process.pid}.${serial}.${index}.trigger`;
  const body = new URLSearchParams({
    token: 'verification-token-unused',
    team_id: load.team,
    team_domain: 'bench',
    channel_id: load.channel,
    channel_name: 'bench',
    user_id: load.user,
    user_name: 'bench',
    command: '/db',
    text: load.text,
    api_app_id: 'A1',
    is_enterprise_install: 'false',
    response_url: `${load.respondUrl}${trigger}`,
    trigger_id: trigger,
  }).toString();
  const timestamp = String(Math.floor(Date.now() / 1000));
  const signature = `v0=${createHmac('sha256', load.secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
  return {
    body,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'content-length': String(Buffer.byteLength(body)),
      'x-slack-request-timestamp': timestamp,
      'x-slack-signature': signature,
    },
  };
}

/** One request over node:http (lighter than fetch); resolves with the status and whether the socket was reused. */
function send(
  agent: Agent,
  url: string,
  method: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function burst(load: Load): Promise<BurstReport> {
  serial += 1;
  const requests = Array.from({ length: load.count }, (_, i) => signed(load, i));
  const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY, scheduling: 'fifo' });
  let connections = 0;
  const created = agent.createConnection.bind(agent);
  // Counts the connections the agent opens (warm-up and burst): the burst itself should open none.
  agent.createConnection = ((...args: Parameters<typeof created>) => {
    connections += 1;
    return created(...args);
  }) as typeof agent.createConnection;
  try {
    // All at once, so the agent opens one connection per request: `count` warm connections.
    await Promise.all(requests.map(() => send(agent, load.warmUrl, 'GET', {}, '')));
    const startedAt = Date.now();
    const cpu0 = process.cpuUsage();
    let reused = 0;
    const acks = await Promise.all(
      requests.map(async ({ body, headers }) => {
        const t0 = performance.now();
        const answer = await send(agent, load.url, 'POST', headers, body);
        const ms = performance.now() - t0;
        if (answer.status !== 200) throw new Error(`the receiver answered ${answer.status}`);
        if (answer.reused) reused += 1;
        return ms;
      }),
    );
    const cpu = process.cpuUsage(cpu0);
    return { startedAt, acks, cpuMs: (cpu.user + cpu.system) / 1000, reused, connections };
  } finally {
    agent.destroy();
  }
}

const lines = createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on('line', (line) => {
  queue = queue.then(async () => {
    try {
      const report = await burst(JSON.parse(line) as Load);
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } catch (err) {
      process.stdout.write(
        `${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`,
      );
    }
  });
});
lines.on('close', () => {
  void queue.then(() => process.exit(0));
});
