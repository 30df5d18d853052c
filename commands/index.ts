// The runbook catalog: every operation dbops offers, as an explicit list the core validates at start-up.
// Application runbooks (kasm, coder, …) are declarative packs in commands/packs/.
import activity from './activity.js';
import analyze from './analyze.js';
import backup from './backup.js';
import backups from './backups.js';
import bloat from './bloat.js';
import blocking from './blocking.js';
import cacheHit from './cache-hit.js';
import cancelQuery from './cancel-query.js';
import checkIndexes from './check-indexes.js';
import connections from './connections.js';
import describe from './describe.js';
import duplicateIndexes from './duplicate-indexes.js';
import explain from './explain.js';
import exportTable from './export.js';
import extensions from './extensions.js';
import health from './health.js';
import idle from './idle.js';
import importCsv from './import.js';
import indexSizes from './index-sizes.js';
import indexUsage from './index-usage.js';
import killIdle from './kill-idle.js';
import locks from './locks.js';
import longRunning from './long-running.js';
import privileges from './privileges.js';
import reindex from './reindex.js';
import replication from './replication.js';
import restore from './restore.js';
import seqScans from './seq-scans.js';
import sequences from './sequences.js';
import settings from './settings.js';
import sizes from './sizes.js';
import slowQueries from './slow-queries.js';
import sql from './sql.js';
import tableSizes from './table-sizes.js';
import tables from './tables.js';
import terminate from './terminate.js';
import unusedIndexes from './unused-indexes.js';
import vacuum from './vacuum.js';
import vacuumStats from './vacuum-stats.js';
import verifyBackup from './verify-backup.js';
import wraparound from './wraparound.js';

export const catalog = [
  // the incident checklist first
  health,
  // schema
  tables,
  describe,
  // sizes and indexes
  sizes,
  tableSizes,
  indexSizes,
  indexUsage,
  unusedIndexes,
  duplicateIndexes,
  cacheHit,
  seqScans,
  // sessions and locks
  connections,
  activity,
  longRunning,
  idle,
  locks,
  blocking,
  killIdle,
  terminate,
  cancelQuery,
  // maintenance and data health
  vacuumStats,
  bloat,
  checkIndexes,
  wraparound,
  sequences,
  slowQueries,
  replication,
  settings,
  extensions,
  privileges,
  vacuum,
  analyze,
  reindex,
  // backups and data
  backup,
  backups,
  verifyBackup,
  restore,
  exportTable,
  importCsv,
  // reviewed ad-hoc SQL
  sql,
  explain,
] as const;
