// The benchmark's fake Slack Web API, in its own process like the real Slack is, and as cheap as it can be
// while still speaking what the bot's SDK needs (real HTTP, JSON answers with the fields it reads): it
// keeps counters instead of recording calls, parses no bodies it does not have to, and answers most
// methods with a fixed string. GET /_wait?replies=N (or responses=N) answers once that many thread replies
// (or response_url answers) have come in, so the bench waits without polling.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

const TEAM = process.argv[2] ?? 'T1';
const HOST = '127.0.0.1';
const WAIT_TIMEOUT_MS = Number(process.env.BENCH_FAKE_SLACK_WAIT_MS ?? 120_000);
/** BENCH_FAKE_SLACK_LOG=1 prints what the bot sends to response_url and chat.postEphemeral (debugging). */
const LOG = process.env.BENCH_FAKE_SLACK_LOG === '1';

let total = 0;
let replies = 0;
let responses = 0;
let uploads = 0;
let seq = 0;
const waiters = new Set<{ kind: 'replies' | 'responses'; want: number; res: ServerResponse }>();

const OK = '{"ok":true}';
let baseUrl = '';

function send(res: ServerResponse, body: string, type = 'application/json'): void {
  res.writeHead(200, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function wake(): void {
  for (const w of waiters) {
    if ((w.kind === 'replies' ? replies : responses) >= w.want) {
      waiters.delete(w);
      send(w.res, counts());
    }
  }
}

function counts(): string {
  return JSON.stringify({ total, replies, responses, uploads });
}

/** The few answers that need a field of the request (file ids); everything else is answered unread. */
function answer(method: string, raw: Buffer): string {
  switch (method) {
    case 'chat.postMessage': {
      seq += 1;
      // A thread reply carries thread_ts (form or JSON): the only thing counted, found without parsing.
      if (raw.includes('thread_ts')) replies += 1;
      return `{"ok":true,"ts":"1700000000.${String(seq).padStart(6, '0')}"}`;
    }
    case 'chat.postEphemeral':
      responses += 1;
      return `{"ok":true,"message_ts":"1700000000.${String(++seq).padStart(6, '0')}"}`;
    case 'chat.update':
      return OK;
    case 'auth.test':
      return JSON.stringify({
        ok: true,
        url: 'https://fake.slack.test/',
        team: 'Fake',
        user: 'dbops',
        team_id: TEAM,
        user_id: 'UBOT',
        bot_id: 'BBOT',
      });
    case 'files.getUploadURLExternal':
      seq += 1;
      return JSON.stringify({ ok: true, upload_url: `${baseUrl}/upload/F${seq}`, file_id: `F${seq}` });
    case 'files.completeUploadExternal': {
      const text = raw.toString();
      const form = text.startsWith('{')
        ? (JSON.parse(text) as { files?: unknown })
        : { files: JSON.parse(new URLSearchParams(text).get('files') ?? '[]') };
      return JSON.stringify({ ok: true, files: form.files ?? [] });
    }
    case 'conversations.open':
      return '{"ok":true,"channel":{"id":"DBENCH"}}';
    case 'usergroups.users.list':
      return '{"ok":true,"users":[]}';
    default:
      return '{"ok":false,"error":"unknown_method"}';
  }
}

function handle(req: IncomingMessage, res: ServerResponse, raw: Buffer): void {
  const url = req.url ?? '/';
  if (url.startsWith('/api/')) {
    total += 1;
    const method = url.slice(5).split('?')[0] ?? '';
    if (LOG) process.stderr.write(`fake slack: ${method} ${raw.toString().slice(0, 2000)}\n`);
    send(res, answer(method, raw));
  } else if (url.startsWith('/respond/')) {
    total += 1;
    if (LOG) process.stderr.write(`fake slack: response_url ${raw.toString().slice(0, 2000)}\n`);
    responses += 1;
    send(res, OK);
  } else if (url.startsWith('/upload/')) {
    total += 1;
    uploads += 1;
    send(res, 'OK', 'text/plain');
  } else if (url.startsWith('/_wait')) {
    const q = new URL(url, baseUrl).searchParams;
    const kind = q.has('responses') ? 'responses' : 'replies';
    const want = Number(q.get(kind) ?? '0');
    const waiter = { kind, want, res } as const;
    waiters.add(waiter);
    const timer = setTimeout(() => {
      if (waiters.delete(waiter)) {
        res.writeHead(504, { 'content-type': 'application/json' });
        res.end(counts());
      }
    }, WAIT_TIMEOUT_MS);
    res.once('close', () => {
      clearTimeout(timer);
      waiters.delete(waiter);
    });
    wake();
    return;
  } else if (url.startsWith('/_counts')) {
    send(res, counts());
    return;
  } else {
    res.writeHead(404);
    res.end();
    return;
  }
  if (waiters.size > 0) wake();
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => handle(req, res, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
});
server.keepAliveTimeout = 60_000;
server.listen(0, HOST, () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  baseUrl = `http://${HOST}:${port}`;
  process.stdout.write(`${JSON.stringify({ apiUrl: `${baseUrl}/api/`, url: baseUrl })}\n`);
});
const stop = () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
