// Channels bound to a target at run time (`/db bind`, migration 2): read, listed, set and removed.
import type { Queryable } from './rows.js';
import type { ChannelBinding } from './types.js';

export async function getBinding(q: Queryable, channel: string): Promise<ChannelBinding | undefined> {
  const { rows } = await q.query<{
    channel: string;
    target: string;
    bound_by: string;
    bound_at: Date;
  }>('SELECT channel, target, bound_by, bound_at FROM dbops_channel_bindings WHERE channel = $1', [channel]);
  const row = rows[0];
  return row
    ? { channel: row.channel, target: row.target, boundBy: row.bound_by, boundAt: row.bound_at }
    : undefined;
}

export async function listBindings(q: Queryable): Promise<ChannelBinding[]> {
  const { rows } = await q.query<{
    channel: string;
    target: string;
    bound_by: string;
    bound_at: Date;
  }>('SELECT channel, target, bound_by, bound_at FROM dbops_channel_bindings ORDER BY channel');
  return rows.map((row) => ({
    channel: row.channel,
    target: row.target,
    boundBy: row.bound_by,
    boundAt: row.bound_at,
  }));
}

export async function setBinding(q: Queryable, binding: ChannelBinding): Promise<void> {
  await q.query(
    `INSERT INTO dbops_channel_bindings (channel, target, bound_by, bound_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (channel) DO UPDATE SET target = EXCLUDED.target, bound_by = EXCLUDED.bound_by,
       bound_at = EXCLUDED.bound_at`,
    [binding.channel, binding.target, binding.boundBy, binding.boundAt],
  );
}

export async function removeBinding(q: Queryable, channel: string): Promise<boolean> {
  const { rowCount } = await q.query('DELETE FROM dbops_channel_bindings WHERE channel = $1', [channel]);
  return (rowCount ?? 0) > 0;
}
