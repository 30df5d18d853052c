// Every answer measured: each built-in, each PostgreSQL operation and each kasm and coder pack operation,
// on the demo's fixtures made nasty (63-character table names, long hostnames and queries, bidi and mention
// text), in the console at 80 columns and in Slack and Discord code blocks at the phone width. Ids, pids,
// UUIDs and names must come out whole; the widest line of each answer is reported.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { CONSOLE_WIDTH, isWhole, wrapLines } from '../src/core/layout.js';
import { formatValue } from '../src/core/render.js';
import type { Reply } from '../src/core/reply.js';
import type { Surface } from '../src/core/types.js';
import { builtinPacksDir, loadPackDir } from '../src/packs/load.js';
import {
  renderRequestCard as discordCard,
  renderResultReply as discordResult,
  renderText as discordText,
} from '../src/surfaces/discord/render.js';
import { renderCard as slackCard } from '../src/surfaces/slack/cards.js';
import { renderReply as slackReply } from '../src/surfaces/slack/render.js';
import { startApp } from './helpers/app.js';
import { createDatabase, openClient } from './helpers/db.js';

const fixture = (name: string) =>
  readFileSync(join(import.meta.dirname, `../src/demo/fixtures/${name}.sql`), 'utf8');

/** PostgreSQL's longest identifier: 63 characters. */
const LONG_TABLE = `exam_answers_archive_${'2025_q4_'.repeat(5)}0123456789ab`.slice(0, 63);
const LONG_INDEX = `${LONG_TABLE.slice(0, 57)}_pkey2`;
const LONG_HOST = 'kasm-agent-eu-west-1a-0042.compute.internal.example.com';
const LONG_USER = 'rosa.hernandez-vazquez.contractor@support.example-university.edu';
const APP_NAME = `reporting-worker-${'x'.repeat(40)}`.slice(0, 63);
const NASTY = 'Sales \u202eKali Linux\u202c <@U01ADMIN> @here <!channel> `code` **bold**';
const LONG_QUERY = `SELECT a.*, e.title FROM ${LONG_TABLE} a JOIN exams e ON e.id = a.exam_id WHERE a.payload LIKE '%${'z'.repeat(60)}%'`;

/** The budgets, written out: the console's 80 columns and the phone width chosen in layout.ts. */
const CONSOLE_BUDGET = 80;
const PHONE_BUDGET = 56;

let app: App;
let kasmUrl: string;
const held: pg.Client[] = [];
const measured: { surface: string; command: string; widest: number }[] = [];
/** What did not fit or was not whole, collected so one run lists every offender. */
let problems: string[] = [];

function expectFits(lines: string[], what: string): void {
  for (const line of lines) problems.push(`${what}: ${line.length} columns: ${line}`);
}

function expectWhole(text: string, value: string, what: string): void {
  if (!text.includes(value)) problems.push(`${what}: ${value} is not whole`);
}

beforeAll(async () => {
  const [kasm, coder, state] = await Promise.all([
    createDatabase('wkasm', fixture('kasm')),
    createDatabase('wcoder', fixture('coder')),
    createDatabase('wstate'),
  ]);
  kasmUrl = kasm.url;
  const admin = await openClient(kasm.url, 'widths-setup');
  held.push(admin);
  await admin.query(`
    CREATE TABLE exams (id serial PRIMARY KEY, title text);
    INSERT INTO exams (title) SELECT $$Final exam $$ || i FROM generate_series(1, 50) i;
    CREATE TABLE "${LONG_TABLE}" (id bigserial PRIMARY KEY, exam_id int, payload text);
    CREATE INDEX "${LONG_INDEX}" ON "${LONG_TABLE}" (exam_id, payload);
    INSERT INTO "${LONG_TABLE}" (exam_id, payload) SELECT i % 50, repeat('p', 200) FROM generate_series(1, 3000) i;
    DELETE FROM "${LONG_TABLE}" WHERE id % 3 = 0;
    UPDATE servers SET hostname = '${LONG_HOST}'
     WHERE server_id = (SELECT server_id FROM servers ORDER BY hostname LIMIT 1);
    UPDATE users SET username = '${LONG_USER}'
     WHERE user_id = (SELECT user_id FROM users ORDER BY username DESC LIMIT 1);
    UPDATE images SET friendly_name = '${NASTY.replace(/'/g, "''")}'
     WHERE image_id = (SELECT image_id FROM images ORDER BY name LIMIT 1);
    ANALYZE;`);
  // Sessions worth looking at: one idle with a long name, one idle in a transaction holding a row lock, one
  // waiting for it (blocking), each with a long query.
  const idle = await openClient(kasm.url, APP_NAME);
  await idle.query(`${LONG_QUERY} LIMIT 1`);
  const holder = await openClient(kasm.url, `${APP_NAME.slice(0, 50)}-holder`);
  await holder.query(`BEGIN; UPDATE "${LONG_TABLE}" SET payload = 'held' WHERE id = 1`);
  await holder.query('SELECT pg_backend_pid()');
  const waiter = await openClient(kasm.url, `${APP_NAME.slice(0, 50)}-waiter`);
  void waiter.query(`UPDATE "${LONG_TABLE}" SET payload = '${'w'.repeat(80)}' WHERE id = 1`).catch(() => {});
  held.push(idle, holder, waiter);
  const yaml = `
state: { url: "\${STATE_URL}" }
backups: { dir: "${mkdtempSync(join(tmpdir(), 'dbops-widths-'))}" }
targets:
  kasm: { url: "\${KASM_URL}", environment: production, packs: [kasm], description: "KASM Workspaces — the kasm_db container on the EU-West cluster, primary" }
  coder: { url: "\${CODER_URL}", environment: production, packs: [coder] }
people:
  alice: { cli: alice, slack: T1/UALICE, discord: "80351110224678912", roles: [dba] }
  bob: { cli: bob, roles: [dba] }
policy:
  production: { read: [dba], write: [dba], request: [dba], approve: [dba], sql_read: [dba] }
`;
  app = await startApp(
    loadConfigText(yaml, 'widths.yaml', { STATE_URL: state.url, KASM_URL: kasm.url, CODER_URL: coder.url }),
  );
}, 120_000);

