// `/db settings <target>`: the server settings that matter in an incident, with units, source and pending restarts.
import { z } from 'zod';
import { defineOperation } from '../src/core/operation.js';
import type { Column, Row } from '../src/core/types.js';
import { redactSettingValue } from './lib/secret-settings.js';

/** The handful that matter, in reading order; `since` for settings newer than PostgreSQL 10. */
export const SETTINGS: readonly { name: string; since?: number }[] = [
  { name: 'max_connections' },
  { name: 'shared_buffers' },
  { name: 'effective_cache_size' },
  { name: 'work_mem' },
  { name: 'maintenance_work_mem' },
  { name: 'statement_timeout' },
  { name: 'lock_timeout' },
  { name: 'idle_in_transaction_session_timeout' },
  { name: 'autovacuum' },
  { name: 'autovacuum_max_workers' },
  { name: 'autovacuum_vacuum_scale_factor' },
  { name: 'autovacuum_vacuum_insert_scale_factor', since: 130_000 },
  { name: 'autovacuum_analyze_scale_factor' },
  { name: 'checkpoint_timeout' },
  { name: 'checkpoint_completion_target' },
  { name: 'max_wal_size' },
  { name: 'min_wal_size' },
  { name: 'random_page_cost' },
  { name: 'effective_io_concurrency' },
  { name: 'log_min_duration_statement' },
  { name: 'shared_preload_libraries' },
  // Shown with its password masked (lib/secret-settings.ts): where a standby streams from.
  { name: 'primary_conninfo', since: 120_000 },
];

/*
 * pg_settings hides superuser-only settings (shared_preload_libraries among these) from roles without
 * pg_read_all_settings, so a missing row is reported, never skipped. dbops sets statement_timeout and
 * lock_timeout for its own transaction (source "session"): for those the value a new session gets is
 * reset_val, and where it comes from is found in pg_db_role_setting (ALTER DATABASE / ROLE ... SET),
 * in the order PostgreSQL applies them, else the default or the server's configuration.
 */
const SETTINGS_SQL = `
SELECT s.name, s.setting, s.unit, s.vartype, s.source, s.context, s.reset_val, s.boot_val, s.pending_restart,
       CASE WHEN s.source <> 'session' THEN current_setting(s.name) END AS shown,
       (SELECT CASE WHEN r.setdatabase <> 0 AND r.setrole <> 0 THEN 'database user'
                    WHEN r.setrole <> 0 THEN 'user'
                    WHEN r.setdatabase <> 0 THEN 'database'
                    ELSE 'global' END
        FROM pg_db_role_setting r
        CROSS JOIN LATERAL unnest(r.setconfig) AS c(item)
        WHERE r.setdatabase IN (0, (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()))
          AND r.setrole IN (0, (SELECT o.oid FROM pg_roles o WHERE o.rolname = current_user))
          AND split_part(c.item, '=', 1) = s.name
        ORDER BY (r.setdatabase <> 0 AND r.setrole <> 0) DESC, (r.setrole <> 0) DESC, (r.setdatabase <> 0) DESC
        LIMIT 1) AS session_start_source
FROM pg_settings s
WHERE s.name = ANY ($1::text[])
`;

const SERVER_SQL = `
SELECT current_setting('server_version') AS version,
       (SELECT array_agg(s.name::text ORDER BY s.name) FROM pg_settings s WHERE s.pending_restart) AS pending
`;

interface SettingRow {
  name: string;
  setting: string;
  unit: string | null;
  vartype: string;
  source: string;
  context: string;
  reset_val: string;
  boot_val: string | null;
  pending_restart: boolean;
  shown: string | null;
  session_start_source: string | null;
}

const COLUMNS: Column[] = [
  { key: 'name', label: 'setting', kind: 'text' },
  { key: 'value', label: 'value', kind: 'text' },
  { key: 'source', label: 'source', kind: 'text' },
  { key: 'pending_restart', label: 'restart pending', kind: 'bool' },
];

const MEMORY_UNITS: readonly [string, number][] = [
  ['TB', 1024 ** 4],
  ['GB', 1024 ** 3],
  ['MB', 1024 ** 2],
  ['kB', 1024],
  ['B', 1],
];
/** In milliseconds. */
const TIME_UNITS: readonly [string, number][] = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['min', 60_000],
  ['s', 1000],
  ['ms', 1],
];

type UnitSize = { kind: 'memory'; bytes: number } | { kind: 'time'; ms: number };

/** pg_settings units: "B", "kB", "MB", "8kB", "16MB", "ms", "s", "min". */
export function unitSize(unit: string | null): UnitSize | undefined {
  const match = /^(\d*)([a-zA-Z]+)$/.exec(unit ?? '');
  if (!match) return undefined;
  const factor = match[1] ? Number(match[1]) : 1;
  const name = match[2];
  const memory = MEMORY_UNITS.find(([n]) => n === name);
  if (memory) return { kind: 'memory', bytes: factor * memory[1] };
  const time = TIME_UNITS.find(([n]) => n === name);
  if (time) return { kind: 'time', ms: factor * time[1] };
  return undefined;
}

