// `/db csv <ref>`: the answer of a read as one CSV file with every column (what Slack's "All columns (CSV)"
// button sends). The read is found by its reference in the audit log and run again as whoever asked.
import type { AuditRecord } from '../../state/types.js';
import { formatCommand } from '../args.js';
import { resultToCsv } from '../csv.js';
import { UserError } from '../errors.js';
import { bindArguments, parseCommand } from '../grammar.js';
import { ownsLimit, takePaging } from '../paging.js';
import { actionForRisk, decide } from '../policy.js';
import { isRef, RECORDS_OF_A_REF } from '../refs.js';
import { formatCount } from '../render.js';
import { type Reply, reply } from '../reply.js';
import { formatTime } from '../time-format.js';
import { argumentsAfterTarget, type Handler, words } from './common.js';

const USAGE = 'usage: /db csv <ref> (the ref an answer ends with; what its "All columns (CSV)" button sends)';

export const csv: Handler = async (core, ctx, tokens) => {
  const given = words(tokens);
  const [refText] = given;
  if (refText === undefined || given.length !== 1 || tokens.length !== 1 || !isRef(refText)) {
    throw new UserError('invalid_argument', `which answer? ${USAGE}`);
  }
  const ref = refText.toLowerCase();
  let records: AuditRecord[];
  try {
    records = await core.state.listAudit({ ref, limit: RECORDS_OF_A_REF });
  } catch (err) {
    ctx.log.error({ err, of: ref }, 'csv: cannot read the audit records of the reference');
    throw new UserError(
      'state_unavailable',
      `the state database is unreachable, so what ${ref} read cannot be looked up; nothing was run, try again shortly`,
    );
  }
  const unknown = `${ref} names no answer of a read you may see (dbops keeps no other), so nothing was run; \`/db audit ${ref}\` shows what it was`;
  const visible = new Set(core.visibleTargets(ctx.person).map((t) => t.name));
  // Records of targets the person may not read are answered like a reference that does not exist (one
  // whose target left the config is told as such below, without naming it).
  const mine = records.filter((r) =>
    r.target
      ? visible.has(r.target) || core.config.targets[r.target] === undefined
      : r.person === ctx.person?.name,
  );
  const request = mine.find((r) => r.requestId !== null);
  if (request) {
    return await core.refuse(
      ctx,
      'not_found',
      `${ref} is about approval request #${request.requestId}; a CSV is made only of reads that ran at once, never by repeating a request, so nothing was run (\`/db status ${request.requestId}\` shows its result)`,
    );
  }
  // The record of the run's start (or of its end: both name the operation, target and arguments).
  const run = mine.find(
    (r) => (r.event === 'requested' || r.event === 'executed') && r.operation !== undefined,
  );
  if (!run?.operation || !run.target) return await core.refuse(ctx, 'not_found', unknown);
  const target = core.config.targets[run.target];
  if (!target) {
    return await core.refuse(
      ctx,
      'not_found',
      `the target that ${ref} read is no longer in the config, so nothing was run`,
    );
  }
  const command = `${run.operation} ${run.target}`;
  if (run.risk !== 'read') {
    return await core.refuse(
      ctx,
      'denied',
      `${ref} was \`${command}\` (${run.risk ?? 'not a read'}); a CSV is made only by running a read again, so nothing was run`,
    );
  }
  const spec = core.catalog.resolve(run.operation, target);
  if (!spec) {
    return await core.refuse(
      ctx,
      'not_found',
      `\`${command}\` of ${ref} is no longer available (${target.name} has no ${run.operation} now), so nothing was run`,
    );
  }
  // The read as it ran: its canonical arguments, and the page it showed (as audited).
  const args = run.args ?? {};
  const paging = [
    !ownsLimit(spec) && pageNumber(args.limit) ? `--limit ${args.limit}` : '',
    pageNumber(args.page) ? `--page ${args.page}` : '',
  ].filter((p) => p);
  const text = [
    formatCommand(spec.name, target.name, spec, pickShape(spec.args.shape, args)),
    ...paging,
  ].join(' ');
  const rest = argumentsAfterTarget(parseCommand(text), target.name);
  // Never through an approval request: the read must run at once for this person, under today's policy.
  const bound = bindArguments(spec, takePaging(spec, rest).rest);
  const risk = spec.riskFor ? spec.riskFor(bound) : spec.risk;
  if (risk !== 'read') {
    return await core.refuse(
      ctx,
      'denied',
      `\`${command}\` of ${ref} is not a read now (${risk}); a CSV is made only by running a read again, so nothing was run`,
    );
  }
  const decision = decide({
    person: ctx.person,
    identity: ctx.identity,
    action: spec.actionFor?.(bound) ?? actionForRisk(risk),
    environment: target.environment,
    policy: core.config.policy,
  });
  if (decision.allowed && decision.needsApproval) {
    return await core.refuse(
      ctx,
      'denied',
      `\`${command}\` needs approval on ${target.environment}; a CSV is never made through an approval request, so nothing was run`,
    );
  }
  const answer = await core.runOperation(ctx, spec, target, rest);
  // A read that makes its own CSV (`export`) answers with it, as it did.
  if (answer.status !== 'ok' || !answer.result || ownCsv(answer)) return answer;
  return csvReply(answer, { of: ref, operation: spec.name, target: target.name, at: ctx.now });
};

function ownCsv(answer: Reply): boolean {
  return (answer.result?.attachments ?? []).some((a) => a.filename.endsWith('.csv'));
}

function pageNumber(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

function pickShape(shape: Record<string, unknown>, args: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(args).filter(([key]) => key in shape));
}

/** The read's answer as a CSV file (every column, every row it read), titled with what it is and when. */
function csvReply(answer: Reply, about: { of: string; operation: string; target: string; at: Date }): Reply {
  const result = answer.result ?? { columns: [], rows: [], truncated: false };
  const rows = result.rows.length;
  const taken = formatTime(about.at);
  const name = `${about.operation}-${about.target}-${about.of}`.replace(/[^A-Za-z0-9._-]/g, '_');
  const title = `${about.operation} ${about.target} — all ${formatCount(result.columns.length)} columns, ${formatCount(rows)} row${rows === 1 ? '' : 's'}, taken ${taken}`;
  const page = result.page;
  const more =
    page && (page.number > 1 || page.more)
      ? ` (rows ${page.first}–${page.first + rows - 1}, page ${page.number}${page.more ? '; more rows exist' : ''})`
      : result.truncated
        ? ' (more rows exist: the row cap cut it; narrow the read)'
        : '';
  return reply({
    status: 'ok',
    requestId: null,
    ref: answer.ref,
    operation: about.operation,
    target: about.target,
    risk: 'read',
    message: `${title}, of ${about.of}${more}`,
    text: `${title}, of ${about.of}${more}`,
    ephemeral: false,
    result: {
      columns: [],
      rows: [],
      truncated: result.truncated,
      data: { of: about.of, rows, columns: result.columns.length, takenAt: about.at.toISOString() },
      attachments: [{ filename: `${name}.csv`, contentType: 'text/csv', content: resultToCsv(result) }],
    },
  });
}
