/**
 * Replication: makes another location (a folder on a second disk or NAS, an S3
 * bucket) a complete copy of a repository, incrementally. The copy holds the same
 * objects (config, keys, packs with their parity, snapshot records), so it opens,
 * checks, mounts and restores with the same password and without the source.
 *
 * Order makes it safe to kill at any point: the snapshot records are listed first
 * and copied last, after every pack listed after them has landed (a backup writes
 * its packs before its record), so the copy never holds a snapshot whose data it
 * lacks (packs pruned meanwhile send it back to list the source again); packs
 * already copied are not copied again. A pack must hash to its name before it is
 * copied (a damaged one stops the run, to be healed on the source first), and
 * every object's size is checked once written (S3 uploads carry their MD5).
 *
 * What is known of the copy (its packs) is kept between runs, so a run after a
 * small backup lists only the source and moves only what is new; a run that was
 * interrupted, or `verify`, lists the copy again.
 *
 * The copy never receives a deletion from the source: what the source forgets and
 * prunes stays on the copy (a mistake or an attack on the primary does not reach
 * it), and the result says how much the copy holds that the source no longer has.
 * Only `mirrorDeletions` removes that too, snapshots first, but never while another
 * process holds a lock on the copy and never when the source lists no snapshot at
 * all; a pack lost on the source stays. A copy under Object Lock refuses it, and
 * has the lock of everything on it extended once half the lock period has passed.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Backend } from '../store/backend/backend.js';
import { errors, isStrataError } from '../store/errors.js';
import { decodeConfig } from '../store/format/records.js';
import { acquireLock, liveLocks } from '../store/lock.js';
import { packIdFromName, packObjectName } from '../store/pack.js';
import { packIdOfParity, parityObjectName } from '../store/parity.js';
import { repositoryObjectIn, type Repository } from '../store/repository.js';

export interface ReplicateOptions {
  /** Where what is known of the copy is kept between runs (a JSON file in the cache). */
  stateFile: string;
  /** List the copy again instead of trusting what is known of it. */
  verify?: boolean;
  onProgress?: (p: { objects: number; bytes: number; totalBytes: number }) => void;
  signal?: AbortSignal;
  /** Stop taking new packs at this time (ms since the epoch): what landed stays known, the next run goes on. */
  until?: number;
  /** Remove from the copy what the source forgot and pruned (by default the copy keeps everything it was sent). */
  mirrorDeletions?: boolean;
}

export interface ReplicateResult {
  /** Whether the copy was listed (first run, after an interruption, or asked for). */
  listedTarget: boolean;
  created: boolean;
  packsCopied: number;
  parityCopied: number;
  snapshotsCopied: number;
  bytesCopied: number;
  snapshotsRemoved: number;
  packsRemoved: number;
  /** Removals left for a later run: another process held a lock on the copy. */
  removalsDeferred: boolean;
  /** Packs the source no longer has though no prune scheduled them (lost there): kept on the copy (`mirrorDeletions`). */
  packsKeptLost: number;
  /** What the copy holds that the source no longer has (forgotten, pruned, or lost there), after this run. */
  onlyOnCopy: { snapshots: number; packs: number };
  /** Objects whose Object Lock this run extended (see `Backend.protection`). */
  locksRenewed: number;
  /** Out of time (`until`) before every pack was copied: no record was copied, the next run goes on. */
  unfinished: boolean;
  seconds: number;
}

interface KnownTarget {
  location: string;
  /** False while a run is under way: a run that finds it so lists the copy. */
  clean: boolean;
  packs: string[];
  /** The packs whose parity is on the copy (parity lands after its pack, and check may write it later). */
  parity: string[];
  /** The snapshot records on the copy: a copy that holds others (swapped, wiped) is listed again. */
  snapshots: string[];
  /** When the lock of every object on the copy was last extended (Object Lock). */
  locksRenewedAt?: number;
}

/** Where what is known of a copy is kept: the cache, by source repository and copy location. */
export const replicaStateFile = (cacheRoot: string, repositoryId: string, location: string): string =>
  path.join(cacheRoot, 'replicas', `${repositoryId}-${createHash('sha256').update(location).digest('hex').slice(0, 12)}.json`);

