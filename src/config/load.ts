// Reads dbops.yaml: ${ENV} interpolation, zod validation and cross-checks, every problem with its file:line and fix.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { type Document, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import { closest, orList } from '../core/suggest.js';
import type { IdentityKind } from '../core/types.js';
import { IDENTITY_KINDS } from '../core/types.js';
import { withPlatformRoles } from '../identity/people.js';
import { resolveSchedule } from '../schedules/schema.js';
import { crossCheck, hasLiteralPassword } from './cross-check.js';
import { isRecord, ProblemList, quoted } from './problems.js';
import {
  type Config,
  configSchema,
  type Limits,
  type ParsedConfig,
  type ResolvedPerson,
  type ResolvedTarget,
  type RoleSources,
} from './schema.js';
import { dotted, Locator, type Path } from './yaml-locator.js';

export { hasLiteralPassword };

export type Env = Record<string, string | undefined>;

/** The role every person holds implicitly. */
export { EVERYONE } from '../core/policy.js';

// ---------------------------------------------------------------------------------------------------------
// ${VAR} interpolation

const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

type Interpolated = { ok: true; value: string } | { ok: false; problems: string[] };

/** Replaces ${VAR} with the environment's value; `$${` is a literal `${`. */
export function interpolate(text: string, env: Env): Interpolated {
  const problems: string[] = [];
  let out = '';
  let i = 0;
  while (i < text.length) {
    if (text.startsWith('$${', i)) {
      out += '${';
      i += 3;
      continue;
    }
    if (!text.startsWith('${', i)) {
      out += text.charAt(i);
      i++;
      continue;
    }
    const close = text.indexOf('}', i + 2);
    if (close < 0) {
      problems.push(`has "\${" without a closing "}"; write \${NAME}, or $\${ for a literal "\${"`);
      break;
    }
    const name = text.slice(i + 2, close);
    if (!VAR_NAME.test(name)) {
      problems.push(
        `"\${${name.slice(0, 30)}}" is not a variable name; use letters, digits and _ (e.g. \${KASM_DATABASE_URL}), or $\${ for a literal "\${"`,
      );
    } else {
      const value = env[name];
      if (value === undefined || value === '') {
        problems.push(
          `environment variable ${name} is ${value === undefined ? 'not set' : 'empty'}; set ${name} in the environment of dbops (e.g. export ${name}=...)`,
        );
      } else {
        out += value;
      }
    }
    i = close + 1;
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, value: out };
}

/** Interpolates every string scalar value (never keys) in place; returns the raw text of each by path. */
function interpolateDocument(doc: Document, env: Env, problems: ProblemList): Map<string, string> {
  const raw = new Map<string, string>();
  const walk = (node: unknown, path: Path): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair) || !isScalar(pair.key)) continue;
        walk(pair.value, [...path, String(pair.key.value)]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, index) => {
        walk(item, [...path, index]);
      });
    } else if (isScalar(node) && typeof node.value === 'string') {
      raw.set(dotted(path), node.value);
      if (!node.value.includes('${')) return;
      const result = interpolate(node.value, env);
      if (result.ok) node.value = result.value;
      else for (const problem of result.problems) problems.add(path, problem);
    }
  };
  walk(doc.contents, []);
  return raw;
}

// ---------------------------------------------------------------------------------------------------------
// zod issues → problems

type SchemaNode = z.core.$ZodType;

function isSchema(value: unknown): value is SchemaNode {
  return typeof value === 'object' && value !== null && '_zod' in value;
}

/** The zod schema that validates the value at `path`, looking through wrappers, records and arrays. */
function schemaAt(path: Path): SchemaNode | undefined {
  let node: SchemaNode | undefined = configSchema;
  for (const segment of [...path, undefined]) {
    // Unwrap optional/default/pipe wrappers first.
    for (let guard = 0; node && guard < 10; guard++) {
      const def: z.core.$ZodTypeDef = node._zod.def;
      if ('innerType' in def && isSchema(def.innerType)) node = def.innerType;
      else if (def.type === 'pipe' && 'in' in def && isSchema(def.in)) node = def.in;
      else break;
    }
    if (segment === undefined || !node) return node;
    const def: z.core.$ZodTypeDef = node._zod.def;
    if (def.type === 'object' && 'shape' in def && isRecord(def.shape)) {
      const next: unknown = def.shape[String(segment)];
      node = isSchema(next) ? next : undefined;
    } else if (def.type === 'record' && 'valueType' in def && isSchema(def.valueType)) {
      node = def.valueType;
    } else if (def.type === 'array' && 'element' in def && isSchema(def.element)) {
      node = def.element;
    } else {
      return undefined;
    }
  }
  return node;
}

