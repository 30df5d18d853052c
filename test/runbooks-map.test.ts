// docs/runbooks.md stays whole: every procedure heading of the five runbooks is mapped, in order, to real operations.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { catalog } from '../commands/index.js';
import { BUILTINS } from '../src/core/catalog.js';
import { bindArguments, tokenize } from '../src/core/grammar.js';
import type { AnyOperation } from '../src/core/operation.js';
import { builtinPacksDir, loadPacks } from '../src/packs/load.js';
import { packCatalogEntries } from '../src/packs/registry.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const RUNBOOKS = join(REPO, '..', 'shared', 'runbooks');
const MAP = join(REPO, 'docs', 'runbooks.md');

/** Operations issue 12 adds in parallel branches; accepted by name until they are registered here. */
const ADDED_BY_ISSUE_12 = new Set(['tables', 'describe', 'import', 'check-indexes', 'privileges']);

/** The demo's targets and the pack each one carries (see src/demo/environment.ts). */
const TARGET_PACK: Readonly<Record<string, string>> = {
  kasm: 'kasm',
  coder: 'coder',
  staging: 'alembic',
  capsul: 'capsul',
  activity: 'activity',
};

const CODE_LANGUAGES = new Set(['', 'sql', 'bash', 'sh', 'shell', 'console', 'psql']);
const INLINE_COMMAND =
  /`[^`\n]*\b(psql|pg_dump|pg_restore|pg_isready|alembic|SELECT|UPDATE|DELETE|INSERT|VACUUM|REINDEX|ANALYZE|TRUNCATE)\b[^`\n]*`/;

/**
 * The procedure headings of one runbook: headings (outside code fences) whose section, up to the next
 * heading, holds a sql/bash/sh (or unlabelled) code block or an inline psql/pg_dump/SQL command.
 */
function procedureHeadings(markdown: string): string[] {
  const found: { title: string; procedure: boolean }[] = [];
  let fence: string | undefined;
  let current: { title: string; procedure: boolean } | undefined;
  for (const line of markdown.split('\n')) {
    const fenceMatch = /^\s*(`{3,}|~{3,})\s*([\w+-]*)/.exec(line);
    if (fence !== undefined) {
      if (fenceMatch?.[1]?.startsWith(fence)) fence = undefined;
      continue;
    }
    if (fenceMatch) {
      fence = fenceMatch[1] ?? '```';
      if (current && CODE_LANGUAGES.has((fenceMatch[2] ?? '').toLowerCase())) current.procedure = true;
      continue;
    }
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      current = { title: plainHeading(heading[1] ?? ''), procedure: false };
      found.push(current);
      continue;
    }
    if (current && INLINE_COMMAND.test(line)) current.procedure = true;
  }
  return found.filter((h) => h.procedure).map((h) => h.title);
}

/** A heading as text: HTML anchors (`<a name=…></a>`) dropped, spaces collapsed. */
function plainHeading(text: string): string {
  return text
    .replace(/<[^>]*>/g, '')
    .replace(/\s+/g, ' ')
    .trim();
}

interface MapRow {
  procedure: string;
  dbops: string;
  line: number;
}

