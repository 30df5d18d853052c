// `/db health <target>`: the exam-platform runbook's verification checklist in one answer, each check ok / warn / fail.
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { durationArg, durationText } from '../src/core/args.js';
import { formatDuration } from '../src/core/duration.js';
import { isUserError } from '../src/core/errors.js';
import { defineOperation, type OperationContext } from '../src/core/operation.js';
import { formatCount } from '../src/core/render.js';
import type { Row } from '../src/core/types.js';
import type { Session } from '../src/engine/types.js';
import { plural, READ_ALL_STATS_FIX } from './lib/activity.js';
import { headroomText, readHeadroom } from './lib/headroom.js';
import {
  type Args,
  blockingSql,
  CHECK_TIMEOUT_MS,
  type Check,
  Checklist,
  COLUMNS,
  CONNECTIONS_FAIL_PERCENT,
  CONNECTIONS_WARN_PERCENT,
  IDLE_IN_TRANSACTION_SQL,
  LONG_RUNNING_SQL,
  ms,
  NEXT,
  percentText,
  ROUND_TRIP_FAIL_MS,
  ROUND_TRIP_WARN_MS,
  SET_CHECK_TIMEOUT_SQL,
  type SessionCount,
  type Status,
  VERSION_SQL,
  WRAPAROUND_FAIL_PERCENT,
  WRAPAROUND_SQL,
  WRAPAROUND_WARN_PERCENT,
  withHidden,
  worst,
} from './lib/health-checks.js';
import { forecastCheck } from './lib/health-forecast.js';

