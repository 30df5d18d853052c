// Tools die with dbops: every tool is started under util-linux `setpriv --pdeathsig`, so the kernel signals
// its supervisor when the dbops process goes away, however it goes (SIGKILL, OOM, crash), and the
// supervisor kills the tool's whole process group.
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
 * The supervisor between dbops and a tool, in POSIX sh (arguments only as "$@": nothing is interpolated).
 * The tool runs in a session and process group of its own (setsid), so everything it starts (docker's
 * compose plugin, a shell's children) is one group. The kernel sends the supervisor SIGHUP when dbops dies
 * (PR_SET_PDEATHSIG through setpriv): it kills the whole group. SIGTERM (a timeout or a cancel from dbops)
 * is passed to the group, with SIGKILL 4 s later for what ignores it. The supervisor exits with the tool's
 * status.
 */
const SUPERVISOR = [
  `trap 'kill -s KILL -- "-$c" 2>/dev/null; exit 137' HUP`,
  // The delayed SIGKILL runs detached from the tool's pipes, and is called off once the group is gone.
  `trap 'kill -s TERM -- "-$c" 2>/dev/null; (sleep 4; kill -s KILL -- "-$c") >/dev/null 2>&1 & k=$!; wait "$c"; kill "$k" 2>/dev/null; exit 143' TERM INT`,
  's=$1; shift',
  '"$s" "$@" & c=$!',
  'wait "$c"',
].join('\n');

const SETSID_PATHS = ['/usr/bin/setsid', '/bin/setsid'];
const SH = '/bin/sh';

let setsid: string | null | undefined;

function setsidPath(): string | null {
  if (setsid === undefined) setsid = SETSID_PATHS.find(executable) ?? null;
  return setsid;
}

/**
 * The program and arguments that run `file args` so that it, and every process it starts, is killed when
 * dbops dies: setpriv --pdeathsig HUP → sh supervisor → setsid tool. The death signal follows the thread
 * that started the child: Node spawns from its main thread, whose end is the end of the process. Without
 * setsid or sh, the tool alone gets the death signal (setpriv --pdeathsig KILL, exec'd in place).
 */
export function supervised(file: string, args: readonly string[]): { file: string; args: string[] } {
  const wrapper = setprivPath();
  if (!wrapper) return { file, args: [...args] };
  const session = setsidPath();
  if (!session || !executable(SH))
    return { file: wrapper, args: ['--pdeathsig', 'KILL', '--', file, ...args] };
  return {
    file: wrapper,
    args: ['--pdeathsig', 'HUP', '--', SH, '-c', SUPERVISOR, 'dbops-tool', session, file, ...args],
  };
}
