// A local, fsynced, append-only journal of run outcomes and audit records that the state database could
// not take when a run ended; replayed (in order) once the database is back, so the truth is never lost.
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { OperationResult } from '../core/types.js';
import type { AuditEvent } from './types.js';

/** One thing the state database still has to be told. */
export type JournalEntry =
  | {
      kind: 'finish';
      id: number;
      outcome: { status: 'succeeded' | 'failed' | 'cancelled'; result?: OperationResult; error?: string };
      at: string;
      runner: string;
    }
  | { kind: 'audit'; event: AuditEvent; at: string };

/**
 * The journal files of one backups directory: this process appends to its own file; replay reads every
 * file (its own and those a stopped process left) and removes each once all its entries were applied.
 */
export class OutcomeJournal {
  readonly dir: string;
  readonly #file: string;

  constructor(backupsDir: string) {
    this.dir = join(backupsDir, '.dbops-journal');
    this.#file = join(this.dir, `outcomes-${process.pid}-${randomUUID().slice(0, 8)}.jsonl`);
  }

  /** Appends one entry and fsyncs it before returning: once this returns, a crash does not lose it. */
  append(entry: JournalEntry): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const fd = openSync(this.#file, 'a', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(entry)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** Every journal file with its entries, oldest file name first (a torn last line is skipped). */
  pending(): { file: string; entries: JournalEntry[] }[] {
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => n.endsWith('.jsonl'));
    } catch {
      return [];
    }
    return names.sort().map((name) => {
      const file = join(this.dir, name);
      const entries: JournalEntry[] = [];
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (line.trim() === '') continue;
        try {
          entries.push(JSON.parse(line) as JournalEntry);
        } catch {
          // A line cut short by a crash mid-write was never acknowledged: nothing relied on it.
        }
      }
      return { file, entries };
    });
  }

  /** Removes a file whose entries were all applied. */
  done(file: string): void {
    rmSync(file, { force: true });
  }

  /** Rewrites a file with the entries still to apply (after a partial replay), fsynced. */
  keep(file: string, entries: JournalEntry[]): void {
    const next = `${file}.next`;
    const fd = openSync(next, 'w', 0o600);
    try {
      writeSync(fd, entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    // Atomic: a crash leaves either the old file or the new one.
    renameSync(next, file);
  }
}
