/** What `strata replicate` and `strata status` say about second copies. */
import type { ReplicateResult } from '../sync/replicate.js';
import type { ReplicaStatus } from '../sync/replication.js';
import { count, formatBytes } from './output.js';

export function replicateLines(to: string, result: ReplicateResult): string[] {
  return [
    `${result.created ? 'created the copy' : 'updated the copy'} at ${to}: ${count(result.packsCopied, 'pack')}, ` +
      `${count(result.snapshotsCopied, 'snapshot')} copied (${formatBytes(result.bytesCopied)}) in ${result.seconds.toFixed(1)} s`,
    ...(result.snapshotsRemoved || result.packsRemoved ? [`removed what the source no longer has: ${count(result.snapshotsRemoved, 'snapshot')}, ${count(result.packsRemoved, 'pack')}`] : []),
    ...(result.removalsDeferred ? ['removals deferred: another process holds a lock on the copy (or the source lists no snapshot)'] : []),
    ...(result.onlyOnCopy.snapshots || result.onlyOnCopy.packs ? [`the copy keeps what the source no longer has: ${count(result.onlyOnCopy.snapshots, 'snapshot')}, ${count(result.onlyOnCopy.packs, 'pack')} (--mirror-deletions removes them)`] : []),
    ...(result.locksRenewed ? [`extended the Object Lock of ${count(result.locksRenewed, 'object')}`] : []),
    ...(result.packsKeptLost ? [`kept ${count(result.packsKeptLost, 'pack')} on the copy that the source no longer has though no prune of it is on record (lost there, or pruned before its record expired)`] : []),
  ];
}

/** Each copy the service keeps, as `strata status` shows it. */
export function replicaLines(replicas: ReplicaStatus[] | undefined): string[] {
  if (!replicas?.length) return ['  replication: none (no second copy)'];
  return replicas.flatMap((r) => {
    const ok = r.lastSuccess;
    return [
      `  copy at ${r.to}${r.running ? ': replicating now' : ''}`,
      ok ? `    last success ${ok.time.slice(0, 19).replace('T', ' ')}: ${count(ok.snapshotsCopied, 'snapshot')}, ${count(ok.packsCopied, 'pack')} (${formatBytes(ok.bytesCopied)}) in ${ok.seconds.toFixed(1)} s` +
        `${r.copiedUpTo ? `; holds snapshots up to ${r.copiedUpTo.slice(0, 19).replace('T', ' ')}` : ''}` : '    never replicated yet',
      ...(ok?.onlyOnCopy?.snapshots || ok?.onlyOnCopy?.packs ? [`    keeps what the source no longer has: ${count(ok.onlyOnCopy.snapshots, 'snapshot')}, ${count(ok.onlyOnCopy.packs, 'pack')}`] : []),
      ...(r.lastError ? [`    last error (${r.lastError.time}): ${r.lastError.message}`] : []),
    ];
  });
}
