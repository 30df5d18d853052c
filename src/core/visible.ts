// Characters that change what a reader sees without being seen: terminal controls (escape sequences,
// carriage returns), bidirectional overrides and zero-width characters. Shown as visible escapes in every
// rendered value, and refused in the arguments of requests that change something.

/** C0 controls except tab, newline and carriage return; DEL; C1 controls (0x9b is a one-byte CSI). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/g;
/** Bidirectional controls, zero-width and invisible formatting characters, line/paragraph separators. */
const INVISIBLE =
  /[\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb]/g;

const INVISIBLE_ONE = new RegExp(INVISIBLE.source);
/** Anything showInvisible changes (newlines aside): most values hold none, and are returned as they are. */
const CHANGED = new RegExp(`${CONTROL.source}|${INVISIBLE.source}|\r`);

const NAMES: Readonly<Record<number, string>> = {
  27: 'ESCAPE',
  7: 'BELL',
  8: 'BACKSPACE',
  13: 'CARRIAGE RETURN',
  155: 'CONTROL SEQUENCE INTRODUCER',
  173: 'SOFT HYPHEN',
  1564: 'ARABIC LETTER MARK',
  8203: 'ZERO WIDTH SPACE',
  8204: 'ZERO WIDTH NON-JOINER',
  8205: 'ZERO WIDTH JOINER',
  8206: 'LEFT-TO-RIGHT MARK',
  8207: 'RIGHT-TO-LEFT MARK',
  8232: 'LINE SEPARATOR',
  8233: 'PARAGRAPH SEPARATOR',
  8234: 'LEFT-TO-RIGHT EMBEDDING',
  8235: 'RIGHT-TO-LEFT EMBEDDING',
  8236: 'POP DIRECTIONAL FORMATTING',
  8237: 'LEFT-TO-RIGHT OVERRIDE',
  8238: 'RIGHT-TO-LEFT OVERRIDE',
  8288: 'WORD JOINER',
  8294: 'LEFT-TO-RIGHT ISOLATE',
  8295: 'RIGHT-TO-LEFT ISOLATE',
  8296: 'FIRST STRONG ISOLATE',
  8297: 'POP DIRECTIONAL ISOLATE',
  65279: 'ZERO WIDTH NO-BREAK SPACE',
};

function hex2(code: number): string {
  return code.toString(16).padStart(2, '0');
}

/** `U+202E` for a code point. */
export function codePoint(code: number): string {
  return `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** The visible stand-in: `\x1b` for a control, `<U+202E>` for an invisible character. */
function standIn(char: string): string {
  const code = char.codePointAt(0) ?? 0;
  return code <= 0x9f ? `\\x${hex2(code)}` : `<${codePoint(code)}>`;
}

export interface VisibleOptions {
  /** Keep newlines (and CRLF as a newline); else they become a visible `\n`. Default true. */
  newlines?: boolean;
}

/**
 * `text` with every control and invisible character shown as an escape (`\x1b`, `<U+202E>`), so what a
 * terminal or chat client displays is what the value holds. Tabs stay; a carriage return not followed
 * by a newline (which would let a value overwrite the line it is on) becomes `\r`.
 */
export function showInvisible(text: string, options: VisibleOptions = {}): string {
  const newlines = options.newlines ?? true;
  if (!CHANGED.test(text) && (newlines || !text.includes('\n'))) return text;
  let out = text.replace(CONTROL, standIn).replace(INVISIBLE, standIn);
  out = newlines ? out.replace(/\r\n/g, '\n').replace(/\r/g, '\\r') : out.replace(/\r/g, '\\r');
  return newlines ? out : out.replace(/\n/g, '\\n');
}

export interface HiddenCharacter {
  /** `U+202E`. */
  code: string;
  name: string;
  /** 1-based position in the value, in characters. */
  position: number;
}

/** Every control (tab and newline included) or invisible character of `text`, with where it is. */
export function hiddenCharacters(text: string): HiddenCharacter[] {
  const found: HiddenCharacter[] = [];
  const chars = [...text];
  chars.forEach((char, i) => {
    const code = char.codePointAt(0) ?? 0;
    const control = code < 0x20 || (code >= 0x7f && code <= 0x9f);
    if (!control && !INVISIBLE_ONE.test(char)) return;
    found.push({
      code: codePoint(code),
      name: NAMES[code] ?? (control ? 'CONTROL' : 'INVISIBLE FORMAT CHARACTER'),
      position: i + 1,
    });
  });
  return found;
}

/**
 * JSON text whose string values cannot drive a terminal: JSON.stringify already escapes C0 controls;
 * this escapes C1 controls, bidirectional and zero-width characters too (the parsed value is unchanged).
 */
export function terminalSafeJson(json: string): string {
  return json
    .replace(/[\u007f-\u009f]/g, (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`)
    .replace(INVISIBLE, (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
}

/**
 * An echoed value (CSV header, file name, error text) on one line: invisible characters shown as
 * escapes, so it cannot disguise itself in an answer, and long text clipped to `max` characters.
 */
export function visible(text: string, max = 60): string {
  const plain = showInvisible(text, { newlines: false });
  return plain.length > max ? `${plain.slice(0, max - 1)}…` : plain;
}
