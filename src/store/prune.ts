/**
 * Prune: gives back the space of blobs no snapshot needs, in two phases, so that
 * backups never wait for it (restic's exclusive prune lock is among its most
 * complained-about limits).
 *
 * 1. Schedule. Every blob the snapshots reach is marked. Packs holding no used blob,
 *    packs with more than `maxUnused` of their bytes unused, and small packs (a
 *    continuous capture leaves one per snapshot) are condemned: the used blobs of
 *    the last two kinds are first copied into new packs, then the packs are written
 *    into a schedule, `deletions/<id>`. From then on every process counts their blobs
 *    as absent (Repository.refresh), so a backup stores such a blob again rather
 *    than refer to a pack about to go.
 * 2. Delete, once nothing can need the packs: the grace period has passed (readers
 *    that hold no lock, such as a mount, learn of the schedule within seconds and
 *    read the copies), and every lock that was held when the schedule appeared is
 *    gone (a backup that started before it may refer to what it condemns). Then the
 *    snapshots are marked again, since a backup that finished meanwhile may use a
 *    condemned blob, and any such blob is copied out before its pack is deleted.
 *    The schedule goes last, so a prune killed midway finishes the job next time.
 *
 * Memory: data blobs are marked in a Bloom filter (a false positive keeps an unused
 * blob, it never deletes a used one), trees in an exact set; the index stays in LevelDB.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { errors, isStrataError } from './errors.js';
import type { BlobType, DeletionRecord } from './format/records.js';
import { liveLocks } from './lock.js';
import { packObjectName, packIdFromName } from './pack.js';
import { packIdOfParity, parityObjectName } from './parity.js';
import type { Repository } from './repository.js';
import type { SnapshotRef } from './roles.js';

export interface PruneOptions {
  /** Fraction of a pack's bytes that may be unused before its used blobs are copied out and it goes (default 0.05). */
  maxUnused?: number;
  /** How long a schedule stands before its packs are deleted (default 60 s). */
  graceMs?: number;
  /** Wait for the grace period and the backups that were running, then delete what this run scheduled. */
  wait?: boolean;
  /** Say what would be done; change nothing. */
  dryRun?: boolean;
  onProgress?: (message: string) => void;
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
  /** How often a waiting prune looks again (tests shorten it). */
  pollMs?: number;
}

export interface PruneResult {
  dryRun: boolean;
  snapshots: number;
  /** Packs in the repository when the prune began, and their bytes. */
  packs: number;
  bytes: number;
  /** Blobs that no snapshot uses, and their sealed bytes, found by this run's marking. */
  unusedBlobs: number;
  unusedBytes: number;
  /** Packs this run condemned: wholly unused, and partly used or small ones whose used blobs were copied out. */
  scheduledPacks: number;
  repackedPacks: number;
  copiedBlobs: number;
  copiedBytes: number;
  /** Packs deleted by this run (its own schedule, or earlier ones that had come due), and the bytes they held. */
  deletedPacks: number;
  freedBytes: number;
  /** Condemned blobs that a newer snapshot used, copied out before their pack went. */
  rescuedBlobs: number;
  /** Schedules still standing: their packs go at a later prune. */
  pending: { name: string; packs: number; since: string }[];
}

const DEFAULT_MAX_UNUSED = 0.05;
const DEFAULT_GRACE_MS = 60_000;
/** How long a carried-out schedule stays to tell late readers that its packs were pruned. */
const KEEP_DONE_MS = 30 * 86_400_000;
/** A pack's trailer costs about this much per blob; it does not count as unused. */
const TRAILER_BYTES_PER_BLOB = 64;

/**
 * Runs both phases as far as they can go now: schedules deletions due to this run's
 * marking, carries out schedules that have come due, and with `wait` waits for its own.
 */
export async function prune(repo: Repository, opts: PruneOptions = {}): Promise<PruneResult> {
  const maxUnused = opts.maxUnused ?? DEFAULT_MAX_UNUSED;
  if (!(maxUnused >= 0 && maxUnused <= 1)) throw errors.usage(`--max-unused must be between 0% and 100%, not ${maxUnused * 100}%`);
  const graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
  const lock = await repo.lock('prune', { alone: true });
  try {
    const run = new PruneRun(repo, opts, lock.name, graceMs);
    return await run.go(maxUnused);
  } finally {
    await lock.release();
  }
}