/** The map's rows per runbook file: `## … (\`file.md\`)` sections, each a two-column table. */
function parseMap(markdown: string): Map<string, MapRow[]> {
  const sections = new Map<string, MapRow[]>();
  let rows: MapRow[] | undefined;
  markdown.split('\n').forEach((line, i) => {
    const section = /^##\s+.*`([\w.-]+\.md)`/.exec(line);
    if (section) {
      rows = [];
      sections.set(section[1] ?? '', rows);
      return;
    }
    if (/^#/.test(line)) rows = undefined;
    if (!rows || !line.startsWith('|')) return;
    const cells = line
      .slice(1, line.trimEnd().endsWith('|') ? line.trimEnd().length - 1 : undefined)
      .split('|')
      .map((c) => c.trim());
    if (cells[0] === 'procedure' || /^-+$/.test(cells[0] ?? '')) return;
    rows.push({ procedure: cells[0] ?? '', dbops: cells.slice(1).join('|'), line: i + 1 });
  });
  return sections;
}

/** Every `/db …` command line written in a cell: a backticked `/db …`, or one quoted in a `dbops exec` line. */
function commandsIn(cell: string): string[] {
  return [...cell.matchAll(/`([^`]+)`/g)].flatMap((m) => {
    const span = m[1] ?? '';
    if (span.startsWith('/db ')) return [span.trim()];
    const quoted = /"(\/db [^"]+)"/.exec(span);
    return quoted?.[1] ? [quoted[1].trim()] : [];
  });
}

/** A value of each pack argument type, to stand for a `<placeholder>` of the map. */
const SAMPLES: Readonly<Record<string, string>> = {
  email: 'someone@example.com',
  int: '1',
  uuid: '064143f4-2301-4291-8cd9-8facf797bf96',
  date: '2025-12-24',
  timestamp: '2025-12-24T10:00:00Z',
  hostname: 'kasm-01',
  revision: 'head',
};

/** The words with each `<placeholder>` replaced by a value of the argument it stands for. */
function withSamples(
  words: readonly string[],
  args: readonly { name: string; type: string; positional?: boolean }[],
) {
  const positionals = args.filter((a) => a.positional);
  let next = 0;
  return words.map((word, i) => {
    const previous = words[i - 1];
    const option = previous?.startsWith('--')
      ? args.find((a) => a.name === previous.slice(2).replace(/-/g, '_'))
      : undefined;
    if (word.startsWith('--')) return word;
    const arg = option ?? positionals[next++];
    return /^<[^>]+>$/.test(word) ? (SAMPLES[arg?.type ?? ''] ?? 'x1') : word;
  });
}

function optionNames(args: unknown): Set<string> | undefined {
  const shape = (args as { shape?: Record<string, unknown> }).shape;
  return shape ? new Set(Object.keys(shape)) : undefined;
}

function loadRunbooks(dir = RUNBOOKS): Map<string, string> {
  if (!existsSync(dir)) {
    throw new Error(
      `the runbooks folder ${dir} is missing: the procedure map is checked against ../shared/runbooks/*.md next to the repository`,
    );
  }
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.md') && f !== 'README.md')
    .sort();
  return new Map(files.map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
}

/** What is wrong with the map against the runbooks, one line per problem. */
function mapProblems(runbooks: Map<string, string>, map: Map<string, MapRow[]>): string[] {
  const problems: string[] = [];
  for (const [file, text] of runbooks) {
    const rows = map.get(file);
    if (!rows) {
      problems.push(`${file}: no section in docs/runbooks.md (a "## … (\`${file}\`)" heading and a table)`);
      continue;
    }
    const mapped = rows.map((r) => r.procedure);
    const headings = procedureHeadings(text);
    for (const heading of headings) {
      if (!mapped.includes(heading)) problems.push(`${file}: procedure "${heading}" is missing from the map`);
    }
    for (const row of rows) {
      if (!headings.includes(row.procedure)) {
        problems.push(
          `docs/runbooks.md:${row.line}: "${row.procedure}" is not a procedure heading of ${file}`,
        );
      }
      if (commandsIn(row.dbops).length === 0 && !/\bnone\b[:—-]\s*\S.{8,}/.test(row.dbops)) {
        problems.push(
          `docs/runbooks.md:${row.line}: "${row.procedure}" names no /db command and no reason ("none: …")`,
        );
      }
    }
    const inOrder = mapped.filter((m) => headings.includes(m));
    const expected = headings.filter((h) => mapped.includes(h));
    if (inOrder.join('\n') !== expected.join('\n')) {
      problems.push(`${file}: the map's rows are not in the runbook's order (${expected.join(' → ')})`);
    }
  }
  for (const file of map.keys()) {
    if (!runbooks.has(file)) problems.push(`docs/runbooks.md: section for ${file}, which is not a runbook`);
  }
  return problems;
}

/** What is wrong with the /db commands the map names: unknown operations, targets, lookups, options or values. */
function commandProblems(map: Map<string, MapRow[]>): string[] {
  const packs = loadPacks([builtinPacksDir()]);
  const packSpecs = new Map(
    packCatalogEntries(packs).map((p) => [p.pack, new Map(p.operations.map((o) => [o.spec.name, o.spec]))]),
  );
  const catalogOps = new Map<string, Set<string> | undefined>(
    catalog.map((op) => [op.name, optionNames(op.args)]),
  );
  const problems: string[] = [];
  for (const rows of map.values()) {
    for (const row of rows) {
      for (const command of commandsIn(row.dbops)) {
        const words = command.split(/\s+/).slice(1);
        const [op = '', target = ''] = words;
        const where = `docs/runbooks.md:${row.line}: \`${command}\``;
        const packName = TARGET_PACK[target];
        if (!packName) {
          problems.push(`${where}: ${target} is not one of the demo targets`);
          continue;
        }
        const pack = packs.find((p) => p.name === packName);
        const options = words.filter((w) => w.startsWith('--')).map((w) => w.slice(2));
        let known: Set<string> | undefined;
        if (op === 'lookup') {
          const what = words[2] ?? '';
          if (!pack?.operations.some((o) => o.def.lookup === what))
            problems.push(`${where}: the ${packName} pack has no lookup "${what}"`);
          continue;
        }
        if ((BUILTINS as readonly string[]).includes(op)) continue;
        const spec: AnyOperation | undefined =
          catalog.find((o) => o.name === op) ?? packSpecs.get(packName)?.get(op);
        if (catalogOps.has(op)) known = catalogOps.get(op);
        else if (ADDED_BY_ISSUE_12.has(op)) continue;
        else {
          const packOp = pack?.operations.find((o) => o.def.name === op);
          if (!packOp) {
            problems.push(`${where}: ${op} is neither a dbops operation nor one of the ${packName} pack's`);
            continue;
          }
          known = new Set((packOp.def.args ?? []).map((a) => a.name));
        }
        const unknown = options.filter((o) => known && !known.has(o.replace(/-/g, '_')));
        for (const option of unknown) problems.push(`${where}: ${op} has no option --${option}`);
        if (spec && unknown.length === 0) {
          // the arguments as the chat grammar binds them, a <placeholder> standing for a value of its type
          const packArgs = pack?.operations.find((o) => o.def.name === op)?.def.args ?? [];
          const argText = withSamples(words.slice(2), packArgs).join(' ');
          try {
            bindArguments(spec, tokenize(argText));
          } catch (err) {
            problems.push(`${where}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
          }
        }
      }
    }
  }
  return problems;
}

describe('docs/runbooks.md, the procedure map', () => {
  const runbooks = loadRunbooks();
  const map = parseMap(readFileSync(MAP, 'utf8'));

  it('says clearly when the runbooks folder is absent', () => {
    expect(() => loadRunbooks(join(REPO, 'no-such-runbooks'))).toThrow(
      /runbooks folder .*no-such-runbooks is missing: the procedure map is checked against \.\.\/shared\/runbooks/,
    );
  });

  it('finds the procedures of all five runbooks', () => {
    expect([...runbooks.keys()]).toEqual([
      'activity-challenge-bot.md',
      'capsul-flask.md',
      'coder-ecs-rds.md',
      'exam-platform-staging.md',
      'kasm.md',
    ]);
    const kasm = procedureHeadings(runbooks.get('kasm.md') ?? '');
    expect(kasm).toContain('Fix Hostname Mismatch');
    // A comment inside a bash block is not a heading; a section without a command is not a procedure.
    const exam = procedureHeadings(runbooks.get('exam-platform-staging.md') ?? '');
    expect(exam).not.toContain('SSH to staging server');
    expect(exam).not.toContain('Prerequisites');
    const capsul = procedureHeadings(runbooks.get('capsul-flask.md') ?? '');
    expect(capsul).toContain('changing the email address on an account');
  });

  it('maps every procedure heading, in the runbook order, to a command or a reason', () => {
    expect(mapProblems(runbooks, map)).toEqual([]);
  });

  it('names only operations, lookups and options that exist', () => {
    expect(commandProblems(map)).toEqual([]);
  });

  it('notices a procedure deleted from the map, a misspelt operation and an unknown option', () => {
    const text = readFileSync(MAP, 'utf8');
    const without = text
      .split('\n')
      .filter((l) => !l.startsWith('| Check Agents |'))
      .join('\n');
    expect(mapProblems(runbooks, parseMap(without))).toEqual([
      'kasm.md: procedure "Check Agents" is missing from the map',
    ]);
    const misspelt = text.replace('`/db managers kasm`', '`/db manager kasm`');
    expect(commandProblems(parseMap(misspelt))[0]).toMatch(/manager is neither a dbops operation/);
    const badValue = text.replace('`/db table-sizes kasm --limit 10`', '`/db table-sizes kasm --limit ten`');
    expect(commandProblems(parseMap(badValue))).toEqual([
      expect.stringMatching(/`\/db table-sizes kasm --limit ten`: .*--limit/),
    ]);
    const badPackValue = text.replace(
      '`/db invalidate-payment capsul <id>`',
      '`/db invalidate-payment capsul first`',
    );
    expect(commandProblems(parseMap(badPackValue))).toEqual([
      expect.stringMatching(/`\/db invalidate-payment capsul first`: /),
    ]);
    const missing = text.replace('`/db change-email capsul <old> <new>`', '`/db change-email capsul <old>`');
    expect(commandProblems(parseMap(missing))).toEqual([
      expect.stringMatching(/`\/db change-email capsul <old>`: .*new_email/),
    ]);
    const badOption = text.replace(
      '`/db kill-idle staging --older-than 5m`',
      '`/db kill-idle staging --older 5m`',
    );
    expect(commandProblems(parseMap(badOption))[0]).toMatch(/kill-idle has no option --older/);
    const noReason = text.replace(
      '| ECS Exec not working | none: ECS service settings and IAM, outside the database; dbops does not use ECS Exec |',
      '| ECS Exec not working | |',
    );
    expect(mapProblems(runbooks, parseMap(noReason))).toEqual([
      expect.stringMatching(/"ECS Exec not working" names no \/db command and no reason/),
    ]);
  });
});
