// Backup retention of a scheduled `backup`: which backups of a target `keep: { last, days }` lets go, and
// deleting them (each audited by the caller). Never the newest verified backup, never one it cannot read.
import { rm } from 'node:fs/promises';
import {
  type BackupFile,
  listBackupFiles,
  type Manifest,
  manifestPathOf,
  readManifest,
  targetBackupDir,
} from '../../commands/lib/backup-store.js';

export interface KeepRule {
  last?: number;
  days?: number;
}

export interface RetentionCandidate {
  file: BackupFile;
  createdAt: Date;
  verified: boolean;
}

export interface RetentionPlan {
  keep: { name: string; why: string }[];
  remove: { name: string; why: string; file: BackupFile }[];
  /** Backups left alone because their manifest could not be read (never deleted blindly). */
  unreadable: { name: string; problem: string }[];
}

/**
 * Decides over whole-database backups (per-table ones are not this schedule's). A backup is kept when any
 * rule keeps it: among the newest `last`, younger than `days`, the newest verified one, or `protect`.
 */
export function planRetention(
  candidates: readonly RetentionCandidate[],
  keep: KeepRule,
  now: Date,
  protect?: string,
): Pick<RetentionPlan, 'keep' | 'remove'> {
  const newestFirst = [...candidates].sort(
    (a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.file.name < b.file.name ? 1 : -1),
  );
  const newestVerified = newestFirst.find((c) => c.verified)?.file.name;
  const plan: Pick<RetentionPlan, 'keep' | 'remove'> = { keep: [], remove: [] };
  newestFirst.forEach((c, index) => {
    const reasons: string[] = [];
    if (keep.last !== undefined && index < keep.last) reasons.push(`one of the newest ${keep.last}`);
    const ageDays = (now.getTime() - c.createdAt.getTime()) / 86_400_000;
    if (keep.days !== undefined && ageDays < keep.days) reasons.push(`younger than ${keep.days} days`);
    if (c.file.name === newestVerified) reasons.push('the newest verified backup');
    if (c.file.name === protect) reasons.push('just made');
    if (reasons.length > 0) plan.keep.push({ name: c.file.name, why: reasons.join(', ') });
    else {
      const rules = [
        ...(keep.last !== undefined ? [`not among the newest ${keep.last}`] : []),
        ...(keep.days !== undefined ? [`${Math.floor(ageDays)} days old`] : []),
      ];
      plan.remove.push({ name: c.file.name, why: rules.join(', '), file: c.file });
    }
  });
  return plan;
}

/** Reads the target's backups and their manifests into a plan. */
export async function retentionPlan(
  backupsDir: string,
  target: string,
  keep: KeepRule,
  now: Date,
  protect?: string,
): Promise<RetentionPlan> {
  const files = await listBackupFiles(targetBackupDir(backupsDir, target));
  const candidates: RetentionCandidate[] = [];
  const unreadable: RetentionPlan['unreadable'] = [];
  for (const file of files) {
    const read = await readManifest(file.path).catch((err: unknown) => ({
      problem: err instanceof Error ? err.message : String(err),
    }));
    if ('problem' in read) {
      unreadable.push({ name: file.name, problem: read.problem });
      continue;
    }
    const manifest: Manifest = read.manifest;
    if (manifest.table !== null || manifest.target !== target) continue;
    const createdAt = new Date(manifest.createdAt);
    if (Number.isNaN(createdAt.getTime())) {
      unreadable.push({ name: file.name, problem: 'manifest has no valid createdAt' });
      continue;
    }
    candidates.push({ file, createdAt, verified: manifest.verification?.ok === true });
  }
  return { ...planRetention(candidates, keep, now, protect), unreadable };
}

/** Deletes one backup: the dump first (so a half-done delete never leaves a dump without its manifest). */
export async function deleteBackup(file: BackupFile): Promise<void> {
  await rm(file.path);
  await rm(manifestPathOf(file.path), { force: true });
}
