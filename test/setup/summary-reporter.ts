// Ends the run with one plain line, "N passed, N failed, N skipped", for CI logs, and one line per reason
// tests were skipped with a note (e.g. "skipped 6 tests: alembic not installed (apt-get install …)").
import type { Reporter, TestModule } from 'vitest/node';

/** The closing lines for these counts and skip notes (note -> how many tests). */
export function summaryLines(
  counts: { passed: number; failed: number; skipped: number },
  notes: ReadonlyMap<string, number>,
): string[] {
  const lines = [`${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`];
  for (const [note, n] of [...notes].sort((a, b) => a[0].localeCompare(b[0]))) {
    lines.push(`skipped ${n} ${n === 1 ? 'test' : 'tests'}: ${note}`);
  }
  return lines;
}

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const counts = { passed: 0, failed: 0, skipped: 0 };
    const notes = new Map<string, number>();
    for (const module of modules) {
      for (const test of module.children.allTests()) {
        const result = test.result();
        if (result.state === 'passed') counts.passed += 1;
        else if (result.state === 'failed') counts.failed += 1;
        else {
          counts.skipped += 1;
          const note = result.state === 'skipped' ? result.note : undefined;
          if (note) notes.set(note, (notes.get(note) ?? 0) + 1);
        }
      }
    }
    process.stdout.write(`\n${summaryLines(counts, notes).join('\n')}\n`);
  }
}
