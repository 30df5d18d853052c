// Reply references (`r7f3kq`): what every reply that is not an approval request carries instead of a number,
// short enough to quote in an incident and searchable in the audit, never readable as a request number.

/** Lower-case letters and digits without the look-alikes 0/o, 1/l/i. */
const ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';
const LENGTH = 5;

/** `r` and five characters of ALPHABET: ~28 million values, and no request number looks like one. */
export const REF_PATTERN = /^r[a-hjkmnp-z2-9]{5}$/;

/** A new random reference, e.g. `r7f3kq`. */
export function newRef(random: (bytes: number) => Uint8Array = randomBytes): string {
  const bytes = random(LENGTH);
  let out = 'r';
  for (let i = 0; i < LENGTH; i += 1) out += ALPHABET[(bytes[i] ?? 0) % ALPHABET.length];
  return out;
}

/** Random bytes drawn from the system in blocks: one draw serves ~50 references instead of one. */
const pool = new Uint8Array(256);
let used = pool.length;

function randomBytes(n: number): Uint8Array {
  if (used + n > pool.length) {
    crypto.getRandomValues(pool);
    used = 0;
  }
  used += n;
  return pool.slice(used - n, used);
}

/** Whether a word someone typed is a reply reference (case-insensitive, as people retype them). */
/** Audit records read to find what one reference ran: a reply writes a handful. */
export const RECORDS_OF_A_REF = 20;

export function isRef(text: string): boolean {
  return REF_PATTERN.test(text.toLowerCase());
}
