// PostgreSQL client tools (pg_dump, pg_restore, psql): which binary, and whether it can handle the server.
import { constants } from 'node:fs';
import { access, readdir } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { UserError } from '../core/errors.js';
import type { ToolEnv } from './tool-env.js';
import { lastLines, runTool } from './tool-runner.js';

const VERSION_TIMEOUT_MS = 15_000;

export const PG_TOOLS = ['pg_dump', 'pg_restore', 'psql'] as const;
export type PgToolName = (typeof PG_TOOLS)[number];

/** Where Debian and PGDG install one directory of client programs per major. */
export const DEBIAN_PG_ROOT = '/usr/lib/postgresql';

export interface PgTool {
  name: PgToolName;
  path: string;
  /** e.g. `15.18 (Debian 15.18-0+deb12u1)` */
  version: string;
  /** 15 for 15.x; 9.6 for 9.6.x */
  major: number;
}

/** The major of a `server_version_num` (170002 → 17, 90624 → 9.6). */
export function majorOfVersionNum(versionNum: number): number {
  if (versionNum >= 100_000) return Math.floor(versionNum / 10_000);
  return Math.floor(versionNum / 10_000) + (Math.floor(versionNum / 100) % 100) / 10;
}

/** Parses `pg_dump (PostgreSQL) 15.18 (Debian …)` into its version text and major. */
export function parseToolVersion(output: string): { version: string; major: number } | undefined {
  const match = /\(PostgreSQL\)\s+((\d+)(?:\.(\d+))?\S*(?:\s+\(.*\))?)/.exec(output);
  if (!match?.[1] || !match[2]) return undefined;
  const first = Number(match[2]);
  const major = first >= 10 ? first : first + Number(match[3] ?? 0) / 10;
  return { version: match[1].trim(), major };
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface FindToolOptions {
  /** The target server's server_version_num. */
  serverVersionNum: number;
  /**
   * The oldest major that will do, and what it is needed for (for the message); by default the server's
   * major for pg_dump (it refuses newer servers) and no minimum for the others.
   */
  requires?: { major: number; purpose: string };
  /** The environment the tool will run with (its PATH is searched last). */
  env: ToolEnv;
  /** Directories holding `<major>/bin/` (default /usr/lib/postgresql). */
  roots?: readonly string[];
}

/** Candidate paths, best first: the server's major, then the newest installed major, then PATH. */
export async function pgToolCandidates(
  tool: PgToolName,
  serverMajor: number,
  env: ToolEnv,
  roots: readonly string[] = [DEBIAN_PG_ROOT],
): Promise<string[]> {
  const found: string[] = [];
  for (const root of roots) {
    const exact = join(root, String(serverMajor), 'bin', tool);
    if (await isExecutable(exact)) found.push(exact);
    let majors: number[] = [];
    try {
      majors = (await readdir(root))
        .filter((d) => /^\d+(\.\d+)?$/.test(d))
        .map(Number)
        .sort((a, b) => b - a);
    } catch {
      // No such root: nothing installed the Debian way.
    }
    for (const major of majors) {
      const path = join(root, String(major), 'bin', tool);
      if (path !== exact && (await isExecutable(path))) {
        found.push(path);
        break;
      }
    }
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const path = join(dir, tool);
    if (await isExecutable(path)) {
      found.push(path);
      break;
    }
  }
  return found;
}

const versionCache = new Map<string, Promise<{ version: string; major: number }>>();

async function toolVersion(
  tool: PgToolName,
  path: string,
  env: ToolEnv,
): Promise<{ version: string; major: number }> {
  let cached = versionCache.get(path);
  if (!cached) {
    cached = runTool(
      { name: tool, file: path, args: ['--version'], env },
      { timeoutMs: VERSION_TIMEOUT_MS },
    ).then((out) => {
      const parsed = parseToolVersion(out.stdout);
      if (!parsed) {
        throw new UserError(
          'tool_failed',
          `${path} --version did not print a PostgreSQL version (${lastLines(out.stdout, 1).join('')})`,
        );
      }
      return parsed;
    });
    versionCache.set(path, cached);
    cached.catch(() => versionCache.delete(path));
  }
  return await cached;
}

/**
 * The client program to use against a server of `serverVersionNum`, checked BEFORE anything runs:
 * a missing tool and a tool too old for the job (pg_dump refuses servers newer than itself) are clear
 * UserErrors naming the package to install.
 */
export async function findPgTool(tool: PgToolName, options: FindToolOptions): Promise<PgTool> {
  const serverMajor = majorOfVersionNum(options.serverVersionNum);
  const requires =
    options.requires ??
    (tool === 'pg_dump'
      ? { major: serverMajor, purpose: `dump a PostgreSQL ${serverMajor} server` }
      : undefined);
  const candidates = await pgToolCandidates(tool, serverMajor, options.env, options.roots);
  if (candidates.length === 0) {
    throw new UserError(
      'tool_failed',
      `${tool} not found; install postgresql-client${requires ? `-${requires.major}` : ''} (Debian/PGDG) on the dbops host`,
      { tool },
    );
  }
  let newest: PgTool | undefined;
  for (const path of candidates) {
    const { version, major } = await toolVersion(tool, path, options.env);
    const found: PgTool = { name: tool, path, version, major };
    if (!requires || major >= requires.major) return found;
    if (!newest || major > newest.major) newest = found;
  }
  // Only reachable with a requirement that no candidate met.
  if (!newest || !requires) throw new Error(`findPgTool: no usable ${tool} among ${candidates.join(', ')}`);
  throw new UserError(
    'tool_failed',
    `${tool} ${newest.major} cannot ${requires.purpose}; install postgresql-client-${requires.major} (Debian/PGDG) on the dbops host`,
    { tool, path: newest.path, toolMajor: newest.major, requiredMajor: requires.major },
  );
}
