// Turns a pack's SQL with named parameters (`:user_id`) into positional ones ($1) for the extended
// protocol, skipping string literals, quoted identifiers, dollar quotes, comments and `::` casts.

export interface CompiledSql {
  /** The SQL with `$1`, `$2`, … in place of the names. */
  text: string;
  /** The parameter names, in `$n` order. */
  names: string[];
}

const NAME = /[A-Za-z_][A-Za-z0-9_]*/y;
const DOLLAR_TAG = /\$([A-Za-z_][A-Za-z0-9_]*)?\$/y;

/** Throws an Error naming the offset when the SQL has an unterminated literal or comment. */
export function compileNamedParams(sql: string): CompiledSql {
  const names: string[] = [];
  let out = '';
  let i = 0;
  const until = (end: string, from: number, what: string): number => {
    const at = sql.indexOf(end, from);
    if (at < 0) throw new Error(`unterminated ${what} starting at offset ${from}`);
    return at + end.length;
  };
  while (i < sql.length) {
    const ch = sql[i];
    const next = sql[i + 1];
    if (ch === "'") {
      // '' inside a literal is an escaped quote: keep scanning.
      let j = i + 1;
      for (;;) {
        j = until("'", j, 'string literal');
        if (sql[j] === "'") j += 1;
        else break;
      }
      out += sql.slice(i, j);
      i = j;
    } else if (ch === '"') {
      const j = until('"', i + 1, 'quoted identifier');
      out += sql.slice(i, j);
      i = j;
    } else if (ch === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      const j = end < 0 ? sql.length : end;
      out += sql.slice(i, j);
      i = j;
    } else if (ch === '/' && next === '*') {
      const j = until('*/', i + 2, 'comment');
      out += sql.slice(i, j);
      i = j;
    } else if (ch === '$') {
      DOLLAR_TAG.lastIndex = i;
      const tag = DOLLAR_TAG.exec(sql);
      if (tag) {
        const j = until(tag[0], i + tag[0].length, 'dollar-quoted string');
        out += sql.slice(i, j);
        i = j;
      } else {
        out += ch;
        i += 1;
      }
    } else if (ch === ':' && next === ':') {
      out += '::';
      i += 2;
    } else if (ch === ':') {
      NAME.lastIndex = i + 1;
      const name = NAME.exec(sql)?.[0];
      if (name) {
        let index = names.indexOf(name);
        if (index < 0) {
          names.push(name);
          index = names.length - 1;
        }
        out += `$${index + 1}`;
        i += 1 + name.length;
      } else {
        out += ch;
        i += 1;
      }
    } else {
      out += ch;
      i += 1;
    }
  }
  return { text: out, names };
}