/**
 * A value in a setting's base unit as SHOW prints it: the largest unit that divides it exactly
 * ("16384" × 8kB → "128MB", "300" s → "5min"), no unit for 0 and negative values.
 */
export function showValue(raw: string, unit: string | null, vartype: string): string {
  const size = unitSize(unit);
  if (!size) return raw;
  const n = Number(raw);
  if (vartype !== 'integer')
    return Number.isFinite(n) && n > 0 && /^[a-zA-Z]+$/.test(unit ?? '') ? `${raw}${unit}` : raw;
  if (!Number.isSafeInteger(n) || n <= 0) return raw;
  const table = size.kind === 'memory' ? MEMORY_UNITS : TIME_UNITS;
  const base = n * (size.kind === 'memory' ? size.bytes : size.ms);
  const [name, factor] = table.find(([, f]) => base % f === 0) ?? ['', 1];
  return `${base / factor}${name}`;
}

/** Bytes or seconds for settings with a unit, when the value is not a -1 / 0 style switch. */
function machineValues(raw: string, unit: string | null): { bytes: number | null; seconds: number | null } {
  const size = unitSize(unit);
  const n = Number(raw);
  if (!size || !Number.isFinite(n) || n < 0) return { bytes: null, seconds: null };
  return size.kind === 'memory'
    ? { bytes: n * size.bytes, seconds: null }
    : { bytes: null, seconds: (n * size.ms) / 1000 };
}

const HIDDEN_SOURCE = 'hidden: needs pg_read_all_settings';

export default defineOperation({
  name: 'settings',
  summary: 'The server settings that matter (memory, timeouts, autovacuum, WAL, planner), with source',
  usage: 'settings <target>',
  description:
    `Shows ${SETTINGS.length} settings that matter in an incident — max_connections, memory, timeouts, ` +
    'autovacuum and its scale factors, checkpoints and WAL sizes, planner costs, slow-query logging and ' +
    'preloaded libraries — as SHOW prints them, with where each value comes from and whether a changed ' +
    'value waits for a restart; machine values in bytes or seconds. Timeouts are shown as a new session ' +
    "gets them, not dbops' own. Credentials in primary_conninfo are masked.",
  args: z.object({}),
  risk: 'read',
  async run(ctx) {
    const version = await ctx.db.serverVersion();
    const wanted = SETTINGS.filter((s) => (s.since ?? 0) <= version).map((s) => s.name);
    return await ctx.db.read(async (session) => {
      const found = await session.query<SettingRow>(SETTINGS_SQL, [wanted]);
      const [server] = await session.query<{ version: string; pending: string[] | null }>(SERVER_SQL);
      const byName = new Map(found.map((r) => [r.name, r]));

      const rows: Row[] = wanted.map((name): Row => {
        const r = byName.get(name);
        if (!r) {
          return {
            name,
            value: null,
            setting: null,
            unit: null,
            bytes: null,
            seconds: null,
            source: HIDDEN_SOURCE,
            context: null,
            pending_restart: null,
            visible: false,
          };
        }
        const ownValue = r.source === 'session';
        const raw = ownValue ? r.reset_val : r.setting;
        const source = !ownValue
          ? r.source
          : (r.session_start_source ?? (r.reset_val === r.boot_val ? 'default' : 'configuration file'));
        return {
          name,
          value: redactSettingValue(
            name,
            ownValue ? showValue(r.reset_val, r.unit, r.vartype) : (r.shown ?? r.setting),
          ),
          setting: redactSettingValue(name, raw),
          unit: r.unit,
          ...machineValues(raw, r.unit),
          source,
          context: r.context,
          pending_restart: r.pending_restart,
          visible: true,
        };
      });

      const pending = server?.pending ?? [];
      const notes: string[] = [];
      const hidden = rows.filter((r) => r.visible === false).map((r) => String(r.name));
      if (hidden.length > 0) {
        notes.push(
          `${hidden.join(', ')} ${hidden.length === 1 ? 'is' : 'are'} hidden from the bot role: ` +
            'it needs pg_read_all_settings (GRANT pg_monitor or pg_read_all_settings TO <bot role>)',
        );
      }
      if (pending.length > 0) {
        notes.push(`changed in the configuration but waiting for a restart: ${pending.join(', ')}`);
      }
      const own = found.filter((r) => r.source === 'session').map((r) => r.name);
      if (own.length > 0) {
        notes.push(
          `${own.join(', ')}: shown as a new session gets ${own.length === 1 ? 'it' : 'them'}; ` +
            'dbops runs its own queries with its own limits',
        );
      }

      return {
        headline:
          `PostgreSQL ${server?.version ?? '?'}: ${rows.length} settings that matter; ` +
          (pending.length === 0
            ? 'no restart pending'
            : `${pending.length} setting${pending.length === 1 ? '' : 's'} wait${pending.length === 1 ? 's' : ''} for a restart`),
        columns: COLUMNS,
        rows,
        truncated: false,
        notes,
        data: { serverVersion: server?.version ?? null, pendingRestart: pending, hidden },
      };
    });
  },
});
