// `/db wraparound <target>`: transaction id and multixact age per database and of the oldest tables, with a verdict.
import { z } from 'zod';
import { intArg } from '../src/core/args.js';
import { defineOperation } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';

/** Transaction ids and multixact ids wrap around after 2^31; PostgreSQL stops assigning them just before. */
export const WRAPAROUND_LIMIT = 2 ** 31;
/** Past half the distance to the wraparound limit freezing is badly behind: act now. */
const FAIL_SHARE = 0.5;

export type Level = 'ok' | 'warn' | 'fail';

/**
 * ok: below the freeze max age (autovacuum has not had to force a freeze yet);
 * warn: past it, so an anti-wraparound autovacuum is due or running — fine if it finishes;
 * fail: more than half-way to the 2^31 limit, where the server stops assigning ids.
 */
export function ageLevel(age: number, freezeMaxAge: number): Level {
  if (age >= WRAPAROUND_LIMIT * FAIL_SHARE) return 'fail';
  if (age > freezeMaxAge) return 'warn';
  return 'ok';
}

const ORDER: Record<Level, number> = { ok: 0, warn: 1, fail: 2 };

export function worst(levels: readonly Level[]): Level {
  return levels.reduce<Level>((a, b) => (ORDER[b] > ORDER[a] ? b : a), 'ok');
}

const SETTINGS_SQL = `
SELECT current_database() AS database,
       current_setting('autovacuum_freeze_max_age')::bigint AS freeze_max_age,
       current_setting('autovacuum_multixact_freeze_max_age')::bigint AS multixact_freeze_max_age
`;

/** Every database of the cluster: pg_database is readable by every role, and age() needs no privilege. */
const DATABASES_SQL = `
SELECT d.datname AS name, age(d.datfrozenxid) AS xid_age, mxid_age(d.datminmxid) AS mxid_age,
       d.datallowconn AS allows_connections
FROM pg_database d
ORDER BY age(d.datfrozenxid) DESC, d.datname
`;

/*
 * A table is as old as the older of its heap and its TOAST table (both need freezing). System catalogs
 * (pg_catalog, information_schema) are listed only when $4 asks for them: the database rows already count
 * them (datfrozenxid), and an old catalog is named in a note instead. A per-table autovacuum_freeze_max_age only
 * lowers the server's. Temporary tables are listed too: autovacuum can never vacuum them.
 */
const OLDEST_TABLES_SQL = `
SELECT format('%I.%I', n.nspname, c.relname) AS relation,
       CASE c.relkind WHEN 'm' THEN 'materialized view' ELSE 'table' END AS kind,
       c.relpersistence = 't' AS temporary,
       greatest(age(c.relfrozenxid), age(t.relfrozenxid)) AS xid_age,
       age(c.relfrozenxid) AS heap_xid_age, age(t.relfrozenxid) AS toast_xid_age,
       greatest(mxid_age(c.relminmxid), mxid_age(t.relminmxid)) AS mxid_age,
       least(COALESCE((SELECT o.option_value FROM pg_options_to_table(c.reloptions) o
                       WHERE o.option_name = 'autovacuum_freeze_max_age')::bigint, $2::bigint), $2::bigint)
         AS freeze_max_age,
       least(COALESCE((SELECT o.option_value FROM pg_options_to_table(c.reloptions) o
                       WHERE o.option_name = 'autovacuum_multixact_freeze_max_age')::bigint, $3::bigint), $3::bigint)
         AS multixact_freeze_max_age
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
WHERE c.relkind IN ('r', 'm')
  AND ($4::boolean OR n.nspname NOT IN ('pg_catalog', 'information_schema'))
ORDER BY 4 DESC, 1
LIMIT $1
`;

/** System catalogs past the freeze max age, so that leaving them out of the list hides no risk. */
const OLD_CATALOGS_SQL = `
SELECT count(*)::int AS old
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
WHERE c.relkind IN ('r', 'm') AND n.nspname IN ('pg_catalog', 'information_schema')
  AND greatest(age(c.relfrozenxid), age(t.relfrozenxid)) > $1::bigint
`;

/*
 * What keeps freezing from advancing: the oldest snapshot or transaction of any session (the bot's own
 * excluded), prepared transactions, and replication slots. All are readable without extra privileges.
 */