async function runChecks(
  session: Session,
  ctx: OperationContext<Args>,
  connectMs: number,
  own: readonly number[],
): Promise<Check[]> {
  const list = new Checklist(session, ctx.target.name);
  const { args } = ctx;
  const target = ctx.target.name;
  let version = 0;

  await list.run('connects', async () => {
    const timeout = Math.min(CHECK_TIMEOUT_MS, Math.round(ctx.limits.statement_timeout * 1000));
    await session.query(SET_CHECK_TIMEOUT_SQL, [String(timeout)]);
    const [row] = await session.query<{ version: string; version_num: number }>(VERSION_SQL);
    version = row?.version_num ?? 0;
    return {
      status: 'ok',
      detail: `PostgreSQL ${row?.version ?? '?'}, connected in ${ms(connectMs)}`,
      values: { serverVersion: row?.version ?? null, serverVersionNum: version, connectMs },
    };
  });

  await list.run('round-trip', async () => {
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const start = performance.now();
      await session.query('SELECT 1');
      times.push(performance.now() - start);
    }
    const median = [...times].sort((a, b) => a - b)[1] ?? 0;
    const status: Status =
      median >= ROUND_TRIP_FAIL_MS ? 'fail' : median >= ROUND_TRIP_WARN_MS ? 'warn' : 'ok';
    const check: Omit<Check, 'check'> = {
      status,
      detail: `SELECT 1 in ${ms(median)}`,
      values: { ms: median },
    };
    if (status !== 'ok') {
      check.note =
        `round-trip: SELECT 1 took ${ms(median)} (warn ≥ ${ROUND_TRIP_WARN_MS} ms, fail ≥ ${ROUND_TRIP_FAIL_MS} ms): ` +
        'the network to the server or the server itself is slow';
    }
    return check;
  });

  await list.run('connections', async () => {
    const h = await readHeadroom(session, version, own);
    const status: Status =
      h.percent >= CONNECTIONS_FAIL_PERCENT ? 'fail' : h.percent >= CONNECTIONS_WARN_PERCENT ? 'warn' : 'ok';
    const check: Check = {
      check: 'connections',
      status,
      detail: headroomText(h),
      values: { inUse: h.inUse, usable: h.usable, percent: h.percent, hidden: h.hidden },
    };
    if (status !== 'ok') {
      check.note =
        `connections: ${headroomText(h)} (warn ≥ ${CONNECTIONS_WARN_PERCENT}%, fail ≥ ${CONNECTIONS_FAIL_PERCENT}%); ` +
        `\`/db connections ${target}\` shows who holds them, \`/db idle ${target}\` which are idle`;
    }
    // Counted as client connections, so the verdict errs on the safe side; the answer says why it is unsure.
    if (h.hidden > 0) check.hidden = h.hidden;
    return check;
  });

  await list.run('long-running queries', async () => {
    const [row] = await session.query<SessionCount>(LONG_RUNNING_SQL, [args.long_query, own]);
    const n = row?.n ?? 0;
    const over = durationText(args.long_query);
    const values = { count: n, longestSeconds: row?.longest ?? null, pid: row?.pid ?? null };
    const check: Check =
      n > 0 && row
        ? {
            check: 'long-running queries',
            status: 'warn',
            detail: `${n} > ${over}, longest ${formatDuration(row.longest ?? 0)} (pid ${row.pid})`,
            note:
              `long-running queries: ${plural(n, 'query', 'queries')} running for more than ${over}, the longest ` +
              `for ${formatDuration(row.longest ?? 0)} (pid ${row.pid}); \`/db long-running ${target} --older-than ${over}\` ` +
              'lists them, `cancel-query` stops one',
            values,
          }
        : {
            check: 'long-running queries',
            status: 'ok',
            detail: `none running for more than ${over}`,
            values,
          };
    return withHidden(check, row?.hidden ?? 0);
  });

  await list.run('blocking', async () => {
    const [row] = await session.query<{ n: number; longest: number | null; roots: number[] }>(
      blockingSql(version),
    );
    const n = row?.n ?? 0;
    const longest = row?.longest ?? null;
    const roots = row?.roots ?? [];
    const values = { blocked: n, longestSeconds: longest, roots };
    if (n === 0) return { status: 'ok', detail: 'no blocked sessions', values };
    const fail = longest !== null && longest > args.blocked;
    const waited = longest === null ? 'wait unknown' : `longest ${formatDuration(longest)}`;
    const rootPids = roots.length === 0 ? '' : `root pid ${roots.join(', ')}`;
    return {
      status: fail ? 'fail' : 'warn',
      detail: [`${n} blocked`, waited, rootPids].filter((p) => p !== '').join(', '),
      note:
        `blocking: ${plural(n, 'session')} blocked, ${waited} (fails beyond ${durationText(args.blocked)}); ` +
        `\`/db blocking ${target}\` shows the chains` +
        (roots.length === 0 ? '' : `, and ending ${rootPids} (\`terminate\`) releases them`),
      values,
    };
  });

  await list.run('idle in transaction', async () => {
    const [row] = await session.query<SessionCount>(IDLE_IN_TRANSACTION_SQL, [args.idle_in_transaction, own]);
    const n = row?.n ?? 0;
    const over = durationText(args.idle_in_transaction);
    const values = { count: n, longestSeconds: row?.longest ?? null, pid: row?.pid ?? null };
    const check: Check =
      n > 0 && row
        ? {
            check: 'idle in transaction',
            status: 'warn',
            detail: `${n} > ${over}, longest ${formatDuration(row.longest ?? 0)} (pid ${row.pid})`,
            note:
              `idle in transaction: ${plural(n, 'session')} idle in transaction for more than ${over}, the longest ` +
              `for ${formatDuration(row.longest ?? 0)} (pid ${row.pid}); they keep their locks and hold back vacuum. ` +
              `\`/db idle ${target}\` lists them, \`terminate <pid>\` ends one`,
            values,
          }
        : { check: 'idle in transaction', status: 'ok', detail: `none for more than ${over}`, values };
    return withHidden(check, row?.hidden ?? 0);
  });

  await list.run('wraparound', async () => {
    const [row] = await session.query<{
      database: string;
      xid_age: number;
      freeze_max_age: number;
      mxid_age: number;
      mxid_freeze_max_age: number;
    }>(WRAPAROUND_SQL);
    if (!row) throw new Error('pg_database returned no row');
    const xidPercent = (row.xid_age / row.freeze_max_age) * 100;
    const mxidPercent = (row.mxid_age / row.mxid_freeze_max_age) * 100;
    const byMultixact = mxidPercent > xidPercent;
    const percent = Math.max(xidPercent, mxidPercent);
    const status: Status =
      percent >= WRAPAROUND_FAIL_PERCENT ? 'fail' : percent >= WRAPAROUND_WARN_PERCENT ? 'warn' : 'ok';
    const check: Omit<Check, 'check'> = {
      status,
      detail: `${row.database} at ${percentText(percent)} of ${byMultixact ? 'multixact ' : ''}freeze max age`,
      values: {
        database: row.database,
        xidAge: row.xid_age,
        freezeMaxAge: row.freeze_max_age,
        mxidAge: row.mxid_age,
        multixactFreezeMaxAge: row.mxid_freeze_max_age,
        percent: Math.round(percent * 10) / 10,
      },
    };
    if (status !== 'ok') {
      const age = byMultixact
        ? `${formatCount(row.mxid_age)} of autovacuum_multixact_freeze_max_age ${formatCount(row.mxid_freeze_max_age)} multixacts`
        : `${formatCount(row.xid_age)} of autovacuum_freeze_max_age ${formatCount(row.freeze_max_age)} transactions`;
      check.note =
        `wraparound: database ${row.database} is at ${percentText(percent)} (${age}; warn ≥ ` +
        `${WRAPAROUND_WARN_PERCENT}%, fail ≥ ${WRAPAROUND_FAIL_PERCENT}%): autovacuum must freeze it; ` +
        `\`/db wraparound ${target}\` shows the oldest tables`;
    }
    return check;
  });

  return list.checks;
}

