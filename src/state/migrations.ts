// The state database's schema as an ordered list of versioned migrations, applied once under an advisory lock.

import type pg from 'pg';
import { ALERTS_HISTORY_MIGRATION } from '../alerts/migration.js';
import { DIGEST_MIGRATION } from '../digest/migration.js';
import { ANNOUNCE_MIGRATION } from '../notify/approvals-migration.js';
import { SCHEDULES_MIGRATION } from '../schedules/migration.js';
import { BACKENDS_MIGRATION } from './backends.js';
import { MEMBER_ROLES_MIGRATION } from './member-roles.js';
import { REFS_MIGRATION } from './paged-reads.js';
import { REASONS_MIGRATION } from './reasons-migration.js';
import { inTransaction } from './transaction.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * Applied in order; an applied migration is never edited, a change is a new version.
 * The status list in version 1 mirrors REQUEST_STATUSES in src/core/types.ts (a test keeps them equal).
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'requests, votes and audit',
    sql: `
CREATE SEQUENCE dbops_request_id_seq;

CREATE TABLE dbops_requests (
  id bigint PRIMARY KEY,
  status text NOT NULL CHECK (status IN
    ('pending', 'approved', 'running', 'succeeded', 'failed', 'denied', 'cancelled', 'expired')),
  operation text NOT NULL,
  target text NOT NULL,
  environment text NOT NULL,
  args jsonb NOT NULL,
  command text NOT NULL,
  risk text NOT NULL CHECK (risk IN ('read', 'write', 'destructive')),
  requester_person text NOT NULL,
  requester_identity text NOT NULL,
  requester_surface text NOT NULL,
  channel text,
  thread text,
  preview jsonb NOT NULL,
  approvals_required int NOT NULL CHECK (approvals_required >= 1),
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  result jsonb,
  error text,
  reason text,
  refs jsonb NOT NULL DEFAULT '{}'
);

-- One destructive operation per target at a time: a second request cannot become running.
CREATE UNIQUE INDEX dbops_requests_one_running_per_target ON dbops_requests (target) WHERE status = 'running';
CREATE INDEX dbops_requests_pending_expiry ON dbops_requests (expires_at) WHERE status = 'pending';
CREATE INDEX dbops_requests_target_created ON dbops_requests (target, created_at);

CREATE TABLE dbops_votes (
  request_id bigint NOT NULL REFERENCES dbops_requests (id) ON DELETE CASCADE,
  person text NOT NULL,
  identity text NOT NULL,
  surface text NOT NULL,
  vote text NOT NULL CHECK (vote IN ('approve', 'deny')),
  reason text,
  at timestamptz NOT NULL,
  -- One person votes once, whichever of their identities they use.
  UNIQUE (request_id, person)
);

CREATE TABLE dbops_audit (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL,
  request_id bigint,
  event text NOT NULL,
  person text,
  identity text NOT NULL,
  surface text NOT NULL,
  channel text,
  thread text,
  operation text,
  target text,
  args jsonb,
  risk text,
  approvers text[],
  outcome text NOT NULL,
  duration_ms int,
  error text,
  detail jsonb
);

CREATE INDEX dbops_audit_target_at ON dbops_audit (target, at);
CREATE INDEX dbops_audit_request ON dbops_audit (request_id);
`,
  },
  {
    version: 2,
    name: 'channel bindings',
    sql: `
CREATE TABLE dbops_channel_bindings (
  channel text PRIMARY KEY,
  target text NOT NULL,
  bound_by text NOT NULL,
  bound_at timestamptz NOT NULL
);
`,
  },
  {
    version: 3,
    name: 'deliveries seen',
    sql: `
CREATE TABLE dbops_deliveries (
  key text PRIMARY KEY,
  seen_at timestamptz NOT NULL
);
CREATE INDEX dbops_deliveries_seen_at ON dbops_deliveries (seen_at);
`,
  },
  {
    version: 4,
    name: 'leases on running requests',
    sql: `
-- The replica running a request renews its lease; a request whose lease ran out was left behind by a
-- replica that died, and is reported interrupted instead of blocking its target forever.
ALTER TABLE dbops_requests ADD COLUMN runner text, ADD COLUMN lease_until timestamptz;
-- Runs started by a dbops from before leases get ten minutes to finish.
UPDATE dbops_requests SET lease_until = now() + interval '10 minutes' WHERE status = 'running';
CREATE INDEX dbops_requests_running_lease ON dbops_requests (lease_until) WHERE status = 'running';
`,
  },
  {
    version: 5,
    name: 'cancelling running requests',
    sql: `
-- A person asks to stop a running request; the replica running it notices (it polls) and aborts the run.
ALTER TABLE dbops_requests ADD COLUMN cancel_requested_by jsonb, ADD COLUMN cancel_requested_at timestamptz;
-- Approved requests that could not start expire like pending ones.
CREATE INDEX dbops_requests_approved_expiry ON dbops_requests (expires_at) WHERE status = 'approved';
`,
  },
  BACKENDS_MIGRATION,
  SCHEDULES_MIGRATION,
  ALERTS_HISTORY_MIGRATION,
  REASONS_MIGRATION,
  REFS_MIGRATION,
  DIGEST_MIGRATION,
  MEMBER_ROLES_MIGRATION,
  ANNOUNCE_MIGRATION,
];

/** Any fixed bigint; every dbops replica uses the same one so their migrations serialize. */
export const MIGRATION_LOCK_KEY = 4_242_017_001;

/** PostgreSQL's undefined_table: the versions table does not exist yet (a fresh state database). */
const UNDEFINED_TABLE = '42P01';

/**
 * True when every migration is recorded already: one read, no lock, no transaction, which is what every
 * start after the first finds (each `dbops exec` is a start).
 */
async function upToDate(pool: pg.Pool, migrations: readonly Migration[]): Promise<boolean> {
  try {
    const { rows } = await pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM dbops_schema_migrations WHERE version = ANY($1::int[])',
      [migrations.map((m) => m.version)],
    );
    return rows[0]?.n === migrations.length;
  } catch (err) {
    if ((err as { code?: unknown }).code === UNDEFINED_TABLE) return false;
    throw err;
  }
}

/**
 * Brings the schema up to date in one transaction, unless one read shows it is already. The advisory
 * lock is taken before anything else, so replicas starting together wait for each other instead of
 * racing on CREATE TABLE; each sees what the previous one recorded and applies only what is still
 * missing. Returns the versions this call applied.
 */
export async function migrate(
  pool: pg.Pool,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<number[]> {
  const ordered = [...migrations].sort((a, b) => a.version - b.version);
  if (await upToDate(pool, ordered)) return [];
  return await inTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS dbops_schema_migrations (
      version int PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const done = await client.query<{ version: number }>('SELECT version FROM dbops_schema_migrations');
    const applied = new Set(done.rows.map((r) => r.version));
    const ran: number[] = [];
    for (const m of ordered) {
      if (applied.has(m.version)) continue;
      await client.query(m.sql);
      await client.query(
        'INSERT INTO dbops_schema_migrations (version, name, applied_at) VALUES ($1, $2, now())',
        [m.version, m.name],
      );
      ran.push(m.version);
    }
    return ran;
  });
}
