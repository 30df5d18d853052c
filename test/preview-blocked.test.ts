// A preview that already knows the request cannot succeed refuses it: no request, the refusal audited.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { as, type Fixture, makeFixture, startApp } from './helpers/app.js';
import { adminQuery } from './helpers/db.js';

let fx: Fixture;
let app: App;

beforeAll(async () => {
  fx = await makeFixture();
  // A team's pack written for a schema the staging database does not have (no customers table).
  const dir = mkdtempSync(join(tmpdir(), 'dbops-shop-'));
  mkdirSync(join(dir, 'shop'));
  writeFileSync(join(dir, 'shop', 'pack.yaml'), 'name: shop\ndescription: the shop runbook\n');
  writeFileSync(
    join(dir, 'shop', 'close-account.yaml'),
    `name: close-account
summary: Close a customer's account
risk: destructive
args:
  - { name: email, type: email, positional: true, required: true }
preview:
  headline: rows that would change
  sql: SELECT id, email FROM customers WHERE email = :email
steps:
  - label: customers
    sql: UPDATE customers SET closed = true WHERE email = :email
`,
  );
  const yaml = fx.yaml
    .replace('targets:\n', `packs:\n  dirs: [${dir}]\ntargets:\n`)
    .replace('    environment: staging\n', '    environment: staging\n    packs: [shop]\n');
  app = await startApp(loadConfigText(yaml, 'shop.yaml', fx.env));
});

afterAll(async () => {
  await app?.close();
});

describe('previews that know the request cannot succeed', () => {
  it('refuses a pack request whose preview reads a table the target does not have', async () => {
    const reply = await as(app, 'bob')('/db close-account staging ann@example.com');
    expect(reply).toMatchObject({ status: 'refused', code: 'cannot_succeed' });
    expect(reply.message).toContain('relation "customers" does not exist');
    expect(reply.message).toContain('no approval was requested');
    expect(reply.requestId).toBeNull();
    const audit = await adminQuery<{ event: string; outcome: string }>(
      'SELECT event, outcome FROM dbops_audit WHERE ref = $1 ORDER BY id',
      [reply.ref],
      fx.state.name,
    );
    expect(audit.map((r) => `${r.event}:${r.outcome}`)).toEqual(['refused:cannot_succeed']);
  });
});
