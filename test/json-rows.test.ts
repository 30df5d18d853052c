// --json rows keep one JSON type per key, and bigint text reads like the numbers of its column in chat.
import { describe, expect, it } from 'vitest';
import { jsonRows } from '../src/core/json-rows.js';
import { formatValue } from '../src/core/render.js';

describe('jsonRows', () => {
  it('writes a key as text in every row when its values mix numbers and text', () => {
    const rows = [
      { name: 'a', remaining: 768, pid: 1 },
      { name: 'b', remaining: '9223363029654031614', pid: 2 },
      { name: 'c', remaining: null, pid: 3 },
      { name: 'd', remaining: 1e21, pid: 4 },
    ];
    expect(jsonRows(rows)).toEqual([
      { name: 'a', remaining: '768', pid: 1 },
      { name: 'b', remaining: '9223363029654031614', pid: 2 },
      { name: 'c', remaining: null, pid: 3 },
      { name: 'd', remaining: '1000000000000000000000', pid: 4 },
    ]);
    // the rows given are not changed
    expect(rows[0]?.remaining).toBe(768);
  });

  it('leaves keys of one type alone, numbers included', () => {
    const rows = [
      { bytes: 8192, ok: true, at: null },
      { bytes: 16384, ok: false, at: '2026-01-01' },
    ];
    expect(jsonRows(rows)).toEqual(rows);
    expect(jsonRows([])).toEqual([]);
  });
});

describe('formatValue with bigint text', () => {
  it('groups digits beyond 2^53 like the numbers of the same column', () => {
    expect(formatValue('9223372036854775807', 'count')).toBe('9,223,372,036,854,775,807');
    expect(formatValue('-9007199254740993', 'number')).toBe('-9,007,199,254,740,993');
    expect(formatValue(768, 'count')).toBe('768');
    // text columns keep their text
    expect(formatValue('12345', 'text')).toBe('12345');
  });
});
