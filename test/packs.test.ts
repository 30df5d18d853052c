// A user-written pack in a temporary directory: loading errors, and its operations through the whole core.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { ConfigError } from '../src/core/errors.js';
import { builtinPacksDir, loadPacks } from '../src/packs/load.js';
import { as, startApp } from './helpers/app.js';
import { adminQuery, createDatabase } from './helpers/db.js';

const SHOP_SQL = `
CREATE TABLE customers (id serial primary key, email text unique not null, name text, closed boolean default false);
CREATE TABLE orders (id serial primary key, customer_email text not null, total numeric(10,2));
CREATE TABLE events (id serial primary key, at date not null, kind text);
INSERT INTO customers (email, name) SELECT 'user' || i || '@shop.test', 'User ' || i FROM generate_series(1, 50) i;
INSERT INTO orders (customer_email, total) SELECT 'user' || (i % 50 + 1) || '@shop.test', i FROM generate_series(1, 200) i;
INSERT INTO events (at, kind) SELECT date '2025-01-01' + (i % 400), 'view' FROM generate_series(1, 5000) i;
`;

const PACK: Record<string, string> = {
  'pack.yaml': `
name: shop
description: The shop's own runbook
settings:
  greeting: { type: text, required: true, description: shown by the hello command }
expects:
  tables:
    customers: [id, email, name]
`,
  'customers.yaml': `
name: customers
summary: List customers
risk: read
args:
  - { name: limit, type: int, default: 10, min: 1, max: 100 }
columns:
  - { key: email, label: email }
  - { key: name, label: name }
  - { key: orders, label: orders, kind: count }
sql: |
  SELECT c.email, c.name, count(o.id) AS orders
    FROM customers c LEFT JOIN orders o ON o.customer_email = c.email
   GROUP BY c.email, c.name ORDER BY c.email LIMIT :limit
`,
  'customer.yaml': `
name: customer
summary: One customer, with their orders
risk: read
lookup: customer
args:
  - { name: email, type: email, positional: true, required: true }
sql: |
  SELECT c.email, c.name, c.closed, count(o.id) AS orders, coalesce(sum(o.total), 0) AS spent
    FROM customers c LEFT JOIN orders o ON o.customer_email = c.email
   WHERE c.email = :email GROUP BY c.email, c.name, c.closed
`,
  'close-account.yaml': `
name: close-account
summary: Close a customer's account and move their orders to an archive email
risk: destructive
args:
  - { name: email, type: email, positional: true, required: true }
preview:
  headline: rows that would change
  sql: |
    SELECT 'customers' AS "table", count(*) AS rows FROM customers WHERE email = :email AND NOT closed
    UNION ALL SELECT 'orders', count(*) FROM orders WHERE customer_email = :email
steps:
  - label: customers
    sql: UPDATE customers SET closed = true WHERE email = :email AND NOT closed
  - label: orders
    sql: UPDATE orders SET customer_email = 'archived+' || :email WHERE customer_email = :email
warning: the customer can no longer log in
`,
  'purge-events.yaml': `
name: purge-events
summary: Delete events before a date, in batches
risk: destructive
args:
  - { name: before, type: date, required: true }
preview:
  sql: SELECT count(*) AS events FROM events WHERE at < :before::date
batch:
  label: events
  max_batches: 100
  sql: DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < :before::date LIMIT 500)
`,
  'hello.yaml': `
name: hello
summary: Runs a command with a setting
risk: read
command:
  argv: [echo, "{greeting}", from, dbops]
`,
};

