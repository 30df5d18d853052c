// `takeSamples(target, at)`: one history sample of a target (sizes, connections, cache, xid age, lag,
// pg_stat_statements totals) read in one read-only transaction and stored in the state database.

import { statementColumns } from '../../commands/slow-queries.js';
import type { Logger } from '../core/log.js';
import { quoteIdent } from '../engine/relations.js';
import type { Session, TargetDb } from '../engine/types.js';
import type { SampleTarget } from '../schedules/hooks.js';
import type { Metric, Sample } from './metrics.js';
import type { HistoryStore } from './store.js';

export const DEFAULT_TOP_TABLES = 10;
export const DEFAULT_RETENTION_SECONDS = 90 * 86_400;

export interface SamplerDeps {
  targets: { get(name: string): TargetDb };
  store: HistoryStore;
  log?: Logger;
  /** How many of the largest tables get a size sample (default 10). */
  topTables?: number;
  /** Samples older than this are deleted after each run (default 90 days). */
  retentionSeconds?: number;
}

const DATABASE_SQL = `
SELECT pg_database_size(current_database())::float8 AS bytes,
       age(d.datfrozenxid)::float8 AS xid_age,
       s.blks_hit::float8 AS hit, s.blks_read::float8 AS read,
       pg_is_in_recovery() AS standby
FROM pg_database d
LEFT JOIN pg_stat_database s ON s.datid = d.oid
WHERE d.datname = current_database()`;

/** Ordinary tables and materialized views outside the system schemas, largest first. */
const TABLES_SQL = `
SELECT n.nspname AS schema, c.relname AS name, pg_total_relation_size(c.oid)::float8 AS bytes
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
ORDER BY bytes DESC, n.nspname, c.relname
LIMIT $1`;

/** Client sessions of this database by state; dbops' own (by pid) left out, others' hidden states named. */
const CONNECTIONS_SQL = `
SELECT coalesce(a.state, 'hidden') AS state, count(*)::float8 AS n
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.backend_type = 'client backend' AND NOT (a.pid = ANY($1::int[]))
GROUP BY 1`;

/** States always sampled, so a series shows 0 instead of a gap when none is in that state. */
const USUAL_STATES = ['active', 'idle', 'idle in transaction'];

const PRIMARY_LAG_SQL = `
SELECT max(extract(epoch FROM r.replay_lag))::float8 AS lag, count(*)::int AS standbys
FROM pg_stat_replication r`;

const STANDBY_LAG_SQL = `
SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS lag`;

/** The sequences that used most of their range (pg_sequences, PostgreSQL 10+); never-called ones have no value. */
const SEQUENCES_SQL = `
SELECT schemaname || '.' || sequencename AS name,
       (100 * CASE WHEN increment_by > 0 THEN last_value::numeric - min_value ELSE max_value::numeric - last_value END
            / NULLIF(max_value::numeric - min_value, 0))::float8 AS used
FROM pg_sequences
WHERE last_value IS NOT NULL AND schemaname NOT IN ('pg_catalog', 'information_schema')
ORDER BY used DESC NULLS LAST, name
LIMIT $1`;

const STATEMENTS_EXTENSION_SQL = `
SELECT e.extversion AS version, n.nspname AS schema,
       EXISTS (SELECT 1 FROM pg_settings s WHERE s.name = 'pg_stat_statements.max') AS loaded
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'`;

/** Runs one metric's query under a savepoint: a failure (no privilege, a timeout) gives null, not no sample. */
async function guarded<T>(session: Session, fn: () => Promise<T>): Promise<T | undefined> {
  await session.query('SAVEPOINT dbops_sample');
  try {
    const value = await fn();
    await session.query('RELEASE SAVEPOINT dbops_sample');
    return value;
  } catch {
    await session.query('ROLLBACK TO SAVEPOINT dbops_sample');
    return undefined;
  }
}

/** Reads every metric of one target; values it cannot read are null ("not available"). */
export async function readSamples(
  db: TargetDb,
  target: string,
  at: Date,
  topTables = DEFAULT_TOP_TABLES,
): Promise<Sample[]> {
  const serverVersion = await db.serverVersion();
  return await db.read(async (session) => {
    const out: Sample[] = [];
    const add = (metric: Metric, value: number | null | undefined, subject = '') =>
      out.push({ target, metric, subject, at, value: value ?? null });

    const [database] = await session.query<{
      bytes: number;
      xid_age: number;
      hit: number | null;
      read: number | null;
      standby: boolean;
    }>(DATABASE_SQL);
    add('database_bytes', database?.bytes);
    add('xid_age', database?.xid_age);
    const hit = database?.hit ?? 0;
    const read = database?.read ?? 0;
    add('cache_hit_percent', hit + read > 0 ? (100 * hit) / (hit + read) : null);

    const tables = await guarded(session, () =>
      session.query<{ schema: string; name: string; bytes: number }>(TABLES_SQL, [topTables]),
    );
    for (const t of tables ?? []) add('table_bytes', t.bytes, `${t.schema}.${t.name}`);

    const states = await guarded(session, () =>
      // Asked inside the transaction: the connection it runs on is one of dbops' own.
      session.query<{ state: string; n: number }>(CONNECTIONS_SQL, [db.ownPids()]),
    );
    if (states) {
      const counts = new Map<string, number>(USUAL_STATES.map((s) => [s, 0]));
      for (const row of states) counts.set(row.state, row.n);
      for (const [state, n] of counts) add('connections', n, state);
    } else add('connections', null, 'active');

    const lag = await guarded(session, async () => {
      if (database?.standby) return (await session.query<{ lag: number | null }>(STANDBY_LAG_SQL))[0]?.lag;
      const [row] = await session.query<{ lag: number | null; standbys: number }>(PRIMARY_LAG_SQL);
      // Standbys with no lag to report have replayed everything; no standby at all is "not available".
      return row && row.standbys > 0 ? (row.lag ?? 0) : null;
    });
    add('replication_lag_seconds', lag);

    if (serverVersion >= 100_000) {
      const sequences = await guarded(session, () =>
        session.query<{ name: string; used: number | null }>(SEQUENCES_SQL, [topTables]),
      );
      for (const s of sequences ?? []) add('sequence_used_percent', s.used, s.name);
    }

    const statements = await guarded(session, async () => {
      const [ext] = await session.query<{ version: string; schema: string; loaded: boolean }>(
        STATEMENTS_EXTENSION_SQL,
      );
      if (!ext?.loaded) return undefined;
      const columns = statementColumns(serverVersion, ext.version);
      const [row] = await session.query<{ calls: number | null; seconds: number | null }>(
        `SELECT sum(s.calls)::float8 AS calls, (sum(${columns.total}) / 1000)::float8 AS seconds
         FROM ${quoteIdent(ext.schema)}.pg_stat_statements s
         WHERE s.dbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())`,
      );
      return { calls: row?.calls ?? 0, seconds: row?.seconds ?? 0 };
    });
    add('slow_query_calls', statements?.calls);
    add('slow_query_seconds', statements?.seconds);
    return out;
  });
}

/** The SampleTarget schedules call: reads, stores, and prunes what is past the retention. */
export function createSampler(deps: SamplerDeps): SampleTarget {
  const retention = deps.retentionSeconds ?? DEFAULT_RETENTION_SECONDS;
  return async (target, at) => {
    const samples = await readSamples(deps.targets.get(target), target, at, deps.topTables);
    const stored = await deps.store.insert(samples);
    const pruned = await deps.store.prune(new Date(at.getTime() - retention * 1000));
    deps.log?.info({ target, samples: stored, pruned }, 'history samples stored');
    return { samples: stored };
  };
}
