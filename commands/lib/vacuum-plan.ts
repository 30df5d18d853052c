// What `/db vacuum` will process: its arguments, and the plan of relations and VACUUM statements for a run or a preview.
import { z } from 'zod';
import { flagArg, identifierArg } from '../../src/core/args.js';
import { UserError } from '../../src/core/errors.js';
import type { OperationContext } from '../../src/core/operation.js';
import { type Relation, resolveRelation } from '../../src/engine/relations.js';
import {
  type BotRole,
  botRole,
  databaseRelations,
  leafPartitions,
  maintainFix,
  namesText,
  type RelationStats,
  relationStats,
  roleText,
  sumOf,
} from './maintenance.js';

export const args = z.object({
  table: identifierArg().optional(),
  analyze: flagArg(),
  full: flagArg(),
});
export type VacuumArgs = z.output<typeof args>;
export type Ctx = OperationContext<VacuumArgs>;

/** What a run will process: the relations whose figures are reported and the statements that do it. */
export interface Plan {
  version: number;
  bot: BotRole;
  /** The relation named by the user (table scope), or undefined for the whole database. */
  named: Relation | undefined;
  /** Relations reported (tables, materialized views, leaf partitions). */
  relations: RelationStats[];
  /** One VACUUM per entry: the named relation, or each permitted relation of the database. */
  statements: { relation: string; oids: number[]; bytes: number | null }[];
  /** Relations the bot role may not vacuum (whole-database scope): PostgreSQL would skip them silently. */
  skipped: RelationStats[];
  /** Partitioned tables (whole-database scope with ANALYZE), whose own statistics a per-table run misses. */
  partitioned: string[];
}

export function vacuumSql(relation: string, full: boolean, analyze: boolean): string {
  const options = [...(full ? ['FULL'] : []), ...(analyze ? ['ANALYZE'] : [])];
  return `VACUUM ${options.length > 0 ? `(${options.join(', ')}) ` : ''}${relation}`;
}

export const FULL_NEEDS_TABLE =
  'vacuum --full needs a table: VACUUM FULL of a whole database rewrites every table in turn, each one ' +
  'unreadable and unwritable while it is copied, which is an outage; name the table to rewrite, or run ' +
  'plain `vacuum` (no exclusive lock) for the whole database';

export async function planFor(ctx: Ctx): Promise<Plan> {
  const version = await ctx.db.serverVersion();
  return await ctx.db.read(async (session) => {
    const bot = await botRole(session);
    const typed = ctx.args.table;
    if (typed === undefined) {
      const all = await databaseRelations(session, version);
      const leaves = all.filter((r) => r.relkind !== 'p');
      const permitted = leaves.filter((r) => r.permitted);
      // Most dead tuples first: if the run is stopped, the tables that needed it most are done.
      const ordered = [...permitted].sort(
        (a, b) =>
          Number(a.system) - Number(b.system) ||
          (b.dead_tuples ?? 0) - (a.dead_tuples ?? 0) ||
          (b.total_bytes ?? 0) - (a.total_bytes ?? 0),
      );
      return {
        version,
        bot,
        named: undefined,
        relations: ordered,
        statements: ordered.map((r) => ({ relation: r.relation, oids: [r.oid], bytes: r.total_bytes })),
        skipped: leaves.filter((r) => !r.permitted),
        partitioned: ctx.args.analyze
          ? all.filter((r) => r.relkind === 'p' && r.parent === null).map((r) => r.relation)
          : [],
      };
    }
    const named = await resolveRelation(session, typed, ['r', 'm', 'p'], '<table>');
    const oids =
      named.relkind === 'p' ? [named.oid, ...(await leafPartitions(session, named.oid))] : [named.oid];
    const stats = await relationStats(session, version, oids);
    const refused = stats.filter((r) => !r.permitted);
    if (refused.length > 0) {
      const first = refused[0];
      throw new UserError(
        'permission',
        `the bot role ${roleText(bot.role)} may not vacuum ${namesText(refused.map((r) => r.relation))} ` +
          '(PostgreSQL would skip it with only a warning, doing nothing): ' +
          maintainFix(version, bot.role, first),
      );
    }
    const reported = stats.filter((r) => r.relkind !== 'p');
    return {
      version,
      bot,
      named,
      relations: reported,
      statements: [{ relation: named.qualified, oids, bytes: sumOf(stats.map((r) => r.total_bytes)) }],
      skipped: [],
      partitioned: [],
    };
  });
}
