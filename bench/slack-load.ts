// The benchmark's Slack load generator, in its own process so that sending does not slow the bot it measures:
// posts `count` signed slash commands at once to the bot's HTTP receiver and prints each one's ack time (JSON).
import { createHmac } from 'node:crypto';
import { Agent, request } from 'node:http';

interface Load {
  url: string;
  secret: string;
  /** Where Slack would take delayed responses (the fake's response_url prefix). */
  respondUrl: string;
  count: number;
  team: string;
  user: string;
  channel: string;
  text: string;
}

function signed(load: Load, index: number): { body: string; headers: Record<string, string> } {
  const trigger = `${process.pid}.${index}.${Date.now()}.trigger`;
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
      'x-slack-request-timestamp': timestamp,
      'x-slack-signature': signature,
    },
  };
}

/** One POST over node:http (lighter than fetch, whose first use loads undici); resolves with the status. */
function post(url: string, headers: Record<string, string>, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });

async function main(): Promise<void> {
  const load = JSON.parse(process.argv[2] ?? '{}') as Load;
  const requests = Array.from({ length: load.count }, (_, i) => signed(load, i));
  // Warms this process (modules, JIT, one connection); the answer (404) does not matter.
  await post(new URL('/warm-up', load.url).toString(), {}, '');
  const startedAt = Date.now();
  const cpu0 = process.cpuUsage();
  const acks = await Promise.all(
    requests.map(async ({ body, headers }) => {
      const t0 = performance.now();
      const status = await post(load.url, headers, body);
      if (status !== 200) throw new Error(`the receiver answered ${status}`);
      return performance.now() - t0;
    }),
  );
  // The generator's own CPU for the burst (sending and reading acknowledgements), to tell it from the bot's.
  const cpu = process.cpuUsage(cpu0);
  agent.destroy();
  const cpuMs = (cpu.user + cpu.system) / 1000;
  process.stdout.write(`${JSON.stringify({ startedAt, acks, cpuMs })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`slack-load: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
