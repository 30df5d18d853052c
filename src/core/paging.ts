// Paging of list operations: `--limit N` and `--page N` on every read that returns rows, the window of
// rows a page shows, and the next-page command (and button) a capped answer offers instead of a wall.
import type { z } from 'zod';
import type { ResolvedTarget } from '../config/schema.js';
import type { PagedRead } from '../state/types.js';
import { UserError } from './errors.js';
import type { Token } from './grammar.js';
import type { AnyOperation } from './operation.js';
import type { OperationResult, PageInfo } from './types.js';

/** How deep pages reach, in page sizes of the row cap: page 21 of a 1,000-row cap is past it. */
export const MAX_DEPTH_PAGES = 20;

/** What a person asked for: which page, and how many rows a page holds when they said so. */
export interface PageRequest {
  page: number;
  /** `--limit` as typed, for operations that do not declare a `limit` of their own. */
  limit?: number;
}

/**
 * Whether an operation answers in pages (reads that return rows, built-in or from a pack); one with a
 * `page` argument of its own (`tables`, paged in its SQL) keeps it.
 */
export function pagesOf(spec: AnyOperation): boolean {
  return spec.risk === 'read' && spec.paged !== false && !('page' in spec.args.shape);
}

/** Whether the operation's own arguments include a `limit` (a top-N: `table-sizes --limit 20`). */
export function ownsLimit(spec: AnyOperation): boolean {
  return 'limit' in spec.args.shape;
}

/**
 * Takes `--page` (and `--limit`, unless the operation has its own) out of the tokens; the rest go to the
 * operation's grammar. Undefined paging when neither was given.
 */
export function takePaging(
  spec: AnyOperation,
  tokens: readonly Token[],
): { rest: Token[]; paging: PageRequest | undefined } {
  if (!pagesOf(spec)) return { rest: [...tokens], paging: undefined };
  const names = ownsLimit(spec) ? ['page'] : ['page', 'limit'];
  const rest: Token[] = [];
  const found: Record<string, number> = {};
  for (let i = 0; i < tokens.length; i += 1) {
    const token = tokens[i];
    if (!token) continue;
    if (token.kind !== 'option' || !names.includes(token.name)) {
      rest.push(token);
      continue;
    }
    let text = token.value;
    if (text === undefined) {
      const next = tokens[i + 1];
      if (next?.kind === 'word') {
        text = next.text;
        i += 1;
      }
    }
    if (token.name in found) {
      throw new UserError('invalid_argument', `--${token.name} is given twice. usage: /db ${spec.usage}`);
    }
    found[token.name] = positiveInt(token.name, text, spec);
  }
  if (found.page === undefined && found.limit === undefined) return { rest, paging: undefined };
  return {
    rest,
    paging: { page: found.page ?? 1, ...(found.limit !== undefined ? { limit: found.limit } : {}) },
  };
}

function positiveInt(name: string, text: string | undefined, spec: AnyOperation): number {
  if (text === undefined || !/^\d{1,7}$/.test(text) || Number(text) < 1) {
    throw new UserError(
      'invalid_argument',
      `argument --${name}: expected a whole number from 1${text === undefined ? '' : `, not ${text.slice(0, 20)}`}. usage: /db ${spec.usage} [--page N]`,
    );
  }
  return Number(text);
}

/** How one page is read: the operation's arguments, its row cap, and which of its rows are shown. */
export interface PagePlan {
  page: number;
  /** Rows per page. */
  size: number;
  /** The operation runs with these arguments (its own `limit` raised to reach the page). */
  args: Record<string, unknown>;
  /** The row cap the operation runs with: enough to reach past the end of the page. */
  rowCap: number;
  /** What `--limit` adds to the canonical command (nothing for operations with their own `limit`). */
  limitOption: string;
  /** False when the page after this one could not be read (past what the operation lists): none is offered. */
  nextReachable?: boolean;
}

/**
 * Plans the read of page `request.page`. The operation reads its rows from the start in its own stable
 * order, up to one past the end of the page, and the page is cut from them: an offset in each
 * operation's SQL would need every one of them (and every pack) rewritten, while this pages them all.
 * `--limit` is bounded by the row cap; pages reach MAX_DEPTH_PAGES row caps deep.
 */
