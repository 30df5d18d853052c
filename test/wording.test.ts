// Issue 14 items 4 and 10 through the whole core on real PostgreSQL: one time format in every text answer
// (ISO 8601 only in --json), targets in any case, "which pid?", phone quotes, system catalogs only on request,
// and one statistics disclaimer per answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { replyJson } from '../src/cli-json.js';
import { loadConfigText } from '../src/config/load.js';
import type { Reply } from '../src/core/reply.js';
import { formatTime } from '../src/core/time-format.js';
import { as, FIXTURE_YAML, type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery } from './helpers/db.js';

/** Text with its wrapping undone: answers wrap at 80 columns, sentences are checked whole. */
const flat = (text: string) => text.replace(/\s+/g, ' ');

let fx: Fixture;
let app: App;
let alice: (text: string) => Promise<Reply>;
let bob: (text: string) => Promise<Reply>;

beforeAll(async () => {
  fx = await makeFixture();
  app = await startApp(fx.config);
  alice = as(app, 'alice');
  bob = as(app, 'bob');
}, 60_000);

afterAll(async () => {
  await app?.close();
});

/** Any ISO 8601 instant ("2026-12-06T02:46:31Z") or a bare "02:46Z" clock. */
const ISO = /\d{4}-\d\d-\d\dT\d\d:\d\d|\b\d\d:\d\dZ\b/;
/** A date in text, with whatever follows it: it must be the one format. */
const DATES = /\d{4}-\d\d-\d\d[^\n]{0,10}/g;
const ONE_FORMAT = /^\d{4}-\d\d-\d\d \d\d:\d\d UTC/;

function expectOneTimeFormat(command: string, text: string): void {
  expect(text, command).not.toMatch(ISO);
  for (const date of text.match(DATES) ?? []) {
    // Backup file names carry a compact stamp (staging-20261206T…): not a date people read.
    expect(date, `${command}: ${date}`).toMatch(ONE_FORMAT);
  }
}