const HORIZON_SQL = `
SELECT 'session' AS holder,
       format('pid %s (%s, %s, %s)', a.pid, COALESCE(a.datname, '-'), COALESCE(a.usename, '-'),
              COALESCE(a.state, a.backend_type)) AS name,
       greatest(age(a.backend_xmin), age(a.backend_xid)) AS xid_age
FROM pg_stat_activity a
WHERE (a.backend_xmin IS NOT NULL OR a.backend_xid IS NOT NULL)
  AND a.pid <> pg_backend_pid()
UNION ALL
SELECT 'prepared transaction', format('%s (%s, %s)', p.gid, p.database, p.owner), age(p.transaction)
FROM pg_prepared_xacts p
UNION ALL
SELECT 'replication slot', r.slot_name, greatest(age(r.xmin), age(r.catalog_xmin))
FROM pg_replication_slots r
WHERE r.xmin IS NOT NULL OR r.catalog_xmin IS NOT NULL
ORDER BY 3 DESC
LIMIT 3
`;

interface Settings {
  database: string;
  freeze_max_age: number;
  multixact_freeze_max_age: number;
}

interface DatabaseRow {
  name: string;
  xid_age: number;
  mxid_age: number;
  allows_connections: boolean;
}

interface TableRow {
  relation: string;
  kind: string;
  temporary: boolean;
  xid_age: number;
  heap_xid_age: number;
  toast_xid_age: number | null;
  mxid_age: number;
  freeze_max_age: number;
  multixact_freeze_max_age: number;
}

interface HorizonRow {
  holder: string;
  name: string;
  xid_age: number;
}

const COLUMNS: Column[] = [
  { key: 'name', label: 'database / table', kind: 'text' },
  { key: 'scope', label: 'scope', kind: 'text' },
  { key: 'xid_age', label: 'xid age', kind: 'count' },
  { key: 'freeze_percent', label: '% freeze max', kind: 'percent' },
  { key: 'limit_percent', label: '% of limit', kind: 'percent' },
  { key: 'mxid_age', label: 'mxid age', kind: 'count' },
  { key: 'mxid_limit_percent', label: 'mxid % limit', kind: 'percent' },
  { key: 'level', label: 'verdict', kind: 'text' },
];

/** A share in percent, to 1/1000 of a percent so young databases do not all read 0. */
const percent = (part: number, whole: number): number =>
  whole > 0 ? Math.round((100_000 * part) / whole) / 1000 : 0;

/** A row of the result; a type alias (not an interface) so it stays assignable to Row. */
type AgeRow = {
  name: string;
  scope: string;
  xid_age: number;
  freeze_percent: number;
  limit_percent: number;
  mxid_age: number;
  mxid_freeze_percent: number;
  mxid_limit_percent: number;
  freeze_max_age: number;
  multixact_freeze_max_age: number;
  level: Level;
};

function ageRow(
  name: string,
  scope: string,
  ages: { xid: number; mxid: number; freezeMaxAge: number; multixactFreezeMaxAge: number },
): AgeRow {
  const level = worst([
    ageLevel(ages.xid, ages.freezeMaxAge),
    ageLevel(ages.mxid, ages.multixactFreezeMaxAge),
  ]);
  return {
    name,
    scope,
    xid_age: ages.xid,
    freeze_percent: percent(ages.xid, ages.freezeMaxAge),
    limit_percent: percent(ages.xid, WRAPAROUND_LIMIT),
    mxid_age: ages.mxid,
    mxid_freeze_percent: percent(ages.mxid, ages.multixactFreezeMaxAge),
    mxid_limit_percent: percent(ages.mxid, WRAPAROUND_LIMIT),
    freeze_max_age: ages.freezeMaxAge,
    multixact_freeze_max_age: ages.multixactFreezeMaxAge,
    level,
  };
}