class PruneRun {
  private readonly sizes = new Map<string, number>();
  readonly result: PruneResult;

  constructor(private readonly repo: Repository, private readonly opts: PruneOptions, private readonly ownLock: string, private readonly graceMs: number) {
    this.result = {
      dryRun: !!opts.dryRun, snapshots: 0, packs: 0, bytes: 0, unusedBlobs: 0, unusedBytes: 0, scheduledPacks: 0, repackedPacks: 0,
      copiedBlobs: 0, copiedBytes: 0, deletedPacks: 0, freedBytes: 0, rescuedBlobs: 0, pending: [],
    };
  }

  async go(maxUnused: number): Promise<PruneResult> {
    // Parity is listed first: a pack is saved before its parity, so one listed without its pack is an orphan (a writer killed between deleting the two).
    const parities: string[] = [];
    for await (const { name } of this.repo.backend.list('parity/')) parities.push(name);
    for await (const { name, size } of this.repo.backend.list('packs/')) {
      this.sizes.set(packIdFromName(name), size);
      this.result.bytes += size;
    }
    this.result.packs = this.sizes.size;
    if (!this.opts.dryRun) {
      for (const name of parities) if (!this.sizes.has(packIdOfParity(name))) await this.repo.backend.remove(name);
    }
    await this.repo.syncIndex(this.opts.onWarning); // the packs of backups that ran since this index last looked
    if (!this.opts.dryRun) await this.deleteDue();
    const snapshots = await this.repo.listSnapshots(this.opts.onWarning);
    this.result.snapshots = snapshots.length;
    const marks = await this.mark(snapshots);
    const plan = await this.plan(marks, maxUnused);
    if (!this.opts.dryRun && plan.condemn.size) {
      await this.copyUsed(plan.repack, marks);
      const name = await this.schedule([...plan.condemn]);
      if (this.opts.wait) {
        await this.waitUntilDue(name);
        await this.repo.syncIndex(this.opts.onWarning); // the copies backups stored while it waited
        await this.deleteDue();
      }
    }
    this.result.pending = this.standing().map(([name, d]) => ({ name, packs: d.packs.length, since: d.time }));
    return this.result;
  }

  /** Marks every blob that the snapshots reach. A tree that cannot be read stops the prune: nothing is deleted on a partial marking. */
  private async mark(snapshots: SnapshotRef[]): Promise<Marks> {
    let blobs = 0;
    for await (const { blobs: ids } of this.repo.indexedPacks()) blobs += ids.length;
    const marks = new Marks(blobs);
    let walked = 0;
    const walk = async (tree: Buffer, snapshot: string): Promise<void> => {
      if (marks.hasTree(tree)) return;
      this.checkAborted();
      let entries;
      try {
        entries = await this.repo.loadTree(tree);
      } catch (e) {
        if (!isStrataError(e, 'CORRUPT') && !isStrataError(e, 'UNSAFE_PATH')) throw e;
        throw errors.corrupt(`prune stopped, nothing was deleted: tree ${tree.toString('hex')} of snapshot ${snapshot.slice(0, 8)} cannot be read ` +
          `(${(e as Error).message}); run \`strata check\``, { cause: e });
      }
      marks.addTree(tree);
      if (++walked % 5000 === 0) this.opts.onProgress?.(`marking: ${walked} folders`);
      for (const entry of entries) {
        for (const chunk of entry.chunks ?? []) marks.addData(chunk);
        if (entry.subtree) await walk(entry.subtree, snapshot);
      }
    };
    for (const { id, snapshot } of snapshots) await walk(snapshot.tree, id);
    return marks;
  }

