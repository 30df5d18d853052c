// The demo's staging Alembic project (src/demo/alembic): copied into the demo's directory for the
// alembic pack, and whether an alembic command is there to run it.
import { cp, readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

/** The environment variable the project's env.py reads the database URL from (pack setting url_env). */
export const ALEMBIC_URL_ENV = 'EXAM_DATABASE_URL';
/** The command the pack runs, in the copied project's directory. */
export const ALEMBIC_COMMAND = ['alembic', '-c', 'alembic.ini'] as const;
export const ALEMBIC_INSTALL_HINT = 'Debian/Ubuntu: apt-get install alembic python3-psycopg2';

/** Where the project ships: beside this file in src/demo, or in src/demo from dist/src/demo. */
export async function alembicProjectSource(): Promise<string> {
  const candidates = [
    new URL('./alembic/', import.meta.url),
    new URL('../../../src/demo/alembic/', import.meta.url),
  ];
  for (const candidate of candidates) {
    const path = fileURLToPath(candidate);
    const entries = await readdir(path).catch(() => [] as string[]);
    if (entries.includes('alembic.ini')) return path;
  }
  throw new Error(
    `the demo's Alembic project was not found (looked in ${candidates.map((c) => fileURLToPath(c)).join(', ')})`,
  );
}

/** Copies the project to `dest` (the demo deletes it when it stops). */
export async function writeAlembicProject(dest: string): Promise<void> {
  const source = await alembicProjectSource();
  await cp(source, dest, {
    recursive: true,
    // Python's caches of a source tree that was run in place are not part of the project.
    filter: (path) => !path.includes('__pycache__'),
  });
}

/** Why the migrate-* operations cannot run here, or undefined when `alembic --version` answers. */
export async function alembicMissing(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const found = await execa('alembic', ['--version'], {
    reject: false,
    timeout: 15_000,
    env: { PATH: env.PATH ?? '', HOME: env.HOME ?? '/', LC_ALL: 'C.UTF-8' },
    extendEnv: false,
    stdin: 'ignore',
  });
  if (!found.failed && /alembic \d/.test(`${found.stdout}`)) return undefined;
  return (
    "alembic is not installed, so staging's migrate-history, migrate-heads, migrate-up and migrate-down " +
    `answer with an error (migrations works: it reads the database). Install it: ${ALEMBIC_INSTALL_HINT}`
  );
}
