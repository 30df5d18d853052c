// The benchmark's target database (a small application's tables and a 1,000,000-row table) and the
// dbops configuration it runs with.

/** A target shaped like a small application: a few dozen tables with rows, indexes and TOAST. */
export const APP_SCHEMA_SQL = `
DO $$
BEGIN
  FOR i IN 1..30 LOOP
    EXECUTE format('CREATE TABLE app_%s (id serial PRIMARY KEY, owner text, body text, at timestamptz DEFAULT now())', i);
    EXECUTE format('CREATE INDEX ON app_%s (owner)', i);
    EXECUTE format('INSERT INTO app_%s (owner, body) SELECT md5(g::text), repeat(md5(g::text), 1 + g %% 5) FROM generate_series(1, %s) g', i, i * 300);
  END LOOP;
END $$;
ANALYZE;`;

export const BIG_ROWS = 1_000_000;
export const BIG_TABLE_SQL = `
CREATE TABLE big AS
  SELECT g::bigint AS id, md5(g::text) AS payload, now() - g * interval '1 second' AS created_at
  FROM generate_series(1, ${BIG_ROWS}) g;
ALTER TABLE big ADD PRIMARY KEY (id);
ANALYZE big;`;

export function configYaml(targets: number, rowCap?: number): string {
  const lines = [
    'state:',
    `  url: \${BENCH_STATE_URL}`,
    'targets:',
    '  app:',
    `    url: \${BENCH_TARGET_URL}`,
    '    environment: development',
    ...(rowCap ? [`    limits: { row_cap: ${rowCap} }`] : []),
  ];
  for (let i = 1; i < targets; i++) {
    lines.push(`  app-${i}:`, `    url: \${BENCH_TARGET_URL}`, '    environment: development');
  }
  lines.push(
    'people:',
    '  bench: { cli: bench, slack: T1/UBENCH, roles: [dba] }',
    '  bench2: { cli: bench2, roles: [dba] }',
    'policy:',
    // Ad-hoc SQL reads only for the memory part's /db sql (rowCap set): other parts keep today's config.
    `  development: { read: [everyone], write: [dba], request: [dba], approve: [dba]${rowCap ? ', sql_read: [dba]' : ''} }`,
  );
  return `${lines.join('\n')}\n`;
}
