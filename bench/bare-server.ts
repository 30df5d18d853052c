// The benchmark's floor for acknowledgements: a bare node:http server that answers every request at once,
// on a worker thread of its own as the bot's acknowledging thread is (ack-thread.ts), timed the same way
// (the 'request' event to the response's 'finish'). The main thread asks for the timings with 'take'.
import { createServer } from 'node:http';
import { parentPort, Worker } from 'node:worker_threads';

/** Bursts are 100 requests; room for many of them between two takes. */
const CAPACITY = 1 << 16;

type Command = { type: 'take' } | { type: 'close' };
type Message = { type: 'listening'; port: number } | { type: 'timings'; ms: Float64Array };

function run(port: NonNullable<typeof parentPort>): void {
  const timings = new Float64Array(CAPACITY);
  let count = 0;
  const server = createServer((req, res) => {
    const startedAt = performance.now();
    const timed = req.method === 'POST';
    req.resume();
    req.on('end', () => {
      if (timed) {
        res.once('finish', () => {
          timings[count % CAPACITY] = performance.now() - startedAt;
          count += 1;
        });
      }
      res.writeHead(200).end();
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    const listening = typeof address === 'object' && address ? address.port : 0;
    port.postMessage({ type: 'listening', port: listening } satisfies Message);
  });
  port.on('message', (command: Command) => {
    if (command.type === 'take') {
      const ms = timings.slice(0, Math.min(count, CAPACITY));
      count = 0;
      port.postMessage({ type: 'timings', ms } satisfies Message);
    } else {
      server.closeAllConnections();
      server.close(() => port.close());
    }
  });
}

if (parentPort) run(parentPort);

/** Starts the bare server on its own thread; resolves once it listens. */
export async function startBareServer(): Promise<{
  port: number;
  take(): Promise<number[]>;
  close(): Promise<void>;
}> {
  const worker = new Worker(new URL(import.meta.url), { name: 'bench bare server' });
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('message', (m: Message) => {
      if (m.type === 'listening') resolve(m.port);
    });
    worker.once('error', reject);
  });
  return {
    port,
    take: () =>
      new Promise((resolve) => {
        worker.once('message', (m: Message) => {
          if (m.type === 'timings') resolve([...m.ms]);
        });
        worker.postMessage({ type: 'take' } satisfies Command);
      }),
    async close() {
      worker.postMessage({ type: 'close' } satisfies Command);
      await new Promise((done) => worker.once('exit', done));
    },
  };
}
