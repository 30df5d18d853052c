// The capsul pack on a database built from exactly the tables and columns capsul-flask.md's own SQL
// names: every read operation and the lookup against ground truth computed here, addresses matched
// ignoring case everywhere, invalidate-payment and change-email run after approval.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { as, startApp } from './helpers/app.js';
import { adminQuery, createDatabase } from './helpers/db.js';

const EMAIL_TABLES = [
  'login_tokens',
  'operations',
  'payment_sessions',
  'ssh_public_keys',
  'unresolved_btcpay_invoices',
  'vm_ssh_authorized_key',
  'vm_ssh_host_key',
  'vms',
];

/** capsul-flask.md's tables, each with only the columns its SQL names. */
const CAPSUL_RUNBOOK_SCHEMA = `
CREATE TABLE schemaversion (version integer NOT NULL);
INSERT INTO schemaversion VALUES (19);
CREATE TABLE accounts (email text PRIMARY KEY, lower_case_email text);
CREATE TABLE payments (id serial PRIMARY KEY, created timestamp NOT NULL, email text NOT NULL,
                       dollars numeric(8, 2) NOT NULL, invalidated boolean NOT NULL DEFAULT false);
${EMAIL_TABLES.map((t) => `CREATE TABLE ${t} (email text NOT NULL);`).join('\n')}
INSERT INTO accounts SELECT e, lower(e) FROM (VALUES ('Forest.N.Johnson@gmail.com'), ('ops@cyberia.club'),
  ('Quiet@Example.org')) v (e);
INSERT INTO payments (created, email, dollars, invalidated)
SELECT timestamp '2020-05-05' + i * interval '9 days', (ARRAY['Forest.N.Johnson@gmail.com', 'ops@cyberia.club'])[1 + i % 2],
       5 * (1 + i % 4), i % 5 = 0
  FROM generate_series(1, 12) i;
${EMAIL_TABLES.map(
  (t, i) =>
    `INSERT INTO ${t} SELECT 'Forest.N.Johnson@gmail.com' FROM generate_series(1, ${1 + (i % 3)});
     INSERT INTO ${t} VALUES ('ops@cyberia.club');`,
).join('\n')}
`;

let app: App;
let db: string;
const alice = (text: string) => as(app, 'alice')(text);
const bob = (text: string) => as(app, 'bob')(text);
const truth = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) =>
  adminQuery<T>(sql, params, db);

beforeAll(async () => {
  const [capsul, state] = await Promise.all([
    createDatabase('capsulrb', CAPSUL_RUNBOOK_SCHEMA),
    createDatabase('capsulrbstate'),
  ]);
  db = capsul.name;
  const yaml = `
state: { url: "\${STATE_URL}" }
targets:
  capsul:
    url: "\${CAPSUL_URL}"
    environment: production
    packs: [capsul]
    settings: { capsul: { expected_schema_version: 21 } }
people:
  alice: { cli: alice, roles: [dba] }
  bob: { cli: bob, roles: [dba] }
policy:
  production: { read: [dba], write: [dba], request: [dba], approve: [dba] }
`;
  app = await startApp(
    loadConfigText(yaml, 'capsul-rb.yaml', { STATE_URL: state.url, CAPSUL_URL: capsul.url }),
  );
});

afterAll(async () => app?.close());