function knownKeys(path: Path): string[] {
  const node = schemaAt(path);
  if (!node) return [];
  const def: z.core.$ZodTypeDef = node._zod.def;
  return def.type === 'object' && 'shape' in def && isRecord(def.shape) ? Object.keys(def.shape) : [];
}

function valueAt(data: unknown, path: Path): unknown {
  let node = data;
  for (const segment of path) {
    if (Array.isArray(node) && typeof segment === 'number') node = node[segment];
    else if (isRecord(node)) node = node[String(segment)];
    else return undefined;
  }
  return node;
}

function typeName(value: unknown): string {
  if (value === null) return 'nothing (null)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return 'text';
  return `a ${typeof value}`;
}

const EXPECTED: Record<string, string> = {
  string: 'text',
  number: 'a number',
  boolean: 'true or false',
  array: 'a list like [a, b]',
  object: 'a mapping of keys to values',
  record: 'a mapping of names to settings',
};

function expectedName(expected: string): string {
  return EXPECTED[expected] ?? expected;
}

function describeIssue(
  issue: z.core.$ZodIssue,
  data: unknown,
): { path: Path; what: string; atKey: boolean }[] {
  const path: Path = issue.path.filter((s): s is string | number => typeof s !== 'symbol');
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => {
        const suggestion = closest(key, knownKeys(path));
        const fix =
          suggestion.length > 0
            ? `did you mean ${orList(quoted(suggestion))}?`
            : `remove it; known keys here: ${knownKeys(path).join(', ')}`;
        return { path: [...path, key], what: fix, atKey: true };
      });
    case 'invalid_type': {
      const value = valueAt(data, path);
      const key = path[path.length - 1];
      if (value === undefined) {
        const parent = dotted(path.slice(0, -1));
        const what = `is missing; add \`${String(key)}:\`${path.length > 1 ? ` under ${parent}` : ''}`;
        return [{ path, what, atKey: false }];
      }
      return [
        {
          path,
          what: `must be ${expectedName(issue.expected)}, not ${typeName(value)}; fix the value`,
          atKey: false,
        },
      ];
    }
    case 'invalid_union': {
      const expected = new Set<string>();
      for (const branch of issue.errors) {
        for (const inner of branch)
          if (inner.code === 'invalid_type') expected.add(expectedName(inner.expected));
      }
      const list = expected.size > 0 ? orList([...expected]) : 'a different value';
      return [{ path, what: `must be ${list}, not ${typeName(valueAt(data, path))}`, atKey: false }];
    }
    case 'invalid_key': {
      const reason = issue.issues[0]?.message ?? issue.message;
      return [
        { path, what: `'${String(path[path.length - 1])}' is not a valid name; ${reason}`, atKey: true },
      ];
    }
    case 'too_small':
      return [
        {
          path,
          what:
            issue.origin === 'string' && Number(issue.minimum) === 1
              ? 'must not be empty; give it a value'
              : `must be at least ${String(issue.minimum)}; raise it`,
          atKey: false,
        },
      ];
    case 'too_big':
      return [{ path, what: `must be at most ${String(issue.maximum)}; lower it`, atKey: false }];
    case 'invalid_format':
      return [{ path, what: issue.message, atKey: false }];
    default:
      return [{ path, what: issue.message, atKey: false }];
  }
}

// ---------------------------------------------------------------------------------------------------------
// Building the frozen Config

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}

function definedLimits(
  overrides: Partial<Record<keyof Limits, number | undefined>> | undefined,
): Partial<Limits> {
  const out: Partial<Limits> = {};
  if (!overrides) return out;
  for (const [key, value] of Object.entries(overrides)) {
    if (value !== undefined) Object.assign(out, { [key]: value });
  }
  return out;
}