export default defineOperation({
  name: 'wraparound',
  summary:
    'Transaction id wraparound risk: xid and multixact age per database and oldest tables, ok/warn/fail',
  usage: 'wraparound <target> [--limit 10] [--system]',
  description:
    'age(datfrozenxid) and mxid_age(datminmxid) of every database, as a share of autovacuum_freeze_max_age ' +
    '(when autovacuum forces a freeze) and of the 2^31 limit (when PostgreSQL stops assigning ids), then the ' +
    'oldest tables of the target database (the older of each table and its TOAST table; system catalogs ' +
    'only with --system, or in a note when one is past the freeze max age). Verdict: ok below ' +
    'the freeze max age, warn past it (an anti-wraparound vacuum is due or running), fail past half the ' +
    'limit. Also names what holds the xmin horizon back (old sessions, prepared transactions, slots).',
  args: z.object({
    limit: intArg({ min: 1, max: 100, default: 10 }),
    /** List pg_catalog and information_schema tables too. */
    system: z.boolean().default(false),
  }),
  risk: 'read',
  // Every database, then its own top-N tables: --limit counts tables, not rows of the answer.
  paged: false,
  async run(ctx) {
    return await ctx.db.read(async (session) => {
      const [settings] = await session.query<Settings>(SETTINGS_SQL);
      if (!settings) throw new Error('wraparound: no settings row');
      const databases = await session.query<DatabaseRow>(DATABASES_SQL);
      const tables = await session.cursor<TableRow>(OLDEST_TABLES_SQL, [
        ctx.args.limit,
        settings.freeze_max_age,
        settings.multixact_freeze_max_age,
        ctx.args.system,
      ]);
      const [catalogs] = ctx.args.system
        ? []
        : await session.query<{ old: number }>(OLD_CATALOGS_SQL, [settings.freeze_max_age]);
      const horizon = await session.query<HorizonRow>(HORIZON_SQL);

      const databaseRows = databases.map((d) =>
        ageRow(d.name, d.name === settings.database ? 'database (this one)' : 'database', {
          xid: d.xid_age,
          mxid: d.mxid_age,
          freezeMaxAge: settings.freeze_max_age,
          multixactFreezeMaxAge: settings.multixact_freeze_max_age,
        }),
      );
      const tableRows = tables.rows.map((t) => ({
        ...ageRow(t.relation, t.temporary ? `temporary ${t.kind}` : t.kind, {
          xid: t.xid_age,
          mxid: t.mxid_age,
          freezeMaxAge: t.freeze_max_age,
          multixactFreezeMaxAge: t.multixact_freeze_max_age,
        }),
        heap_xid_age: t.heap_xid_age,
        toast_xid_age: t.toast_xid_age,
      }));

      const overall = worst(databaseRows.map((r) => r.level));
      const oldest = databases[0];
      const headline = oldest
        ? `wraparound: ${overall} — oldest database ${oldest.name} at xid age ${formatCount(oldest.xid_age)} ` +
          `(${percent(oldest.xid_age, settings.freeze_max_age).toFixed(1)}% of autovacuum_freeze_max_age, ` +
          `${percent(oldest.xid_age, WRAPAROUND_LIMIT).toFixed(1)}% of the 2^31 limit)`
        : 'wraparound: no databases visible';

      const notes: string[] = [
        `verdict: ok below autovacuum_freeze_max_age (${formatCount(settings.freeze_max_age)}), warn past it ` +
          '(an anti-wraparound autovacuum is due or running), fail past half of the 2^31 limit',
      ];
      const holder = horizon[0];
      if (holder && overall !== 'ok') {
        notes.push(
          `oldest xmin holder: ${holder.holder} ${holder.name}, xid age ${formatCount(holder.xid_age)} — ` +
            'freezing cannot advance past it',
        );
      }
      const temporary = tableRows.filter((r) => r.scope.startsWith('temporary') && r.level !== 'ok');
      if (temporary.length > 0) {
        notes.push(
          `temporary tables ${temporary.map((r) => r.name).join(', ')} are old: autovacuum cannot vacuum ` +
            'temporary tables; only their session can (or ends, which drops them)',
        );
      }
      const oldCatalogs = catalogs?.old ?? 0;
      if (oldCatalogs > 0) {
        notes.push(
          `${formatCount(oldCatalogs)} system ${oldCatalogs === 1 ? 'catalog is' : 'catalogs are'} past ` +
            'autovacuum_freeze_max_age; `--system` lists them',
        );
      }
      if (tables.truncated) notes.push(`only the ${formatCount(tableRows.length)} oldest tables are shown`);

      return {
        headline,
        columns: COLUMNS,
        rows: [...databaseRows, ...tableRows] satisfies Row[],
        truncated: false,
        notes,
        data: {
          level: overall,
          database: settings.database,
          freezeMaxAge: settings.freeze_max_age,
          multixactFreezeMaxAge: settings.multixact_freeze_max_age,
          limit: WRAPAROUND_LIMIT,
          oldestXminHolders: horizon.map((h) => ({ holder: h.holder, name: h.name, xidAge: h.xid_age })),
        },
      };
    });
  },
});