afterAll(async () => {
  for (const client of held.reverse()) await client.end().catch(() => {});
  await app?.close();
  if (process.env.WIDTHS_DUMP) writeFileSync(process.env.WIDTHS_DUMP, dump.join('\n'));
  // The report the task asks for: the widest answers first.
  const top = [...measured].sort((a, b) => b.widest - a.widest).slice(0, 12);
  console.log(
    `widest answers (of ${measured.length}):\n${top.map((m) => `${String(m.widest).padStart(3)}  ${m.surface.padEnd(7)}  ${m.command}`).join('\n')}`,
  );
});

const IDENTITY: Record<Surface, string> = {
  cli: 'alice',
  console: 'alice',
  slack: 'T1/UALICE',
  discord: '80351110224678912',
  schedule: 'alice',
};

async function ask(text: string, surface: Surface = 'cli'): Promise<Reply> {
  return await app.core.dispatch({ surface, identity: IDENTITY[surface], text });
}

/**
 * Lines longer than the width, but for one whole value on a line of its own: an id or name wider than the
 * screen (`whole`), or a single word.
 */
function overlong(text: string, width: number, whole: readonly string[] = []): string[] {
  const allowed = new Set(whole);
  return text
    .split('\n')
    .filter(
      (line) =>
        line.length > width &&
        !allowed.has(line.trim()) &&
        (/\S\s+\S/.test(line.trim()) || !/[A-Za-z0-9]/.test(line)),
    );
}

/** With WIDTHS_DUMP=<file>, every answer as each surface shows it, to read by eye. */
const dump: string[] = [];

