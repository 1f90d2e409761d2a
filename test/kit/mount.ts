/** Runs the real `strata mount` in a temp folder and always unmounts it. */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { strataAsync } from './cli.js';
import { tempDir } from './tmp.js';

export const isMounted = (mountpoint: string): boolean =>
  readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mountpoint);

export async function mountRepository(t: Parameters<typeof tempDir>[0], env: Record<string, string>, args: string[] = []) {
  const parent = tempDir(t, 'strata-mnt-');
  chmodSync(parent, 0o755); // other users (Samba's) must reach the mount point
  const mountpoint = path.join(parent, 'mnt');
  mkdirSync(mountpoint);
  const run = strataAsync(['mount', mountpoint, ...args], env);
  t.teardown(async () => {
    run.child.kill('SIGTERM');
    await Promise.race([run.done, new Promise((r) => setTimeout(r, 5000))]);
    if (isMounted(mountpoint)) spawnSync('umount', ['-l', mountpoint]);
    run.child.kill('SIGKILL');
  });
  const deadline = Date.now() + 20_000;
  while (!isMounted(mountpoint)) {
    if (run.child.exitCode !== null || Date.now() > deadline) throw new Error(`mount did not come up: ${run.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { mountpoint, run };
}