function build(parsed: ParsedConfig, source: string): Config {
  const targets: Record<string, ResolvedTarget> = {};
  for (const [name, t] of Object.entries(parsed.targets)) {
    targets[name] = {
      name,
      url: t.url,
      environment: t.environment,
      ...(t.description !== undefined ? { description: t.description } : {}),
      packs: t.packs,
      ...(Object.keys(t.settings).length > 0 ? { settings: t.settings } : {}),
      ...(t.sensitive
        ? { sensitive: { columns: t.sensitive.columns, visibleTo: t.sensitive.visible_to } }
        : {}),
      limits: { ...parsed.limits, ...definedLimits(t.limits) },
      ...(t.forecast
        ? {
            forecast: {
              ...(t.forecast.disk_budget !== undefined ? { diskBudgetBytes: t.forecast.disk_budget } : {}),
              horizonSeconds: t.forecast.horizon,
            },
          }
        : {}),
      ...(t.prepared_statements ? {} : { preparedStatements: false }),
    };
  }
  const people: Record<string, ResolvedPerson> = {};
  for (const [name, p] of Object.entries(parsed.people)) {
    const identities: ResolvedPerson['identities'] = {};
    for (const kind of IDENTITY_KINDS) {
      const identity = p[kind];
      if (identity !== undefined && identity.trim() !== '') identities[kind] = identity;
    }
    people[name] = { name, roles: p.roles, identities, ...(p.service === true ? { service: true } : {}) };
  }
  const baseDir = dirname(resolve(source));
  return deepFreeze({
    state: { url: parsed.state.url, expirySeconds: parsed.state.expiry },
    targets,
    people,
    policy: parsed.policy,
    channels: parsed.channels,
    backupsDir: resolve(baseDir, parsed.backups?.dir ?? './backups'),
    packDirs: (parsed.packs?.dirs ?? []).map((dir) => resolve(baseDir, dir)),
    adminRoles: parsed.admin_roles,
    ...(parsed.alerts ? { alerts: { remindEverySeconds: parsed.alerts.remind_every } } : {}),
    ...(parsed.history
      ? { history: { retentionSeconds: parsed.history.retention, topTables: parsed.history.top_tables } }
      : {}),
    timeZone: parsed.display?.time_zone ?? 'UTC',
    ...(parsed.role_sources ? { roleSources: roleSourcesOf(parsed.role_sources) } : {}),
    schedules: Object.fromEntries(
      Object.entries(parsed.schedules).map(([name, raw]) => [name, resolveSchedule(name, raw)]),
    ),
    source,
  });
}

function roleSourcesOf(raw: NonNullable<ParsedConfig['role_sources']>): RoleSources {
  const roles: Record<string, { slackGroups: string[]; discordRoles: string[] }> = {};
  for (const [role, source] of Object.entries(raw.roles)) {
    roles[role] = { slackGroups: source.slack_groups, discordRoles: source.discord_roles };
  }
  return {
    refreshSeconds: Math.max(1, raw.refresh),
    keepSeconds: raw.keep_last_known,
    ...(raw.discord_member_listing ? { discordMemberListing: true } : {}),
    roles,
  };
}

/** Validates YAML text; `source` is the file name used in messages and for resolving relative paths. */
export function loadConfigText(text: string, source: string, env: Env): Config {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const syntax = new ProblemList(source, undefined);
    for (const error of doc.errors) {
      const { line, col } = lines.linePos(error.pos[0]);
      syntax.push(line, `${source}:${line}:${col}: YAML syntax error: ${error.message.split('\n')[0]}`);
    }
    throw new ConfigError(syntax.texts());
  }
  const problems = new ProblemList(source, new Locator(doc, lines));
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    throw new ConfigError([
      `${source}: the file is empty; start from config/dbops.example.yaml (state, targets, people, policy)`,
    ]);
  }

  const raw = interpolateDocument(doc, env, problems);
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  const parsed = configSchema.safeParse(data);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      for (const { path, what, atKey } of describeIssue(issue, data)) {
        if (issue.code === 'unrecognized_keys') {
          const { line, at } = problems.where(path, true);
          problems.push(line, `unknown key '${dotted(path)}' (${at}); ${what}`);
        } else {
          problems.add(path, what, atKey);
        }
      }
    }
  }
  crossCheck(data, raw, problems);
  if (problems.size > 0 || !parsed.success) throw new ConfigError(problems.texts());
  return build(parsed.data, source);
}

/** Reads and validates a config file; every problem is collected into one ConfigError. */
export function loadConfigFile(path: string, env: Env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = isRecord(err) && typeof err.code === 'string' ? err.code : 'unreadable';
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code;
    throw new ConfigError([
      `${path}: cannot read the configuration (${why}); pass --config <file> or copy config/dbops.example.yaml`,
    ]);
  }
  return loadConfigText(text, path, env);
}

/** The configured person who owns this platform identity, if any. */
export function resolvePerson(
  config: Config,
  kind: IdentityKind,
  identity: string,
): ResolvedPerson | undefined {
  const listed = Object.values(config.people).find((person) => person.identities[kind] === identity);
  return withPlatformRoles(config, kind, identity, listed);
}

/** The configured service person of this name (schedules run as it), if it is one. */
export function servicePerson(config: Config, name: string): ResolvedPerson | undefined {
  const person = Object.hasOwn(config.people, name) ? config.people[name] : undefined;
  return person?.service ? person : undefined;
}
