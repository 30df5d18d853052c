// Echoing text people sent (CSV values, file names) without letting it disguise itself in an answer.

/** Control, bidi and other invisible characters: C0, DEL, C1, zero-width, bidi marks and isolates, BOM. */
function invisible(code: number): boolean {
  return (
    code <= 0x1f ||
    (code >= 0x7f && code <= 0x9f) ||
    (code >= 0x200b && code <= 0x200f) ||
    (code >= 0x2028 && code <= 0x202e) ||
    (code >= 0x2060 && code <= 0x206f) ||
    code === 0xfeff
  );
}

/** Invisible characters shown as `?`, so an echoed value cannot disguise itself; long text clipped. */
export function visible(text: string, max = 60): string {
  let plain = '';
  for (const ch of text) plain += invisible(ch.codePointAt(0) ?? 0) ? '?' : ch;
  return plain.length > max ? `${plain.slice(0, max - 1)}…` : plain;
}
