// Reads an uploaded CSV strictly, the way COPY … CSV HEADER will: every record with the line it starts on.
import { parse } from 'csv-parse/sync';
import { IMPORT_DEFAULTS } from '../../src/config/schema.js';
import { UserError } from '../../src/core/errors.js';
import { formatBytes, formatCount } from '../../src/core/render.js';
import { visible } from '../../src/core/visible.js';

export { visible };

export const DEFAULT_IMPORT_MAX_BYTES = IMPORT_DEFAULTS.maxBytes;
export const DEFAULT_IMPORT_MAX_ROWS = IMPORT_DEFAULTS.maxRows;

export interface CsvCaps {
  maxBytes: number;
  maxRows: number;
}

/** A CSV as COPY will read it: the header, and per data record its fields and its first line (1-based). */
export interface CsvFile {
  header: string[];
  /** Data records (the header excluded), fields as text; COPY decides NULL vs empty string itself. */
  records: string[][];
  /** `lines[i]`: the line of the file where data record i starts. */
  lines: number[];
}

/** Breaks a long line at spaces so it fits `width` columns; continuation lines are indented. Nothing is cut. */
export function wrapLine(text: string, width = 80, indent = '    '): string {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    const candidate = line === '' ? word : `${line} ${word}`;
    if (candidate.length <= width || line.trim() === '') line = candidate;
    else {
      out.push(line);
      line = `${indent}${word}`;
    }
  }
  out.push(line);
  return out.join('\n');
}

function malformed(line: number, what: string): UserError {
  return new UserError('invalid_argument', `the CSV is malformed at line ${formatCount(line)}: ${what}`);
}

/** The line holding byte `offset` (1-based), counting LF, CRLF and lone CR as line ends. */
function lineAt(bytes: Uint8Array, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < bytes.length; i++) {
    if (bytes[i] === 0x0a) line++;
    else if (bytes[i] === 0x0d && bytes[i + 1] !== 0x0a) line++;
  }
  return line;
}

/** Lines spanned by a record's raw text (its own line end included). */
function lineEnds(raw: string): number {
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x0a) n++;
    else if (c === 0x0d && raw.charCodeAt(i + 1) !== 0x0a) n++;
  }
  return n;
}

/** The offset of the first byte that is not valid UTF-8, or -1. */
function invalidUtf8At(bytes: Uint8Array): number {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  try {
    decoder.decode(bytes);
    return -1;
  } catch {
    // Only for a file already known to be bad: walk it one character at a time to find where.
    for (let i = 0; i < bytes.length; ) {
      const lead = bytes[i] ?? 0;
      const size =
        lead < 0x80
          ? 1
          : lead >= 0xc2 && lead <= 0xdf
            ? 2
            : lead >= 0xe0 && lead <= 0xef
              ? 3
              : lead >= 0xf0 && lead <= 0xf4
                ? 4
                : 0;
      if (size === 0 || i + size > bytes.length) return i;
      if (size > 1) {
        try {
          decoder.decode(bytes.subarray(i, i + size));
        } catch {
          return i;
        }
      }
      i += size;
    }
    return bytes.length - 1;
  }
}

const PARSE_CODES: Record<string, string> = {
  CSV_QUOTE_NOT_CLOSED: 'a quoted field opened in this record is never closed',
  CSV_INVALID_CLOSING_QUOTE: 'a closing quote is followed by something other than a comma or line end',
  INVALID_OPENING_QUOTE:
    'a quote appears inside an unquoted field (quote the whole field, doubling inner quotes)',
  CSV_RECORD_INCONSISTENT_FIELDS_LENGTH: 'the record has a different number of fields than the header',
  CSV_RECORD_INCONSISTENT_COLUMNS: 'the record has a different number of fields than the header',
};

/**
 * Parses `bytes` strictly (RFC 4180: a quote only opens a field, fields quoted whole, the same number of
 * fields in every record). Anything COPY might read differently is refused with the line it is on.
 */
export function readCsv(bytes: Uint8Array, caps: CsvCaps): CsvFile {
  if (bytes.length > caps.maxBytes) {
    throw new UserError(
      'invalid_argument',
      `the CSV is ${formatBytes(bytes.length)}, over this target's import limit of ${formatBytes(caps.maxBytes)} ` +
        '(limits.import_max_bytes); split it into smaller files',
    );
  }
  if (bytes.length === 0)
    throw new UserError(
      'invalid_argument',
      'the CSV is empty: expected a header line naming the columns, then rows',
    );
  const nul = bytes.indexOf(0);
  if (nul >= 0) {
    throw malformed(
      lineAt(bytes, nul),
      'it holds a NUL byte (0x00), which PostgreSQL text cannot store; is it really a CSV text file?',
    );
  }
  const bad = invalidUtf8At(bytes);
  if (bad >= 0) {
    throw malformed(
      lineAt(bytes, bad),
      `byte ${bad + 1} is not valid UTF-8; save the file as UTF-8 and send it again`,
    );
  }
  const text = new TextDecoder('utf-8').decode(bytes);
  let raw: { record: string[]; raw: string }[];
  let nextLine = 1;
  try {
    raw = parse(text, {
      bom: true,
      raw: true,
      relax_column_count: false,
      skip_empty_lines: false,
      on_record: (record: string[], context: { raw: string | undefined }) => {
        nextLine += lineEnds(context.raw ?? '');
        return record;
      },
    }) as unknown as { record: string[]; raw: string }[];
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? String(err.code) : '';
    const line =
      code === 'CSV_QUOTE_NOT_CLOSED'
        ? nextLine
        : err instanceof Error && 'lines' in err
          ? Number(err.lines)
          : nextLine;
    const why = PARSE_CODES[code] ?? (err instanceof Error ? visible(err.message, 120) : 'it cannot be read');
    throw malformed(Number.isFinite(line) && line > 0 ? line : nextLine, why);
  }
  const [head, ...rest] = raw;
  if (!head)
    throw new UserError(
      'invalid_argument',
      'the CSV is empty: expected a header line naming the columns, then rows',
    );
  const lines: number[] = [];
  let line = 1 + lineEnds(head.raw);
  for (const r of rest) {
    lines.push(line);
    if (r.record.length === 1 && r.record[0] === '\\.') {
      throw malformed(
        line,
        'a line holding only \\. would end the data early for COPY; quote it ("\\.") if it is a value',
      );
    }
    line += lineEnds(r.raw);
  }
  if (rest.length > caps.maxRows) {
    throw new UserError(
      'invalid_argument',
      `the CSV has ${formatCount(rest.length)} rows, over this target's import limit of ${formatCount(caps.maxRows)} ` +
        '(limits.import_max_rows); split it into smaller files',
    );
  }
  return { header: head.record, records: rest.map((r) => r.record), lines };
}
