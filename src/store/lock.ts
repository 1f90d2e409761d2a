/**
 * Repository locks: `locks/<id>` records who writes or prunes now. Backups, forget,
 * restore, check, `repair snapshots` and prune take shared locks (many may run at
 * once; prune also refuses a second prune); `repair index` takes an exclusive one. Prune never needs backups to stop:
 * it waits for the locks that were held when it scheduled deletions (see prune.ts).
 * A lock is stale when its process is gone (one of this host, boot and pid namespace:
 * process.ts) or it has not been refreshed for STALE_MS (another host or container
 * that crashed); the next locker removes it.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Backend } from './backend/backend.js';
import { sealToBuffer, type Sealer } from './crypto.js';
import { errors, isStrataError } from './errors.js';
import { decodeLock, encodeLock, type LockRecord } from './format/records.js';
import { processSpace, writerGone } from './process.js';

const REFRESH_MS = 5 * 60 * 1000;
const STALE_MS = 30 * 60 * 1000;

export interface Lock {
  /** The lock's object name. */
  readonly name: string;
  release(): Promise<void>;
}

export function isStale(lock: LockRecord, now = Date.now()): boolean {
  return now - Date.parse(lock.time) > STALE_MS || writerGone(lock.space, lock.pid);
}

export async function* listLocks(backend: Backend, sealer: Sealer): AsyncIterable<{ name: string; lock: LockRecord }> {
  for await (const { name } of backend.list('locks/')) {
    try {
      const data = await backend.load(name);
      yield { name, lock: decodeLock(sealer.open(data, `lock ${name}`), `lock ${name}`) };
    } catch (e) {
      if (!isStrataError(e, 'NOT_FOUND')) throw e; // released meanwhile
    }
  }
}

const lockedBy = (name: string, lock: LockRecord): Error => errors.locked(
  `the repository is locked by "${lock.purpose}" (pid ${lock.pid} on ${lock.host}, since ${lock.since ?? lock.time}, ${name}); ` +
    'if that process is gone, the lock becomes stale after 30 minutes, or run `strata unlock`',
);

/** `alone`: also refuse while another lock of the same purpose is held (one prune at a time). */
export async function acquireLock(backend: Backend, sealer: Sealer, opts: { exclusive: boolean; purpose: string; alone?: boolean }): Promise<Lock> {
  const conflicts = (lock: LockRecord): boolean => lock.exclusive || opts.exclusive || (!!opts.alone && lock.purpose === opts.purpose);
  for await (const { name, lock } of listLocks(backend, sealer)) {
    // Stale locks count for nothing; the first locker after a crash clears them away.
    if (isStale(lock)) await backend.remove(name).catch(() => {});
    else if (conflicts(lock)) throw lockedBy(name, lock);
  }
  const name = `locks/${randomBytes(16).toString('hex')}`;
  const since = new Date().toISOString();
  const record = (): Buffer => sealToBuffer(sealer, encodeLock({
    host: os.hostname(), pid: process.pid, space: processSpace(), time: new Date().toISOString(), since, exclusive: opts.exclusive, purpose: opts.purpose,
  }));
  await backend.save(name, record());
  const timer = setInterval(() => { backend.save(name, record()).catch(() => {}); }, REFRESH_MS);
  timer.unref();
  const release = async (): Promise<void> => {
    clearInterval(timer);
    await backend.remove(name);
  };
  if (opts.alone) {
    // Two that started at once both got past the listing: the one with the greater name gives way (both see the same pair).
    for await (const other of listLocks(backend, sealer)) {
      if (other.name < name && !isStale(other.lock) && conflicts(other.lock)) {
        await release();
        throw lockedBy(other.name, other.lock);
      }
    }
  }
  return { name, release };
}

/** Names of the locks held now by live processes, other than `except`. */
export async function liveLocks(backend: Backend, sealer: Sealer, except?: string): Promise<Set<string>> {
  const live = new Set<string>();
  for await (const { name, lock } of listLocks(backend, sealer)) if (name !== except && !isStale(lock)) live.add(name);
  return live;
}

/** Removes stale locks (all locks with `all`); returns how many. */
export async function removeLocks(backend: Backend, sealer: Sealer, all: boolean): Promise<number> {
  let removed = 0;
  for await (const { name, lock } of listLocks(backend, sealer)) {
    if (all || isStale(lock)) {
      await backend.remove(name);
      removed++;
    }
  }
  return removed;
}
