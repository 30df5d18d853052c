// Maps paths in a parsed YAML document to line numbers, so validation errors can say file:line.
import { type Document, isMap, isScalar, isSeq, type LineCounter, type Node } from 'yaml';

export type Path = readonly (string | number)[];

/** `targets.kasm.url`, `people.alice.roles[0]`, or `(top level)`. */
export function dotted(path: Path): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? segment : `.${segment}`;
  }
  return out === '' ? '(top level)' : out;
}

/** Finds YAML nodes by path and turns offsets into line numbers. */
export class Locator {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  private lineAt(offset: number): number {
    return this.lines.linePos(offset).line;
  }

  /**
   * The line of the value at `path` (its key's line for mappings, or always with `atKey`); for a path
   * that does not exist, the line of the nearest ancestor that does.
   */
  line(path: Path, atKey = false): number {
    let node: unknown = this.doc.contents;
    let line = 1;
    for (const segment of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
        if (!pair) return line;
        if (isScalar(pair.key) && pair.key.range) line = this.lineAt(pair.key.range[0]);
        node = pair.value;
      } else if (isSeq(node) && typeof segment === 'number') {
        const item: unknown = node.items[segment];
        if (isNodeWithRange(item)) line = this.lineAt(item.range[0]);
        node = item;
      } else {
        return line;
      }
    }
    if (!atKey && isScalar(node) && node.range) line = this.lineAt(node.range[0]);
    return line;
  }
}

function isNodeWithRange(value: unknown): value is Node & { range: [number, number, number] } {
  return typeof value === 'object' && value !== null && 'range' in value && Array.isArray(value.range);
}