  /** Which packs go: by what the index says of each blob and the marking. */
  private async plan(marks: Marks, maxUnused: number): Promise<{ condemn: Set<string>; repack: Set<string> }> {
    const scheduled = new Set(this.standing().flatMap(([, d]) => d.packs));
    const used = new Map<string, { usedBytes: number; blobs: number; type: BlobType }>();
    for await (const [id, entry] of this.repo.indexedBlobs()) {
      if (scheduled.has(entry.pack)) continue;
      let use = used.get(entry.pack);
      if (!use) used.set(entry.pack, (use = { usedBytes: 0, blobs: 0, type: entry.type }));
      use.blobs++;
      if (marks.used(entry.type, id)) use.usedBytes += entry.length;
      else {
        this.result.unusedBlobs++;
        this.result.unusedBytes += entry.length;
      }
    }
    const condemn = new Set<string>();
    const repack = new Set<string>();
    const small: Record<BlobType, string[]> = { data: [], tree: [] };
    const smallSize = this.repo.config.packSize / 4;
    for await (const { pack, blobs } of this.repo.indexedPacks()) {
      const size = this.sizes.get(pack);
      if (size === undefined || scheduled.has(pack)) continue; // gone already, or condemned by an earlier run
      const use = used.get(pack);
      if (!use || use.usedBytes === 0) {
        condemn.add(pack);
        continue;
      }
      const unused = size - use.usedBytes - TRAILER_BYTES_PER_BLOB * blobs.length;
      if (unused > maxUnused * size) repack.add(pack);
      else if (size < smallSize) small[use.type].push(pack);
    }
    // Small packs are worth merging when there are at least two of a kind (a pack holds data or trees, never both).
    for (const packs of Object.values(small)) if (packs.length > 1) for (const pack of packs) repack.add(pack);
    for (const pack of repack) condemn.add(pack);
    this.result.scheduledPacks = condemn.size;
    this.result.repackedPacks = repack.size;
    return { condemn, repack };
  }

  /** Copies the used blobs of `packs` into new packs; a pack with a damaged blob is left alone (and reported). */
  private async copyUsed(packs: Set<string>, marks: Marks): Promise<void> {
    for await (const [id, entry] of this.repo.indexedBlobs()) {
      if (!packs.has(entry.pack) || !marks.used(entry.type, id)) continue;
      this.checkAborted();
      const bytes = await this.copy(entry.type, id, entry.pack);
      if (bytes === undefined) packs.delete(entry.pack);
      else {
        this.result.copiedBlobs++;
        this.result.copiedBytes += bytes;
      }
    }
    await this.repo.flush();
  }

  /** Copies one blob into a new pack; undefined when it cannot be read (its pack must then stay). */
  private async copy(type: BlobType, id: Buffer, pack: string): Promise<number | undefined> {
    try {
      return await this.repo.copyBlob(type, id, await this.repo.loadBlob(type, id));
    } catch (e) {
      if (!isStrataError(e, 'CORRUPT')) throw e;
      this.opts.onWarning?.(`pack ${pack} is kept: ${(e as Error).message} (run \`strata check\`)`);
      return undefined;
    }
  }

  /** Writes the schedule, then records the locks held at that moment: their owners may not have seen it. */
  private async schedule(packs: string[]): Promise<string> {
    const name = `deletions/${randomBytes(16).toString('hex')}`;
    const record: DeletionRecord = { time: new Date().toISOString(), host: os.hostname(), packs };
    await this.repo.saveDeletion(name, record);
    await this.repo.saveDeletion(name, { ...record, waitFor: [...await liveLocks(this.repo.backend, this.repo.sealer, this.ownLock)] });
    await this.repo.refresh(this.opts.onWarning);
    return name;
  }

  private async due(): Promise<Map<string, DeletionRecord>> {
    await this.repo.refresh(this.opts.onWarning);
    const live = await liveLocks(this.repo.backend, this.repo.sealer, this.ownLock);
    const due = new Map<string, DeletionRecord>();
    for (const [name, d] of this.standing()) {
      const waited = Date.now() - Date.parse(d.time) >= this.graceMs;
      const unneeded = d.waitFor ? d.waitFor.every((l) => !live.has(l)) : live.size === 0;
      if (waited && unneeded) due.set(name, d);
    }
    return due;
  }

  /** Schedules not carried out yet. */
  private standing(): [string, DeletionRecord][] {
    return [...this.repo.scheduledDeletions()].filter(([, d]) => !d.done);
  }

