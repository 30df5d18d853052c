// `/db csv <ref>` through the whole core against real PostgreSQL, on every surface: the read a reference
// ran is found in the audit and run again as whoever asks, page and arguments included, and answered as one
// CSV file with every column; anything else is refused with a sentence and runs nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import type { Reply } from '../src/core/reply.js';
import { renderResultReply } from '../src/surfaces/discord/render.js';
import { renderReply } from '../src/surfaces/slack/render.js';
import { as, FIXTURE_YAML, type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery } from './helpers/db.js';

let fx: Fixture;
let app: App;

beforeAll(async () => {
  fx = await makeFixture();
  app = await startApp(fx.config);
}, 60_000);

afterAll(async () => {
  await app?.close();
});

const alice = () => as(app, 'alice');
const carol = () => as(app, 'carol');

function csvOf(reply: Reply): string[] {
  const file = reply.result?.attachments?.find((a) => a.filename.endsWith('.csv'));
  if (!file) throw new Error(`no CSV: ${reply.text}`);
  return file.content.split('\r\n').filter((l) => l.length > 0);
}

describe('/db csv <ref>', () => {
  it('runs the read of a page again as it was asked, with every column, titled with the time', async () => {
    const page = await alice()('settings staging --limit 5 --page 2');
    expect(page.status).toBe('ok');
    const names = (page.result?.rows ?? []).map((r) => String(r.name));
    expect(names).toHaveLength(5);
    const made = await alice()(`csv ${page.ref}`);
    expect(made).toMatchObject({ status: 'ok', ephemeral: false, operation: 'settings', target: 'staging' });
    expect(made.ref).not.toBe(page.ref);
    const lines = csvOf(made);
    expect(lines[0]).toBe((page.result?.columns ?? []).map((c) => c.key).join(','));
    // Page 2's rows, not page 1's.
    expect(lines.slice(1).map((l) => l.split(',')[0])).toEqual(names);
    expect(made.message).toMatch(
      new RegExp(
        `^settings staging — all \\d+ columns, 5 rows, taken \\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2} UTC, of ${page.ref} \\(rows 6–10, page 2; more rows exist\\)$`,
      ),
    );
    // Audited as alice's read, page included, under the new reference.
    const [record] = await adminQuery<{ person: string; args: Record<string, unknown> }>(
      "SELECT person, args FROM dbops_audit WHERE ref = $1 AND event = 'requested'",
      [made.ref],
      fx.state.name,
    );
    expect(record).toMatchObject({ person: 'alice', args: { page: 2, limit: 5 } });
  });

  it('reads in the asker’s own right: carol may read staging, not production', async () => {
    const staging = await alice()('sizes staging');
    expect(csvOf(await carol()(`csv ${staging.ref}`))[0]).toContain('relation');
    const kasm = await alice()('sizes kasm');
    expect(kasm.status).toBe('ok');
    const refused = await carol()(`csv ${kasm.ref}`);
    expect(refused).toMatchObject({ status: 'refused', code: 'not_found' });
    expect(refused.message).toBe(
      `${kasm.ref} names no answer of a read you may see (dbops keeps no other), so nothing was run; \`/db audit ${kasm.ref}\` shows what it was`,
    );
  });

  it('refuses what names no read, with the usage for what is not a reference', async () => {
    const help = await alice()('targets');
    expect((await alice()(`csv ${help.ref}`)).message).toContain('names no answer of a read');
    for (const text of ['csv', 'csv r7f3kq r7f3kq', 'csv r7f3kq --all', 'csv kasm', 'csv #7']) {
      const answer = await alice()(text);
      expect(answer.status).toBe('invalid');
      expect(answer.message).toContain('usage: /db csv <ref>');
    }
  });

  it('is one file on every surface: Slack and Discord attach it, with the line that says what it is', async () => {
    const sizes = await alice()('sizes staging');
    const made = await alice()(`csv ${sizes.ref}`);
    const slack = renderReply(made);
    expect(slack.files.map((f) => f.filename)).toEqual([`sizes-staging-${sizes.ref}.csv`]);
    expect(JSON.stringify(slack.blocks)).toContain('sizes staging — all 7 columns');
    expect(JSON.stringify(slack.blocks)).not.toContain('dbops_csv');
    const discord = renderResultReply(made);
    expect(discord.files?.map((f) => f.name)).toEqual([`sizes-staging-${sizes.ref}.csv`]);
    expect(discord.content).toContain('sizes staging — all 7 columns');
  });

  it('answers an export with its own CSV, its arguments as they were', async () => {
    const exported = await alice()('export staging exams --where "id=7" --columns id,title');
    expect(exported.status).toBe('ok');
    const again = await alice()(`csv ${exported.ref}`);
    expect(again.operation).toBe('export');
    expect(csvOf(again)).toEqual(csvOf(exported));
    expect(csvOf(again)).toHaveLength(2);
  });

  it('is in /db help', async () => {
    expect((await alice()('help')).text).toContain('csv <ref>');
    expect((await alice()('help csv')).text).toContain('every column');
  });
});

describe('/db csv <ref> of an ad-hoc SQL read', () => {
  const SQL_POLICY = 'staging:     { sql_read: [everyone], read: [everyone],';
  const SENSITIVE =
    '    description: exam platform (Alembic)\n    sensitive: { columns: [exams.title], visible_to: [privacy] }\n';
  const yaml = (policy: string) =>
    FIXTURE_YAML.replace('staging:     { read: [everyone],', policy).replace(
      '    description: exam platform (Alembic)\n',
      SENSITIVE,
    );

  it('keeps sensitive columns masked, and never goes through approval where SQL reads need it', async () => {
    const sqlApp = await startApp(loadConfigText(yaml(SQL_POLICY), 'f.yaml', fx.env));
    // The same state database, where SQL reads wait for approval (another replica's config, say).
    const held = await startApp(
      loadConfigText(
        yaml('staging:     { sql_read: [everyone], approve_sql_reads: true, read: [everyone],'),
        'f.yaml',
        fx.env,
      ),
    );
    try {
      const read = await as(
        sqlApp,
        'alice',
      )('sql staging "SELECT id, title FROM exams WHERE id < 4 ORDER BY id"');
      expect(read.status).toBe('ok');
      const lines = csvOf(await as(sqlApp, 'carol')(`csv ${read.ref}`));
      expect(lines[0]).toBe('id,title');
      expect(lines).toHaveLength(4);
      // No title in clear: the same mask as in the answer.
      for (const line of lines.slice(1)) expect(line).not.toMatch(/[0-9a-f]{32}/);
      const requests = 'SELECT count(*)::text AS n FROM dbops_requests';
      const before = await adminQuery<{ n: string }>(requests, [], fx.state.name);
      const refused = await as(held, 'alice')(`csv ${read.ref}`);
      expect(refused).toMatchObject({ status: 'refused' });
      expect(refused.message).toBe(
        '`sql staging` needs approval on staging; a CSV is never made through an approval request, so nothing was run',
      );
      expect(await adminQuery<{ n: string }>(requests, [], fx.state.name)).toEqual(before);
    } finally {
      await sqlApp.close();
      await held.close();
    }
  });
});
