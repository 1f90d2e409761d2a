/**
 * Forgetting snapshots, by a retention policy or by name, under the repository's
 * lock: the one operation behind `strata forget` and the service's retention.
 * Forgetting removes snapshot records only; their data goes at the next prune.
 */
import type { SnapshotRef } from '../store/roles.js';
import { matches, selectSnapshot, type SnapshotFilter } from '../store/select.js';
import { applyPolicy, type GroupKey, type RetentionGroup, type RetentionPolicy } from './retention.js';

/** The slice of a repository that forgetting needs. */
export interface SnapshotForgetter {
  lock(purpose: string): Promise<{ release(): Promise<void> }>;
  listSnapshots(onWarning?: (message: string) => void): Promise<SnapshotRef[]>;
  removeSnapshot(id: string): Promise<void>;
}

export type ForgetRequest = ({ policy: RetentionPolicy; groupBy?: GroupKey[]; filter?: SnapshotFilter } | { ids: string[] }) & {
  dryRun?: boolean;
  onWarning?: (message: string) => void;
};

/** Decides, then (unless a dry run) removes what is not kept. Groups list newest first. */
export async function forget(repo: SnapshotForgetter, request: ForgetRequest): Promise<RetentionGroup[]> {
  const lock = await repo.lock('forget');
  try {
    const all = await repo.listSnapshots(request.onWarning);
    let groups: RetentionGroup[];
    if ('ids' in request) {
      const named = new Set(request.ids.map((id) => selectSnapshot(all, id).id));
      groups = [{ decisions: all.filter((r) => named.has(r.id)).reverse().map((ref) => ({ ref, keep: false, reasons: [] })) }];
    } else {
      groups = applyPolicy(all.filter((r) => matches(r, request.filter ?? {})), request.policy, request.groupBy);
    }
    if (!request.dryRun) for (const id of forgottenIn(groups)) await repo.removeSnapshot(id);
    return groups;
  } finally {
    await lock.release();
  }
}

export const forgottenIn = (groups: RetentionGroup[]): string[] =>
  groups.flatMap((g) => g.decisions.filter((d) => !d.keep).map((d) => d.ref.id));
