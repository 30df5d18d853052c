// Tests that drive an external tool (alembic, pg_dump): on a machine without it they are skipped with a
// note naming the tool and how to install it (the summary reporter counts them); in CI (CI=true) a
// missing tool fails instead, so CI always runs them all.
import { mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';

export const INSTALL = {
  alembic: 'apt-get install alembic python3-psycopg2',
  pg_dump: 'apt-get install postgresql-client',
} as const;

export type ExternalTool = keyof typeof INSTALL;

/** The note a skipped test carries; the summary reporter groups skipped tests by it. */
export function missingToolNote(tool: ExternalTool): string {
  return `${tool} not installed (${INSTALL[tool]})`;
}

/** CI sets CI=true; there every external tool must be present. */
export function inCI(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(1|true|yes)$/i.test(env.CI ?? '');
}

/** Is `tool` a command on PATH that answers `--version`? */
export async function toolPresent(tool: ExternalTool): Promise<boolean> {
  const found = await execa(tool, ['--version'], { reject: false, timeout: 30_000, stdin: 'ignore' });
  return !found.failed && /\d/.test(`${found.stdout}`);
}

/**
 * Skips the running test when the tool is missing (with the note), or fails it in CI. Call first in
 * the test body: `requireTool(ctx, 'alembic', present)`.
 */
export function requireTool(
  ctx: { skip: (note?: string) => never },
  tool: ExternalTool,
  present: boolean,
): void {
  if (present) return;
  if (inCI()) {
    throw new Error(`${missingToolNote(tool)}: CI runs every test, so a missing tool is a failure`);
  }
  ctx.skip(missingToolNote(tool));
}

/**
 * A PATH like `path` on which `tool` cannot be found: each directory that holds it is replaced by a
 * temporary directory of symbolic links to everything else in it. For tests of what happens without it.
 */
export function pathWithout(
  tool: string,
  path = process.env.PATH ?? '',
): { path: string; cleanup: () => void } {
  const made: string[] = [];
  const dirs = path.split(delimiter).map((dir) => {
    const entries = safeReaddir(dir);
    if (!entries.includes(tool)) return dir;
    const copy = mkdtempSync(join(tmpdir(), `dbops-path-without-${tool}-`));
    made.push(copy);
    for (const entry of entries) {
      if (entry !== tool) symlinkSync(join(dir, entry), join(copy, entry));
    }
    return copy;
  });
  return {
    path: dirs.join(delimiter),
    cleanup: () => {
      for (const dir of made) rmSync(dir, { recursive: true, force: true });
    },
  };
}

function safeReaddir(dir: string): string[] {
  try {
    return statSync(dir).isDirectory() ? readdirSync(dir) : [];
  } catch {
    return [];
  }
}
