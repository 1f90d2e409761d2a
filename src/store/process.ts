/**
 * Whether the process that left a lock, a temporary file or a private index copy is
 * gone. A pid says so only within its own pid namespace and boot, so each of those
 * names its writer's "space" too: two containers with the same hostname, or a host
 * before and after a reboot, never take each other's live processes for dead ones
 * (their leftovers then wait for the time-based rules instead).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import os from 'node:os';

let space: string | undefined;

/** 12 hex digits naming this host, boot and pid namespace. */
export function processSpace(): string {
  if (space === undefined) {
    // Unknown (no /proc): a value of this process alone, so that no other process is ever taken for gone.
    const read = (f: () => string): string => { try { return f(); } catch { return randomBytes(16).toString('hex'); } };
    const boot = read(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    const pidNamespace = read(() => readlinkSync('/proc/self/ns/pid'));
    space = createHash('sha256').update(`${os.hostname()}\0${boot}\0${pidNamespace}`).digest('hex').slice(0, 12);
  }
  return space;
}

/** Whether a process of this host still runs. */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Whether the writer (`pid` in `writerSpace`) is known to be gone: only a process of this space can be told so. */
export const writerGone = (writerSpace: string | undefined, pid: number): boolean =>
  writerSpace === processSpace() && pid !== process.pid && !processRuns(pid);