describe("capsul pack on the runbook's schema", () => {
  it('schema-version reads schemaversion', async () => {
    const reply = await bob('/db schema-version capsul');
    expect(reply.status).toBe('ok');
    expect(reply.result?.rows[0]).toMatchObject({
      database_version: 19,
      expected_version: 21,
      verdict: 'behind',
    });
  });

  it('the lookup, payments and vms find the same account whatever the case of the address', async () => {
    const exact = 'Forest.N.Johnson@gmail.com';
    const [t] = await truth<{ payments: number; invalidated: number; dollars: number; vms: number }>(
      `SELECT (SELECT count(*)::int FROM payments WHERE email = $1) AS payments,
              (SELECT count(*)::int FROM payments WHERE email = $1 AND invalidated) AS invalidated,
              (SELECT coalesce(sum(dollars), 0)::float8 FROM payments WHERE email = $1 AND NOT invalidated) AS dollars,
              (SELECT count(*)::int FROM vms WHERE email = $1) AS vms`,
      [exact],
    );
    const rows = await truth(
      `SELECT id, created, email, dollars::float8 AS dollars, invalidated FROM payments WHERE email = $1
        ORDER BY created DESC, id DESC`,
      [exact],
    );
    for (const key of [exact, exact.toLowerCase(), exact.toUpperCase()]) {
      const account = await bob(`/db lookup capsul account ${key}`);
      expect(account.status).toBe('ok');
      expect(account.result?.rows).toEqual([
        expect.objectContaining({
          email: exact,
          vms: t?.vms,
          payments: t?.payments,
          invalidated_payments: t?.invalidated,
          dollars_paid: t?.dollars,
        }),
      ]);
      const payments = await bob(`/db payments capsul ${key}`);
      expect(payments.status).toBe('ok');
      expect(payments.result?.rows).toEqual(
        rows.map((r) => ({ ...r, created: (r.created as Date).toISOString() })),
      );
      const vms = await bob(`/db vms capsul ${key}`);
      expect(vms.status).toBe('ok');
      expect(vms.result?.rows).toHaveLength(t?.vms ?? -1);
      expect(vms.result?.columns.map((c) => c.key)).toEqual(['vm']);
    }
    const nobody = await bob('/db payments capsul nobody@example.org');
    expect(nobody.result?.rows).toEqual([]);
  });

  it('invalidate-payment previews and invalidates one payment', async () => {
    const [p] = await truth<{ id: number }>('SELECT min(id) AS id FROM payments WHERE NOT invalidated');
    const request = await alice(`/db invalidate-payment capsul ${p?.id}`);
    expect(request.status).toBe('pending');
    expect(request.result?.rows).toEqual([expect.objectContaining({ id: p?.id, invalidated: false })]);
    expect((await bob(`/db approve ${request.requestId}`)).status).toBe('ok');
    expect(await truth('SELECT invalidated FROM payments WHERE id = $1', [p?.id])).toEqual([
      { invalidated: true },
    ]);
  });

  it('change-email, given the old address in another case, moves every table in one transaction', async () => {
    const before = await Promise.all(
      ['accounts', 'payments', ...EMAIL_TABLES].map(async (t) => {
        const [row] = await truth<{ n: number }>(
          `SELECT count(*)::int AS n FROM ${t} WHERE email = 'Forest.N.Johnson@gmail.com'`,
        );
        return [t, row?.n] as const;
      }),
    );
    const request = await alice('/db change-email capsul forest.n.johnson@GMAIL.com forest@cyberia.club');
    expect(request.status).toBe('pending');
    const previewed = Object.fromEntries((request.result?.rows ?? []).map((r) => [r.step, r.rows]));
    for (const [t, n] of before) {
      if (t === 'accounts') expect(previewed['accounts.email']).toBe(n);
      else expect(previewed[t]).toBe(n);
    }
    expect((await bob(`/db approve ${request.requestId}`)).status).toBe('ok');
    for (const [t, n] of before) {
      const [row] = await truth<{ old: number; moved: number }>(
        `SELECT count(*) FILTER (WHERE email = 'Forest.N.Johnson@gmail.com')::int AS old,
                count(*) FILTER (WHERE email = 'forest@cyberia.club')::int AS moved FROM ${t}`,
      );
      expect([t, row]).toEqual([t, { old: 0, moved: n }]);
    }
    expect(await truth("SELECT lower_case_email FROM accounts WHERE email = 'forest@cyberia.club'")).toEqual([
      { lower_case_email: 'forest@cyberia.club' },
    ]);
    // The other accounts' rows did not move.
    const [ops] = await truth<{ n: number }>(
      "SELECT count(*)::int AS n FROM vms WHERE email = 'ops@cyberia.club'",
    );
    expect(ops?.n).toBe(1);
  });
});
