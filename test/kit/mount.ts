/** Runs the real `strata mount` in a temp folder and always unmounts it. */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { FuseStats } from '../../src/fs/fuse-binding.js';
import { strataAsync } from './cli.js';
import { tempDir } from './tmp.js';
import { until } from './wait.js';

export const isMounted = (mountpoint: string): boolean =>
  readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mountpoint);

/** The auto-unmount helpers (`fusermount3 … -- mountpoint`) that libfuse leaves watching a mount. */
export const unmountHelpers = (mountpoint: string): number[] =>
  spawnSync('pgrep', ['-f', `^fusermount3 .* -- ${mountpoint}$`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);

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
  // The kernel shows the mount a moment before the CLI holds it (and can answer SIGUSR2 with counters):
  // ready is the CLI's own "mounted … at" line.
  const ready = () => isMounted(mountpoint) && /^mounted .* at /m.test(run.output());
  if (!(await until(() => ready() || run.child.exitCode !== null)) || !ready()) {
    throw new Error(`mount did not come up: ${run.output()}`);
  }
  return {
    mountpoint, run,
    /** The mount's counters of FUSE calls and of those that reached JS (asked for with SIGUSR2). */
    async stats(): Promise<FuseStats> {
      const seen = run.output().split('fuse stats: ').length;
      run.child.kill('SIGUSR2');
      if (!(await until(() => run.output().split('fuse stats: ').length > seen && run.output().endsWith('\n')))) throw new Error('no stats');
      return JSON.parse(run.output().split('fuse stats: ').at(-1)!.split('\n')[0]) as FuseStats;
    },
  };
}
