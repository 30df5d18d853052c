// `npm run verify-image`: checks the Dockerfile as far as a machine without a Docker engine allows.
//
// It parses the Dockerfile, builds the context the way `docker build .` would (git's files minus
// .dockerignore), then emulates each stage in a temporary directory: WORKDIR and COPY inside the stage's
// own root, RUN with bash in the stage's WORKDIR — except system-level commands (apt-get, useradd), which
// are skipped after checking that what they would install is on this machine. Then it runs the final
// stage as the image would: ENTRYPOINT --help, `start` against an embedded PostgreSQL and a fake Slack Web
// API (HTTP mode, one signed `/db sizes`), the HEALTHCHECK command, `check-config` and a pack's help, and a
// SIGTERM. It prints one line per step and exits 1 if any failed.
//
// What it can not check: the base image itself (this machine's node and npm stand in for it), apt, real
// users and file ownership in a container (approximated by running as the USER's uid with setpriv when
// run as root), and the HEALTHCHECK's timing under Docker.
//
// Options: --committed builds from HEAD's files instead of the working tree; --keep leaves the temporary
// directories in place for inspection.

import { existsSync } from 'node:fs';
import {
  chmod,
  copyFile,
  cp,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  writeFile,
} from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, posix, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import pg from 'pg';
import { parse as parseYaml } from 'yaml';
import { freePort, startThrowawayPostgres } from '../src/demo/embedded.js';
import { FakeSlack, formBody, postSigned, slashCommand } from '../test/fakes/slack.js';

/** The repository: this file runs as dist/deploy/verify-image.js. */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HOST = '127.0.0.1';
const PATH = process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin';

// ---------------------------------------------------------------------------------------------------------
// The report

type Status = 'ok' | 'FAILED' | 'skipped';

interface Step {
  status: Status;
  title: string;
  details: string[];
}

const steps: Step[] = [];
const notes: string[] = [];

function report(status: Status, title: string, details: readonly string[] = []): Step {
  const step: Step = { status, title, details: [...details] };
  steps.push(step);
  const label = status === 'ok' ? 'ok' : status;
  process.stdout.write(`[${label.padEnd(7)}] ${title}\n`);
  for (const line of details) process.stdout.write(`          ${line}\n`);
  return step;
}

function say(line: string): void {
  process.stdout.write(`          ${line}\n`);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Thrown by a step that has reported its own failure: what follows it can not run. */
class Stop extends Error {}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function tail(text: string, lines = 25): string[] {
  const all = text.split('\n').filter((l) => l.trim() !== '');
  return all.slice(-lines).map((l) => `| ${l}`);
}

// ---------------------------------------------------------------------------------------------------------
// Dockerfile parsing

type Instruction =
  | { line: number; text: string; kind: 'FROM'; image: string; as: string | undefined }
  | { line: number; text: string; kind: 'WORKDIR'; path: string }
  | { line: number; text: string; kind: 'COPY'; from: string | undefined; sources: string[]; dest: string }
  | { line: number; text: string; kind: 'RUN'; shell: string | undefined; exec: string[] | undefined }
  | { line: number; text: string; kind: 'ENV'; pairs: [string, string][] }
  | { line: number; text: string; kind: 'USER'; user: string }
  | { line: number; text: string; kind: 'EXPOSE'; ports: string[] }
  | { line: number; text: string; kind: 'HEALTHCHECK'; options: Record<string, string>; cmd: string[] }
  | { line: number; text: string; kind: 'ENTRYPOINT'; exec: string[] }
  | { line: number; text: string; kind: 'CMD'; exec: string[] };

class DockerfileError extends Error {}

/** Logical lines: comments and blank lines dropped, backslash continuations joined. */
function logicalLines(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  const raw = text.split(/\r?\n/);
  let current: string | undefined;
  let start = 0;
  raw.forEach((physical, i) => {
    const trimmed = physical.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return; // also inside a continuation, as Docker does
    if (current === undefined) {
      current = '';
      start = i + 1;
    }
    if (/\\\s*$/.test(physical)) {
      current += physical.replace(/\\\s*$/, ' ');
      return;
    }
    out.push({ line: start, text: (current + physical).trim() });
    current = undefined;
  });
  if (current !== undefined) throw new DockerfileError(`line ${start}: the file ends inside a continuation`);
  return out;
}

/** The exec form `["a", "b"]`, or undefined when the text is not one. */
function jsonArray(text: string, line: number): string[] | undefined {
  if (!text.trimStart().startsWith('[')) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new DockerfileError(`line ${line}: not a JSON array: ${errorText(err)}`);
  }
  if (!Array.isArray(parsed) || !parsed.every((p): p is string => typeof p === 'string')) {
    throw new DockerfileError(`line ${line}: expected a JSON array of strings`);
  }
  return parsed;
}

