// `import <table>` against real PostgreSQL: mapping, dry run with CSV lines, one-transaction COPY, re-checks.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import importCsv from '../commands/import.js';
import { UserError } from '../src/core/errors.js';
import type { Preview } from '../src/core/operation.js';
import type { InvocationFile } from '../src/core/types.js';
import { adminQuery, createDatabase, majors } from './helpers/db.js';
import { OpHarness, testTarget } from './helpers/ops.js';

const SCHEMA = `
CREATE TABLE users (id serial PRIMARY KEY, username text UNIQUE NOT NULL);
INSERT INTO users (username) VALUES ('ann'), ('ben'), ('cid');
CREATE TABLE activities (
  id serial PRIMARY KEY,
  user_id int NOT NULL REFERENCES users (id),
  activity_type varchar(20) NOT NULL,
  duration int,
  points int NOT NULL DEFAULT 0 CHECK (points >= 0),
  activity_date date NOT NULL DEFAULT current_date,
  note text
);
CREATE INDEX activities_note ON activities (note);
CREATE TABLE deferred_child (
  id int PRIMARY KEY,
  user_id int REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED
);`;

let db: { name: string; url: string };
let h: OpHarness;
let small: OpHarness;
let backupsDir: string;

function file(text: string | Buffer, name = 'activities.csv'): InvocationFile {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  return { name, size: bytes.length, bytes };
}

function ctx(harness: OpHarness, args: string, files: InvocationFile[]) {
  return { ...harness.context(importCsv, 't', args), files };
}

async function preview(args: string, csv: string | Buffer, harness = h): Promise<Preview> {
  if (!importCsv.preview) throw new Error('import has no preview');
  return await importCsv.preview(ctx(harness, args, [file(csv)]) as never);
}

async function execute(args: string, state: unknown) {
  if (!importCsv.execute) throw new Error('import has no execute');
  return await importCsv.execute(ctx(h, args, []) as never, state);
}

async function refusal(p: Promise<unknown>): Promise<UserError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return err as UserError;
  }
  throw new Error('expected a refusal');
}

async function count(table = 'activities'): Promise<number> {
  const [row] = await adminQuery<{ n: string }>(`SELECT count(*) AS n FROM ${table}`, [], db.name);
  return Number(row?.n);
}

const HEADER = 'id,user_id,activity_type,duration,points,activity_date';

beforeAll(async () => {
  db = await createDatabase('import', SCHEMA);
  backupsDir = await mkdtemp(join(tmpdir(), 'dbops-import-'));
  h = new OpHarness([testTarget('t', db.url)], { backupsDir });
  small = new OpHarness([testTarget('t', db.url, { limits: { import_max_bytes: 64, import_max_rows: 3 } })], {
    backupsDir,
  });
});

afterAll(async () => {
  await h?.close();
  await small?.close();
  await rm(backupsDir, { recursive: true, force: true });
});

beforeEach(async () => {
  await adminQuery(
    "TRUNCATE activities, deferred_child; SELECT setval('activities_id_seq', 1, false)",
    [],
    db.name,
  );
});

