/**
 * The service's replication: on its schedule, `strata replicate` to each copy in the
 * config, one after another, beside the captures. Each copy's status tells when it last
 * succeeded, what that run moved, how far the copy is behind (the newest snapshot it
 * holds against the source's), and its last error, which is logged as an error and
 * shown by `strata status` until a later run succeeds. A run takes at most
 * `maxRunMinutes` (a first copy over a slow link can take days): then retention and
 * verification have their turn, and it goes on where it stopped.
 */
import { backendAt } from '../store/backend/at.js';
import { throttledUploads } from '../store/backend/throttle.js';
import type { Repository } from '../store/repository.js';
import { failureOf, type Chore } from './chore.js';
import { replicaStateFile, replicate } from './replicate.js';
import type { ServiceConfig } from './service-config.js';
import type { Log } from './service.js';

export interface ReplicaStatus {
  to: string;
  running?: boolean;
  lastSuccess?: { time: string; seconds: number; packsCopied: number; snapshotsCopied: number; bytesCopied: number; snapshotsRemoved: number;
    /** What the copy keeps that the source no longer has (it receives no deletions unless mirrorDeletions). */
    onlyOnCopy?: { snapshots: number; packs: number } };
  /** The time of the newest snapshot the copy holds (as of its last success). */
  copiedUpTo?: string;
  lastError?: { time: string; message: string };
}

type ReplicaConfig = ServiceConfig['replicas'][number];

export class Replication implements Chore {
  private readonly state: ReplicaStatus;
  private lastRunAt: number;

  constructor(
    private readonly repo: Repository,
    private readonly config: ReplicaConfig,
    private readonly cacheRoot: string,
    private readonly log: Log,
    private readonly now: () => number,
    earlier?: ReplicaStatus,
  ) {
    this.state = { to: config.to, ...(earlier?.to === config.to ? { lastSuccess: earlier.lastSuccess, copiedUpTo: earlier.copiedUpTo, lastError: earlier.lastError } : {}) };
    this.lastRunAt = this.state.lastSuccess ? Date.parse(this.state.lastSuccess.time) : -Infinity;
  }

  status(): ReplicaStatus {
    return structuredClone(this.state);
  }

  due(): boolean {
    return this.now() - this.lastRunAt >= this.config.everyMinutes * 60_000;
  }

  async run(signal: AbortSignal, changed: () => Promise<void>): Promise<void> {
    this.lastRunAt = this.now();
    const copy = backendAt(this.config.to, { appendOnly: this.config.appendOnly, objectLock: this.config.objectLock });
    try {
      this.state.running = true;
      await changed();
      const newest = (await this.repo.listSnapshots()).at(-1)?.snapshot.time;
      const target = this.config.limitUploadKiB ? throttledUploads(copy, this.config.limitUploadKiB * 1024) : copy;
      const result = await replicate(this.repo, target, {
        stateFile: replicaStateFile(this.cacheRoot, this.repo.config.id, copy.location), signal, until: this.lastRunAt + this.config.maxRunMinutes * 60_000,
        mirrorDeletions: this.config.mirrorDeletions,
      });
      if (result.unfinished) {
        // Its turn is over: the other chores go first, then it goes on from where it stopped.
        this.lastRunAt = -Infinity;
        this.log.info({ to: copy.location, packs: result.packsCopied, bytes: result.bytesCopied }, `replication paused after ${this.config.maxRunMinutes} min; it goes on next`);
        return;
      }
      this.state.lastSuccess = {
        time: new Date(this.lastRunAt).toISOString(), seconds: result.seconds, packsCopied: result.packsCopied,
        snapshotsCopied: result.snapshotsCopied, bytesCopied: result.bytesCopied, snapshotsRemoved: result.snapshotsRemoved, onlyOnCopy: result.onlyOnCopy,
      };
      if (newest) this.state.copiedUpTo = newest;
      this.state.lastError = undefined;
      this.log.info({ to: copy.location, packs: result.packsCopied, snapshots: result.snapshotsCopied, bytes: result.bytesCopied, removed: result.snapshotsRemoved, locksRenewed: result.locksRenewed },
        'replication done');
    } catch (e) {
      this.state.lastError = failureOf(e, `replication to ${copy.location}`, signal, this.log, this.now()) ?? this.state.lastError;
    } finally {
      this.state.running = undefined;
      await copy.close().catch(() => {});
    }
  }
}
