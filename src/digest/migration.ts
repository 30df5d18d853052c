// Migration 11: what the last digest of each target saw, so the next one can say what is new.

export const DIGEST_MIGRATION: { version: number; name: string; sql: string } = {
  version: 11,
  name: 'digest snapshots',
  sql: `
CREATE TABLE dbops_digest_snapshots (
  target text NOT NULL,
  taken_at timestamptz NOT NULL,
  snapshot jsonb NOT NULL,
  PRIMARY KEY (target, taken_at)
);
`,
};