export function planPage(
  spec: AnyOperation,
  args: Record<string, unknown>,
  rowCap: number,
  request: PageRequest | undefined,
): PagePlan {
  const page = request?.page ?? 1;
  if (ownsLimit(spec)) {
    const size = Number(args.limit);
    const depth = page * size;
    // One more row than the page needs says whether another page exists, where the operation allows it.
    const wanted = fits(spec, depth + 1) ? depth + 1 : depth;
    if (!fits(spec, depth)) {
      throw new UserError(
        'invalid_argument',
        `--page ${page} of ${size} rows reaches row ${depth}, past the most ${spec.name} lists; ask for fewer rows per page or narrow it`,
      );
    }
    return {
      page,
      size,
      args: { ...args, limit: wanted },
      rowCap: Math.max(rowCap, wanted),
      limitOption: '',
      nextReachable: fits(spec, (page + 1) * size),
    };
  }
  const size = request?.limit ?? rowCap;
  if (size > rowCap) {
    throw new UserError(
      'invalid_argument',
      `argument --limit: at most ${rowCap} rows per page on this target (its row cap); use --page for the next ones`,
    );
  }
  const depth = page * size;
  if (depth > rowCap * MAX_DEPTH_PAGES) {
    throw new UserError(
      'invalid_argument',
      `--page ${page} reaches row ${depth}, past the ${rowCap * MAX_DEPTH_PAGES} rows pages reach; narrow the read instead`,
    );
  }
  return {
    page,
    size,
    args,
    rowCap: Math.max(rowCap, depth + 1),
    limitOption: ` --limit ${size}`,
    nextReachable: (page + 1) * size <= rowCap * MAX_DEPTH_PAGES,
  };
}

function fits(spec: AnyOperation, limit: number): boolean {
  const schema = spec.args.shape.limit as z.ZodType | undefined;
  return schema?.safeParse(limit).success ?? false;
}

/**
 * The page's rows out of what the operation read. `more`: rows exist after this page (read past its end,
 * or the operation itself stopped at its cap). `command` is the canonical command without paging.
 */
export function cutPage(result: OperationResult, plan: PagePlan, command: string): OperationResult {
  const first = (plan.page - 1) * plan.size;
  const rows = result.rows.slice(first, first + plan.size);
  const more = result.rows.length > first + plan.size || (result.truncated && rows.length === plan.size);
  const page: PageInfo = {
    number: plan.page,
    size: plan.size,
    first: first + 1,
    more,
    ...(more && plan.nextReachable !== false
      ? { next: `/db ${command}${plan.limitOption} --page ${plan.page + 1}` }
      : {}),
  };
  return { ...result, rows, truncated: more, page };
}

/**
 * An answer read without paging options that the row cap (or the operation's own `limit`) cut short
 * becomes page 1, offering page 2; any other answer is left as it is.
 */
export function firstPage(
  spec: AnyOperation,
  args: Record<string, unknown>,
  rowCap: number,
  result: OperationResult,
  command: string,
): OperationResult {
  if (!pagesOf(spec) || !result.truncated) return result;
  const size = ownsLimit(spec) ? Number(args.limit) : rowCap;
  if (result.rows.length !== size) return result;
  return cutPage(result, { page: 1, size, args, rowCap, limitOption: '' }, command);
}

/**
 * What a read run at once answers: the planned page cut from what it read (or, unplanned, page 1 when
 * the row cap cut it short), and, when another page exists, the paged read its button names.
 */
export function pageResult(input: {
  ctx: { ref: string; identity: string; now: Date };
  spec: AnyOperation;
  target: ResolvedTarget;
  args: Record<string, unknown>;
  read: OperationResult;
  command: string;
  plan: PagePlan | undefined;
  pages: boolean | undefined;
}): { result: OperationResult; remember?: PagedRead } {
  const { ctx, spec, target, args, read, command, plan } = input;
  const rowCap = { ...target.limits, ...spec.limits }.row_cap;
  const result = plan
    ? cutPage(read, plan, command)
    : input.pages
      ? firstPage(spec, args, rowCap, read, command)
      : read;
  if (!result.page?.more) return { result };
  const remember: PagedRead = {
    ref: ctx.ref,
    command: `${command}${plan?.limitOption ?? ''}`,
    operation: spec.name,
    target: target.name,
    identity: ctx.identity,
    createdAt: ctx.now,
  };
  return { result, remember };
}

/**
 * The count line of a list and what it says about paging: which rows a page shows, and the exact command
 * of the next page on a line of its own (so it is never cut), e.g.
 * `50 rows shown (rows 51–100, page 2) — more rows exist; next page:` / `/db idle kasm --page 3`.
 */
export function countLines(result: OperationResult, count: string): string[] {
  const page = result.page;
  if (!page)
    return [result.truncated ? `${count} shown — more rows exist (capped; narrow the query)` : count];
  if (result.rows.length === 0 && page.number > 1) return [`page ${page.number} is past the end of the list`];
  // One page that holds the whole list is just the list.
  if (page.number === 1 && !page.more) return [count];
  const which = `rows ${page.first}–${page.first + result.rows.length - 1}, page ${page.number}`;
  if (!page.next && page.more)
    return [`${count} shown (${which}) — more rows exist, past what pages reach: narrow the read`];
  if (!page.next) return [`${count} (${which}, the last)`];
  return [`${count} shown (${which}) — more rows exist; next page:`, page.next];
}