describe('one time format', () => {
  it('no answer of these operations shows an ISO timestamp; each date reads "YYYY-MM-DD HH:MM UTC"', async () => {
    const kill = await alice('vacuum staging exams --full');
    expect(kill.status).toBe('pending');
    const id = kill.requestId;
    const commands = [
      'health staging',
      'cache-hit staging',
      'index-usage staging',
      'seq-scans staging',
      'unused-indexes staging',
      'vacuum-stats staging',
      'analyze staging',
      'activity staging',
      'connections staging',
      'long-running staging',
      'sizes staging',
      'wraparound staging',
      'backup staging',
      'backups staging',
      'pending',
      `status ${id}`,
      'audit staging',
    ];
    let dated = 0;
    for (const command of commands) {
      const r = await alice(command);
      expect(r.status, `${command}: ${r.text}`).toBe('ok');
      expectOneTimeFormat(command, r.text);
      if (ONE_FORMAT.test(r.text.match(DATES)?.[0] ?? '')) dated += 1;
    }
    expectOneTimeFormat('vacuum --full', kill.text);
    // Not vacuous: the card's expiry, backups, the audit log and statistics all carry dates.
    expect(dated).toBeGreaterThanOrEqual(4);
    // Relative age where it matters: how old the newest backup is.
    expect((await alice('backups staging')).result?.headline).toMatch(
      /^[\d,]+ backups? of staging, .+ in all; newest (\d+s ago|just now)$/,
    );
    const card = (await alice(`status ${id}`)).text;
    expect(card).toMatch(/by alice (\d+s ago|just now)/);
    expect(flat(card)).toMatch(/Expires at \d{4}-\d\d-\d\d \d\d:\d\d UTC\./);
  });

  it('--json keeps ISO 8601', async () => {
    const r = await alice('audit staging --limit 3');
    const json = replyJson(r, []) as { rows: { at: string }[] };
    expect(json.rows.length).toBeGreaterThan(0);
    for (const row of json.rows) expect(row.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(r.text).not.toMatch(ISO);
  });

  it('a refused approval of an expired request says when, in the one format', async () => {
    let now = new Date('2026-12-06T02:00:00Z');
    const clocked = await startApp(fx.config, () => now);
    try {
      const r = await as(clocked, 'alice')('vacuum staging exams --full');
      now = new Date('2026-12-06T03:00:00Z');
      const late = await as(clocked, 'bob')(`approve ${r.requestId}`);
      expect(late.text).toMatch(/expired at 2026-12-06 02:15 UTC/);
      expectOneTimeFormat('approve', late.text);
    } finally {
      await clocked.close();
    }
  });
});

describe('statistics disclaimers', () => {
  it('appear once per answer, saying since when and for which server', async () => {
    for (const command of [
      'cache-hit staging',
      'index-usage staging',
      'seq-scans staging',
      'unused-indexes staging',
    ]) {
      const text = (await alice(command)).text;
      // Notes wrap at 80 columns (continuations indented): read each note as one line.
      const lines = text
        .replace(/\n {2,}(?=\S)/g, ' ')
        .split('\n')
        .filter((l) => /statistics|counters/.test(l));
      expect(lines, `${command}:\n${text}`).toHaveLength(1);
      expect(lines[0]).toMatch(/^statistics (since|never reset)/);
      expect(lines[0]).toMatch(/this server only/);
    }
  });
});

describe('typed input', () => {
  it('matches targets case-insensitively, like operations', async () => {
    const lower = await alice('sizes staging');
    for (const typed of ['STAGING', 'Staging']) {
      const r = await alice(`SIZES ${typed}`);
      expect(r.status, r.text).toBe('ok');
      expect(r.target).toBe('staging');
      expect(r.result?.headline).toBe(lower.result?.headline);
    }
    expect((await alice('help STAGING')).text).toMatch(/^staging \(staging\)/);
    expect((await alice('pending STAGING')).status).toBe('ok');
    expect((await alice('audit KASM --limit 1')).status).toBe('ok');
  });

  it('never takes something inherited for a target', async () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      const r = await alice(`sizes ${name}`);
      expect(r.status, `${name}: ${r.text}`).toBe('invalid');
      expect(r.text).toMatch(/unknown target|too many arguments/);
      expect((await alice(`lookup ${name} user x`)).status).not.toBe('ok');
      expect((await alice(`pending ${name}`)).status).toBe('invalid');
    }
  });

  it('asks "which pid?" when terminate or cancel-query has none, and names other missing ids alike', async () => {
    const terminate = await alice('terminate staging');
    expect(terminate.status).toBe('invalid');
    expect(terminate.text).toMatch(/^Invalid: which pid\? usage: \/db terminate <target> <pid>/);
    expect((await alice('cancel-query staging')).text).toMatch(
      /^Invalid: which pid\? usage: \/db cancel-query <target> <pid>/,
    );
    expect((await alice('describe staging')).text).toMatch(/^Invalid: which table\? usage: \/db describe/);
    expect((await alice('reindex staging')).text).toMatch(/^Invalid: which table or index\? usage:/);
    expect((await alice('verify-backup staging')).text).toMatch(/^Invalid: which backup\? usage:/);
    // A pid that is there but wrong still says what is wrong with it.
    expect((await alice('terminate staging 0')).text).toMatch(/<pid>: must be at least 1/);
  });

  it('reads typographic single quotes like straight ones', async () => {
    const straight = await alice("describe staging 'exams'");
    const curly = await alice('describe staging ‘exams’');
    expect(curly.status, curly.text).toBe('ok');
    expect(curly.result?.headline).toBe(straight.result?.headline);
    // Opened by ‘, closed by a straight quote (a keyboard that curls only the first).
    expect((await alice("describe staging ‘exams'")).status).toBe('ok');
    const deny = await alice('vacuum staging exams --full');
    const denied = await bob(`deny ${deny.requestId} ‘not now, it’s exam week’`);
    expect(denied.status, denied.text).toBe('ok');
    // The apostrophe closed the quote: "not now, it" then "s exam week’" glued on, as with straight quotes.
    expect(flat((await alice(`status ${deny.requestId}`)).text)).toContain(
      'denied by bob: not now, its exam week’',
    );
    const open = await alice('describe staging ‘exams');
    expect(open.status).toBe('invalid');
    expect(open.text).toMatch(/unbalanced ‘ quote at character \d+/);
  });
});

