// How target values arrive in JS: bigint and numeric as exact numbers when they fit, else their digits.
import pg from 'pg';

type TypeFormat = Parameters<typeof pg.types.getTypeParser>[1];
type TextParser = (text: string) => unknown;

const INT8 = 20;
const NUMERIC = 1700;
const INT8_ARRAY = 1016;
const NUMERIC_ARRAY = 1231;

/** bigint as a JS number when it is exact, else the digits as text. */
function parseInt8(text: string): number | string {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : text;
}

/** numeric as a JS number when finite (and exact, for whole numbers), else the text (NaN, Infinity, huge). */
function parseNumeric(text: string): number | string {
  const n = Number(text);
  if (!Number.isFinite(n)) return text;
  if (/^-?\d+$/.test(text) && !Number.isSafeInteger(n)) return text;
  return n;
}

function mapArray(value: unknown, parse: TextParser): unknown {
  if (Array.isArray(value)) return value.map((item) => mapArray(item, parse));
  return typeof value === 'string' ? parse(value) : value;
}

function arrayOf(oid: number, parse: TextParser): TextParser {
  const parseArray: TextParser = pg.types.getTypeParser(oid, 'text');
  return (text) => mapArray(parseArray(text), parse);
}

/** Per-pool type parsers: pg's global parsers stay untouched for every other user of `pg` in the process. */
export const TYPES: pg.CustomTypesConfig = {
  getTypeParser: (oid: number, format?: TypeFormat) => {
    if (format !== 'binary') {
      if (oid === INT8) return parseInt8;
      if (oid === NUMERIC) return parseNumeric;
      if (oid === INT8_ARRAY) return arrayOf(INT8_ARRAY, parseInt8);
      if (oid === NUMERIC_ARRAY) return arrayOf(NUMERIC_ARRAY, parseNumeric);
    }
    return pg.types.getTypeParser(oid, format);
  },
};