function headlineOf(target: string, checks: readonly Check[]): string {
  const status = worst(checks.map((c) => c.status));
  if (status === 'ok') return `health of ${target}: OK (all ${checks.length} checks ok)`;
  const named = (s: Status) =>
    checks
      .filter((c) => c.status === s)
      .map((c) => c.check)
      .join(', ');
  const parts = (['fail', 'warn'] as const).filter((s) => named(s) !== '').map((s) => `${s}: ${named(s)}`);
  return `health of ${target}: ${status.toUpperCase()} (${parts.join('; ')})`;
}

export default defineOperation({
  name: 'health',
  summary:
    'The incident checklist in one answer: connects, round trip, connections, long queries, blocking, idle in transaction, wraparound',
  usage: 'health <target> [--long-query 1m] [--blocked 1m] [--idle-in-transaction 5m]',
  description:
    'Runs the verification checklist of the runbooks in one read-only transaction, each check with ok / ' +
    'warn / fail and one line why: connects (and the server version); SELECT 1 round trip (warn ≥ 100 ms, ' +
    'fail ≥ 1 s); client connections against usable max_connections (warn ≥ 80%, fail ≥ 95%); queries ' +
    'running longer than --long-query (warn); blocked sessions (warn; fail when one waited longer than ' +
    '--blocked); sessions idle in transaction longer than --idle-in-transaction (warn); the oldest ' +
    'age(datfrozenxid) against autovacuum_freeze_max_age, multixacts likewise (warn ≥ 50%, fail ≥ 90%). ' +
    'A check that cannot run is a fail row and the others still answer; an unreachable target answers with ' +
    'a failed connects check. Each check that is not ok adds a note with the next command to type. ' +
    'Where history is sampled, a forecast check warns when xid age (to the wraparound stop), the database ' +
    "size (to the target's forecast.disk_budget) or connections (to the usable limit) would be reached " +
    'within the forecast horizon (forecast.horizon, default 14 days) at the rate of the last 7 days.',
  args: z.object({
    long_query: durationArg('1m'),
    blocked: durationArg('1m'),
    idle_in_transaction: durationArg('5m'),
  }),
  risk: 'read',
  // A checklist, not a list.
  paged: false,
  async run(ctx) {
    const started = performance.now();
    const ran: { checks?: Check[] } = {};
    let checks: Check[];
    try {
      checks = await ctx.db.read(async (session) => {
        const connectMs = performance.now() - started;
        ran.checks = await runChecks(session, ctx, connectMs, ctx.db.ownPids());
        return ran.checks;
      });
    } catch (err) {
      if (ran.checks) {
        // Every check ran; only closing the transaction failed (the connection died at the very end).
        checks = ran.checks;
      } else {
        if (!isUserError(err)) throw err;
        checks = [
          {
            check: 'connects',
            status: 'fail',
            detail: `cannot connect (${err.code.replace(/_/g, ' ')})`,
            note: `connects: ${err.message}; the other checks need a connection`,
            values: {},
          },
        ];
      }
    }

    const usable = checks.find((c) => c.check === 'connections')?.values.usable;
    const forecast = await forecastCheck(ctx, typeof usable === 'number' ? usable : undefined);
    if (forecast) checks.push(forecast);
    const status = worst(checks.map((c) => c.status));
    const notes = checks.flatMap((c) => (c.note === undefined ? [] : [c.note]));
    // Sessions of other roles hidden from several checks: one note naming them all and the fix, not one each.
    const blind = checks.filter((c) => (c.hidden ?? 0) > 0);
    if (blind.length > 0) {
      const counts = blind.map(
        (c) =>
          `${c.check} ${formatCount(c.hidden ?? 0)}${c.check === 'connections' ? ', counted as client connections' : ''}`,
      );
      notes.unshift(
        `sessions of other roles could not be inspected (${counts.join('; ')}): ${READ_ALL_STATS_FIX}`,
      );
    }
    notes.push(
      `thresholds: long-running > ${durationText(ctx.args.long_query)} warns, blocked > ` +
        `${durationText(ctx.args.blocked)} fails, idle in transaction > ${durationText(ctx.args.idle_in_transaction)} warns`,
    );
    return {
      headline: headlineOf(ctx.target.name, checks),
      columns: COLUMNS,
      rows: checks.map((c): Row => ({ check: c.check, status: c.status, detail: c.detail })),
      truncated: false,
      notes,
      data: {
        status,
        // Declared checks (src/alerts/checks.ts): status, one line, and what to run next when not ok.
        checks: Object.fromEntries(
          checks.map((c) => [
            c.check,
            {
              status: c.status,
              detail: c.detail,
              ...(NEXT[c.check] ? { next: NEXT[c.check] } : {}),
              ...c.values,
            },
          ]),
        ),
        thresholds: {
          longQuerySeconds: ctx.args.long_query,
          blockedSeconds: ctx.args.blocked,
          idleInTransactionSeconds: ctx.args.idle_in_transaction,
        },
      },
    };
  },
});
