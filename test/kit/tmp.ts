/** Temp dirs removed when the test ends. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function tempDir(t: { teardown(fn: () => void): void }, prefix = 'strata-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Whether this process may mount filesystems (root with CAP_SYS_ADMIN): tmpfs and FUSE tests need it. */
export function canMount(): boolean {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'strata-mount-probe-'));
  try {
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]).status !== 0) return false;
    spawnSync('umount', [dir]);
    return true;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
