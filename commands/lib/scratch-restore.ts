// verify-backup's scratch database: what a restore into it leaves out, and why (extensions the bot role
// cannot create and what needs them, ownership, privileges, a single-table backup's foreign keys), and
// dropping it as a role without superuser.

import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { finished } from 'node:stream/promises';
import { UserError } from '../../src/core/errors.js';
import type { OperationContext } from '../../src/core/operation.js';
import { formatCount } from '../../src/core/render.js';
import { sqlState } from '../../src/engine/pg-errors.js';
import type { Session } from '../../src/engine/types.js';

/*
 * Every extension the server can install, and whether a role without superuser may create it (PostgreSQL
 * 13+: `trusted`). The scratch database is created by the bot role, so it owns it and trusted extensions
 * need nothing more.
 */
const EXTENSION_RIGHTS_SQL = `
SELECT v.name, bool_or(v.trusted) AS trusted FROM pg_available_extension_versions v GROUP BY v.name`;

export interface ExtensionRights {
  superuser: boolean;
  /** Extension name -> trusted. */
  available: ReadonlyMap<string, boolean>;
}

export async function extensionRights(session: Session): Promise<ExtensionRights> {
  const rows = await session.query<{ name: string; trusted: boolean }>(EXTENSION_RIGHTS_SQL);
  const [role] = await session.query<{ superuser: boolean }>(
    'SELECT rolsuper AS superuser FROM pg_roles WHERE rolname = current_user',
  );
  return { superuser: role?.superuser === true, available: new Map(rows.map((r) => [r.name, r.trusted])) };
}

/** Why the bot role cannot create this extension in the scratch database, or undefined when it can. */
export function whyNotCreatable(rights: ExtensionRights, name: string): string | undefined {
  const trusted = rights.available.get(name);
  if (trusted === undefined) return 'it is not installed on this server';
  if (!rights.superuser && !trusted) return 'only a superuser can create it';
  return undefined;
}

export interface LeftOut {
  /** Extensions the scratch database does not get, with the reason. */
  extensions: { name: string; reason: string }[];
  /** Tables left out because they need a left-out extension (schema.name). */
  tables: { schema: string; name: string; extension: string }[];
  /** Other objects (views, functions, …) left out for the same reason, as `KIND schema.name`. */
  objects: string[];
  /** Foreign keys of a single-table backup that point outside it. */
  foreignKeys: number;
}

export function emptyLeftOut(): LeftOut {
  return { extensions: [], tables: [], objects: [], foreignKeys: 0 };
}

/** Sentences for the answer's notes: what was left out and why. */
export function leftOutNotes(left: LeftOut): string[] {
  const notes: string[] = [];
  for (const e of left.extensions) {
    notes.push(`extension ${e.name} was left out of the temporary database: ${e.reason}`);
  }
  for (const t of left.tables) {
    notes.push(
      `table ${t.schema}.${t.name} was not restored (it needs extension ${t.extension}); its rows are not checked`,
    );
  }
  if (left.objects.length > 0) {
    const shown = left.objects.slice(0, 5).join(', ');
    notes.push(
      `${left.objects.length === 1 ? '1 object needs' : `${formatCount(left.objects.length)} objects need`} a left-out ` +
        `extension and ${left.objects.length === 1 ? 'was' : 'were'} not restored: ${shown}${
          left.objects.length > 5 ? ', …' : ''
        }`,
    );
  }
  if (left.foreignKeys > 0) {
    notes.push(
      left.foreignKeys === 1
        ? '1 foreign key of this single-table backup points at a table outside it and was left out of the temporary database'
        : `${left.foreignKeys} foreign keys of this single-table backup point at tables outside it and were left out of the temporary database`,
    );
  }
  return notes;
}

/** The kinds of archive entry whose name has more than one word, longest first. */
const MULTI_WORD_KINDS = [
  'MATERIALIZED VIEW DATA',
  'PUBLICATION TABLES IN SCHEMA',
  'TEXT SEARCH CONFIGURATION',
  'TEXT SEARCH DICTIONARY',
  'TEXT SEARCH TEMPLATE',
  'TEXT SEARCH PARSER',
  'FOREIGN DATA WRAPPER',
  'MATERIALIZED VIEW',
  'PROCEDURAL LANGUAGE',
  'SEQUENCE OWNED BY',
  'PUBLICATION TABLE',
  'OPERATOR CLASS',
  'OPERATOR FAMILY',
  'ACCESS METHOD',
  'EVENT TRIGGER',
  'FK CONSTRAINT',
  'FOREIGN TABLE',
  'LARGE OBJECT',
  'SEQUENCE SET',
  'USER MAPPING',
  'DEFAULT ACL',
  'INDEX ATTACH',
  'TABLE ATTACH',
  'SHELL TYPE',
  'TABLE DATA',
];