/** Objects copied side by side (each a pack of a few MiB). */
const COPIES_AT_ONCE = 3;
/** Listings of the source again after packs vanished under a prune, before giving up for this run. */
const MAX_ROUNDS = 5;
const DAY_MS = 86_400_000;

async function names(backend: Backend, prefix: string): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for await (const { name, size } of backend.list(prefix)) found.set(name, size);
  return found;
}

async function readKnown(file: string, location: string): Promise<KnownTarget | undefined> {
  try {
    const known = JSON.parse(await fs.readFile(file, 'utf8')) as KnownTarget;
    return known.location === location && known.clean && Array.isArray(known.packs) && Array.isArray(known.parity) && Array.isArray(known.snapshots) ? known : undefined;
  } catch {
    return undefined;
  }
}

async function writeKnown(file: string, known: KnownTarget): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}`;
  await fs.writeFile(tmp, JSON.stringify(known));
  await fs.rename(tmp, file);
}

export async function replicate(source: Repository, target: Backend, opts: ReplicateOptions): Promise<ReplicateResult> {
  const started = Date.now();
  const result: ReplicateResult = {
    listedTarget: false, created: false, packsCopied: 0, parityCopied: 0, snapshotsCopied: 0, bytesCopied: 0,
    snapshotsRemoved: 0, packsRemoved: 0, removalsDeferred: false, packsKeptLost: 0, onlyOnCopy: { snapshots: 0, packs: 0 },
    locksRenewed: 0, unfinished: false, seconds: 0,
  };
  if (opts.mirrorDeletions && target.protection) {
    throw errors.usage(`${target.location} is under Object Lock: nothing is removed from it, so deletions cannot be mirrored there`);
  }
  const from = source.backend;
  const checkAborted = (): void => {
    if (opts.signal?.aborted) throw errors.interrupted('replication interrupted: what was copied stays, the next run goes on from there');
  };
  /** Copies one object and checks that it landed whole; a pack must still hash to its name on the source. */
  const copy = async (name: string): Promise<number> => {
    checkAborted();
    const data = await from.load(name);
    if (name.startsWith('packs/') && createHash('sha256').update(data).digest('hex') !== packIdFromName(name)) {
      throw errors.corrupt(`${name} on the source is damaged (its bytes no longer match its name), so it is not copied: ` +
        '`strata check --read-data` on the source heals it from its parity where it can (else `strata repair snapshots` leaves out what it held), then replicate again');
    }
    // A NOT_FOUND from here on is the copy's (its folder gone, a write lost), not a name gone from the source as copyAll takes it.
    const onCopy = <T>(operation: Promise<T>): Promise<T> => operation.catch((e: unknown) => {
      throw isStrataError(e, 'NOT_FOUND') ? errors.backend(`${name} did not land in ${target.location}: ${e.message}`, { cause: e }) : e;
    });
    await onCopy(target.save(name, data));
    const landed = await onCopy(target.stat(name));
    if (landed.size !== data.length) throw errors.backend(`${name} landed in ${target.location} as ${landed.size} bytes, not ${data.length}`);
    result.bytesCopied += data.length;
    return data.length;
  };

  // A shared lock: a prune of the source waits for this run before deleting what it reads.
  const sourceLock = await source.readLock('replicate', () => {});
  try {
    result.created = await copyHeaders(source, target, copy);
    const targetLock = await acquireLock(target, source.sealer, { exclusive: false, purpose: 'replicate' });
    try {
      // Snapshots first, then packs: every pack a listed snapshot needs is in the pack listing.
      const snapshots = await names(from, 'snapshots/');
      let packs = await names(from, 'packs/');
      let parity = await names(from, 'parity/');
      const targetSnapshots = await names(target, 'snapshots/');
      const earlier = await readKnown(opts.stateFile, target.location);
      let known = opts.verify || result.created ? undefined : earlier;
      // What is known is trusted only while the copy holds the snapshots it held then (a disk swapped or wiped does not).
      if (known && !sameSet(known.snapshots, targetSnapshots.keys())) known = undefined;
      let targetPacks: Set<string>;
      let targetParity: Set<string>;
      if (known) {
        targetPacks = new Set(known.packs);
        targetParity = new Set(known.parity);
      } else {
        result.listedTarget = true;
        targetPacks = new Set([...(await names(target, 'packs/')).keys()].map(packIdFromName));
        targetParity = new Set([...(await names(target, 'parity/')).keys()].map(packIdOfParity));
      }
      known = {
        location: target.location, clean: false, packs: [...targetPacks], parity: [...targetParity], snapshots: [...targetSnapshots.keys()],
        // Everything a new copy holds was just written locked for the whole period.
        locksRenewedAt: result.created ? started : earlier?.locksRenewedAt,
      };
      await writeKnown(opts.stateFile, known);

      const missingSnapshots = [...snapshots].filter(([name]) => !targetSnapshots.has(name));
      let objects = 0;
      let totalBytes = missingSnapshots.reduce((n, [, size]) => n + size, 0);
      const progress = (): void => opts.onProgress?.({ objects: ++objects, bytes: result.bytesCopied, totalBytes });
      /** Copies side by side; returns the names gone from the source meanwhile. The first failure stops every worker. */
      const copyAll = async (queue: string[]): Promise<string[]> => {
        const vanished: string[] = [];
        let failure: unknown;
        await Promise.all(Array.from({ length: COPIES_AT_ONCE }, async () => {
          for (let name = queue.shift(); name && failure === undefined; name = queue.shift()) {
            if (opts.until !== undefined && Date.now() >= opts.until) {
              result.unfinished = true;
              break;
            }
            try {
              await copy(name);
            } catch (e) {
              if (isStrataError(e, 'NOT_FOUND')) vanished.push(name);
              else failure ??= e;
              continue;
            }
            if (name.startsWith('packs/')) {
              result.packsCopied++;
              targetPacks.add(packIdFromName(name));
              known!.packs.push(packIdFromName(name));
            } else {
              result.parityCopied++;
              targetParity.add(packIdOfParity(name));
              known!.parity.push(packIdOfParity(name));
            }
            progress();
          }
        }));
        if (failure !== undefined) throw failure;
        return vanished;
      };
      // A pack that vanished was pruned meanwhile: its live blobs went to newer packs, which a new listing finds.
      for (let round = 0; ; round++) {
        const missingPacks = [...packs].filter(([name]) => !targetPacks.has(packIdFromName(name)));
        // Parity goes with its pack, and parity written on the source later (after its pack, or by check) follows.
        const missingParity = [...parity].filter(([name]) => !targetParity.has(packIdOfParity(name)) && packs.has(packObjectName(packIdOfParity(name))));
        totalBytes += [...missingPacks, ...missingParity].reduce((n, [, size]) => n + size, 0);
        const vanished = await copyAll([...missingPacks.map(([n]) => n), ...missingParity.map(([n]) => n)]);
        if (result.unfinished || !vanished.some((n) => n.startsWith('packs/'))) break;
        if (round === MAX_ROUNDS) throw errors.backend(`packs of ${from.location} keep vanishing while they are copied (a prune running): replicate again later`);
        packs = await names(from, 'packs/');
        parity = await names(from, 'parity/');
      }
      // The records last: each snapshot's data has landed (a run out of time copies none).
      for (const [name] of result.unfinished ? [] : missingSnapshots) {
        try {
          await copy(name);
        } catch (e) {
          if (!isStrataError(e, 'NOT_FOUND')) throw e; // forgotten since the listing
          continue;
        }
        result.snapshotsCopied++;
        known.snapshots.push(name);
        progress();
      }

      if (!result.unfinished && opts.mirrorDeletions) await removeWhatWent(target, source, targetLock.name, snapshots, packs, known, result, checkAborted);
      const sourcePacks = new Set([...packs.keys()].map(packIdFromName));
      result.onlyOnCopy = { snapshots: known.snapshots.filter((n) => !snapshots.has(n)).length, packs: known.packs.filter((id) => !sourcePacks.has(id)).length };
      if (!result.unfinished && target.protection && started - (known.locksRenewedAt ?? 0) >= target.protection.lockDays * DAY_MS / 2) {
        checkAborted();
        result.locksRenewed = await target.protection.renew();
        known.locksRenewedAt = started;
      }
      known.clean = true;
      await writeKnown(opts.stateFile, known);
    } finally {
      await targetLock.release().catch(() => {});
    }
  } finally {
    await sourceLock?.release().catch(() => {});
  }
  result.seconds = (Date.now() - started) / 1000;
  return result;
}

const sameSet = (a: readonly string[], b: Iterable<string>): boolean => {
  const bs = new Set(b);
  return a.length === bs.size && a.every((x) => bs.has(x));
};

/**
 * A new copy gets the key files first and the config last (a config without keys would be
 * a repository nobody opens); an existing one must be of the same repository, and gets key
 * files added to the source since.
 */
async function copyHeaders(source: Repository, target: Backend, copy: (name: string) => Promise<number>): Promise<boolean> {
  await target.create?.();
  let held: Buffer | undefined;
  try {
    held = await target.load('config');
  } catch (e) {
    if (!isStrataError(e, 'NOT_FOUND')) throw e;
  }
  if (held) {
    let id: string | undefined;
    try {
      id = decodeConfig(source.sealer.open(held, 'config')).id;
    } catch (e) {
      if (!isStrataError(e, 'CORRUPT')) throw e;
    }
    if (id !== source.config.id) {
      throw errors.alreadyExists(`${target.location} holds another repository (or a damaged config): replicate to an empty location or to a copy of this one`);
    }
  } else if (await repositoryObjectIn(target, ['packs/', 'snapshots/'])) { // keys without a config: a first run killed, go on
    throw errors.alreadyExists(`${target.location} holds repository objects but no config: replicate to an empty location or to a copy of this repository`);
  }
  const targetHeaders = new Set([...(await names(target, 'keys/')).keys(), ...(await names(target, 'copies/')).keys()]);
  for (const prefix of ['keys/', 'copies/']) {
    for (const name of (await names(source.backend, prefix)).keys()) if (!targetHeaders.has(name)) await copy(name);
  }
  if (!held) await copy('config');
  return !held;
}

/**
 * Mirrors forgotten snapshots and pruned packs (`mirrorDeletions`), snapshots first. Only packs a prune of the
 * source scheduled go: one that vanished otherwise (lost on the source) stays on the copy,
 * which may be the only place left that has it. Deferred while others hold locks on the copy.
 */
async function removeWhatWent(target: Backend, source: Repository, ownLock: string, snapshots: Map<string, number>, packs: Map<string, number>,
  known: KnownTarget, result: ReplicateResult, checkAborted: () => void): Promise<void> {
  const goneSnapshots = known.snapshots.filter((name) => !snapshots.has(name));
  const sourcePacks = new Set([...packs.keys()].map(packIdFromName));
  await source.refresh();
  const pruned = new Set([...source.scheduledDeletions().values()].flatMap((d) => d.packs));
  const vanished = known.packs.filter((id) => !sourcePacks.has(id));
  const gonePacks = vanished.filter((id) => pruned.has(id));
  result.packsKeptLost = vanished.length - gonePacks.length;
  if (!goneSnapshots.length && !gonePacks.length) return;
  // A source that lists nothing is more likely broken or emptied by mistake than pruned: the copy keeps everything.
  if (!snapshots.size || (await liveLocks(target, source.sealer, ownLock)).size) {
    result.removalsDeferred = true;
    return;
  }
  for (const name of goneSnapshots) {
    checkAborted();
    await target.remove(name);
    result.snapshotsRemoved++;
  }
  known.snapshots = known.snapshots.filter((name) => snapshots.has(name));
  for (const id of gonePacks) {
    checkAborted();
    await target.remove(packObjectName(id));
    await target.remove(parityObjectName(id));
    result.packsRemoved++;
  }
  const gone = new Set(gonePacks);
  known.packs = known.packs.filter((id) => !gone.has(id));
  known.parity = known.parity.filter((id) => !gone.has(id));
}
