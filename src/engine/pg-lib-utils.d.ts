// Types for the one function of pg's lib/utils.js dbops calls (pg's own typings do not declare that file).
declare module 'pg/lib/utils.js' {
  /** A bind value as pg sends it (text, Buffer or null); throws for a value it cannot encode. */
  export function prepareValue(value: unknown): unknown;
}