  private async waitUntilDue(name: string): Promise<void> {
    let said = false;
    while (!(await this.due()).has(name)) {
      if (!said) this.opts.onProgress?.(`waiting for the ${Math.round(this.graceMs / 1000)} s grace period and for backups that were running, before deleting`);
      said = true;
      this.checkAborted();
      await new Promise((resolve) => setTimeout(resolve, this.opts.pollMs ?? 1000));
    }
  }

  /** Carries out every schedule that is due (the caller has just synced the index): marks again, copies out what a newer snapshot uses, deletes, forgets the schedule. */
  private async deleteDue(): Promise<void> {
    const due = await this.due();
    if (!due.size) return;
    const condemned = new Set([...due.values()].flatMap((d) => d.packs));
    const marks = await this.mark(await this.repo.listSnapshots(this.opts.onWarning));
    for await (const [id, entry] of this.repo.indexedBlobs()) {
      if (!condemned.has(entry.pack) || !marks.used(entry.type, id)) continue;
      this.checkAborted();
      const bytes = await this.copy(entry.type, id, entry.pack);
      if (bytes === undefined) throw errors.corrupt(`prune stopped before deleting: a blob that a snapshot needs in pack ${entry.pack} cannot be read`);
      this.result.rescuedBlobs++;
    }
    await this.repo.flush();
    for (const pack of condemned) {
      this.checkAborted();
      await this.repo.backend.remove(packObjectName(pack));
      await this.repo.backend.remove(parityObjectName(pack));
      this.result.deletedPacks++;
      this.result.freedBytes += this.sizes.get(pack) ?? 0;
    }
    await this.repo.forgetPacks([...condemned]);
    // Kept a while as carried out, so a reader that comes back later knows the packs were pruned, not lost.
    const done = new Date().toISOString();
    for (const [name, d] of due) {
      await this.repo.saveDeletion(`${name}-done`, { ...d, done });
      await this.repo.removeDeletion(name);
    }
    for (const [name, d] of this.repo.scheduledDeletions()) {
      if (d.done && Date.now() - Date.parse(d.done) > KEEP_DONE_MS) await this.repo.removeDeletion(name);
    }
    await this.repo.refresh(this.opts.onWarning);
  }

  private checkAborted(): void {
    if (this.opts.signal?.aborted) throw errors.interrupted('prune was interrupted; what it scheduled is finished by the next prune');
  }
}

/** Used blobs: trees exactly (a walk skips trees it has seen), data chunks in a Bloom filter. */
class Marks {
  private readonly trees = new Set<string>();
  private readonly data: BloomFilter;

  constructor(expectedBlobs: number) {
    this.data = new BloomFilter(expectedBlobs);
  }

  hasTree(id: Buffer): boolean {
    return this.trees.has(id.toString('base64'));
  }

  addTree(id: Buffer): void {
    this.trees.add(id.toString('base64'));
  }

  addData(id: Buffer): void {
    this.data.add(id);
  }

  used(type: BlobType, id: Buffer): boolean {
    return type === 'tree' ? this.hasTree(id) : this.data.has(id);
  }
}

/**
 * A Bloom filter over blob ids, 16 bits per expected id and 8 probes (false positives
 * about 0.05%). Blob ids are HMAC outputs, uniformly random: their 32-bit words serve
 * as the probes' hashes.
 */
export class BloomFilter {
  private readonly bits: Uint32Array;
  private readonly size: number;

  constructor(expected: number) {
    this.size = Math.max(1 << 16, expected * 16);
    this.bits = new Uint32Array(Math.ceil(this.size / 32));
  }

  add(id: Buffer): void {
    for (let i = 0; i < 8; i++) {
      const bit = id.readUInt32LE(i * 4) % this.size;
      this.bits[bit >>> 5] |= 1 << (bit & 31);
    }
  }

  has(id: Buffer): boolean {
    for (let i = 0; i < 8; i++) {
      const bit = id.readUInt32LE(i * 4) % this.size;
      if (!(this.bits[bit >>> 5] & (1 << (bit & 31)))) return false;
    }
    return true;
  }
}
