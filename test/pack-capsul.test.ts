// The capsul pack (runbooks/capsul-flask.md) through the whole core, against the demo's capsul fixture.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.js';
import { loadConfigText } from '../src/config/load.js';
import { checkPackExpectations } from '../src/packs/expectations.js';
import { builtinPacksDir, loadPacks } from '../src/packs/load.js';
import { as, startApp } from './helpers/app.js';
import { adminQuery, createDatabase } from './helpers/db.js';

const FIXTURE = readFileSync(new URL('../src/demo/fixtures/capsul.sql', import.meta.url), 'utf8');

/** Every table of the runbook's change-email procedure, in its order (accounts twice: two columns). */
const PROCEDURE = [
  'accounts.lower_case_email',
  'accounts.email',
  'login_tokens',
  'operations',
  'payment_sessions',
  'payments',
  'ssh_public_keys',
  'unresolved_btcpay_invoices',
  'vm_ssh_authorized_key',
  'vm_ssh_host_key',
  'vms',
] as const;
const TABLES = PROCEDURE.map((step) => step.split('.')[0] ?? step);

const JAMIE = 'jamie.rivera@example.net';

let app: App;
let db: { name: string; url: string };

const q = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) =>
  adminQuery<T>(sql, params, db.name);

/** Rows per procedure step whose email is `email`, computed here, table by table. */
async function rowsPerStep(email: string): Promise<{ step: string; rows: number }[]> {
  const out: { step: string; rows: number }[] = [];
  for (const step of PROCEDURE) {
    const table = step.split('.')[0];
    const [row] = await q<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE email = $1`, [email]);
    out.push({ step, rows: row?.n ?? -1 });
  }
  return out;
}

/** An account from the generated part of the fixture with rows in as many tables as possible. */
async function busyAccount(exclude: string[]): Promise<string> {
  const [row] = await q<{ email: string }>(
    `SELECT a.email FROM accounts a
      WHERE a.email <> ALL($1::text[])
        AND EXISTS (SELECT 1 FROM vms v WHERE v.email = a.email)
        AND EXISTS (SELECT 1 FROM payments p WHERE p.email = a.email)
        AND EXISTS (SELECT 1 FROM login_tokens t WHERE t.email = a.email)
      ORDER BY a.email LIMIT 1`,
    [exclude],
  );
  if (!row) throw new Error('the fixture has no account with VMs, payments and tokens');
  return row.email;
}

beforeAll(async () => {
  const [capsul, state] = await Promise.all([
    createDatabase('capsul', FIXTURE),
    createDatabase('capsulstate'),
  ]);
  db = capsul;
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
    loadConfigText(yaml, 'capsul-test.yaml', { STATE_URL: state.url, CAPSUL_URL: db.url }),
  );
});

afterAll(async () => app?.close());

describe('the capsul pack', () => {
  it('loads from commands/packs, and its schema expectations hold on the fixture', async () => {
    const pack = loadPacks([builtinPacksDir()]).find((p) => p.name === 'capsul');
    expect(pack?.operations.map((o) => o.def.name).sort()).toEqual([
      'account',
      'change-email',
      'invalidate-payment',
      'payments',
      'schema-version',
      'vms',
    ]);
    if (!pack) return;
    expect(await checkPackExpectations(db.url, pack)).toEqual([]);
    // The change-email steps cover every table that has an email column, none left out.
    const withEmail = await q<{ table_name: string }>(
      `SELECT DISTINCT table_name FROM information_schema.columns
        WHERE table_schema = 'public' AND column_name = 'email' ORDER BY 1`,
    );
    expect(withEmail.map((r) => r.table_name)).toEqual([...new Set(TABLES)].sort());
  });

  it('schema-version compares the database with expected_schema_version: ok, behind, ahead', async () => {
    const [truth] = await q<{ version: number }>('SELECT version FROM schemaversion');
    expect(truth?.version).toBe(21);
    const ok = await as(app, 'bob')('/db schema-version capsul');
    expect(ok.status).toBe('ok');
    expect(ok.result?.display).toBe('card');
    expect(ok.result?.rows).toEqual([
      {
        database_version: 21,
        expected_version: 21,
        verdict: 'ok',
        meaning: 'the database is at the version the app expects',
      },
    ]);

    // The app was upgraded and expects 23: the database is behind; then a rollback to 20: ahead.
    await q('UPDATE schemaversion SET version = 19');
    const behind = await as(app, 'bob')('/db schema-version capsul');
    expect(behind.result?.rows?.[0]).toMatchObject({ database_version: 19, verdict: 'behind' });
    expect(behind.result?.rows?.[0]?.meaning).toMatch(/^2 version\(s\) behind: the app runs/);
    await q('UPDATE schemaversion SET version = 24');
    const ahead = await as(app, 'bob')('/db schema-version capsul');
    expect(ahead.result?.rows?.[0]).toMatchObject({ database_version: 24, verdict: 'ahead' });
    expect(ahead.text.replace(/\s+/g, ' ')).toContain('does not support schema downgrades');
    await q('UPDATE schemaversion SET version = 21');
  });

  it('looks an account up as a card, by its address in any case', async () => {
    const reply = await as(app, 'bob')('/db lookup capsul account Jamie.Rivera@Example.net');
    expect(reply.status).toBe('ok');
    expect(reply.result?.display).toBe('card');
    const [truth] = await q<Record<string, unknown>>(
      `SELECT a.email, a.lower_case_email, a.created, a.ever_logged_in, a.account_balance_warning,
              (SELECT count(*)::int FROM vms WHERE email = a.email AND deleted IS NULL) AS active_vms,
              (SELECT count(*)::int FROM vms WHERE email = a.email AND deleted IS NOT NULL) AS deleted_vms,
              (SELECT count(*)::int FROM ssh_public_keys WHERE email = a.email) AS ssh_keys,
              (SELECT count(*)::int FROM payments WHERE email = a.email) AS payments,
              (SELECT count(*)::int FROM payments WHERE email = a.email AND invalidated) AS invalidated_payments,
              (SELECT coalesce(sum(dollars), 0)::float8 FROM payments
                WHERE email = a.email AND NOT invalidated) AS dollars_paid,
              (SELECT count(*)::int FROM unresolved_btcpay_invoices WHERE email = a.email) AS unresolved_invoices
         FROM accounts a WHERE a.email = $1`,
      [JAMIE],
    );
    if (!truth) throw new Error('fixture: jamie has no account');
    expect(reply.result?.rows).toEqual([{ ...truth, created: (truth.created as Date).toISOString() }]);
    // What the fixture planted for this account.
    expect(truth).toMatchObject({ active_vms: 1, ssh_keys: 1, unresolved_invoices: 1 });
    expect(reply.text).toMatch(new RegExp(`dollars paid:\\s+${truth.dollars_paid}\\b`));
    const none = await as(app, 'bob')('/db lookup capsul account nobody@example.org');
    expect(none.status).toBe('ok');
    expect(none.result?.rows).toEqual([]);
    const bad = await as(app, 'bob')("/db lookup capsul account \"x' OR ''='\"");
    expect(bad).toMatchObject({ status: 'invalid', code: 'invalid_argument' });
  });

  it('lists the VMs and the payments of an account', async () => {
    const email = await busyAccount([JAMIE]);
    const vms = await as(app, 'bob')(`/db vms capsul ${email}`);
    expect(vms.status).toBe('ok');
    const active = await q<{ id: string }>(
      'SELECT id FROM vms WHERE email = $1 AND deleted IS NULL ORDER BY created DESC, id',
      [email],
    );
    expect(vms.result?.rows?.map((r) => r.id)).toEqual(active.map((r) => r.id));
    const all = await as(app, 'bob')(`/db vms capsul ${email} --deleted`);
    const [count] = await q<{ n: number }>('SELECT count(*)::int AS n FROM vms WHERE email = $1', [email]);
    expect(all.result?.rows).toHaveLength(count?.n ?? -1);

    const payments = await as(app, 'bob')(`/db payments capsul ${email}`);
    const truth = await q<{
      id: number;
      created: Date;
      email: string;
      dollars: number;
      invalidated: boolean;
    }>(
      `SELECT id, created, email, dollars::float8 AS dollars, invalidated FROM payments
        WHERE email = $1 ORDER BY created DESC, id DESC`,
      [email],
    );
    expect(truth.length).toBeGreaterThan(0);
    expect(payments.result?.rows).toEqual(truth.map((p) => ({ ...p, created: p.created.toISOString() })));
  });

  it('finds the same person everywhere: vms, payments and the lookup match the address ignoring case', async () => {
    const email = await busyAccount([JAMIE]);
    const shouted = email.toUpperCase();
    const mixed = [...email].map((c, i) => (i % 2 === 0 ? c.toUpperCase() : c.toLowerCase())).join('');
    expect(shouted).not.toBe(email);
    for (const key of [shouted, mixed]) {
      const account = await as(app, 'bob')(`/db lookup capsul account ${key}`);
      expect(account.result?.rows.map((r) => r.email)).toEqual([email]);
      const exact = await as(app, 'bob')(`/db payments capsul ${email}`);
      const payments = await as(app, 'bob')(`/db payments capsul ${key}`);
      expect(payments.result?.rows.length).toBeGreaterThan(0);
      expect(payments.result?.rows).toEqual(exact.result?.rows);
      expect(account.result?.rows[0]?.payments).toBe(payments.result?.rows.length);
      const vms = await as(app, 'bob')(`/db vms capsul ${key} --deleted`);
      const [n] = await q<{ n: number }>('SELECT count(*)::int AS n FROM vms WHERE email = $1', [email]);
      expect(vms.result?.rows).toHaveLength(n?.n ?? -1);
      expect(n?.n).toBeGreaterThan(0);
    }
  });

  it('invalidates a payment after approval; an invalidated one is nothing to do', async () => {
    const [payment] = await q<{ id: number; email: string; created: Date; dollars: number }>(
      `SELECT id, email, created, dollars::float8 AS dollars FROM payments
        WHERE email = $1 AND NOT invalidated ORDER BY id LIMIT 1`,
      [JAMIE],
    );
    if (!payment) throw new Error('fixture: jamie has no valid payment');
    const request = await as(app, 'alice')(`/db invalidate-payment capsul ${payment.id}`);
    expect(request.status).toBe('pending');
    expect(request.result?.rows).toEqual([
      { ...payment, created: payment.created.toISOString(), invalidated: false },
    ]);
    const [still] = await q<{ invalidated: boolean }>('SELECT invalidated FROM payments WHERE id = $1', [
      payment.id,
    ]);
    expect(still?.invalidated).toBe(false);
    const done = await as(app, 'bob')(`/db approve ${request.requestId}`);
    expect(done.status).toBe('ok');
    expect(done.result?.rows).toEqual([{ step: 'payments', rows: 1 }]);
    const [after] = await q<{ invalidated: boolean }>('SELECT invalidated FROM payments WHERE id = $1', [
      payment.id,
    ]);
    expect(after?.invalidated).toBe(true);
    const again = await as(app, 'alice')(`/db invalidate-payment capsul ${payment.id}`);
    expect(again.status).toBe('ok');
    expect(again.message).toContain('nothing to do');
    const bad = await as(app, 'alice')('/db invalidate-payment capsul 0');
    expect(bad).toMatchObject({ status: 'invalid', code: 'invalid_argument' });
    // Give it back for the tests below.
    await q('UPDATE payments SET invalidated = false WHERE id = $1', [payment.id]);
  });
});

describe('change-email', () => {
  it('relies on references to accounts(email) that are checked at commit', async () => {
    const fks = await q<{ table: string; deferrable: boolean; deferred: boolean }>(
      `SELECT conrelid::regclass::text AS table, condeferrable AS deferrable, condeferred AS deferred
         FROM pg_constraint WHERE contype = 'f' AND confrelid = 'accounts'::regclass ORDER BY 1`,
    );
    expect(fks.map((f) => f.table)).toEqual([...new Set(TABLES)].filter((t) => t !== 'accounts').sort());
    expect(fks.every((f) => f.deferrable && f.deferred)).toBe(true);
  });

  it('previews rows per table, then moves every table in one transaction after approval', async () => {
    const before = await rowsPerStep(JAMIE);
    // Jamie has rows in every table of the procedure.
    expect(before.every((s) => s.rows > 0)).toBe(true);
    const NEW = 'jamie@rivera.example';
    const request = await as(app, 'alice')(`/db change-email capsul ${JAMIE} ${NEW}`);
    expect(request.status).toBe('pending');
    expect(request.result?.rows).toEqual(before);
    expect(request.text).toContain('WARNING: The account logs in with the new address');
    expect(await rowsPerStep(NEW)).toEqual(PROCEDURE.map((step) => ({ step, rows: 0 })));

    const done = await as(app, 'bob')(`/db approve ${request.requestId}`);
    expect(done.status).toBe('ok');
    expect(done.result?.rows).toEqual(before);
    expect(done.result?.notes ?? []).toEqual([]);
    expect(await rowsPerStep(NEW)).toEqual(before);
    expect(await rowsPerStep(JAMIE)).toEqual(PROCEDURE.map((step) => ({ step, rows: 0 })));
    const [account] = await q<{ lower_case_email: string }>(
      'SELECT lower_case_email FROM accounts WHERE email = $1',
      [NEW],
    );
    expect(account?.lower_case_email).toBe(NEW);
    // Back, so the account keeps its planted address for the demo-like checks below.
    const back = await as(app, 'alice')(`/db change-email capsul ${NEW} ${JAMIE}`);
    expect((await as(app, 'bob')(`/db approve ${back.requestId}`)).status).toBe('ok');
    expect(await rowsPerStep(JAMIE)).toEqual(before);
  });

  it('is refused when the new address already has an account: the preview says so, execution changes nothing', async () => {
    const other = await busyAccount([JAMIE]);
    const before = await rowsPerStep(JAMIE);
    const otherBefore = await rowsPerStep(other);
    // In another case: the address is the same account to the app.
    const request = await as(app, 'alice')(`/db change-email capsul ${JAMIE} ${other.toUpperCase()}`);
    expect(request.status).toBe('pending');
    expect(request.result?.rows?.[0]).toEqual({
      step: 'REFUSED: the new address already has an account',
      rows: 1,
    });
    expect(request.text).toContain('approving such a request fails and changes nothing');
    expect(request.result?.rows?.slice(1)).toEqual(before);
    const done = await as(app, 'bob')(`/db approve ${request.requestId}`);
    expect(done.status).toBe('failed');
    expect(done.message).toMatch(
      /duplicate key value violates unique constraint "accounts_lower_case_email_idx"/,
    );
    expect(await rowsPerStep(JAMIE)).toEqual(before);
    expect(await rowsPerStep(other)).toEqual(otherBefore);
  });

  it('is atomic: when the last step fails, the ten before it are rolled back', async () => {
    const before = await rowsPerStep(JAMIE);
    const NEW = 'blocked@example.org';
    // Only vms refuses the new address: every step before it succeeds, then the last one fails.
    await q(`ALTER TABLE vms ADD CONSTRAINT test_vms_not_blocked CHECK (email <> '${NEW}')`);
    try {
      const request = await as(app, 'alice')(`/db change-email capsul ${JAMIE} ${NEW}`);
      expect(request.result?.rows).toEqual(before);
      const done = await as(app, 'bob')(`/db approve ${request.requestId}`);
      expect(done.status).toBe('failed');
      expect(done.message).toContain('test_vms_not_blocked');
      expect(await rowsPerStep(JAMIE)).toEqual(before);
      expect(await rowsPerStep(NEW)).toEqual(PROCEDURE.map((step) => ({ step, rows: 0 })));
    } finally {
      await q('ALTER TABLE vms DROP CONSTRAINT test_vms_not_blocked');
    }
  });

  it('has nothing to do for an address without an account, and checks both addresses', async () => {
    const none = await as(app, 'alice')('/db change-email capsul nobody@example.org someone@example.org');
    expect(none.status).toBe('ok');
    expect(none.message).toContain('nothing to do');
    const bad = await as(app, 'alice')(`/db change-email capsul ${JAMIE} not-an-address`);
    expect(bad).toMatchObject({ status: 'invalid', code: 'invalid_argument' });
    expect(bad.message).toContain('expected an email address');
    const missing = await as(app, 'alice')(`/db change-email capsul ${JAMIE}`);
    expect(missing).toMatchObject({ status: 'invalid' });
  });
});
