// `/db replication <target>`: lag per replica and replication slots on a primary, receive/replay lag on a standby.
import { z } from 'zod';
import { formatDuration } from '../src/core/duration.js';
import { defineOperation } from '../src/core/operation.js';
import { formatBytes } from '../src/core/render.js';
import type { Column, Row } from '../src/core/types.js';

/** pg_replication_slots.wal_status and safe_wal_size arrived in PostgreSQL 13. */
const WAL_STATUS_SINCE = 130_000;

/** Where this server is in the WAL: its insert position on a primary, what it has replayed on a standby. */
const POSITION = `CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END`;

/*
 * On a standby: how far replay is behind what was received, in bytes and in time. Time lag is the age of
 * the last replayed transaction, and 0 when everything received is replayed (an idle primary sends no
 * transactions, which would otherwise look like growing lag). Every standby-only function sits behind
 * pg_is_in_recovery(), so the statement also runs, with NULLs, on a primary.
 */
export const STANDBY_SQL = `
SELECT r.in_recovery,
       r.receive_lsn::text AS receive_lsn, r.replay_lsn::text AS replay_lsn,
       pg_wal_lsn_diff(r.receive_lsn, r.replay_lsn)::bigint AS replay_lag_bytes,
       CASE WHEN NOT r.in_recovery THEN NULL
            WHEN r.receive_lsn IS NOT NULL AND r.receive_lsn <= r.replay_lsn THEN 0
            ELSE extract(epoch FROM now() - r.replayed_at)::float8 END AS replay_lag_seconds,
       r.replayed_at AS last_replayed_at,
       CASE WHEN r.in_recovery THEN pg_is_wal_replay_paused() END AS replay_paused,
       w.pid AS receiver_pid, w.status AS receiver_status, w.sender_host, w.sender_port, w.slot_name,
       extract(epoch FROM now() - w.last_msg_receipt_time)::float8 AS since_last_message_seconds
FROM (SELECT pg_is_in_recovery() AS in_recovery,
             CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() END AS receive_lsn,
             CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() END AS replay_lsn,
             CASE WHEN pg_is_in_recovery() THEN pg_last_xact_replay_timestamp() END AS replayed_at) r
LEFT JOIN pg_stat_wal_receiver w ON true
`;

/*
 * Replicas streaming from this server (cascading ones too, on a standby). Without pg_read_all_stats
 * (part of pg_monitor) PostgreSQL shows only the pid of each WAL sender and NULL for everything else.
 */
export const REPLICAS_SQL = `
WITH here AS (SELECT ${POSITION} AS lsn)
SELECT r.pid, r.application_name, host(r.client_addr) AS client_address, r.state, r.sync_state,
       pg_wal_lsn_diff(h.lsn, r.sent_lsn)::bigint AS sent_lag_bytes,
       pg_wal_lsn_diff(h.lsn, r.write_lsn)::bigint AS write_lag_bytes,
       pg_wal_lsn_diff(h.lsn, r.flush_lsn)::bigint AS flush_lag_bytes,
       pg_wal_lsn_diff(h.lsn, r.replay_lsn)::bigint AS replay_lag_bytes,
       extract(epoch FROM r.write_lag)::float8 AS write_lag_seconds,
       extract(epoch FROM r.flush_lag)::float8 AS flush_lag_seconds,
       extract(epoch FROM r.replay_lag)::float8 AS replay_lag_seconds,
       r.state IS NULL AS hidden
FROM pg_stat_replication r
CROSS JOIN here h
ORDER BY r.application_name, r.pid
`;

/** Replication slots keep WAL (restart_lsn) until their consumer confirms it; readable by every role. */
function slotsSql(version: number): string {
  const walStatus =
    version >= WAL_STATUS_SINCE
      ? 's.wal_status, s.safe_wal_size'
      : 'NULL::text AS wal_status, NULL::bigint AS safe_wal_size';
  return `
WITH here AS (SELECT ${POSITION} AS lsn)
SELECT s.slot_name, s.slot_type, s.database, s.active, s.temporary,
       pg_wal_lsn_diff(h.lsn, s.restart_lsn)::bigint AS retained_bytes,
       ${walStatus}
FROM pg_replication_slots s
CROSS JOIN here h
ORDER BY s.slot_name
`;
}