export interface TocEntry {
  id: number;
  /** The entry's line of `pg_restore --list`. */
  line: string;
  kind: string;
  schema: string;
  name: string;
  dependsOn: number[];
}

const ENTRY = /^(\d+); \d+ \d+ (.*)$/;
const DEPENDS = /^;\s*depends on:((?: \d+)*)\s*$/;

/** The entries of `pg_restore --list --verbose`, with the dependencies it prints under each. */
export function parseToc(listing: string): TocEntry[] {
  const entries: TocEntry[] = [];
  for (const line of listing.split('\n')) {
    const entry = ENTRY.exec(line);
    if (entry) {
      const rest = entry[2] ?? '';
      const kind = MULTI_WORD_KINDS.find((k) => rest.startsWith(`${k} `)) ?? rest.split(' ')[0] ?? '';
      // Then: schema ("-" for none), the name (may hold spaces), the owner (empty for some kinds).
      const parts = rest.slice(kind.length + 1).split(' ');
      entries.push({
        id: Number(entry[1]),
        line,
        kind,
        schema: parts[0] ?? '-',
        name: parts.slice(1, -1).join(' '),
        dependsOn: [],
      });
      continue;
    }
    const depends = DEPENDS.exec(line);
    const last = entries.at(-1);
    if (depends && last)
      last.dependsOn.push(...(depends[1] ?? '').trim().split(/\s+/).filter(Boolean).map(Number));
  }
  return entries;
}

const REPORTED_KINDS = new Set([
  'VIEW',
  'MATERIALIZED VIEW',
  'FOREIGN TABLE',
  'FUNCTION',
  'PROCEDURE',
  'AGGREGATE',
  'TYPE',
  'DOMAIN',
  'TRIGGER',
  'INDEX',
  'SEQUENCE',
]);

/**
 * The restore list for a custom archive: every entry, less the extensions the role cannot create and
 * everything that depends on them (pg_restore --list --verbose prints the dependencies), and, for a
 * single-table backup, its foreign keys. `list` is undefined when nothing is left out.
 */
export function planArchive(
  listing: string,
  rights: ExtensionRights,
  singleTable: boolean,
): { list: string | undefined; leftOut: LeftOut } {
  const entries = parseToc(listing);
  const leftOut = emptyLeftOut();
  /** Entry id -> the extension it is left out for. */
  const removed = new Map<number, string>();
  for (const e of entries) {
    if (e.kind !== 'EXTENSION') continue;
    const reason = whyNotCreatable(rights, e.name);
    if (reason === undefined) continue;
    removed.set(e.id, e.name);
    leftOut.extensions.push({ name: e.name, reason });
  }
  // Dependents, to a fixed point (the listing is in restore order, but a second pass costs nothing).
  for (let changed = removed.size > 0; changed; ) {
    changed = false;
    for (const e of entries) {
      if (removed.has(e.id)) continue;
      const cause = e.dependsOn.map((d) => removed.get(d)).find((x) => x !== undefined);
      if (cause === undefined) continue;
      removed.set(e.id, cause);
      changed = true;
    }
  }
  for (const e of entries) {
    const cause = removed.get(e.id);
    if (cause === undefined || e.kind === 'EXTENSION') continue;
    if (e.kind === 'TABLE') leftOut.tables.push({ schema: e.schema, name: e.name, extension: cause });
    else if (REPORTED_KINDS.has(e.kind))
      leftOut.objects.push(`${e.kind.toLowerCase()} ${e.schema}.${e.name}`);
  }
  if (singleTable) {
    for (const e of entries) {
      if (e.kind !== 'FK CONSTRAINT' || removed.has(e.id)) continue;
      removed.set(e.id, '');
      leftOut.foreignKeys += 1;
    }
  }
  if (removed.size === 0) return { list: undefined, leftOut };
  const drop = new Set(entries.filter((e) => removed.has(e.id)).map((e) => e.line));
  const list = listing
    .split('\n')
    .filter((l) => !drop.has(l))
    .join('\n');
  return { list, leftOut };
}

