// Platform member roles as the platforms showed them (migration 12): every replica, and a restarted one,
// judges a Discord vote on the newest roles any replica observed, not on one process's memory.
import type { Queryable } from './rows.js';

export const MEMBER_ROLES_MIGRATION: { version: number; name: string; sql: string } = {
  version: 12,
  name: 'observed platform member roles',
  sql: `
-- The role ids a platform payload carried for a member (an empty array: it carried none), and when it
-- was seen. One row per member: the newest observation wins (an older one never overwrites it).
CREATE TABLE dbops_member_roles (
  platform text NOT NULL,
  user_id text NOT NULL,
  role_ids text[] NOT NULL,
  seen_at timestamptz NOT NULL,
  PRIMARY KEY (platform, user_id)
);
-- "Who holds one of these roles, seen since …" (approvers to DM).
CREATE INDEX dbops_member_roles_seen ON dbops_member_roles (platform, seen_at);
`,
};

/** One member's roles as last observed. */
export interface ObservedRoles {
  userId: string;
  roleIds: readonly string[];
  seenAt: Date;
}

interface Row {
  user_id: string;
  role_ids: string[];
  seen_at: Date;
}

const toObserved = (row: Row): ObservedRoles => ({
  userId: row.user_id,
  roleIds: row.role_ids,
  seenAt: row.seen_at,
});

/** Stores an observation unless a newer one of the same member is stored already (another replica's). */
export async function saveMemberRoles(
  c: Queryable,
  platform: string,
  observed: ObservedRoles,
): Promise<void> {
  await c.query(
    `INSERT INTO dbops_member_roles (platform, user_id, role_ids, seen_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (platform, user_id) DO UPDATE SET role_ids = EXCLUDED.role_ids, seen_at = EXCLUDED.seen_at
     WHERE dbops_member_roles.seen_at <= EXCLUDED.seen_at`,
    [platform, observed.userId, [...observed.roleIds], observed.seenAt],
  );
}

/** The stored observations of these members (those never seen are absent). */
export async function loadMemberRoles(
  c: Queryable,
  platform: string,
  userIds: readonly string[],
): Promise<ObservedRoles[]> {
  if (userIds.length === 0) return [];
  const { rows } = await c.query<Row>(
    `SELECT user_id, role_ids, seen_at FROM dbops_member_roles
     WHERE platform = $1 AND user_id = ANY($2::text[])`,
    [platform, [...userIds]],
  );
  return rows.map(toObserved);
}

/** Members seen since `since` whose roles include one of `roleIds`. */
export async function membersWithRoles(
  c: Queryable,
  platform: string,
  roleIds: readonly string[],
  since: Date,
): Promise<ObservedRoles[]> {
  if (roleIds.length === 0) return [];
  const { rows } = await c.query<Row>(
    `SELECT user_id, role_ids, seen_at FROM dbops_member_roles
     WHERE platform = $1 AND seen_at >= $2 AND role_ids && $3::text[]
     ORDER BY user_id LIMIT 1000`,
    [platform, since, [...roleIds]],
  );
  return rows.map(toObserved);
}
