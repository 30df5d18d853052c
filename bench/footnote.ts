// What the benchmark's table measures, printed under it: how each side was run and how the derived
// figures (ratios, the PostgreSQL-bound ceiling) are computed.
import { SLACK_CONCURRENCY, SLACK_ROUNDS, WARMING_WINDOWS } from './slack-http.js';

export function footnote(o: { psql: string; cpus: number; loadavg: number[]; results: string }): string {
  return [
    `psql: a fresh ${o.psql} process per run (connect, authenticate, query, exit), as the runbooks do;`,
    'dbops: core.dispatch from invocation to reply (parse, policy, audit records, pooled query, render);',
    'statement alone: the one statement dbops sends for /db sizes, prepared, through a pg client connected',
    'once: what no dispatch goes below (the three are interleaved, in an order that rotates).',
    `Slack: bursts of ${SLACK_CONCURRENCY} signed slash commands from a load generator in its own process; before`,
    `each burst it opens ${SLACK_CONCURRENCY} keep-alive connections and warms each with one request, then sends one command`,
    "per warm connection, to the bot and to a bare node:http server (on a worker thread, like the bot's",
    'acknowledging thread) alike, in pairs whose order alternates (bare-bot, bot-bare: the second of a pair',
    'ran slower whichever it was). client ack = request written to response read, in the generator;',
    "server ack = the server's 'request' event to the response's 'finish', recorded inside the server.",
    `The first burst after start is reported apart, then ${2 * SLACK_ROUNDS} warm bursts of each are pooled;`,
    'throughput = commands / time until every reply was posted (to the fake Slack Web API, its own process).',
    'CPU per command: bot = this process (the bench harness too), PG = postmaster + backends (/proc), load',
    "generator = its CPU while sending and reading the bursts, fake = the fake Slack process. The bot's CPU",
    "counts every thread: its main thread's share is shown apart; the others are V8's compiler and GC helpers",
    '(which keep optimising the hot paths for the first few thousand commands) and the acknowledging thread.',
    `/db sizes is measured in ${WARMING_WINDOWS} consecutive windows of ${SLACK_ROUNDS} bursts (each shown), its CPU and`,
    'sustained rows are the last window; /db targets and the pinned run follow it.',
    `PG-bound ceiling = PG's CPUs x 1000 ms / PG CPU ms per command: the commands/s PostgreSQL could serve with`,
    'its CPUs busy with nothing else; "of ceiling" = measured commands/s / that ceiling. Two layouts: shared =',
    `every process on all ${o.cpus} CPUs (PG's CPUs = ${o.cpus}; the bot, the generator and the fake Slack take CPU`,
    'PostgreSQL could have used, so "of ceiling" <= PG CPU / everyone\'s CPU); pinned (taskset) = PostgreSQL',
    'alone on the last CPU (its CPUs = 1), everything else on the others: whether the bot keeps PG busy.',
    'dbops start RSS: the real CLI process with the Slack surface, four /db sql reads of 100,000 rows each',
    "sent at once, RSS sampled from /proc every 10 ms (and the kernel's VmHWM), against the Deployment's",
    'memory limit; "heap as in the pod": V8 sizes its heap from the cgroup limit there (old space = limit/4',
    'x 2 on 64-bit), emulated with --max-old-space-size; "this machine\'s heap": no flag.',
    'sql review: parse + classify in process, then the catalog checks before a run, against the statement on',
    'the server through a plain pg client; ratio = parse+classify / query, then everything dbops adds / query.',
    `Machine: ${o.cpus} CPUs, load ${o.loadavg.join(' ')}; shared and noisy, so compare the columns of one run.`,
    `Written to ${o.results}`,
    '',
  ].join('\n');
}
