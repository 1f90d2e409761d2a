/**
 * One backup, as `strata backup` and `strata serve` make it: a shared lock first (a
 * prune that schedules deletions after it waits for this backup; one scheduled before
 * is learned when the lock is taken), then the parent (the newest snapshot of the same
 * host and paths), the capture, and the lock released however it ends.
 */
import os from 'node:os';
import path from 'node:path';
import type { Lock } from '../store/lock.js';
import { findParent } from '../store/select.js';
import type { SnapshotRef } from '../store/roles.js';
import { capture, type CaptureOptions, type CaptureRepo } from './capture.js';

export type BackupRepo = CaptureRepo & {
  lock(purpose: string): Promise<Lock>;
  listSnapshots(onWarning?: (message: string) => void): Promise<SnapshotRef[]>;
};

export interface BackupRequest extends Omit<CaptureOptions, 'parent' | 'isUnchanged'> {
  /** Whose lock it is ("backup", "strata serve"). */
  purpose: string;
  /** Told the parent before reading starts (undefined: the first backup of these paths from this host). */
  onParent?: (parent: SnapshotRef | undefined) => void;
  /** What the caller knows to be unchanged since the parent (the service's change journal); undefined: everything is compared. */
  unchangedSince?: (parent: SnapshotRef) => CaptureOptions['isUnchanged'];
}

export interface BackupResult {
  snapshot: SnapshotRef;
  parent?: SnapshotRef;
}

export async function backup(repo: BackupRepo, request: BackupRequest): Promise<BackupResult> {
  const { purpose, onParent, unchangedSince, ...options } = request;
  const host = options.host ?? os.hostname();
  const paths = options.paths.map((p) => path.resolve(p));
  const lock = await repo.lock(purpose);
  let failed = true;
  try {
    const parent = findParent(await repo.listSnapshots(options.onWarning), host, paths);
    onParent?.(parent);
    const snapshot = await capture(repo, { ...options, host, paths, parent, isUnchanged: parent && unchangedSince?.(parent) });
    failed = false;
    return { snapshot, ...(parent ? { parent } : {}) };
  } finally {
    // A failure to release does not hide why the backup failed.
    await lock.release().catch((e: unknown) => { if (!failed) throw e; });
  }
}
