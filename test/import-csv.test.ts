// Reading uploaded CSVs for `import`: strict parsing, caps, and errors that name the line.
import { describe, expect, it } from 'vitest';
import { readCsv, visible } from '../commands/lib/csv-file.js';
import { UserError } from '../src/core/errors.js';

const caps = { maxBytes: 1_000_000, maxRows: 1_000 };
const bytes = (s: string) => Buffer.from(s, 'utf8');

function failure(input: string | Uint8Array, c = caps): string {
  try {
    readCsv(typeof input === 'string' ? bytes(input) : input, c);
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return (err as Error).message;
  }
  throw new Error('expected the CSV to be refused');
}

describe('readCsv', () => {
  it('gives each record the line it starts on, across quoted line breaks and CRLF', () => {
    const csv = readCsv(bytes('a,b\r\n1,2\r\n"x\r\ny",3\r\n4,"5"\r\n'), caps);
    expect(csv.header).toEqual(['a', 'b']);
    expect(csv.records).toEqual([
      ['1', '2'],
      ['x\r\ny', '3'],
      ['4', '5'],
    ]);
    expect(csv.lines).toEqual([2, 3, 5]);
  });

  it('drops a UTF-8 byte order mark from the header', () => {
    expect(readCsv(bytes('\ufeffid,name\n1,a'), caps).header).toEqual(['id', 'name']);
  });

  it('keeps hostile values as data: formulas, bidi characters and 100 KB fields', () => {
    const big = 'x'.repeat(100_000);
    const csv = readCsv(bytes(`a,b\n"=HYPERLINK(""http://x"")",\u202eevil\n${big},2\n`), caps);
    expect(csv.records[0]).toEqual(['=HYPERLINK("http://x")', '\u202eevil']);
    expect(csv.records[1]?.[0]).toHaveLength(100_000);
  });

  it('names the line of each kind of malformed input', () => {
    expect(failure('')).toMatch(/the CSV is empty/);
    expect(failure('a,b\n1,2\n4,"5\n6,7\n8,9\n')).toMatch(/at line 3: a quoted field .* never closed/);
    expect(failure('a,b\n1,2\n3,4,5\n')).toMatch(/at line 3: the record has a different number of fields/);
    expect(failure('a,b\n1,2\n\n4,5\n')).toMatch(/at line 3: the record has a different number of fields/);
    expect(failure('a,b\n1,"2"x\n')).toMatch(/at line 2: a closing quote/);
    expect(failure('a,b\n1,2\n3,a"b\n')).toMatch(/at line 3: a quote appears inside an unquoted field/);
    expect(failure('a\n1\n\\.\n2\n')).toMatch(/at line 3: a line holding only \\\. would end the data/);
    expect(failure(bytes('a,b\n1,2\n3,\u0000\n'))).toMatch(/at line 3: it holds a NUL byte/);
    const latin1 = Buffer.concat([bytes('a,b\n1,2\n"x\ny",caf'), Buffer.from([0xe9]), bytes('\n')]);
    expect(failure(latin1)).toMatch(/at line 4: byte 18 is not valid UTF-8/);
  });

  it('refuses files over the size or row cap, naming the limit', () => {
    expect(failure('a\n1\n2\n3\n', { maxBytes: 5, maxRows: 10 })).toMatch(
      /over this target's import limit of 5 bytes .*import_max_bytes/,
    );
    expect(failure('a\n1\n2\n3\n', { maxBytes: 100, maxRows: 2 })).toMatch(
      /has 3 rows, over this target's import limit of 2 .*import_max_rows/,
    );
  });

  it('shows control and bidi characters as visible escapes, on one line, when echoing a value', () => {
    expect(visible('a\u202eb\u0000c\nd')).toBe('a<U+202E>b\\x00c\\nd');
    expect(visible('x'.repeat(100), 10)).toBe(`${'x'.repeat(9)}…`);
  });
});