export interface StandbyRow {
  in_recovery: boolean;
  receive_lsn: string | null;
  replay_lsn: string | null;
  replay_lag_bytes: number | null;
  replay_lag_seconds: number | null;
  last_replayed_at: Date | null;
  replay_paused: boolean | null;
  receiver_pid: number | null;
  receiver_status: string | null;
  sender_host: string | null;
  sender_port: number | null;
  slot_name: string | null;
  since_last_message_seconds: number | null;
}

interface ReplicaRow {
  pid: number;
  application_name: string | null;
  client_address: string | null;
  state: string | null;
  sync_state: string | null;
  sent_lag_bytes: number | null;
  write_lag_bytes: number | null;
  flush_lag_bytes: number | null;
  replay_lag_bytes: number | null;
  write_lag_seconds: number | null;
  flush_lag_seconds: number | null;
  replay_lag_seconds: number | null;
  hidden: boolean;
}

interface SlotRow {
  slot_name: string;
  slot_type: string;
  database: string | null;
  active: boolean;
  temporary: boolean;
  retained_bytes: number | null;
  wal_status: string | null;
  safe_wal_size: number | null;
}

const COLUMNS: Column[] = [
  { key: 'name', label: 'name', kind: 'text' },
  { key: 'kind', label: 'kind', kind: 'text' },
  { key: 'state', label: 'state', kind: 'text' },
  { key: 'client', label: 'client', kind: 'text' },
  { key: 'sent_lag_bytes', label: 'sent lag', kind: 'bytes' },
  { key: 'write_lag_bytes', label: 'write lag', kind: 'bytes' },
  { key: 'flush_lag_bytes', label: 'flush lag', kind: 'bytes' },
  { key: 'replay_lag_bytes', label: 'replay lag', kind: 'bytes' },
  { key: 'replay_lag_seconds', label: 'replay lag (time)', kind: 'seconds' },
  { key: 'retained_bytes', label: 'WAL retained', kind: 'bytes' },
  { key: 'active', label: 'active', kind: 'bool' },
];

const PRIVILEGE_FIX =
  'the bot role needs pg_monitor (or pg_read_all_stats) to see replication details (GRANT pg_monitor TO <bot role>)';

function replicaRow(r: ReplicaRow): Row {
  return {
    name: r.application_name || `pid ${r.pid}`,
    kind: 'replica',
    pid: r.pid,
    state: r.hidden ? 'hidden (needs pg_monitor)' : r.state,
    sync_state: r.sync_state,
    client: r.client_address ?? (r.hidden ? null : 'local'),
    sent_lag_bytes: r.sent_lag_bytes,
    write_lag_bytes: r.write_lag_bytes,
    flush_lag_bytes: r.flush_lag_bytes,
    replay_lag_bytes: r.replay_lag_bytes,
    write_lag_seconds: r.write_lag_seconds,
    flush_lag_seconds: r.flush_lag_seconds,
    replay_lag_seconds: r.replay_lag_seconds,
    retained_bytes: null,
    active: null,
  };
}

function slotRow(s: SlotRow): Row {
  return {
    name: s.slot_name,
    kind: `${s.temporary ? 'temporary ' : ''}${s.slot_type} slot`,
    state: s.wal_status,
    client: s.database,
    sent_lag_bytes: null,
    write_lag_bytes: null,
    flush_lag_bytes: null,
    replay_lag_bytes: null,
    replay_lag_seconds: null,
    retained_bytes: s.retained_bytes,
    safe_wal_size: s.safe_wal_size,
    active: s.active,
  };
}

function standbyRow(s: StandbyRow): Row {
  const sender = s.sender_host ? `${s.sender_host}${s.sender_port ? `:${s.sender_port}` : ''}` : null;
  return {
    name: 'this server (standby)',
    kind: 'standby',
    state: s.replay_paused ? 'replay paused' : (s.receiver_status ?? 'not streaming'),
    client: sender,
    sent_lag_bytes: null,
    write_lag_bytes: null,
    flush_lag_bytes: null,
    replay_lag_bytes: s.replay_lag_bytes,
    replay_lag_seconds: s.replay_lag_seconds,
    retained_bytes: null,
    active: s.receiver_pid !== null,
    receive_lsn: s.receive_lsn,
    replay_lsn: s.replay_lsn,
    last_replayed_at: s.last_replayed_at ? s.last_replayed_at.toISOString() : null,
    since_last_message_seconds: s.since_last_message_seconds,
    slot_name: s.slot_name,
  };
}