/** ENV KEY=VALUE [KEY=VALUE …] (values may be quoted), or the legacy ENV KEY VALUE. */
function parseEnv(rest: string, line: number): [string, string][] {
  const legacy = /^([A-Za-z_][A-Za-z0-9_]*)\s+(.*)$/s.exec(rest);
  if (legacy && !/^[A-Za-z_][A-Za-z0-9_]*=/.test(rest)) return [[legacy[1] ?? '', legacy[2] ?? '']];
  const pairs: [string, string][] = [];
  let i = 0;
  while (i < rest.length) {
    while (i < rest.length && /\s/.test(rest[i] ?? '')) i++;
    if (i >= rest.length) break;
    const key = /^[A-Za-z_][A-Za-z0-9_]*=/.exec(rest.slice(i))?.[0];
    if (!key) throw new DockerfileError(`line ${line}: ENV: expected KEY=VALUE at "${rest.slice(i)}"`);
    i += key.length;
    let value = '';
    while (i < rest.length && !/\s/.test(rest[i] ?? '')) {
      const c = rest[i] ?? '';
      if (c === '"' || c === "'") {
        const end = rest.indexOf(c, i + 1);
        if (end < 0) throw new DockerfileError(`line ${line}: ENV: unterminated quote`);
        value += rest.slice(i + 1, end).replace(c === '"' ? /\\(["\\$])/g : /(?!)/g, '$1');
        i = end + 1;
      } else if (c === '\\' && i + 1 < rest.length) {
        value += rest[i + 1];
        i += 2;
      } else {
        value += c;
        i += 1;
      }
    }
    pairs.push([key.slice(0, -1), value]);
  }
  return pairs;
}

function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  for (const { line, text: logical } of logicalLines(text)) {
    const match = /^(\S+)\s*(.*)$/s.exec(logical);
    const keyword = (match?.[1] ?? '').toUpperCase();
    const rest = (match?.[2] ?? '').trim();
    const words = rest.split(/\s+/).filter(Boolean);
    const base = { line, text: logical };
    switch (keyword) {
      case 'FROM': {
        const [image, as, name, ...extra] = words;
        if (
          !image ||
          image.startsWith('--') ||
          extra.length > 0 ||
          (as && (as.toUpperCase() !== 'AS' || !name))
        ) {
          throw new DockerfileError(`line ${line}: FROM: expected "FROM image [AS name]", got "${rest}"`);
        }
        out.push({ ...base, kind: 'FROM', image, as: name });
        break;
      }
      case 'WORKDIR':
        if (!rest) throw new DockerfileError(`line ${line}: WORKDIR without a path`);
        out.push({ ...base, kind: 'WORKDIR', path: rest });
        break;
      case 'COPY': {
        let from: string | undefined;
        let args = words;
        while (args[0]?.startsWith('--')) {
          const flag = args[0];
          const fromFlag = /^--from=(.+)$/.exec(flag);
          if (!fromFlag) throw new DockerfileError(`line ${line}: COPY: flag ${flag} is not understood here`);
          from = fromFlag[1];
          args = args.slice(1);
        }
        const json = jsonArray(args.join(' '), line);
        const all = json ?? args;
        if (all.length < 2) throw new DockerfileError(`line ${line}: COPY needs a source and a destination`);
        const sources = all.slice(0, -1);
        const dest = all.at(-1) ?? '';
        if (sources.some((s) => /[*?[]/.test(s))) {
          throw new DockerfileError(`line ${line}: COPY: wildcards in sources are not understood here`);
        }
        if (sources.length > 1 && !dest.endsWith('/')) {
          throw new DockerfileError(
            `line ${line}: COPY with several sources needs a destination ending in /`,
          );
        }
        out.push({ ...base, kind: 'COPY', from, sources, dest });
        break;
      }
      case 'RUN': {
        if (rest.startsWith('--'))
          throw new DockerfileError(`line ${line}: RUN flags are not understood here`);
        const exec = jsonArray(rest, line);
        out.push({ ...base, kind: 'RUN', exec, shell: exec ? undefined : rest });
        break;
      }
      case 'ENV':
        out.push({ ...base, kind: 'ENV', pairs: parseEnv(rest, line) });
        break;
      case 'USER':
        if (words.length !== 1) throw new DockerfileError(`line ${line}: USER: expected one user`);
        out.push({ ...base, kind: 'USER', user: words[0] ?? '' });
        break;
      case 'EXPOSE':
        if (words.some((w) => !/^\d+(\/(tcp|udp))?$/.test(w))) {
          throw new DockerfileError(`line ${line}: EXPOSE: expected port numbers, got "${rest}"`);
        }
        out.push({ ...base, kind: 'EXPOSE', ports: words });
        break;
      case 'HEALTHCHECK': {
        const options: Record<string, string> = {};
        let remaining = rest;
        for (;;) {
          const option = /^--([a-z-]+)=(\S+)\s*/.exec(remaining);
          if (!option) break;
          options[option[1] ?? ''] = option[2] ?? '';
          remaining = remaining.slice(option[0].length);
        }
        const cmd = /^CMD\s+(.*)$/is.exec(remaining)?.[1];
        if (cmd === undefined) {
          throw new DockerfileError(
            `line ${line}: HEALTHCHECK: expected [options] CMD …, got "${remaining}"`,
          );
        }
        out.push({
          ...base,
          kind: 'HEALTHCHECK',
          options,
          cmd: jsonArray(cmd, line) ?? ['/bin/sh', '-c', cmd],
        });
        break;
      }
      case 'ENTRYPOINT':
      case 'CMD': {
        const exec = jsonArray(rest, line);
        if (!exec)
          throw new DockerfileError(`line ${line}: ${keyword}: only the exec form ["…"] is understood`);
        out.push({ ...base, kind: keyword, exec });
        break;
      }
      default:
        throw new DockerfileError(`line ${line}: instruction ${keyword} is not understood by this script`);
    }
  }
  if (out[0]?.kind !== 'FROM') throw new DockerfileError('the first instruction must be FROM');
  return out;
}

/** $VAR, ${VAR}, ${VAR:-default} and ${VAR:+alternative}, as Docker expands them outside RUN. */
function substitute(text: string, env: ReadonlyMap<string, string>, line: number): string {
  return text.replace(
    /\\\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\$\{[^}]*\}/g,
    (whole, braced?: string, op?: string, word?: string, bare?: string) => {
      if (whole === '\\$') return '$';
      const name = braced ?? bare;
      if (!name) throw new DockerfileError(`line ${line}: variable form ${whole} is not understood`);
      const value = env.get(name);
      if (op === '-') return value ? value : (word ?? '');
      if (op === '+') return value ? (word ?? '') : '';
      return value ?? '';
    },
  );
}

function durationMs(text: string | undefined, fallbackMs: number): number {
  if (!text) return fallbackMs;
  let ms = 0;
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    ms += Number(n) * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000);
  }
  return ms;
}

// ---------------------------------------------------------------------------------------------------------
// .dockerignore