describe('system catalogs stay out unless asked for', () => {
  async function analyzedCatalogs(since: Date): Promise<number> {
    const [row] = await adminQuery<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_sys_tables
       WHERE schemaname IN ('pg_catalog', 'information_schema') AND last_analyze >= $1`,
      [since],
      fx.staging.name,
    );
    return row?.n ?? -1;
  }

  it('analyze analyzes only user tables; --system adds the catalogs', async () => {
    const start = new Date(Date.now() - 1000);
    const r = await alice('analyze staging');
    expect(r.status, r.text).toBe('ok');
    const relations = (r.result?.rows ?? []).map((row) => String(row.relation));
    expect(relations).toEqual(['public.exams']);
    expect(r.result?.headline).toMatch(/^ANALYZE of 1 table of staging done/);
    expect(await analyzedCatalogs(start)).toBe(0);

    const system = await alice('analyze staging --system');
    expect(system.status, system.text).toBe('ok');
    const analyzed = (system.result?.data as { analyzed?: string[] } | undefined)?.analyzed ?? [];
    expect(analyzed).toContain('public.exams');
    expect(analyzed.some((name) => name.startsWith('pg_catalog.'))).toBe(true);
    expect(await analyzedCatalogs(start)).toBeGreaterThan(10);
  });

  it('wraparound lists user tables only; --system lists the catalogs too', async () => {
    const names = async (command: string) =>
      ((await alice(command)).result?.rows ?? [])
        .filter((row) => String(row.scope).includes('table'))
        .map((row) => String(row.name));
    const user = await names('wraparound staging --limit 100');
    expect(user).toEqual(['public.exams']);
    const all = await names('wraparound staging --limit 100 --system');
    expect(all.some((n) => n.startsWith('pg_catalog.'))).toBe(true);
    expect(all.some((n) => n.startsWith('information_schema.'))).toBe(true);
  });
});

describe('display.time_zone', () => {
  it('shows text answers in the configured zone; --json stays UTC ISO', async () => {
    const yaml = FIXTURE_YAML.replace('targets:\n', 'display:\n  time_zone: Europe/Berlin\ntargets:\n');
    const config = loadConfigText(yaml, 'berlin.yaml', fx.env);
    expect(config.timeZone).toBe('Europe/Berlin');
    const berlin = await startApp(config, () => new Date('2026-12-06T02:46:00Z'));
    try {
      const r = await as(berlin, 'alice')('vacuum staging exams --full');
      expect(r.status).toBe('pending');
      const card = (await as(berlin, 'alice')(`status ${r.requestId}`)).text;
      expect(flat(card)).toContain('Expires at 2026-12-06 04:01 CET.');
      const audit = await as(berlin, 'alice')('audit staging --limit 1');
      // The state database stamps audit records itself: the text shows that instant in Berlin time.
      const json = replyJson(audit, []) as { rows: { at: string }[] };
      const at = json.rows[0]?.at ?? '';
      expect(at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(audit.text).toContain(formatTime(new Date(at), 'Europe/Berlin'));
      expect(audit.text).toMatch(/\d\d:\d\d CET/);
    } finally {
      await berlin.close();
    }
    expect(() => loadConfigText(yaml.replace('Europe/Berlin', 'Europe/Atlantis'), 'x.yaml', fx.env)).toThrow(
      /IANA time zone/,
    );
  });
});
