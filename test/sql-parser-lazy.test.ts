// The SQL parser (libpg-query's WASM) loads only when something reads SQL text: before loadSqlParser()
// a parse is an internal error, never a refusal or a guessed risk, and ad-hoc SQL loads it before judging.
import { describe, expect, it } from 'vitest';
import sql, { sqlRisk } from '../commands/sql.js';
import { columnsOfExpression, loadSqlParser, parseStatement, SqlRefusal } from '../src/sql/parse.js';

describe('the lazily loaded SQL parser', () => {
  it('is not loaded by importing the SQL modules, and says so instead of refusing or guessing', async () => {
    // This file's module graph is fresh (vitest isolates files): nothing has loaded the parser yet.
    expect(() => parseStatement('SELECT 1')).toThrow(/before loadSqlParser/);
    expect(() => parseStatement('SELECT 1')).not.toThrow(SqlRefusal);
    expect(() => columnsOfExpression('(a = 1)')).toThrow(/before loadSqlParser/);
    // A write must never be judged a read because the parser was missing.
    expect(() => sqlRisk('DELETE FROM t WHERE id = 1')).toThrow(/before loadSqlParser/);

    // The operation loads it before the core asks riskFor / actionFor.
    expect(sql.preload).toBeDefined();
    await sql.preload?.();
    expect(sqlRisk('DELETE FROM t WHERE id = 1')).toBe('destructive');
    expect(parseStatement('SELECT a FROM t').relations).toEqual([{ name: 't' }]);
    expect(columnsOfExpression('(a = 1)')).toEqual(['a']);
    // Loading twice is one load.
    await loadSqlParser();
    expect(sqlRisk('SELECT 1')).toBe('read');
  });
});