describe('import: a good CSV', () => {
  it('previews the mapping and dry run, then loads every row and advances the sequence', async () => {
    const rows = Array.from(
      { length: 50 },
      (_, i) => `${i + 1},${(i % 3) + 1},run,${i},${i * 2},2026-12-0${(i % 5) + 1}`,
    );
    const csv = `${HEADER}\n${rows.join('\n')}\n`;
    const p = await preview('activities --advance-sequences', csv);
    expect(p.empty).toBeFalsy();
    expect(p.result.headline).toMatch(
      /^import 50 rows from activities\.csv \(.*\) into public\.activities on t$/,
    );
    expect(p.result.rows.map((r) => [r.csv, r.column, r.type])).toEqual([
      ['id', 'id', 'integer'],
      ['user_id', 'user_id', 'integer'],
      ['activity_type', 'activity_type', 'character varying(20)'],
      ['duration', 'duration', 'integer'],
      ['points', 'points', 'integer'],
      ['activity_date', 'activity_date', 'date'],
      ['(not in CSV)', 'note', 'text'],
    ]);
    expect(p.result.notes?.join('\n')).toMatch(/all 50 rows pass/);
    expect(p.result.notes?.join('\n')).toMatch(/sequence public\.activities_id_seq will be set to 50/);
    // The dry run left nothing behind, and the CSV waits beside the backups for the approval.
    expect(await count()).toBe(0);
    expect(await readdir(join(backupsDir, '.imports', 't'))).toContain((p.state as { file: string }).file);

    const result = await execute('activities --advance-sequences', p.state);
    expect(result.headline).toBe('imported 50 rows into public.activities on t (one transaction)');
    expect(await count()).toBe(50);
    const [seq] = await adminQuery<{ next: string }>(
      "SELECT nextval('activities_id_seq') AS next",
      [],
      db.name,
    );
    expect(seq?.next).toBe('51');
    const [sum] = await adminQuery<{ s: string }>('SELECT sum(points) AS s FROM activities', [], db.name);
    expect(Number(sum?.s)).toBe(rows.reduce((acc, _, i) => acc + i * 2, 0));
    // The stored CSV is removed once its request ran.
    expect(await readdir(join(backupsDir, '.imports', 't'))).not.toContain(
      (p.state as { file: string }).file,
    );
  });

  it('without --advance-sequences says the exact follow-up, and columns left out get their defaults', async () => {
    const csv = 'ID, User_Id ,activity_type\n7,1,swim\n9,2,"bike, road"\n';
    const p = await preview('activities', csv);
    const notes = p.result.notes?.join('\n') ?? '';
    expect(notes).toContain(
      'id goes up to 9, but public.activities_id_seq hands out 1 next: new rows would\n' +
        '    collide. Add --advance-sequences, or after the import run:\n' +
        "SELECT setval('public.activities_id_seq',\n" +
        '  (SELECT max("id") FROM "public"."activities"));',
    );
    for (const line of notes.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    expect(p.result.rows.find((r) => r.column === 'points')?.note).toBe('default 0');
    const result = await execute('activities', p.state);
    expect(result.notes?.join('\n')).toMatch(/activities_id_seq is behind id \(largest 9, next 1\)/);
    const got = await adminQuery('SELECT id, activity_type, points FROM activities ORDER BY id', [], db.name);
    expect(got).toEqual([
      { id: 7, activity_type: 'swim', points: 0 },
      { id: 9, activity_type: 'bike, road', points: 0 },
    ]);
  });

  it('stores hostile values faithfully and runs none of them', async () => {
    const big = 'y'.repeat(100_000);
    const csv =
      'user_id,activity_type,note\n' +
      '1,x,"=HYPERLINK(""http://evil"")"\n' +
      `2,x,\u202eevil\u202c txt\n` +
      `3,x,${big}\n` +
      `1,x,"'); DROP TABLE users; --"\n` +
      '2,x,""\n' +
      '3,x,\n';
    const p = await preview('activities', csv);
    await execute('activities', p.state);
    const got = await adminQuery<{ note: string | null }>(
      'SELECT note FROM activities ORDER BY id',
      [],
      db.name,
    );
    expect(got.map((r) => r.note)).toEqual([
      '=HYPERLINK("http://evil")',
      '\u202eevil\u202c txt',
      big,
      "'); DROP TABLE users; --",
      '',
      null,
    ]);
    expect(await count('users')).toBe(3);
  });
});

describe('import: refusals before anything runs', () => {
  it('names the line of a malformed CSV', async () => {
    const err = await refusal(preview('activities', `${HEADER}\n1,1,run,1,1,2026-01-01\n2,1,"run,1,1\n`));
    expect(err.message).toBe(
      'the CSV is malformed at line 3: a quoted field opened in this record is never closed',
    );
    // Line endings that change within the file: PostgreSQL's reading names the line.
    const mixed = await refusal(preview('activities', 'user_id,activity_type\n1,a\n2,b\r\n3,c\n'));
    expect(mixed.message).toMatch(/^the CSV is malformed at line 3: .*carriage return/);
    const header = await refusal(preview('activities', '1,1,run\n2,1,walk\n'));
    expect(header.message).toMatch(/header \(line 1\) does not fit public\.activities/);
    expect(header.message).toMatch(/Line 1 looks like data/);
  });

  it('refuses unknown header columns with a did-you-mean, and NOT NULL columns left out', async () => {
    const unknown = await refusal(preview('activities', 'user_id,activty_type\n1,run\n'));
    expect(unknown.message).toContain(
      'public.activities has no column "activty_type" — did you mean `activity_type` or `activity_date`?',
    );
    const missing = await refusal(preview('activities', 'user_id,points\n1,3\n'));
    expect(missing.message).toContain(
      'the CSV has no column activity_type, which is NOT NULL without a default: every row would be rejected',
    );
  });

  it('refuses a file over the size or row cap, and asks for a file when none is attached', async () => {
    const big = await refusal(
      preview('activities', `user_id,activity_type,note\n1,x,${'z'.repeat(100)}\n`, small),
    );
    expect(big.message).toMatch(/over this target's import limit of 64 bytes/);
    const many = await refusal(preview('activities', 'user_id,activity_type\n1,a\n1,b\n1,c\n1,d\n', small));
    expect(many.message).toMatch(/has 4 rows, over this target's import limit of 3/);
    if (!importCsv.preview) throw new Error('no preview');
    const none = await refusal(importCsv.preview(ctx(h, 'activities', []) as never));
    expect(none.message).toMatch(/^attach the CSV to import/);
  });

  it('answers an empty preview for a header without rows', async () => {
    const p = await preview('activities', 'user_id,activity_type\n');
    expect(p.empty).toBe(true);
    expect(p.result.headline).toMatch(/has a header and no rows: nothing to import/);
  });
});

describe('import: the dry run', () => {
  it('lists every rejected row with its CSV line, and the table stays empty', async () => {
    const csv = [
      HEADER, // line 1
      '1,1,run,10,5,2026-01-01', // 2 ok
      '2,1,run,ten,5,2026-01-01', // 3 bad integer
      '3,99,run,10,5,2026-01-01', // 4 no such user
      '4,1,,10,5,2026-01-01', // 5 NULL activity_type
      '1,2,run,10,5,2026-01-01', // 6 duplicate id of line 2
      '5,1,run,10,-1,2026-01-01', // 7 check constraint
      '6,1,"multi', // 8 a quoted line break: the record spans lines 8-9
      'line",10,5,2026-01-01', // 9 … varchar(20) is fine
      '7,1,run,10,5,2026-02-30', // 10 no such date
      '8,1,this-type-is-far-too-long,10,5,2026-01-01', // 11 too long for varchar(20)
      '9,2,walk,1,1,2026-01-02', // 12 ok
    ].join('\n');
    const err = await refusal(preview('activities', csv));
    expect(err.message.split('\n')).toEqual([
      'dry run: 7 of 10 rows would be rejected by public.activities, so nothing can be imported (the load is ' +
        'all or nothing).',
      'Fix these lines and send the CSV again:',
      'line 3 (duration): invalid input syntax for type integer: "ten"',
      'line 4: foreign key: Key (user_id)=(99) is not present in table "users"',
      'line 5 (activity_type): no value, but the column is NOT NULL',
      'line 6: duplicate: Key (id)=(1) already exists',
      'line 7: check constraint activities_points_check fails',
      'line 10 (activity_date): date/time field value out of range: "2026-02-30"',
      'line 11: value too long for type character varying(20)',
    ]);
    expect(await count()).toBe(0);
  });

  it('rejects a value too large for an index by its line, not the whole file', async () => {
    const noise = Array.from({ length: 400 }, () => randomBytes(16).toString('hex')).join('');
    const err = await refusal(
      preview('activities', `user_id,activity_type,note\n1,a,ok\n2,b,${noise}\n3,c,ok\n`),
    );
    expect(err.message.split('\n').slice(2)).toEqual([
      expect.stringMatching(/^line 3: index row (size \d+ )?(requires|exceeds) /),
    ]);
  });

  it('catches deferred foreign keys, and finds three bad rows among 20,000', async () => {
    const deferred = await refusal(preview('deferred_child', 'id,user_id\n1,1\n2,42\n'));
    expect(deferred.message).toMatch(/\nline 3: foreign key: Key \(user_id\)=\(42\) is not present/);

    const lines = ['user_id,activity_type,points'];
    for (let i = 0; i < 20_000; i++) lines.push(`${(i % 3) + 1},run,${i}`);
    lines[5_001] = '1,run,-5';
    lines[12_345] = '77,run,1';
    lines[19_999] = '1,run,x';
    const err = await refusal(preview('activities', `${lines.join('\n')}\n`));
    expect(err.message.split('\n').slice(2)).toEqual([
      'line 5,002: check constraint activities_points_check fails',
      'line 12,346: foreign key: Key (user_id)=(77) is not present in table "users"',
      'line 20,000 (points): invalid input syntax for type integer: "x"',
    ]);
    expect(await count()).toBe(0);
  });
});

describe('import: the approved run re-checks', () => {
  it('refuses when the table changed between preview and run', async () => {
    const p = await preview('activities', 'user_id,activity_type\n1,run\n');
    await adminQuery('ALTER TABLE activities ALTER COLUMN duration TYPE bigint', [], db.name);
    try {
      const err = await refusal(execute('activities', p.state));
      expect(err.code).toBe('stale_preview');
      expect(err.message).toMatch(/public\.activities changed since the preview/);
      expect(await count()).toBe(0);
    } finally {
      await adminQuery('ALTER TABLE activities ALTER COLUMN duration TYPE int', [], db.name);
    }
  });

  it('refuses a stored CSV that changed after the preview', async () => {
    const p = await preview('activities', 'user_id,activity_type\n1,run\n');
    const stored = join(backupsDir, '.imports', 't', (p.state as { file: string }).file);
    await writeFile(stored, 'user_id,activity_type\n1,run\n2,run\n');
    const err = await refusal(execute('activities', p.state));
    expect(err.code).toBe('stale_preview');
    expect(await count()).toBe(0);
  });

  it('loads nothing when a row fails at execution, and names its CSV line', async () => {
    const csv = 'id,user_id,activity_type\n1,1,a\n2,1,"two\nlines"\n3,1,c\n';
    const p = await preview('activities', csv);
    await adminQuery(
      "INSERT INTO activities (id, user_id, activity_type) VALUES (3, 2, 'meanwhile')",
      [],
      db.name,
    );
    const err = await refusal(execute('activities', p.state));
    expect(err.message).toMatch(
      /^nothing was imported \(one transaction, rolled back\): line 5: duplicate key/,
    );
    expect(await adminQuery('SELECT id, activity_type FROM activities', [], db.name)).toEqual([
      { id: 3, activity_type: 'meanwhile' },
    ]);
  });
});

describe('import: on every PostgreSQL major, odd names and rich types', () => {
  for (const major of majors()) {
    it(`PostgreSQL ${major}: quoted column names, jsonb, arrays, identity ALWAYS, and a bad jsonb line`, async () => {
      const odd = await createDatabase(
        `import_odd_${major}`,
        `CREATE TABLE things (
           id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
           "Weird Col" text,
           "na""me" text NOT NULL,
           doc jsonb,
           tags int[],
           total numeric(6,2) GENERATED ALWAYS AS (1) STORED
         );`,
        major,
      );
      const harness = new OpHarness([testTarget('t', odd.url)], { backupsDir });
      try {
        if (!importCsv.preview || !importCsv.execute) throw new Error('import is destructive');
        const generated = await refusal(
          importCsv.preview(ctx(harness, 'things', [file('"na""me",total\na,1\n')]) as never),
        );
        expect(generated.message).toMatch(/total is a generated column/);
        const bad = 'id,Weird Col,"na""me",doc,tags\n1,x,a,"{""k"": 1}","{1,2}"\n2,y,b,{nope,"{3}"\n';
        const rejected = await refusal(importCsv.preview(ctx(harness, 'things', [file(bad)]) as never));
        expect(rejected.message.split('\n').slice(2)).toEqual([
          'line 3 (doc): invalid input syntax for type json',
        ]);
        const good = 'id,Weird Col,"na""me",doc,tags\n1,x,a,"{""k"": 1}","{1,2}"\n5,,b,,{}\n';
        const p = await importCsv.preview(ctx(harness, 'things --advance-sequences', [file(good)]) as never);
        await importCsv.execute(ctx(harness, 'things --advance-sequences', []) as never, p.state);
        const rows = await adminQuery(
          'SELECT id, "Weird Col" AS w, "na""me" AS n, doc, tags FROM things ORDER BY id',
          [],
          odd.name,
          major,
        );
        expect(rows).toEqual([
          { id: 1, w: 'x', n: 'a', doc: { k: 1 }, tags: [1, 2] },
          { id: 5, w: null, n: 'b', doc: null, tags: [] },
        ]);
        const [next] = await adminQuery<{ id: number }>(
          'INSERT INTO things ("na""me") VALUES ($1) RETURNING id',
          ['c'],
          odd.name,
          major,
        );
        expect(next?.id).toBe(6);
      } finally {
        await harness.close();
      }
    });
  }
});

describe('import: a bot role without the privileges', () => {
  it('says which GRANT is missing before staging anything', async () => {
    const role = `import_bot_${Math.random().toString(36).slice(2, 10)}`;
    await adminQuery(`CREATE ROLE ${role} LOGIN PASSWORD 'pw'`, [], db.name);
    await adminQuery(`GRANT SELECT ON activities TO ${role}`, [], db.name);
    const url = new URL(db.url);
    url.username = role;
    url.password = 'pw';
    const weak = new OpHarness([testTarget('t', url.toString())], { backupsDir });
    try {
      const err = await refusal(preview('activities', 'user_id,activity_type\n1,run\n', weak));
      expect(err.code).toBe('permission');
      expect(err.message).toBe(
        `dbops' role ${role} may not INSERT into public.activities; an admin can run ` +
          `GRANT INSERT ON "public"."activities" TO "${role}"`,
      );
    } finally {
      await weak.close();
      await adminQuery(`DROP OWNED BY ${role}; DROP ROLE ${role}`, [], db.name);
    }
  });
});
