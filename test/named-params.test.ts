import { describe, expect, it } from 'vitest';
import { compileNamedParams } from '../src/packs/named-params.js';

describe('compileNamedParams', () => {
  it('numbers names in order of first use and reuses numbers', () => {
    expect(
      compileNamedParams('UPDATE a SET email = :new WHERE email = :old OR lower(email) = lower(:old)'),
    ).toEqual({
      text: 'UPDATE a SET email = $1 WHERE email = $2 OR lower(email) = lower($2)',
      names: ['new', 'old'],
    });
  });

  it('leaves casts, literals, identifiers, dollar quotes and comments alone', () => {
    const sql = `SELECT ':x'::text, "col:y", $$ :z $$, $t$ :w $t$, now()::date -- :c
      /* :d */ , :real, 'it''s :n'`;
    const compiled = compileNamedParams(sql);
    expect(compiled.names).toEqual(['real']);
    expect(compiled.text).toContain("':x'::text");
    expect(compiled.text).toContain(', $1,');
    expect(compiled.text).toContain("'it''s :n'");
  });

  it('keeps positional parameters and array slices intact', () => {
    expect(compileNamedParams('SELECT a[1:2], $1').text).toBe('SELECT a[1:2], $1');
  });

  it('refuses unterminated literals', () => {
    expect(() => compileNamedParams("SELECT 'abc")).toThrow('unterminated string literal');
    expect(() => compileNamedParams('SELECT /* x')).toThrow('unterminated comment');
  });
});
