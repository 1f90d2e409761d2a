/**
 * Gets a mount point ready: it must be an empty folder with nothing mounted on it,
 * except a mount left behind by a mount process that died, which is recovered.
 *
 * A dead mount is told by a lookup of a name that cannot be cached: the kernel
 * answers ENOTCONN once the connection is gone, though for a while it still answers
 * a stat of the mount point itself from its attribute cache. Such a mount has a
 * helper still running: libfuse's auto_unmount keeps `fusermount3 … -- <mountpoint>`
 * alive to unmount it once the process is gone. The helper only checks that some
 * FUSE mount sits at that path, so a helper that runs late would unmount the next
 * mount on the same folder (a restart by systemd, or a user who tries again at
 * once): it is let finish, or ended, before what it left is detached.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { errors } from '../store/errors.js';

/** How long the helper gets to unmount on its own (it normally takes milliseconds). */
const HELPER_WAIT_MS = 2000;
/** How long a mount at the mount point gets to answer the probe before it counts as hung. */
const PROBE_WAIT_MS = 2000;
const POLL_MS = 20;

export async function prepareMountpoint(mountpoint: string): Promise<void> {
  let unreachable = false;
  try {
    const st = await fs.stat(mountpoint);
    if (!st.isDirectory()) throw errors.usage(`${mountpoint} is not a folder`);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw errors.usage(`the mount point ${mountpoint} does not exist: create it first (mkdir -p ${mountpoint})`);
    if (code !== 'ENOTCONN') throw e;
    unreachable = true;
  }
  if (unreachable || await isMounted(mountpoint)) {
    const answer = unreachable ? 'dead' : await probe(mountpoint);
    if (answer === 'hung') throw errors.usage(`${mountpoint} is busy: a mount there does not answer (is its process stopped? \`umount -l ${mountpoint}\` detaches it)`);
    if (answer === 'alive') throw errors.usage(`${mountpoint} is busy: something is already mounted there (unmount it first)`);
    await recoverDeadMount(mountpoint);
  }
  if ((await fs.readdir(mountpoint)).length > 0) throw errors.usage(`${mountpoint} is not empty: mount on an empty folder`);
}

/** Whether the kernel's mount table has the mount point (by its real path, as the table holds it, escaped as it escapes). */
async function isMounted(mountpoint: string): Promise<boolean> {
  const real = path.join(await fs.realpath(path.dirname(mountpoint)).catch(() => path.dirname(mountpoint)), path.basename(mountpoint));
  const escaped = real.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  const mounts = await fs.readFile('/proc/self/mounts', 'utf8').catch(() => '');
  return mounts.split('\n').some((line) => line.split(' ')[1] === escaped);
}

/** Asks whatever is mounted there about a name nobody has looked up before. */
async function probe(mountpoint: string): Promise<'alive' | 'dead' | 'hung'> {
  const lookup = fs.stat(path.join(mountpoint, `.strata-probe-${randomBytes(8).toString('hex')}`)).then(
    () => 'alive' as const,
    (e: NodeJS.ErrnoException) => (e.code === 'ENOTCONN' ? 'dead' as const : 'alive' as const),
  );
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'hung'>((resolve) => { timer = setTimeout(() => resolve('hung'), PROBE_WAIT_MS); });
  try {
    return await Promise.race([lookup, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The pids of auto-unmount helpers (`fusermount3 … -- mountpoint`) watching this mount point. */
async function unmountHelpers(mountpoint: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await fs.readdir('/proc').catch(() => [])) {
    if (!/^\d+$/.test(name)) continue;
    const argv = (await fs.readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (argv.at(-1) === '') argv.pop();
    if (!path.basename(argv[0] ?? '').startsWith('fusermount')) continue;
    if (argv.at(-2) === '--' && argv.at(-1) === mountpoint) pids.push(Number(name));
  }
  return pids;
}

/** Whether the helper still runs: a zombie has done its work (and in a container without an init, may never be reaped). */
async function stillRuns(pid: number): Promise<boolean> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== '' && state !== 'Z' && state !== 'X';
}

async function running(pids: number[]): Promise<number[]> {
  const runs = await Promise.all(pids.map(stillRuns));
  return pids.filter((_, i) => runs[i]);
}

async function recoverDeadMount(mountpoint: string): Promise<void> {
  let helpers = await running(await unmountHelpers(mountpoint));
  const deadline = Date.now() + HELPER_WAIT_MS;
  while (helpers.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    helpers = await running(helpers);
  }
  for (const pid of helpers) {
    try {
      process.kill(pid, 'SIGKILL'); // late: its only job left is the unmount done next, and it would undo the new mount
    } catch { /* gone meanwhile */ }
  }
  if (!(await isMounted(mountpoint))) return; // the helper unmounted it
  try {
    execFileSync('umount', ['-l', mountpoint], { stdio: 'ignore' });
  } catch {
    throw errors.usage(`${mountpoint} is left over from a mount that crashed: run \`fusermount3 -u ${mountpoint}\` (or \`umount -l ${mountpoint}\` as root)`);
  }
}