/** What a code block shows: the text between the fences, with Slack's escapes undone. */
function codeText(markdown: string): string {
  const blocks = [...markdown.matchAll(/```\n?([\s\S]*?)\n?```/g)].map((m) => m[1] ?? '');
  return blocks
    .join('\n')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&')
    .replace(/`\u200b/g, '`');
}

/**
 * Every value someone types back (ids, pids, UUIDs, names) in the shown rows — of the columns shown: a
 * name column may be hidden on a narrow screen (named in the "hidden:" line), never clipped.
 */
function keyValues(reply: Reply, rows?: number, text = reply.text): string[] {
  const result = reply.result;
  if (!result || result.display === 'text') return [];
  const shown = result.rows.slice(0, rows);
  const hidden = /\(hidden: ([^—]*) —/.exec(text.replace(/\s+/g, ' '))?.[1]?.split(', ') ?? [];
  return result.columns.flatMap((col) => {
    const cells = result.rows.map((r) => formatValue(r[col.key], col.kind));
    if (!isWhole(col, cells) || hidden.includes(col.label)) return [];
    return shown.map((r) => formatValue(r[col.key], col.kind)).filter((v) => v !== '');
  });
}

function widest(text: string): number {
  return Math.max(0, ...text.split('\n').map((l) => l.length));
}

/** Renders the reply as each surface would and checks widths and whole values. */
function check(command: string, replies: Record<'cli' | 'slack' | 'discord', Reply>): void {
  const cli = replies.cli;
  // A one-line answer (a refusal) is wrapped by the console and exec; a table or card must fit by itself.
  const printed = cli.text.includes('\n') ? cli.text : wrapLines(cli.text, CONSOLE_WIDTH);
  measured.push({ surface: 'console', command, widest: widest(printed) });
  dump.push(`==== ${command} (console)`, printed);
  expectFits(overlong(printed, CONSOLE_BUDGET, keyValues(cli)), `${command} (console)`);
  for (const value of keyValues(cli)) expectWhole(cli.text, value, `${command} (console)`);

  const slack = replies.slack;
  const slackMarkdown =
    slack.status === 'pending' && slack.request
      ? slackCard(slack.request, ['dba']).blocks
      : slackReply(slack).blocks;
  // Slack's own limits: 50 blocks, 3,000 characters of text in a section.
  if (slackMarkdown.length > 50) problems.push(`${command} (slack): ${slackMarkdown.length} blocks`);
  for (const b of slackMarkdown)
    if (b.type === 'section' && (b.text?.text.length ?? 0) > 3000)
      problems.push(`${command} (slack): a section of ${b.text?.text.length} characters`);
  const slackCode = codeText(
    slackMarkdown
      .map((b) => (b.type === 'section' && typeof b.text?.text === 'string' ? b.text.text : ''))
      .join('\n'),
  );
  measured.push({ surface: 'slack', command, widest: widest(slackCode) });
  dump.push(`==== ${command} (slack)`, slackCode);
  expectFits(overlong(slackCode, PHONE_BUDGET, keyValues(slack)), `${command} (slack)`);
  const slackContext = slackMarkdown
    .map((b) => (b.type === 'context' ? JSON.stringify(b.elements) : ''))
    .join(' ');
  for (const value of keyValues(slack, 1, slackContext)) expectWhole(slackCode, value, `${command} (slack)`);

  const discord = replies.discord;
  const discordMessages =
    discord.status === 'pending' && discord.request
      ? [discordCard(discord.request, { approverRoles: ['dba'] }).embeds?.[0]?.description ?? '']
      : discord.result && discord.status === 'ok'
        ? [discordResult(discord).content ?? '']
        : discordText(discord.text).map((m) => m.content ?? '');
  // Discord's limits: 2,000 characters of content a message, 4,096 of embed description.
  const discordLimit = discord.status === 'pending' && discord.request ? 4096 : 2000;
  for (const m of discordMessages)
    if (m.length > discordLimit) problems.push(`${command} (discord): ${m.length} characters`);
  const discordMarkdown = discordMessages.join('\n');
  const discordCode = codeText(discordMarkdown ?? '');
  measured.push({ surface: 'discord', command, widest: widest(discordCode) });
  dump.push(`==== ${command} (discord)`, discordCode);
  expectFits(overlong(discordCode, PHONE_BUDGET, keyValues(discord)), `${command} (discord)`);
  for (const value of keyValues(discord, 1, discordCode))
    expectWhole(discordCode, value, `${command} (discord)`);
}

async function measure(command: string): Promise<Record<'cli' | 'slack' | 'discord', Reply>> {
  const replies = {
    cli: await ask(command, 'cli'),
    slack: await ask(command, 'slack'),
    discord: await ask(command, 'discord'),
  };
  check(command, replies);
  return replies;
}

describe('every answer fits 80 columns in the console and a phone in chat', () => {
  beforeEach(() => {
    problems = [];
  });
  afterEach(() => {
    expect(problems).toEqual([]);
  });

  it('PostgreSQL operations, with a 63-character table, long queries and sessions', async () => {
    const holder = held[2];
    const pid = String((await holder?.query('SELECT pg_backend_pid() AS pid'))?.rows[0]?.pid ?? 0);
    const waiting = await held[0]?.query('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [
      `${APP_NAME.slice(0, 50)}-waiter`,
    ]);
    const waiterPid = String(waiting?.rows[0]?.pid ?? 0);
    const args: Record<string, string> = {
      describe: LONG_TABLE,
      export: LONG_TABLE,
      terminate: pid,
      'cancel-query': waiterPid,
      reindex: LONG_TABLE,
      'check-indexes': LONG_TABLE,
      sql: `"SELECT '${LONG_HOST}' AS hostname, '${LONG_TABLE}' AS table_name, '${'free text '.repeat(12)}' AS comment"`,
      explain: `"${LONG_QUERY}"`,
    };
    const skip = new Set(['import', 'restore', 'verify-backup']);
    const ops = app.core.catalog.all().filter((op) => !skip.has(op.name));
    expect(ops.length).toBeGreaterThan(30);
    const statuses: string[] = [];
    for (const op of ops) {
      const command = `/db ${op.name} kasm ${args[op.name] ?? ''}`.trim();
      const replies = await measure(command);
      statuses.push(
        `${op.name}: ${replies.cli.status}${replies.cli.status === 'ok' || replies.cli.status === 'pending' ? '' : ` ${replies.cli.text}`}`,
      );
    }
    // The measurement is worth something only if the operations answered (previews are pending).
    expect(statuses.filter((s) => /^[a-z-]+: (refused|invalid|failed)/.test(s))).toEqual([]);
  }, 240_000);

  it('backups, and the restore preview of a long-named backup', async () => {
    const made = await ask(`/db backup kasm --table ${LONG_TABLE}`);
    expect(made.status).toBe('ok');
    const listed = await measure('/db backups kasm');
    const name = String(listed.cli.result?.rows[0]?.name ?? listed.cli.result?.rows[0]?.backup ?? '');
    expect(name).not.toBe('');
    await measure(`/db restore kasm ${name}`);
  }, 120_000);

  it('every kasm and coder pack operation, with each of its examples', async () => {
    for (const pack of ['kasm', 'coder']) {
      const loaded = loadPackDir(join(builtinPacksDir(), pack), []);
      const ops = loaded?.operations ?? [];
      expect(ops.length).toBeGreaterThan(5);
      for (const op of ops) {
        for (const example of op.def.examples ?? ['']) {
          await measure(`/db ${op.def.name} ${pack} ${example}`.trim());
        }
      }
    }
    // A KASM lookup of the long-named user and the long-named agent, as cards.
    await measure(`/db lookup kasm user ${LONG_USER}`);
    await measure(`/db kasm-sessions kasm --status all`);
  }, 240_000);

  it('built-ins: help (all, per operation, per target), targets, audit, pending, status', async () => {
    await measure('/db help');
    await measure('/db help kasm');
    await measure('/db help coder');
    for (const op of app.core.catalog.all()) await measure(`/db help ${op.name}`);
    await measure('/db help lookup');
    await measure('/db targets');
    await measure('/db audit');
    await measure('/db audit kasm --limit 50');
    const pending = await ask(`/db reindex kasm ${LONG_TABLE}`);
    expect(pending.status).toBe('pending');
    await measure('/db pending');
    await measure(`/db status ${pending.requestId}`);
    // The second person approves: the outcome, as the console shows it. The reindex fails on the lock
    // the test's open transaction holds; the coder template change runs.
    const change = await ask(
      '/db set-template-description coder --from "A minimal starter template for Coder" --to "A minimal starter template for Workbench, with a much longer description than anyone would type"',
    );
    expect(change.status).toBe('pending');
    for (const [id, expected] of [
      [pending.requestId, 'failed'],
      [change.requestId, 'ok'],
    ] as const) {
      const approved = await app.core.dispatch({
        surface: 'cli',
        identity: 'bob',
        text: `/db approve ${id}`,
      });
      expect(approved.status).toBe(expected);
      const printed = approved.text.includes('\n') ? approved.text : wrapLines(approved.text, CONSOLE_WIDTH);
      expectFits(overlong(printed, CONSOLE_BUDGET, keyValues(approved)), `approve ${id} (console)`);
      measured.push({ surface: 'console', command: `approve ${id}`, widest: widest(printed) });
    }
  }, 240_000);

  it('refusals and usage errors, as the console prints them', async () => {
    for (const command of [
      '/db helth kasm',
      `/db describe kasm ${LONG_TABLE}_missing`,
      '/db activity kasmm',
      '/db activity',
      '/db kill-idle kasm --older-than soon',
      `/db terminate kasm ${'9'.repeat(30)}`,
    ]) {
      const reply = await ask(command);
      const printed = wrapLines(reply.text, CONSOLE_WIDTH);
      measured.push({ surface: 'console', command, widest: widest(printed) });
      expectFits(overlong(printed, CONSOLE_BUDGET), `${command} (console)`);
    }
  });

  it('notices an answer wider than 80 columns (the check can fail)', () => {
    const wide = 'x '.repeat(60);
    expect(overlong(wide, CONSOLE_BUDGET)).toHaveLength(1);
    expect(overlong(`  ${LONG_TABLE}${'y'.repeat(30)}`, CONSOLE_BUDGET)).toEqual([]);
    expect(overlong('-'.repeat(90), CONSOLE_BUDGET)).toHaveLength(1);
    expect(kasmUrl).toContain('wkasm');
  });
});
