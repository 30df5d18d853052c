// The problems of one config file, each with its file:line, in the order of the file.
import { dotted, type Locator, type Path } from './yaml-locator.js';

export interface Problem {
  line: number;
  order: number;
  text: string;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function quoted(names: readonly string[]): string[] {
  return names.map((n) => `'${n}'`);
}

export class ProblemList {
  private readonly items: Problem[] = [];

  constructor(
    private readonly source: string,
    private readonly locator: Locator | undefined,
  ) {}

  where(path: Path, atKey = false): { line: number; at: string } {
    const line = this.locator?.line(path, atKey) ?? 1;
    return { line, at: `${this.source}:${line}` };
  }

  /** "<path> (<file>:<line>): <what>" */
  add(path: Path, what: string, atKey = false): void {
    const { line, at } = this.where(path, atKey);
    this.push(line, `${dotted(path)} (${at}): ${what}`);
  }

  push(line: number, text: string): void {
    this.items.push({ line, order: this.items.length, text });
  }

  get size(): number {
    return this.items.length;
  }

  texts(): string[] {
    return [...this.items].sort((a, b) => a.line - b.line || a.order - b.order).map((p) => p.text);
  }
}