interface IgnoreRule {
  text: string;
  negate: boolean;
  regex: RegExp;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Docker's pattern syntax: `*` and `?` within a path segment, `**` across them, `[…]` classes. */
function patternRegex(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] ?? '';
    if (c === '*' && pattern[i + 1] === '*') {
      i += 1;
      if (pattern[i + 1] === '/') {
        i += 1;
        re += '(?:.*/)?';
      } else re += '.*';
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += `[${pattern
          .slice(i + 1, end)
          .replace(/^!/, '^')
          .replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (c === '\\' && i + 1 < pattern.length) {
      i += 1;
      re += escapeRegex(pattern[i] ?? '');
    } else re += escapeRegex(c);
  }
  return new RegExp(`^${re}$`);
}

class DockerIgnore {
  readonly rules: IgnoreRule[];

  constructor(text: string) {
    this.rules = text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => {
        const negate = l.startsWith('!');
        const cleaned = posix.normalize((negate ? l.slice(1) : l).trim()).replace(/^\/+|\/+$/g, '');
        return { text: l, negate, regex: patternRegex(cleaned) };
      });
  }

  /** The rule that decides a path (matching the path itself or a parent directory), if any excludes it. */
  excludedBy(path: string): string | undefined {
    const parts = path.split('/');
    let decided: IgnoreRule | undefined;
    for (const rule of this.rules) {
      for (let k = 1; k <= parts.length; k++) {
        if (rule.regex.test(parts.slice(0, k).join('/'))) {
          decided = rule;
          break;
        }
      }
    }
    return decided && !decided.negate ? decided.text : undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Files

async function* walk(
  dir: string,
): AsyncGenerator<{ path: string; kind: 'file' | 'dir' | 'link'; mode: number }> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const info = await lstat(path);
    if (info.isSymbolicLink()) yield { path, kind: 'link', mode: info.mode };
    else if (info.isDirectory()) {
      yield { path, kind: 'dir', mode: info.mode };
      yield* walk(path);
    } else yield { path, kind: 'file', mode: info.mode };
  }
}

async function countFiles(path: string): Promise<{ files: number; bytes: number }> {
  const info = await lstat(path);
  if (!info.isDirectory()) return { files: 1, bytes: info.size };
  let files = 0;
  let bytes = 0;
  for await (const entry of walk(path)) {
    if (entry.kind === 'file') {
      files += 1;
      bytes += (await lstat(entry.path)).size;
    }
  }
  return { files, bytes };
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

async function git(args: string[]): Promise<string> {
  return (await execa('git', args, { cwd: ROOT })).stdout;
}

// ---------------------------------------------------------------------------------------------------------
// Stages

interface Stage {
  index: number;
  name: string | undefined;
  image: string;
  root: string;
  workdir: string;
  env: Map<string, string>;
  user: string | undefined;
  /** Users and groups a skipped useradd / groupadd would have created: name → uid / gid. */
  users: Map<string, { uid: number; gid: string | undefined; home: string | undefined }>;
  groups: Map<string, number>;
  expose: string[];
  healthcheck: Extract<Instruction, { kind: 'HEALTHCHECK' }> | undefined;
  entrypoint: string[] | undefined;
  cmd: string[] | undefined;
}

function label(stage: Stage): string {
  return stage.name ?? `#${stage.index}`;
}

/** Where an absolute path inside the stage's filesystem lives on this machine. */
function hostPath(stage: Stage, imagePath: string): string {
  const inside = posix.resolve('/', imagePath);
  return join(stage.root, ...inside.split('/').filter(Boolean));
}

/** Simple commands of a shell line (split at &&, ||, ;, |), each as words with quotes removed. */
function simpleCommands(shell: string): string[][] {
  return shell
    .split(/&&|\|\||;|\||\n/)
    .map((part) =>
      part
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map((w) => w.replace(/^(['"])(.*)\1$/, '$2')),
    )
    .filter((words) => words.length > 0);
}

const SYSTEM_COMMANDS = new Set([
  'apt-get',
  'apt',
  'dpkg',
  'apk',
  'groupadd',
  'useradd',
  'usermod',
  'groupmod',
  'adduser',
  'addgroup',
]);

/** `rm -rf /var/lib/apt/lists/*` and the like: cleanup that belongs to a system-level RUN. */
function isSystemCleanup(words: readonly string[]): boolean {
  const paths = words.slice(1).filter((w) => !w.startsWith('-'));
  return (
    words[0] === 'rm' &&
    paths.length > 0 &&
    paths.every((p) => /^\/(var\/lib\/apt|var\/cache\/apt|tmp)\b/.test(p))
  );
}

/** What a Debian package provides that dbops uses, checked on this machine instead of installing it. */
const PACKAGE_FILES: Record<string, string[]> = {
  'postgresql-client': ['/usr/bin/pg_dump', '/usr/bin/pg_restore', '/usr/bin/psql'],
};

/** The value of an option in `words` (`--uid 5`, `--uid=5`, `-u 5`), if given. */
function optionValue(words: readonly string[], names: readonly string[]): string | undefined {
  for (let i = 0; i < words.length; i++) {
    const w = words[i] ?? '';
    for (const name of names) {
      if (w === name) return words[i + 1];
      if (name.startsWith('--') && w.startsWith(`${name}=`)) return w.slice(name.length + 1);
    }
  }
  return undefined;
}

/** The last word that is neither an option nor an option's value. */
function operand(words: readonly string[], valued: readonly string[]): string | undefined {
  let last: string | undefined;
  for (let i = 1; i < words.length; i++) {
    const w = words[i] ?? '';
    if (valued.includes(w)) i += 1;
    else if (!w.startsWith('-')) last = w;
  }
  return last;
}

const USERADD_VALUED = ['-u', '--uid', '-g', '--gid', '-d', '--home-dir', '-s', '--shell', '-G', '--groups'];
const USERADD_VALUED_MORE = ['-c', '--comment', '-k', '--skel', '-K', '--key', '-e', '--expiredate'];
const GROUPADD_VALUED = ['-g', '--gid', '-K', '--key', '-p', '--password'];

async function checkSystemRun(stage: Stage, commands: string[][]): Promise<boolean> {
  let allOk = true;
  for (const words of commands) {
    const [command] = words;
    if ((command === 'apt-get' || command === 'apt') && words.includes('install')) {
      const packages = words.slice(words.indexOf('install') + 1).filter((w) => !w.startsWith('-'));
      for (const pkg of packages) {
        const files = PACKAGE_FILES[pkg];
        if (files) {
          const missing = files.filter((f) => !existsSync(f));
          const versions: string[] = [];
          for (const file of files.filter((f) => existsSync(f))) {
            const run = await execa(file, ['--version'], { reject: false });
            versions.push(`${file}: ${run.stdout.trim() || run.stderr.trim()}`);
          }
          const ok = missing.length === 0;
          allOk &&= ok;
          report(
            ok ? 'ok' : 'FAILED',
            `${pkg} (apt-get install, skipped) is present on this machine`,
            ok ? versions : [`missing: ${missing.join(', ')}`, ...versions],
          );
        } else {
          // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own placeholders
          const query = await execa('dpkg-query', ['-W', '-f=${Status} ${Version}', pkg], { reject: false });
          const ok = query.exitCode === 0 && query.stdout.includes('install ok installed');
          allOk &&= ok;
          report(ok ? 'ok' : 'FAILED', `${pkg} (apt-get install, skipped) is installed on this machine`, [
            ok ? `dpkg: ${query.stdout}` : `dpkg-query: ${query.stderr.trim() || query.stdout.trim()}`,
          ]);
        }
      }
    } else if (command === 'groupadd') {
      const name = operand(words, GROUPADD_VALUED);
      const gid = Number(optionValue(words, ['-g', '--gid']) ?? Number.NaN);
      if (name) stage.groups.set(name, gid);
      say(`would create group ${name ?? '?'} (gid ${Number.isNaN(gid) ? 'chosen by the system' : gid})`);
    } else if (command === 'useradd') {
      const name = operand(words, [...USERADD_VALUED, ...USERADD_VALUED_MORE]);
      const uid = Number(optionValue(words, ['-u', '--uid']) ?? Number.NaN);
      const gid = optionValue(words, ['-g', '--gid']);
      const home = optionValue(words, ['-d', '--home-dir']);
      if (name) stage.users.set(name, { uid, gid, home });
      say(
        `would create user ${name ?? '?'} (uid ${Number.isNaN(uid) ? 'chosen by the system' : uid}, group ${gid ?? '-'}, home ${home ?? '-'})`,
      );
    }
  }
  return allOk;
}

// ---------------------------------------------------------------------------------------------------------
// The verification

interface Options {
  committed: boolean;
  keep: boolean;
  dockerfile: string;
}

interface Built {
  final: Stage;
  /** The build context directory. */
  context: string;
}

async function buildContext(base: string, ignore: DockerIgnore, committed: boolean): Promise<string> {
  const context = join(base, 'context');
  await mkdir(context, { recursive: true });
  let source = ROOT;
  let files: string[];
  if (committed) {
    source = join(base, 'head');
    await mkdir(source);
    await execa('bash', ['-c', 'git archive --format=tar HEAD | tar -x -C "$1"', 'bash', source], {
      cwd: ROOT,
    });
    files = (await git(['ls-tree', '-r', '-z', '--name-only', 'HEAD'])).split('\0').filter(Boolean);
  } else {
    files = (await git(['ls-files', '-z'])).split('\0').filter(Boolean);
  }
  let included = 0;
  let excluded = 0;
  const gone: string[] = [];
  const byRule = new Map<string, number>();
  for (const rel of files) {
    const rule = ignore.excludedBy(rel);
    if (rule) {
      excluded += 1;
      byRule.set(rule, (byRule.get(rule) ?? 0) + 1);
      continue;
    }
    const from = join(source, rel);
    const to = join(context, rel);
    const info = await lstat(from).catch(() => undefined);
    if (!info) {
      gone.push(rel);
      continue;
    }
    await mkdir(dirname(to), { recursive: true });
    if (info.isSymbolicLink()) await cp(from, to, { verbatimSymlinks: true });
    else if (info.isFile()) {
      await copyFile(from, to);
      await chmod(to, info.mode & 0o7777);
    } else continue; // a submodule: not part of this context
    included += 1;
  }
  const details = [
    `${included} of ${files.length} ${committed ? 'files of HEAD' : 'tracked files (working tree)'} after .dockerignore; ${excluded} excluded (${[...byRule].map(([r, n]) => `${r}: ${n}`).join(', ')})`,
    `→ ${context}`,
  ];
  if (gone.length > 0) details.push(`tracked but deleted in the working tree (left out): ${gone.join(', ')}`);
  if (!committed) {
    const changed = (await git(['status', '--porcelain', '-z', '--untracked-files=no']))
      .split('\0')
      .filter((entry) => /^.. /.test(entry))
      .map((entry) => entry.slice(3))
      .filter((path) => !ignore.excludedBy(path));
    if (changed.length > 0) {
      details.push(
        `uses uncommitted changes, as docker build . would (--committed builds HEAD): ${changed.join(', ')}`,
      );
    }
    const untracked = (await git(['ls-files', '--others', '--exclude-standard', '-z']))
      .split('\0')
      .filter((p) => p && !ignore.excludedBy(p));
    if (untracked.length > 0) {
      details.push(
        `${untracked.length} untracked file(s) a docker build . here would also send are left out: ${untracked.slice(0, 5).join(', ')}${untracked.length > 5 ? ', …' : ''}`,
      );
    }
  }
  report('ok', 'build context: git files minus .dockerignore', details);
  return context;
}

/** Why a COPY source is not in the context, in words someone can act on. */
async function whyMissing(source: string, ignore: DockerIgnore): Promise<string> {
  const rel = posix.normalize(source).replace(/^\.?\/+/, '');
  if (!existsSync(join(ROOT, rel))) return 'it does not exist in the repository';
  const rule = ignore.excludedBy(rel);
  if (rule) return `.dockerignore excludes it (pattern "${rule}")`;
  const tracked = (await git(['ls-files', '-z', '--', rel])).split('\0').filter(Boolean);
  if (tracked.length === 0)
    return 'it exists here but git does not track it: a build from a clone would not have it';
  return 'it is not in the build context';
}

async function staticCopyCheck(
  instructions: Instruction[],
  context: string,
  ignore: DockerIgnore,
): Promise<void> {
  const problems: string[] = [];
  let checked = 0;
  for (const ins of instructions) {
    if (ins.kind !== 'COPY' || ins.from !== undefined) continue;
    for (const source of ins.sources) {
      if (source.includes('$')) continue; // expanded during the build, checked there
      checked += 1;
      const rel = posix.normalize(source);
      if (rel.startsWith('../') || rel === '..') {
        problems.push(`line ${ins.line}: COPY ${source}: outside the build context`);
      } else if (!existsSync(join(context, rel))) {
        problems.push(
          `line ${ins.line}: COPY ${source}: not in the build context — ${await whyMissing(rel, ignore)}`,
        );
      }
    }
  }
  if (problems.length > 0) report('FAILED', 'every COPY source from the build context exists', problems);
  else report('ok', `every COPY source from the build context exists (${checked} sources)`);
}

function runEnv(stage: Stage, home: string): Record<string, string> {
  // A clean environment, like a RUN step's: this machine's PATH (its node and npm stand in for the base
  // image's), an empty HOME (no ~/.npmrc), the machine's npm cache (only saves downloads), and its CA and
  // proxy settings (needed to reach the registry from here).
  const env: Record<string, string> = { PATH, HOME: home, npm_config_update_notifier: 'false' };
  const cache = join(homedir(), '.npm');
  if (existsSync(cache)) env.npm_config_cache = cache;
  for (const name of [
    'NODE_EXTRA_CA_CERTS',
    'SSL_CERT_FILE',
    'SSL_CERT_DIR',
    'HTTP_PROXY',
    'HTTPS_PROXY',
    'NO_PROXY',
    'http_proxy',
    'https_proxy',
    'no_proxy',
  ]) {
    const value = process.env[name];
    if (value) env[name] = value;
  }
  for (const [k, v] of stage.env) env[k] = v;
  return env;
}

async function build(
  instructions: Instruction[],
  base: string,
  context: string,
  ignore: DockerIgnore,
): Promise<Built | undefined> {
  const stages: Stage[] = [];
  const home = join(base, 'home');
  await mkdir(home);
  let stage: Stage | undefined;
  for (const ins of instructions) {
    const text = ins.text.replace(/\s+/g, ' ');
    const title = `line ${ins.line}: ${text.length > 100 ? `${text.slice(0, 97)}…` : text}`;
    try {
      if (ins.kind === 'FROM') {
        const index = stages.length;
        const root = join(base, `stage-${index}${ins.as ? `-${ins.as}` : ''}`);
        await mkdir(root, { mode: 0o755 });
        await chmod(root, 0o755);
        const parent = stages.find((s) => s.name === ins.image);
        stage = {
          index,
          name: ins.as,
          image: ins.image,
          root,
          workdir: parent?.workdir ?? '/',
          env: new Map(parent?.env ?? []),
          user: parent?.user,
          users: new Map(parent?.users ?? []),
          groups: new Map(parent?.groups ?? []),
          expose: [...(parent?.expose ?? [])],
          healthcheck: parent?.healthcheck,
          entrypoint: parent?.entrypoint,
          cmd: parent?.cmd,
        };
        stages.push(stage);
        if (parent) {
          await cp(parent.root, root, { recursive: true, verbatimSymlinks: true });
          report('ok', title, [`starts from stage ${label(parent)}`, `stage root → ${root}`]);
          continue;
        }
        const details = [`base image not pulled: this machine stands in for it; stage root → ${root}`];
        let ok = true;
        const nodeTag = /^node:(\d+)/.exec(ins.image)?.[1];
        if (nodeTag) {
          const major = process.versions.node.split('.')[0];
          ok = major === nodeTag;
          details.push(
            `node here: ${process.version} (${ok ? 'same major as' : 'NOT the major of'} the image's node ${nodeTag})`,
          );
          const npm = await execa('npm', ['--version'], { reject: false, env: { PATH }, extendEnv: false });
          details.push(
            `npm here: ${npm.stdout.trim()} (node:${nodeTag} images ship the npm of node ${nodeTag}: npm 10)`,
          );
        }
        const codename = /-(bookworm|bullseye|trixie|buster)/.exec(ins.image)?.[1];
        if (codename) {
          const release = await readFile('/etc/os-release', 'utf8').catch(() => '');
          const here = /^VERSION_CODENAME=(.*)$/m.exec(release)?.[1] ?? 'unknown';
          details.push(`Debian here: ${here} (image: ${codename})${here === codename ? '' : ' — differs'}`);
        }
        report(ok ? 'ok' : 'FAILED', title, details);
        if (!ok) return undefined;
        continue;
      }
      if (!stage) throw new DockerfileError('an instruction before FROM');
      const current = stage;
      switch (ins.kind) {
        case 'WORKDIR': {
          current.workdir = posix.resolve(current.workdir, substitute(ins.path, current.env, ins.line));
          await mkdir(hostPath(current, current.workdir), { recursive: true });
          report('ok', title, [`→ ${hostPath(current, current.workdir)}`]);
          break;
        }
        case 'ENV':
          for (const [key, value] of ins.pairs)
            current.env.set(key, substitute(value, current.env, ins.line));
          report('ok', title, [ins.pairs.map(([k]) => `${k}=${current.env.get(k)}`).join(' ')]);
          break;
        case 'COPY': {
          const fromStage =
            ins.from === undefined
              ? undefined
              : stages.find((s) => s.name === ins.from || String(s.index) === ins.from);
          if (ins.from !== undefined && (!fromStage || fromStage === current)) {
            throw new DockerfileError(
              `--from=${ins.from}: no earlier stage of that name (images are not pulled here)`,
            );
          }
          const dest = posix.resolve(current.workdir, substitute(ins.dest, current.env, ins.line));
          const destHost = hostPath(current, dest);
          const destIsDir = (await lstat(destHost).catch(() => undefined))?.isDirectory() ?? false;
          const intoDir = ins.dest.endsWith('/') || ins.sources.length > 1 || destIsDir;
          let files = 0;
          let bytes = 0;
          const lines: string[] = [];
          for (const raw of ins.sources) {
            const source = substitute(raw, current.env, ins.line);
            let from: string;
            if (fromStage) from = hostPath(fromStage, posix.resolve('/', source));
            else {
              const rel = posix.normalize(source);
              if (rel === '..' || rel.startsWith('../'))
                throw new DockerfileError(`${source} is outside the context`);
              from = join(context, rel);
            }
            const info = await lstat(from).catch(() => undefined);
            if (!info) {
              const where = fromStage
                ? `stage ${label(fromStage)} has no ${posix.resolve('/', source)}`
                : `not in the build context — ${await whyMissing(source, ignore)}`;
              throw new DockerfileError(`COPY source ${source} does not exist: ${where}`);
            }
            let to = destHost;
            if (info.isDirectory()) await mkdir(destHost, { recursive: true });
            else {
              if (intoDir) {
                await mkdir(destHost, { recursive: true });
                to = join(destHost, posix.basename(source));
              } else await mkdir(dirname(destHost), { recursive: true });
            }
            // A directory's contents go into the destination; symlinks are copied as they are.
            await cp(from, to, { recursive: true, verbatimSymlinks: true, force: true });
            const counted = await countFiles(from);
            files += counted.files;
            bytes += counted.bytes;
            lines.push(
              `${fromStage ? `${label(fromStage)}:` : ''}${source} → ${info.isDirectory() ? `${dest}/` : relative(current.root, to).split(sep).join('/').replace(/^/, '/')}`,
            );
          }
          report('ok', title, [...lines, `${files} file(s), ${mb(bytes)}`]);
          break;
        }
        case 'RUN': {
          const shell = ins.shell ?? '';
          const commands = ins.shell ? simpleCommands(ins.shell) : [ins.exec ?? []];
          const system = commands.filter((words) => SYSTEM_COMMANDS.has(posix.basename(words[0] ?? '')));
          if (system.length > 0) {
            const other = commands.filter(
              (words) => !SYSTEM_COMMANDS.has(posix.basename(words[0] ?? '')) && !isSystemCleanup(words),
            );
            if (other.length > 0) {
              throw new DockerfileError(
                `mixes system-level commands with others (${other.map((w) => w.join(' ')).join('; ')}); this script can not run half of it`,
              );
            }
            report('skipped', title, [`skipped (system): ${text.replace(/^RUN /, '')}`]);
            if (!(await checkSystemRun(current, commands))) return undefined;
            break;
          }
          // Everything else runs for real, in the stage's WORKDIR: it must not reach outside the stage root.
          const absolute = commands.flat().filter((w) => w.startsWith('/'));
          if (absolute.length > 0) {
            throw new DockerfileError(
              `refers to absolute paths (${absolute.join(', ')}), which here would be this machine's, not the stage's`,
            );
          }
          const cwd = hostPath(current, current.workdir);
          const [file, ...args] = ins.exec ?? ['bash', '-c', shell];
          process.stdout.write(`[run    ] ${title}\n`);
          say(`in ${cwd}`);
          const started = Date.now();
          const child = execa(file ?? 'bash', args, {
            cwd,
            env: runEnv(current, home),
            extendEnv: false,
            reject: false,
            all: true,
          });
          child.all?.on('data', (chunk: Buffer) => {
            for (const line of chunk.toString().split('\n')) if (line.trim()) say(`| ${line}`);
          });
          const result = await child;
          const ok = result.exitCode === 0;
          report(ok ? 'ok' : 'FAILED', title, [
            `exit ${result.exitCode} after ${seconds(Date.now() - started)}`,
            ...(ok ? [] : tail(result.all ?? '')),
          ]);
          if (!ok) return undefined;
          break;
        }
        case 'USER': {
          current.user = ins.user;
          const [name = '', group] = ins.user.split(':');
          const created = current.users.get(name);
          const known = /^\d+$/.test(name) || name === 'root' || name === 'node' || created !== undefined;
          const details = created
            ? [
                `created by the skipped useradd (uid ${created.uid}); run-time steps run as uid ${created.uid} (see below)`,
              ]
            : [];
          if (group && !current.groups.has(group) && !/^\d+$/.test(group))
            details.push(`group ${group} is not created`);
          report(known ? 'ok' : 'FAILED', title, known ? details : [`no earlier useradd creates ${name}`]);
          if (!known) return undefined;
          break;
        }
        case 'EXPOSE':
          current.expose = [...current.expose, ...ins.ports];
          report('ok', title, ['checked against the code’s default ports after the build']);
          break;
        case 'HEALTHCHECK':
          current.healthcheck = ins;
          report('ok', title, [`command: ${JSON.stringify(ins.cmd)}`]);
          break;
        case 'ENTRYPOINT':
          current.entrypoint = ins.exec;
          current.cmd = undefined; // as Docker does: a new ENTRYPOINT drops an inherited CMD
          report('ok', title);
          break;
        case 'CMD':
          current.cmd = ins.exec;
          report('ok', title);
          break;
      }
    } catch (err) {
      report('FAILED', title, [errorText(err)]);
      return undefined;
    }
  }
  if (!stage) return undefined;
  return { final: stage, context };
}

/** Static checks of the final stage's files. */
async function checkImageFiles(final: Stage, context: string): Promise<boolean> {
  let ok = true;
  // Files are root's (COPY without --chown); USER must be able to read them and enter the directories.
  const unreadable: string[] = [];
  const dangling: string[] = [];
  let count = 0;
  for await (const entry of walk(final.root)) {
    count += 1;
    const shown = `/${relative(final.root, entry.path).split(sep).join('/')}`;
    if (entry.kind === 'file' && (entry.mode & 0o004) === 0) unreadable.push(shown);
    if (entry.kind === 'dir' && (entry.mode & 0o005) !== 0o005) unreadable.push(`${shown}/`);
    if (entry.kind === 'link') {
      const target = await readlink(entry.path);
      const resolved = target.startsWith('/') ? hostPath(final, target) : join(dirname(entry.path), target);
      if (!resolved.startsWith(final.root + sep) || !existsSync(resolved)) {
        dangling.push(`${shown} → ${target}`);
      }
    }
  }
  const permsOk = unreadable.length === 0;
  ok &&= permsOk;
  report(
    permsOk ? 'ok' : 'FAILED',
    `image files are readable by a non-root user (${count} entries: files o+r, directories o+rx)`,
    permsOk ? [] : [`${unreadable.length} not: ${unreadable.slice(0, 10).join(', ')}`],
  );
  const linksOk = dangling.length === 0;
  ok &&= linksOk;
  report(
    linksOk ? 'ok' : 'FAILED',
    'symlinks in the image resolve inside the image',
    linksOk ? [] : dangling.slice(0, 10),
  );

  // Files the compiled code finds next to itself (new URL('…', import.meta.url)) must be in the image.
  const app = hostPath(final, final.workdir);
  const problems: string[] = [];
  const found: string[] = [];
  for await (const entry of walk(join(app, 'dist'))) {
    if (entry.kind !== 'file' || !entry.path.endsWith('.js')) continue;
    const code = await readFile(entry.path, 'utf8');
    const refs = [
      ...code.matchAll(/new URL\(\s*(['"`])(\.\.?\/[^'"`]*)\1\s*,\s*import\.meta\.url\s*\)/g),
    ].map((m) => m[2] ?? '');
    if (refs.length === 0) continue;
    const module = relative(app, entry.path).split(sep).join('/');
    const resolved = refs.map((ref) => {
      const fixed = ref.includes('${') ? posix.dirname(`${ref.slice(0, ref.indexOf('${'))}x`) : ref;
      const path = join(dirname(entry.path), fixed);
      return { ref, exists: existsSync(path), inside: path.startsWith(final.root + sep) };
    });
    // Several candidates in one module are alternatives (source tree or dist): one must exist.
    const hit = resolved.filter((r) => r.exists && r.inside);
    if (hit.length === 0) problems.push(`${module}: none of ${refs.join(', ')} exists in the image`);
    else found.push(`${module}: ${hit.map((r) => r.ref).join(', ')}`);
  }
  ok &&= problems.length === 0;
  report(
    problems.length === 0 ? 'ok' : 'FAILED',
    'files the compiled code locates next to itself (new URL(…, import.meta.url)) are in the image',
    [...problems, ...found],
  );

  // The runbook packs: the image has each one the repository ships.
  const packsSource = join(context, 'commands', 'packs');
  if (existsSync(packsSource)) {
    const shipped = (await readdir(packsSource)).sort();
    const inImage = join(app, 'commands', 'packs');
    const missing = shipped.filter((p) => !existsSync(join(inImage, p, 'pack.yaml')));
    ok &&= missing.length === 0;
    report(
      missing.length === 0 ? 'ok' : 'FAILED',
      `runbook packs in the image: ${shipped.join(', ')}`,
      missing.length === 0 ? [] : [`missing from ${final.workdir}/commands/packs: ${missing.join(', ')}`],
    );
  }
  return ok;
}

interface Runner {
  /** The command line as the image runs it, mapped to this machine. */
  command(argv: readonly string[]): [string, string[]];
  describe: string;
}

function imageRunner(final: Stage): Runner {
  const [name = ''] = (final.user ?? '').split(':');
  const created = final.users.get(name);
  const uid = created?.uid ?? (/^\d+$/.test(name) ? Number(name) : undefined);
  const gidName = created?.gid;
  const gid =
    gidName === undefined ? uid : /^\d+$/.test(gidName) ? Number(gidName) : final.groups.get(gidName);
  const asRoot = process.getuid?.() === 0;
  const setpriv = existsSync('/usr/bin/setpriv');
  const map = (arg: string) =>
    arg.startsWith('/') && existsSync(hostPath(final, arg)) ? hostPath(final, arg) : arg;
  if (uid !== undefined && uid !== 0 && asRoot && setpriv && gid !== undefined && !Number.isNaN(gid)) {
    return {
      command: (argv) => [
        'setpriv',
        [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', ...argv.map(map)],
      ],
      describe: `as uid ${uid} / gid ${gid} (USER ${final.user}) through setpriv`,
    };
  }
  return {
    command: (argv) => {
      const [file = 'node', ...args] = argv.map(map);
      return [file, args];
    },
    describe: `as this machine's user (uid ${process.getuid?.()}): USER ${final.user ?? 'root'} is not emulated`,
  };
}

async function startPostgres() {
  return await startThrowawayPostgres({ prefix: 'dbops-verify-pg-' });
}

async function sql(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

const CONFIG_YAML = `# written by deploy/verify-image.ts
state:
  url: \${VERIFY_STATE_URL}
targets:
  verifydb:
    url: \${VERIFY_TARGET_URL}
    environment: development
people:
  verify: { cli: verify, slack: T1/UVERIFY, roles: [dba] }
policy:
  development: { read: [everyone], write: [dba], request: [dba], approve: [dba] }
`;
const TARGET = 'verifydb';
const TABLE = 'verify_image_items';
const SIGNING_SECRET = 'verify-signing-secret';

async function runtime(final: Stage, context: string, base: string, cleanups: (() => Promise<void>)[]) {
  if (!final.entrypoint) {
    report('FAILED', 'the final stage has an ENTRYPOINT');
    throw new Stop();
  }
  const entrypoint = final.entrypoint;
  const app = hostPath(final, final.workdir);
  const runner = imageRunner(final);
  const imageEnv = Object.fromEntries(final.env);
  say(`run-time steps: cwd ${app} (WORKDIR ${final.workdir}), ${runner.describe}`);
  notes.push(
    `The image's commands ran ${runner.describe}, on root-owned copies: an approximation of USER, not a container.`,
  );
  const inImage = (args: readonly string[], env: Record<string, string>, timeout = 60_000) => {
    const [file, argv] = runner.command([...entrypoint, ...args]);
    return execa(file, argv, {
      cwd: app,
      env: { PATH, ...imageEnv, ...env },
      extendEnv: false,
      reject: false,
      timeout,
      all: true,
    });
  };
  const shown = (args: readonly string[]) => JSON.stringify([...entrypoint, ...args]);

  // a. The CLI answers.
  const help = await inImage(['--help'], {});
  const helpOk = help.exitCode === 0 && help.stdout.includes('Usage:');
  report(helpOk ? 'ok' : 'FAILED', `5a. ENTRYPOINT --help exits 0: ${shown(['--help'])}`, [
    `exit ${help.exitCode}; ${helpOk ? help.stdout.split('\n')[0] : ''}`,
    ...(helpOk ? [] : tail(help.all ?? '')),
  ]);
  if (!helpOk) throw new Stop();

  // EXPOSE against the ports the code listens on by default.
  if (final.expose.length > 0) {
    const probe = await execa(
      'node',
      [
        '--input-type=module',
        '-e',
        `const { serviceSettings } = await import('./dist/src/observability/server.js');
         const { readSlackSettings } = await import('./dist/src/surfaces/slack/settings.js');
         const slack = readSlackSettings({ SLACK_BOT_TOKEN: 'xoxb-test', SLACK_SIGNING_SECRET: 's' });
         console.log(JSON.stringify({ http: serviceSettings({}).port, slack: slack?.port }));`,
      ],
      { cwd: app, env: { PATH }, extendEnv: false, reject: false },
    );
    let defaults: { http?: number; slack?: number } = {};
    try {
      defaults = JSON.parse(probe.stdout) as { http?: number; slack?: number };
    } catch {
      // reported below
    }
    const exposed = final.expose.map((p) => Number(p.split('/')[0]));
    const wanted = [defaults.http, defaults.slack].filter((p): p is number => typeof p === 'number');
    // The HEALTHCHECK falls back to the same default port when DBOPS_HTTP_PORT is not set.
    const healthcheckPortOk =
      !final.healthcheck || !defaults.http || final.healthcheck.cmd.join(' ').includes(String(defaults.http));
    const ok = wanted.length === 2 && wanted.every((p) => exposed.includes(p)) && healthcheckPortOk;
    report(
      ok ? 'ok' : 'FAILED',
      `EXPOSE ${final.expose.join(' ')} matches the image's default ports (and the HEALTHCHECK's fallback)`,
      [
        wanted.length === 2
          ? `DBOPS_HTTP_PORT default ${defaults.http}, SLACK_PORT default ${defaults.slack}`
          : `could not read the defaults from the image's code: ${probe.stderr.trim().split('\n')[0] ?? ''}`,
        ...(healthcheckPortOk ? [] : [`the HEALTHCHECK command does not fall back to port ${defaults.http}`]),
      ],
    );
  }

  // b. PostgreSQL: a state database and a target with a table /db sizes will list.
  let started = Date.now();
  const postgres = await startPostgres();
  cleanups.push(postgres.stop);
  await sql(postgres.url('postgres'), 'CREATE DATABASE verify_state');
  await sql(postgres.url('postgres'), 'CREATE DATABASE verify_target');
  await sql(
    postgres.url('verify_target'),
    `CREATE TABLE ${TABLE} (id serial PRIMARY KEY, body text);
     INSERT INTO ${TABLE} (body) SELECT md5(g::text) FROM generate_series(1, 5000) g; ANALYZE;`,
  );
  report(
    'ok',
    `5b. embedded PostgreSQL started; databases verify_state and verify_target created (${seconds(Date.now() - started)})`,
  );

  // c. The fake Slack Web API, a config file, and `start` with the image's CMD.
  const fake = await FakeSlack.start();
  cleanups.push(() => fake.close());
  const configPath = join(base, 'dbops.yaml');
  await writeFile(configPath, CONFIG_YAML, { mode: 0o644 });
  const urls = {
    VERIFY_STATE_URL: postgres.url('verify_state'),
    VERIFY_TARGET_URL: postgres.url('verify_target'),
  };
  const httpPort = await freePort();
  const slackPort = await freePort();
  const botEnv: Record<string, string> = {
    ...urls,
    DBOPS_LOG_LEVEL: 'info',
    DBOPS_HTTP_HOST: HOST,
    DBOPS_HTTP_PORT: String(httpPort),
    SLACK_BOT_TOKEN: 'xoxb-test',
    SLACK_MODE: 'http',
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
    SLACK_PORT: String(slackPort),
    SLACK_API_URL: fake.apiUrl,
    SLACK_API_RETRIES: '0',
  };
  const cmd = [...(final.cmd ?? [])];
  const at = cmd.indexOf('--config');
  if (at >= 0 && at + 1 < cmd.length) cmd[at + 1] = configPath;
  else cmd.push('--config', configPath);
  const [file, argv] = runner.command([...entrypoint, ...cmd]);
  started = Date.now();
  const bot = execa(file, argv, {
    cwd: app,
    env: { PATH, ...imageEnv, ...botEnv },
    extendEnv: false,
    reject: false,
    buffer: false,
  });
  const logs: string[] = [];
  let pending = '';
  bot.stderr?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    logs.push(...lines);
  });
  bot.stdout?.on('data', (chunk: Buffer) => logs.push(...chunk.toString().split('\n').filter(Boolean)));
  let exit: number | undefined | null = null;
  const exited = bot.then((r) => {
    exit = r.exitCode;
    return r;
  });
  cleanups.push(async () => {
    if (exit === null) {
      bot.kill('SIGKILL');
      await exited;
    }
  });
  report('ok', `5c. started ${shown(cmd)} (the image's CMD, --config → a generated file)`, [
    `env: NODE_ENV=${imageEnv.NODE_ENV ?? '(unset)'} PATH ${Object.keys(botEnv).join(' ')} (nothing else)`,
    `config: ${configPath}; fake Slack Web API ${fake.apiUrl}`,
  ]);

  // d. /readyz, then the HEALTHCHECK command exactly as the Dockerfile gives it.
  const readyUrl = `http://${HOST}:${httpPort}/readyz`;
  let ready = false;
  let lastReady = '';
  while (!ready && exit === null && Date.now() - started < 60_000) {
    try {
      const response = await fetch(readyUrl);
      lastReady = `${response.status} ${(await response.text()).slice(0, 200)}`;
      ready = response.status === 200;
    } catch (err) {
      lastReady = errorText(err);
    }
    if (!ready) await new Promise((r) => setTimeout(r, 200));
  }
  const readyMs = Date.now() - started;
  report(
    ready ? 'ok' : 'FAILED',
    `5d. GET /readyz answers 200 (after ${seconds(readyMs)})`,
    [
      ...(ready
        ? []
        : [
            `last answer: ${lastReady}`,
            exit !== null ? `the bot exited with ${exit}` : '',
            ...logs.slice(-25),
          ]),
    ].filter(Boolean),
  );
  if (!ready) throw new Stop();

  const healthcheck = final.healthcheck;
  const runHealthcheck = async () => {
    if (!healthcheck) return undefined;
    const [hcFile, hcArgv] = runner.command(healthcheck.cmd);
    const t0 = Date.now();
    const result = await execa(hcFile, hcArgv, {
      cwd: app,
      env: { PATH, ...imageEnv, ...botEnv },
      extendEnv: false,
      reject: false,
      timeout: 30_000,
      all: true,
    });
    return { result, ms: Date.now() - t0 };
  };
  if (healthcheck) {
    const timeoutMs = durationMs(healthcheck.options.timeout, 30_000);
    const hc = await runHealthcheck();
    const ok = hc?.result.exitCode === 0 && hc.ms <= timeoutMs;
    report(ok ? 'ok' : 'FAILED', '5d. the HEALTHCHECK command exits 0 against the running bot', [
      `exit ${hc?.result.exitCode} in ${hc?.ms} ms (HEALTHCHECK --timeout ${healthcheck.options.timeout ?? '30s'}); ready after ${seconds(readyMs)} here (--start-period ${healthcheck.options['start-period'] ?? '0s'})`,
      ...(ok ? [] : tail(hc?.result.all ?? '')),
    ]);
  } else report('skipped', '5d. no HEALTHCHECK in the final stage');

  // e. One signed slash command; the answer comes back through the Web API.
  const from = fake.calls.length;
  const eventsUrl = `http://${HOST}:${slackPort}/slack/events`;
  let slashOk = false;
  const slashDetails: string[] = [];
  try {
    const posted = await postSigned(eventsUrl, {
      secret: SIGNING_SECRET,
      body: formBody(slashCommand(fake, { user: 'UVERIFY', channel: 'CVERIFY', text: `sizes ${TARGET}` })),
      contentType: 'application/x-www-form-urlencoded',
    });
    slashDetails.push(`POST ${eventsUrl}: ${posted.status}`);
    if (posted.status === 200) {
      await fake.call('chat.postMessage', from, 2);
      const messages = fake.callsOf('chat.postMessage', from);
      const texts = messages.map((m) => String(m.body.text ?? ''));
      const all = JSON.stringify(messages.map((m) => m.body));
      slashOk = texts.some((t) => t.includes(`sizes ${TARGET}`)) && all.includes(TABLE);
      slashDetails.push(
        `chat.postMessage ×${messages.length}: ${texts.map((t) => JSON.stringify(t.slice(0, 80))).join(', ')}`,
        all.includes(TABLE)
          ? `the reply lists ${TABLE}`
          : `the reply does not mention ${TABLE}: ${all.slice(0, 300)}`,
      );
    }
  } catch (err) {
    slashDetails.push(errorText(err));
  }
  report(
    slashOk ? 'ok' : 'FAILED',
    `5e. signed slash command /db sizes ${TARGET} → 200 and a reply (ack thread and worker file shipped)`,
    slashDetails,
  );

  // f. Commands that need the packs: check-config counts them, help of a pack operation shows its summary.
  const packsDir = join(context, 'commands', 'packs');
  const packNames = existsSync(packsDir) ? (await readdir(packsDir)).sort() : [];
  const check = await inImage(['check-config', '--config', configPath], urls);
  const counted = /(\d+) packs\)/.exec(check.stdout)?.[1];
  const checkOk = check.exitCode === 0 && Number(counted) === packNames.length;
  report(
    checkOk ? 'ok' : 'FAILED',
    `5f. ENTRYPOINT check-config --config <file> exits 0 and loads the ${packNames.length} shipped packs`,
    [
      `exit ${check.exitCode}: ${check.stdout.split('\n')[0] ?? ''}`,
      ...(checkOk ? [] : tail(check.all ?? '')),
    ],
  );
  const firstPack = packNames[0];
  if (firstPack) {
    const opFile = (await readdir(join(packsDir, firstPack)))
      .sort()
      .find((f) => f.endsWith('.yaml') && f !== 'pack.yaml');
    const op = opFile
      ? (parseYaml(await readFile(join(packsDir, firstPack, opFile), 'utf8')) as {
          name?: string;
          summary?: string;
        })
      : undefined;
    if (op?.name && op.summary) {
      const args = ['exec', '--config', configPath, '--as', 'verify', '--', `help ${op.name}`];
      const run = await inImage(args, urls);
      const ok = run.exitCode === 0 && run.stdout.includes(op.summary);
      report(
        ok ? 'ok' : 'FAILED',
        `5f. ENTRYPOINT exec … -- "help ${op.name}" shows the ${firstPack} pack's operation`,
        [
          `exit ${run.exitCode}: ${run.stdout.split('\n').filter(Boolean).slice(0, 2).join(' / ')}`,
          ...(ok ? [] : tail(run.all ?? '')),
        ],
      );
    }
  }

  // g. SIGTERM: a clean stop with exit code 0; the HEALTHCHECK now fails (it is not vacuous).
  bot.kill('SIGTERM');
  const stopStarted = Date.now();
  const stopped = await Promise.race([
    exited,
    new Promise<undefined>((r) => setTimeout(() => r(undefined), 40_000)),
  ]);
  const stopMs = Date.now() - stopStarted;
  const message = (line: string) => {
    try {
      return String((JSON.parse(line) as { msg?: unknown }).msg ?? '');
    } catch {
      return line;
    }
  };
  const stoppedLine = logs.map(message).find((m) => m === 'dbops stopped');
  const stopOk = stopped !== undefined && stopped.exitCode === 0 && stoppedLine !== undefined;
  report(
    stopOk ? 'ok' : 'FAILED',
    `5g. SIGTERM → exit ${stopped ? stopped.exitCode : 'none within 40 s'} after ${stopMs} ms, logging "dbops stopped"`,
    stopOk ? [`last log lines: ${logs.slice(-3).map(message).join(' / ')}`] : logs.slice(-25),
  );
  if (healthcheck) {
    const after = await runHealthcheck();
    const ok = after !== undefined && after.result.exitCode !== 0;
    report(ok ? 'ok' : 'FAILED', '5g. the HEALTHCHECK command fails once the bot has stopped', [
      `exit ${after?.result.exitCode}`,
    ]);
  }
  const errors = logs.filter((line) => {
    try {
      return ((JSON.parse(line) as { level?: number }).level ?? 0) >= 50;
    } catch {
      return false;
    }
  });
  report(
    errors.length === 0 ? 'ok' : 'FAILED',
    `the bot logged no errors (${logs.length} log lines)`,
    errors.slice(0, 10),
  );
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      committed: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      dockerfile: { type: 'string', default: join(ROOT, 'Dockerfile') },
    },
  });
  const options: Options = {
    committed: values.committed ?? false,
    keep: values.keep ?? false,
    dockerfile: values.dockerfile ?? join(ROOT, 'Dockerfile'),
  };
  process.stdout.write(
    `dbops: verify the Dockerfile by emulating its build on this machine (no Docker engine here)\n${new Date().toISOString()}  ${ROOT}\n\n`,
  );
  notes.push(
    `npm here is this machine's (${(await execa('npm', ['--version'], { reject: false, env: { PATH }, extendEnv: false })).stdout.trim()}); node:20-bookworm-slim ships npm 10, so npm install / prune ran with a newer npm than the image's.`,
    `node here: ${process.version}; the image's node is whatever node:20-bookworm-slim is at build time.`,
    'Not verified: the base image itself, apt-get (only that its packages exist on this machine), the dbops user and group (passwd entries, file ownership inside a container), and HEALTHCHECK timing under Docker.',
  );

  const cleanups: (() => Promise<void>)[] = [];
  const base = await mkdtemp(join(tmpdir(), 'dbops-verify-image-'));
  await chmod(base, 0o755); // the run-time steps may run as the image's uid, which must enter it
  const onSignal = () => {
    void (async () => {
      for (const c of cleanups.reverse()) await c().catch(() => {});
      if (!options.keep) await rm(base, { recursive: true, force: true });
      process.exit(130);
    })();
  };
  process.once('SIGINT', onSignal);
  try {
    // 1. Parse.
    let instructions: Instruction[];
    try {
      instructions = parseDockerfile(await readFile(options.dockerfile, 'utf8'));
      const stages = instructions.filter((i) => i.kind === 'FROM');
      report(
        'ok',
        `1. Dockerfile parsed: ${instructions.length} instructions, ${stages.length} stages (${stages.map((s, n) => (s.kind === 'FROM' && s.as) || `#${n}`).join(', ')})`,
      );
    } catch (err) {
      report('FAILED', `1. Dockerfile parsed (${options.dockerfile})`, [errorText(err)]);
      throw new Stop();
    }

    // 2. The build context.
    const ignore = new DockerIgnore(await readFile(join(ROOT, '.dockerignore'), 'utf8').catch(() => ''));
    say(`2. .dockerignore: ${ignore.rules.length} patterns`);
    const context = await buildContext(base, ignore, options.committed);
    await staticCopyCheck(instructions, context, ignore);

    // 3–4. The stages.
    process.stdout.write('\n3–4. Building the stages (each in its own root; system-level RUNs skipped):\n');
    const built = await build(instructions, base, context, ignore);
    if (!built) throw new Stop();
    process.stdout.write('\nThe final stage as an image:\n');
    const filesOk = await checkImageFiles(built.final, context);
    if (!filesOk) say('(continuing: the run-time steps show what these problems break)');

    // 5. Run it.
    process.stdout.write('\n5. Running the final stage:\n');
    await runtime(built.final, context, base, cleanups);
  } catch (err) {
    if (!(err instanceof Stop))
      report('FAILED', 'unexpected error', [err instanceof Error ? (err.stack ?? err.message) : String(err)]);
    process.stdout.write('          (the steps after this failure were not run)\n');
  } finally {
    for (const cleanup of cleanups.reverse())
      await cleanup().catch((err: unknown) => say(`cleanup: ${errorText(err)}`));
    if (options.keep) say(`kept ${base}`);
    else await rm(base, { recursive: true, force: true });
  }

  const failed = steps.filter((s) => s.status === 'FAILED');
  const skipped = steps.filter((s) => s.status === 'skipped');
  process.stdout.write('\nNotes:\n');
  for (const note of notes) process.stdout.write(`  - ${note}\n`);
  process.stdout.write(
    `\nSummary: ${steps.length - failed.length - skipped.length} ok, ${skipped.length} skipped (system-level, checked on this machine instead), ${failed.length} FAILED\n`,
  );
  for (const step of failed) process.stdout.write(`  FAILED: ${step.title}\n`);
  process.stdout.write(failed.length === 0 ? 'verify-image: PASSED\n' : 'verify-image: FAILED\n');
  return failed.length === 0 ? 0 : 1;
}

process.exit(await main());
