// Tools die with dbops: every tool is started through util-linux `setpriv --pdeathsig KILL`, so the kernel
// kills it when the dbops process goes away, however it goes (SIGKILL, OOM, crash).
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * util-linux is an Essential package on Debian (and present on every mainstream distribution), so setpriv
 * is there on a machine with only Node and a base system. `--pdeathsig` sets PR_SET_PDEATHSIG and then
 * execs the tool in place: same pid, same stdio, no extra process left between dbops and the tool.
 */
const SETPRIV_PATHS = ['/usr/bin/setpriv', '/bin/setpriv'];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

let setpriv: string | null | undefined;

/** Where setpriv is, or null when this system has none (then tools run unsupervised). */
export function setprivPath(): string | null {
  if (setpriv === undefined) setpriv = SETPRIV_PATHS.find(executable) ?? null;
  return setpriv;
}

/** The absolute path of `file` (as given when it has a slash, else searched in the tool's PATH), if executable. */
export function resolveExecutable(file: string, path: string | undefined): string | undefined {
  if (file.includes('/')) return executable(file) ? file : undefined;
  for (const dir of (path ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, file);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

/**
 * The program and arguments that run `file args` so that it is killed (SIGKILL) when dbops dies. The
 * death signal follows the thread that started the tool: Node spawns from its main thread, whose end is
 * the end of the process. Grandchildren a tool starts itself are its own business (pg_dump -j workers
 * exit when their leader's connection closes).
 */
export function supervised(file: string, args: readonly string[]): { file: string; args: string[] } {
  const wrapper = setprivPath();
  if (!wrapper) return { file, args: [...args] };
  return { file: wrapper, args: ['--pdeathsig', 'KILL', '--', file, ...args] };
}