function writePack(root: string, name: string, files: Record<string, string>): void {
  mkdirSync(join(root, name), { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(root, name, file), text);
}

let app: App;
let shopDb: string;
let packRoot: string;
let configYaml: string;
let env: Record<string, string>;

beforeAll(async () => {
  const [shop, other, state] = await Promise.all([
    createDatabase('shop', SHOP_SQL),
    createDatabase('other'),
    createDatabase('packstate'),
  ]);
  shopDb = shop.name;
  packRoot = mkdtempSync(join(tmpdir(), 'dbops-packs-'));
  writePack(packRoot, 'shop', PACK);
  env = { STATE_URL: state.url, SHOP_URL: shop.url, OTHER_URL: other.url };
  configYaml = `
state: { url: "\${STATE_URL}" }
packs: { dirs: [${JSON.stringify(packRoot)}] }
admin_roles: [admin]
targets:
  shop:
    url: "\${SHOP_URL}"
    environment: production
    packs: [shop]
    settings: { shop: { greeting: hello } }
  other: { url: "\${OTHER_URL}", environment: production }
people:
  alice: { cli: alice, slack: T1/UALICE, roles: [dba, admin] }
  bob: { cli: bob, roles: [dba] }
policy:
  production: { read: [dba], write: [dba], request: [dba], approve: [dba] }
`;
  app = await startApp(loadConfigText(configYaml, join(packRoot, 'dbops.yaml'), env));
});

afterAll(async () => app?.close());

describe('a user-written pack', () => {
  it('runs a read operation with typed arguments and declared columns', async () => {
    const reply = await as(app, 'bob')('/db customers shop --limit 3');
    expect(reply.status).toBe('ok');
    const truth = await adminQuery<{ email: string; name: string; orders: number }>(
      `SELECT c.email, c.name, count(o.id)::int AS orders FROM customers c
         LEFT JOIN orders o ON o.customer_email = c.email GROUP BY 1, 2 ORDER BY 1 LIMIT 3`,
      [],
      shopDb,
    );
    expect(reply.result?.rows).toEqual(truth);
    expect(reply.result?.columns.map((c) => c.kind)).toEqual(['text', 'text', 'count']);
  });

  it('exists only on targets that have the pack', async () => {
    const reply = await as(app, 'bob')('/db customers other');
    expect(reply).toMatchObject({ status: 'invalid', code: 'unknown_operation' });
    expect(reply.message).toContain('comes from the shop pack');
    expect(reply.message).toContain('targets with it: shop');
  });

  it('answers lookups as cards, and validates the key', async () => {
    const reply = await as(app, 'bob')('/db lookup shop customer user7@shop.test');
    expect(reply.status).toBe('ok');
    expect(reply.result?.display).toBe('card');
    expect(reply.result?.rows).toEqual([
      { email: 'user7@shop.test', name: 'User 7', closed: false, orders: 4, spent: 6 + 56 + 106 + 156 },
    ]);
    expect(reply.text).toMatch(/email:\s+user7@shop.test/);
    const bad = await as(app, 'bob')(`/db lookup shop customer "x' OR 1=1 --"`);
    expect(bad).toMatchObject({ status: 'invalid', code: 'invalid_argument' });
    expect(bad.message).toContain('expected an email address');
    const unknown = await as(app, 'bob')('/db lookup shop custmer user7@shop.test');
    expect(unknown.message).toContain('did you mean `customer`');
  });

  it('previews a destructive change, re-checks it in the acting transaction and reports the difference', async () => {
    const request = await as(app, 'alice')('/db close-account shop user5@shop.test');
    expect(request.status).toBe('pending');
    expect(request.result?.rows).toEqual([
      { table: 'customers', rows: 1 },
      { table: 'orders', rows: 4 },
    ]);
    expect(request.text).toContain('WARNING: the customer can no longer log in');
    // An order arrives between the preview and the approval.
    await adminQuery("INSERT INTO orders (customer_email, total) VALUES ('user5@shop.test', 1)", [], shopDb);
    const done = await as(app, 'bob')(`/db approve ${request.requestId}`);
    expect(done.status).toBe('ok');
    expect(done.result?.rows).toEqual([
      { step: 'customers', rows: 1 },
      { step: 'orders', rows: 5 },
    ]);
    expect(done.result?.notes?.[0]).toContain('The data changed since the preview');
    const [row] = await adminQuery<{ closed: boolean }>(
      "SELECT closed FROM customers WHERE email = 'user5@shop.test'",
      [],
      shopDb,
    );
    expect(row?.closed).toBe(true);
  });

  it('deletes in batches, each in its own transaction', async () => {
    const [truth] = await adminQuery<{ n: string }>(
      "SELECT count(*)::text AS n FROM events WHERE at < date '2025-06-01'",
      [],
      shopDb,
    );
    const request = await as(app, 'alice')('/db purge-events shop --before 2025-06-01');
    expect(request.result?.rows).toEqual([{ events: Number(truth?.n) }]);
    const done = await as(app, 'bob')(`/db approve ${request.requestId}`);
    expect(done.result?.rows).toEqual([
      { step: 'events', rows: Number(truth?.n), batches: Math.ceil(Number(truth?.n) / 500) },
    ]);
    const [left] = await adminQuery<{ n: string }>(
      "SELECT count(*)::text AS n FROM events WHERE at < date '2025-06-01'",
      [],
      shopDb,
    );
    expect(left?.n).toBe('0');
    const bad = await as(app, 'alice')('/db purge-events shop --before yesterday');
    expect(bad.message).toContain('expected a date like 2025-12-24');
    const impossible = await as(app, 'alice')('/db purge-events shop --before 2025-02-30');
    expect(impossible).toMatchObject({ status: 'invalid', code: 'invalid_argument' });
  });

  it('runs a command with the target’s settings, without a shell', async () => {
    const reply = await as(app, 'bob')('/db hello shop');
    expect(reply.status).toBe('ok');
    expect(reply.result?.rows).toEqual([{ line: 'hello from dbops' }]);
  });

  it('lets admins bind a channel, then lists its runbook first in help', async () => {
    const slack = as(app, 'T1/UALICE', 'slack', 'CSHOP');
    expect((await slack('/db customer user1@shop.test')).code).toBe('missing_target');
    const bound = await slack('/db bind shop');
    expect(bound.status).toBe('ok');
    const lookup = await slack('/db lookup customer user1@shop.test');
    expect(lookup.status).toBe('ok');
    const help = await slack('/db help');
    const text = help.text;
    expect(text.indexOf('shop runbook (shop)')).toBeGreaterThan(-1);
    expect(text.indexOf('close-account')).toBeLessThan(text.indexOf('kill-idle'));
    expect(text).toContain('lookup customer <key>');
    const notAdmin = await as(app, 'bob', 'console', 'slack:CSHOP')('/db unbind');
    expect(notAdmin).toMatchObject({ status: 'refused', code: 'denied' });
    expect((await slack('/db unbind')).text).toContain("Removed this channel's binding");
    expect((await slack('/db customers')).code).toBe('missing_target');
  });
});

describe('pack validation', () => {
  it('names the file and line of every problem', () => {
    const root = mkdtempSync(join(tmpdir(), 'dbops-badpacks-'));
    writePack(root, 'broken', {
      'pack.yaml': 'name: broken\ndescription: broken on purpose\n',
      'delete-in-read.yaml': 'name: oops\nsummary: x\nrisk: read\nsql: DELETE FROM t\n',
      'unknown-param.yaml':
        'name: find\nsummary: x\nrisk: read\nargs: []\nsql: |\n  SELECT 1\n  WHERE a = :who\n',
      'no-preview.yaml':
        'name: wipe\nsummary: x\nrisk: destructive\nsteps:\n  - { label: t, sql: DELETE FROM t }\n',
      'typo.yaml': 'name: typo\nsummary: x\nrisk: read\nsqll: SELECT 1\n',
      'syntax.yaml': 'name: [unclosed\n',
    });
    let error: unknown;
    try {
      loadPacks([root]);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    expect(problems).toMatch(/delete-in-read\.yaml:4: sql: a read operation must be a SELECT/);
    expect(problems).toMatch(
      /unknown-param\.yaml:5: sql: parameter :who is neither an argument nor a pack setting/,
    );
    expect(problems).toMatch(/no-preview\.yaml:\d+: preview: a destructive operation needs preview\.sql/);
    expect(problems).toMatch(/typo\.yaml:1: .*Unrecognized key.*sqll/);
    expect(problems).toMatch(/syntax\.yaml:\d+: YAML syntax error/);
  });

  it('checks variants: each a complete body with its own preview, none mixed with the top level', () => {
    const root = mkdtempSync(join(tmpdir(), 'dbops-badvariants-'));
    writePack(root, 'shapes', {
      'pack.yaml': 'name: shapes\ndescription: variants gone wrong\n',
      'mixed.yaml':
        'name: mixed\nsummary: x\nrisk: read\nsql: SELECT 1\nvariants:\n  - { requires: { t: [a] }, sql: SELECT a FROM t }\n',
      'empty.yaml': 'name: empty\nsummary: x\nrisk: read\nvariants:\n  - { requires: { t: [a] } }\n',
      'nopreview.yaml':
        'name: nopreview\nsummary: x\nrisk: destructive\nvariants:\n  - requires: { t: [a] }\n    steps: [{ label: t, sql: DELETE FROM t }]\n',
      'badcolumn.yaml':
        'name: badcolumn\nsummary: x\nrisk: read\nvariants:\n  - { requires: { t: ["a; DROP"] }, sql: SELECT 1 }\n',
      'write-in-read.yaml':
        'name: writes\nsummary: x\nrisk: read\nvariants:\n  - { requires: { t: [a] }, sql: UPDATE t SET a = 1 }\n',
    });
    let error: unknown;
    try {
      loadPacks([root]);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    expect(problems).toMatch(
      /mixed\.yaml:1: \(top level\): with variants, give sql in each variant instead of at the top level/,
    );
    expect(problems).toMatch(
      /empty\.yaml:\d+: variants\[0\]: give exactly one of sql, steps or batch \(found none\)/,
    );
    expect(problems).toMatch(
      /nopreview\.yaml:\d+: variants\[0\]\.preview: a destructive operation needs preview\.sql/,
    );
    expect(problems).toMatch(/badcolumn\.yaml:\d+: variants\[0\]\.requires\.t\[0\]: a column name/);
    expect(problems).toMatch(
      /write-in-read\.yaml:\d+: variants\[0\]\.sql: a read operation must be a SELECT/,
    );
  });

  it('every shipped operation that sends SQL says what it needs of the schema', () => {
    const undeclared = loadPacks([builtinPacksDir()]).flatMap((pack) =>
      pack.operations
        .filter(
          (op) => op.variants.some((v) => !v.requires) && (op.def.command?.state_sql || !op.def.command),
        )
        .map((op) => `${pack.name}/${op.def.name}`),
    );
    expect(undeclared).toEqual([]);
  });

  it('refuses a target with an unknown pack or a missing setting', async () => {
    const broken = configYaml
      .replace('packs: [shop]', 'packs: [shopp]')
      .replace('settings: { shop: { greeting: hello } }', '');
    await expect(startApp(loadConfigText(broken, join(packRoot, 'dbops.yaml'), env))).rejects.toThrow(
      /targets\.shop\.packs: there is no pack named shopp \(did you mean shop\?\)/,
    );
    const noSetting = configYaml.replace('settings: { shop: { greeting: hello } }', '');
    await expect(startApp(loadConfigText(noSetting, join(packRoot, 'dbops.yaml'), env))).rejects.toThrow(
      /targets\.shop\.settings\.shop\.greeting: the shop pack needs this setting/,
    );
  });
});

describe('help for pack operations', () => {
  it('explains a pack operation and where it exists', async () => {
    const help = await as(app, 'bob')('/db help close-account');
    expect(help.status).toBe('ok');
    expect(help.text).toContain('/db close-account <target> <email>');
    expect(help.text).toContain('(pack shop)');
    expect(help.text).toContain('you may request it on: shop');
  });
});

describe('help for a target', () => {
  it('lists the target’s own runbook and lookups', async () => {
    const help = await as(app, 'bob')('/db help shop');
    expect(help.status).toBe('ok');
    expect(help.text).toContain('Its runbook (shop)');
    expect(help.text).toContain('close-account');
    expect(help.text).toContain('/db lookup shop customer <key>');
    const plain = await as(app, 'bob')('/db help other');
    expect(plain.text).toContain('No runbook pack');
  });
});