function count(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export default defineOperation({
  name: 'replication',
  summary: 'Replication lag per replica and replication slots, or this standby’s receive / replay lag',
  usage: 'replication <target>',
  description:
    'On a primary: every replica in pg_stat_replication with its state and how far it is behind in bytes ' +
    '(sent, written, flushed, replayed) and in time, and every replication slot with the WAL it retains. ' +
    'On a standby: how far replay is behind what was received, in bytes and time, and from where it ' +
    'streams. Says "no replicas" plainly when there are none. Needs pg_monitor to see replica details.',
  args: z.object({}),
  risk: 'read',
  async run(ctx) {
    const version = await ctx.db.serverVersion();
    return await ctx.db.read(async (session) => {
      const [standby] = await session.query<StandbyRow>(STANDBY_SQL);
      if (!standby) throw new Error('replication: no row from the standby query');
      const replicas = await session.query<ReplicaRow>(REPLICAS_SQL);
      const slots = await session.query<SlotRow>(slotsSql(version));

      const rows: Row[] = [
        ...(standby.in_recovery ? [standbyRow(standby)] : []),
        ...replicas.map(replicaRow),
        ...slots.map(slotRow),
      ];

      const notes: string[] = [];
      const hidden = replicas.filter((r) => r.hidden).length;
      if (hidden > 0 || (standby.in_recovery && standby.receiver_pid !== null && !standby.receiver_status)) {
        notes.push(PRIVILEGE_FIX);
      }
      for (const s of slots.filter((x) => !x.active)) {
        notes.push(
          `slot ${s.slot_name} is inactive and retains ${formatBytes(s.retained_bytes ?? 0)} of WAL: if its ` +
            'consumer is gone, drop it (pg_drop_replication_slot) before the disk fills',
        );
      }
      for (const s of slots.filter((x) => x.wal_status === 'lost' || x.wal_status === 'unreserved')) {
        notes.push(
          `slot ${s.slot_name}: WAL status ${s.wal_status} — its consumer may no longer be able to catch up`,
        );
      }

      let headline: string;
      if (standby.in_recovery) {
        const lagBytes = standby.replay_lag_bytes;
        const lagTime = standby.replay_lag_seconds;
        headline =
          `standby${standby.sender_host ? ` of ${standby.sender_host}` : ''}: ` +
          (standby.replay_paused ? 'replay is PAUSED; ' : '') +
          (standby.receiver_pid === null ? 'not streaming (no WAL receiver); ' : '') +
          `replay lag ${lagBytes === null ? 'unknown' : formatBytes(lagBytes)}` +
          (lagTime === null ? '' : ` (${formatDuration(lagTime)})`) +
          (replicas.length > 0 ? `; ${count(replicas.length, 'cascading replica')}` : '');
      } else if (replicas.length === 0) {
        headline =
          'no replicas: this primary has no WAL senders in pg_stat_replication' +
          (slots.length > 0 ? `; ${count(slots.length, 'replication slot')}` : ', and no replication slots');
      } else {
        const visible = replicas.filter((r) => !r.hidden);
        const worstBytes = Math.max(0, ...visible.map((r) => r.replay_lag_bytes ?? r.flush_lag_bytes ?? 0));
        const worstSeconds = Math.max(0, ...visible.map((r) => r.replay_lag_seconds ?? 0));
        headline =
          `primary with ${count(replicas.length, 'replica')}` +
          (visible.length > 0
            ? `; worst replay lag ${formatBytes(worstBytes)} (${formatDuration(worstSeconds)})`
            : '; lag hidden from the bot role') +
          (slots.length > 0 ? `; ${count(slots.length, 'replication slot')}` : '');
      }

      return {
        headline,
        columns: COLUMNS,
        rows,
        truncated: false,
        notes,
        data: {
          role: standby.in_recovery ? 'standby' : 'primary',
          replicas: replicas.length,
          slots: slots.length,
          replicaDetailsHidden: hidden > 0,
        },
      };
    });
  },
});