/** A section header of a plain pg_dump script: `-- Name: x; Type: T; Schema: s; Owner: o`. */
const SECTION = /^-- (?:Data for )?Name: (.*); Type: ([A-Z ]+); Schema: (.*); Owner: ?(.*)$/;
const COPY_START = /^COPY .+ FROM stdin;$/;
/** pg_dump writes each ownership change as one line of its own. */
const OWNER_LINE = /^ALTER [A-Z ]+ .+ OWNER TO .+;$/;

/**
 * Copies a plain pg_dump script to `dest` without what a scratch restore by this role must leave out:
 * sections of extensions it cannot create (and their comments), privileges (ACL sections), ownership
 * changes, and for a single-table backup its foreign keys. COPY data is copied untouched. Plain scripts
 * record no dependencies: an object that needs a left-out extension makes psql stop with its error.
 */
export async function filterPlainScript(
  source: string,
  dest: string,
  rights: ExtensionRights,
  singleTable: boolean,
): Promise<LeftOut> {
  const leftOut = emptyLeftOut();
  const skippedExtensions = new Set<string>();
  const out = createWriteStream(dest, { mode: 0o600, flags: 'wx' });
  const lines = createInterface({ input: createReadStream(source), crlfDelay: Number.POSITIVE_INFINITY });
  let inCopy = false;
  let skip = false;
  try {
    for await (const line of lines) {
      if (inCopy) {
        if (line === '\\.') inCopy = false;
      } else {
        const section = SECTION.exec(line);
        if (section) {
          const [, name = '', type = ''] = section;
          skip = false;
          if (type === 'EXTENSION') {
            const reason = whyNotCreatable(rights, name);
            if (reason !== undefined) {
              skip = true;
              skippedExtensions.add(name);
              leftOut.extensions.push({ name, reason });
            }
          } else if (type === 'COMMENT' && name.startsWith('EXTENSION ')) {
            skip = skippedExtensions.has(name.slice('EXTENSION '.length));
          } else if (type === 'ACL' || type === 'DEFAULT ACL') {
            skip = true;
          } else if (type === 'FK CONSTRAINT' && singleTable) {
            skip = true;
            leftOut.foreignKeys += 1;
          }
        } else if (COPY_START.test(line)) inCopy = true;
        else if (OWNER_LINE.test(line)) continue;
      }
      if (skip) continue;
      if (!out.write(`${line}\n`)) await once(out, 'drain');
    }
  } finally {
    lines.close();
    out.end();
    await finished(out);
  }
  return leftOut;
}

const DROP_DATABASE_DDL_SQL = `
SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', $1::text) AS force,
       format('DROP DATABASE IF EXISTS %I', $1::text) AS plain`;
/** insufficient_privilege; object_in_use. */
const NOT_ALLOWED = '42501';
const IN_USE = '55006';
const PLAIN_DROP_ATTEMPTS = 6;

function errorState(err: unknown): string | undefined {
  const detail = err instanceof UserError ? (err.detail as { sqlstate?: unknown } | undefined) : undefined;
  return sqlState(err) ?? (typeof detail?.sqlstate === 'string' ? detail.sqlstate : undefined);
}

/*
 * WITH (FORCE) ends the sessions still in the database, but a role without superuser may not end a
 * superuser's, and autovacuum's workers count as such: right after a restore they often analyze the new
 * tables. A plain DROP asks autovacuum to leave (and waits up to 5 s for it), so it gets a few tries.
 */
export async function dropScratchDatabase(
  ctx: OperationContext<unknown>,
  name: string,
  ddlTimeoutMs: number,
): Promise<void> {
  await ctx.db.direct(
    async (session) => {
      const [ddl] = await session.query<{ force: string; plain: string }>(DROP_DATABASE_DDL_SQL, [name]);
      if (!ddl) return;
      try {
        await session.query(ddl.force);
        return;
      } catch (err) {
        if (errorState(err) !== NOT_ALLOWED) throw err;
      }
      for (let attempt = 1; ; attempt += 1) {
        try {
          await session.query(ddl.plain);
          return;
        } catch (err) {
          if (errorState(err) !== IN_USE || attempt >= PLAIN_DROP_ATTEMPTS) throw err;
          await new Promise((done) => setTimeout(done, 1000));
        }
      }
    },
    { statementTimeoutMs: ddlTimeoutMs },
  );
}
