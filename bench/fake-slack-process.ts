// The benchmark's fake Slack Web API, in its own process like the real Slack is: serving the bot's
// chat.postMessage calls must not run on the event loop of the bot being measured. A small control
// endpoint tells the bench how many thread replies were posted.
import { createServer } from 'node:http';
import { FakeSlack } from '../test/fakes/slack.js';

const fake = await FakeSlack.start();
const control = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const from = Number(url.searchParams.get('from') ?? '0');
  const replies = fake.callsOf('chat.postMessage', from).filter((c) => c.body.thread_ts).length;
  // Answers only the person sees (e.g. /db targets): ephemerals, or the command's response_url.
  const responses =
    fake.callsOf('chat.postEphemeral', from).length + fake.callsOf('response_url', from).length;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ total: fake.calls.length, replies, responses }));
});
control.listen(0, '127.0.0.1', () => {
  const address = control.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(
    `${JSON.stringify({ apiUrl: fake.apiUrl, url: fake.url, control: `http://127.0.0.1:${port}` })}\n`,
  );
});
const stop = async () => {
  control.close();
  await fake.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
