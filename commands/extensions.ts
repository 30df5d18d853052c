// `/db extensions <target>`: installed extensions with available updates, and the useful ones not installed.
import { z } from 'zod';
import { defineOperation } from '../src/core/operation.js';
import type { Column, Row } from '../src/core/types.js';

/** Extensions worth having for operations work, and why. */
export const NOTABLE: Readonly<Record<string, string>> = {
  pg_stat_statements: 'query statistics for slow-queries',
  pgstattuple: 'exact table and index bloat (reads the whole relation)',
  pg_buffercache: 'what is in shared buffers',
};

/*
 * Installed extensions of this database with the server's default version; an update is available when
 * an update path leads from the installed version to the default one (pg_extension_update_paths, computed
 * only where they differ). pg_stat_statements also needs its library preloaded: its settings exist only
 * when it is loaded, which every role can see in pg_settings.
 */
const EXTENSIONS_SQL = `
SELECT e.extname AS name, e.extversion AS installed_version, a.default_version, n.nspname AS schema,
       a.comment, true AS installed, a.name IS NOT NULL AS available,
       CASE WHEN a.name IS NOT NULL AND a.default_version IS DISTINCT FROM e.extversion
            THEN EXISTS (SELECT 1 FROM pg_extension_update_paths(e.extname) p
                         WHERE p.source = e.extversion AND p.target = a.default_version AND p.path IS NOT NULL)
            ELSE false END AS update_available
FROM pg_extension e
JOIN pg_namespace n ON n.oid = e.extnamespace
LEFT JOIN pg_available_extensions a ON a.name = e.extname
UNION ALL
SELECT w.name, NULL, a.default_version, NULL, a.comment, false, a.name IS NOT NULL, false
FROM unnest($1::text[]) AS w(name)
LEFT JOIN pg_available_extensions a ON a.name = w.name
WHERE NOT EXISTS (SELECT 1 FROM pg_extension e WHERE e.extname = w.name)
ORDER BY 6 DESC, 1
`;

const CONTEXT_SQL = `
SELECT current_database() AS database,
       EXISTS (SELECT 1 FROM pg_settings WHERE name = 'pg_stat_statements.max') AS statements_loaded
`;

interface ExtensionRow {
  name: string;
  installed_version: string | null;
  default_version: string | null;
  schema: string | null;
  comment: string | null;
  installed: boolean;
  available: boolean;
  update_available: boolean;
}

const COLUMNS: Column[] = [
  { key: 'name', label: 'extension', kind: 'text' },
  { key: 'installed_version', label: 'installed', kind: 'text' },
  { key: 'default_version', label: 'default', kind: 'text' },
  { key: 'update_available', label: 'update', kind: 'bool' },
  { key: 'schema', label: 'schema', kind: 'text' },
  { key: 'status', label: 'status', kind: 'text' },
];

function statusOf(row: ExtensionRow, statementsLoaded: boolean): string {
  if (!row.installed) {
    return row.available ? 'available, not installed' : 'not available on this server';
  }
  if (row.name === 'pg_stat_statements' && !statementsLoaded) return 'installed, library not preloaded';
  if (!row.available) return 'installed; control file missing on the server';
  if (row.update_available) return `update to ${row.default_version} available`;
  if (row.default_version !== row.installed_version) return `default is ${row.default_version}`;
  return 'up to date';
}

export default defineOperation({
  name: 'extensions',
  summary: 'Installed extensions, available updates, and useful extensions not installed',
  usage: 'extensions <target>',
  description:
    'Lists the extensions installed in the target database with their version, the default version the ' +
    'server ships and whether an update path leads there (ALTER EXTENSION ... UPDATE), then ' +
    `${Object.keys(NOTABLE).join(', ')} when they are not installed, saying whether the server has them.`,
  args: z.object({}),
  risk: 'read',
  async run(ctx) {
    return await ctx.db.read(async (session) => {
      const [context] = await session.query<{ database: string; statements_loaded: boolean }>(CONTEXT_SQL);
      if (!context) throw new Error('extensions: no row from current_database()');
      const found = await session.query<ExtensionRow>(EXTENSIONS_SQL, [Object.keys(NOTABLE)]);

      const rows: Row[] = found.map((r) => ({
        name: r.name,
        installed_version: r.installed_version,
        default_version: r.default_version,
        update_available: r.update_available,
        schema: r.schema,
        installed: r.installed,
        available: r.available,
        status: statusOf(r, context.statements_loaded),
        comment: r.comment,
      }));

      const installed = found.filter((r) => r.installed);
      const updates = installed.filter((r) => r.update_available);
      const notes: string[] = [];
      if (updates.length > 0) {
        notes.push(
          `to update: ${updates.map((r) => `ALTER EXTENSION ${r.name} UPDATE`).join('; ')} ` +
            '(read the release notes first; some updates take locks)',
        );
      }
      for (const r of found.filter((f) => !f.installed)) {
        const why = NOTABLE[r.name] ?? '';
        const preload =
          r.name !== 'pg_stat_statements'
            ? ''
            : context.statements_loaded
              ? ' (its library is already preloaded)'
              : ' (it also needs shared_preload_libraries = pg_stat_statements and a restart)';
        notes.push(
          r.available
            ? `${r.name} is not installed: CREATE EXTENSION ${r.name} — ${why}${preload}`
            : `${r.name} is not available on this server (the contrib package is missing) — ${why}`,
        );
      }
      const statements = installed.find((r) => r.name === 'pg_stat_statements');
      if (statements && !context.statements_loaded) {
        notes.push(
          'pg_stat_statements is installed but its library is not loaded: add it to shared_preload_libraries ' +
            'and restart the server',
        );
      }

      return {
        headline:
          `${context.database}: ${installed.length} extension${installed.length === 1 ? '' : 's'} installed` +
          (updates.length > 0
            ? `, ${updates.length} with an update available`
            : ', none with an update available'),
        columns: COLUMNS,
        rows,
        truncated: false,
        notes,
        data: {
          database: context.database,
          installed: installed.length,
          updatesAvailable: updates.map((r) => r.name),
          pgStatStatementsLoaded: context.statements_loaded,
        },
      };
    });
  },
});
