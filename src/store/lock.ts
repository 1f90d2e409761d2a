/**
 * Repository locks: `locks/<id>` records who writes or prunes now. Backups take
 * shared locks (many may run at once); prune and repair take an exclusive one.
 * A lock is stale when its process is gone (same host) or it has not been
 * refreshed for STALE_MS (another host that crashed).
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Backend } from './backend/backend.js';
import { sealToBuffer, type Sealer } from './crypto.js';
import { errors, isStrataError } from './errors.js';
import { decodeLock, encodeLock, type LockRecord } from './format/records.js';

const REFRESH_MS = 5 * 60 * 1000;
const STALE_MS = 30 * 60 * 1000;

export interface Lock {
  release(): Promise<void>;
}

export function isStale(lock: LockRecord, now = Date.now(), host = os.hostname()): boolean {
  if (now - Date.parse(lock.time) > STALE_MS) return true;
  if (lock.host !== host) return false;
  try {
    process.kill(lock.pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
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

export async function acquireLock(backend: Backend, sealer: Sealer, opts: { exclusive: boolean; purpose: string }): Promise<Lock> {
  for await (const { name, lock } of listLocks(backend, sealer)) {
    if (isStale(lock)) continue;
    if (lock.exclusive || opts.exclusive) {
      throw errors.locked(
        `the repository is locked by "${lock.purpose}" (pid ${lock.pid} on ${lock.host}, since ${lock.time}, ${name}); ` +
          'if that process is gone, the lock becomes stale after 30 minutes, or run `strata unlock`',
      );
    }
  }
  const name = `locks/${randomBytes(16).toString('hex')}`;
  const record = (): Buffer =>
    sealToBuffer(sealer, encodeLock({ host: os.hostname(), pid: process.pid, time: new Date().toISOString(), ...opts }));
  await backend.save(name, record());
  const timer = setInterval(() => { backend.save(name, record()).catch(() => {}); }, REFRESH_MS);
  timer.unref();
  return {
    async release() {
      clearInterval(timer);
      await backend.remove(name);
    },
  };
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
