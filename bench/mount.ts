/**
 * The mounts of Strata, restic and Borg side by side: time to mount, `ls -lR` of the
 * newest snapshot on a fresh mount with caches dropped and again warm, first byte of a
 * file, `tar` of the snapshot (fresh mount, caches dropped), large files read with the
 * repository in the page cache, peak RSS of the mount process; and the raw disk's own
 * `ls -lR` of the share (cold and warm) to compare with. For Strata alone: the FUSE
 * calls that reached JS, and `smbclient -c 'recurse; ls'` of the snapshot through
 * Samba beside the same listing of the share itself.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { hasSamba, startSamba } from '../test/kit/samba.js';

export interface MountTool {
  name: string;
  env: Record<string, string>;
  repo: string;
  /** Mounts the repository in the foreground (the newest snapshot/archive for Borg). */
  mount(mountpoint: string, extra?: string[]): string[];
  /** Where the share's root of the newest snapshot is inside the mount. */
  latest(mountpoint: string, share: string): string;
}

export interface MountMeasure {
  mountSeconds: number;
  lsCold: number;
  lsWarm: number;
  firstByte: number;
  tarSeconds: number;
  tarMBps: number;
  largeMBps: number;
  rssMiB: number;
  /** Strata only: FUSE calls that reached JS in the cold and the warm listing. */
  jsCalls?: [number, number];
}

/** Files of the corpus read as "large files" (470 MB). */
export const LARGE_FILES = ['vm/disk.img', 'archives/2024.tar', 'archives/db-dump.sql'];

const isMounted = (m: string): boolean => readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === m);

function timedShell(cmd: string): number {
  const start = performance.now();
  execFileSync('sh', ['-c', cmd], { stdio: 'ignore', maxBuffer: 1 << 30 });
  return (performance.now() - start) / 1000;
}

/** Peak RSS (MiB) of a process (borg mount runs under sh -c exec, so the pid is borg's). */
function peakRss(pid: number): number {
  try {
    return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** `ls -lR` of the share on the raw disk, caches dropped, then again. */
export function rawListing(share: string, dropCaches: () => boolean): { cold: number; warm: number } {
  dropCaches();
  const cold = timedShell(`ls -lR '${share}' > /dev/null`);
  return { cold, warm: timedShell(`ls -lR '${share}' > /dev/null`) };
}

interface Running { child: ReturnType<typeof spawn>; seconds: number; output: () => string }

async function up(tool: MountTool, mnt: string, share: string, extra: string[] = []): Promise<Running> {
  const start = performance.now();
  const [cmd, ...rest] = tool.mount(mnt, extra);
  const child = spawn(cmd, rest, { env: { ...process.env, ...tool.env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  while (!isMounted(mnt)) {
    if (child.exitCode !== null || performance.now() - start > 60_000) throw new Error(`${tool.name} mount did not come up: ${stderr}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  // The newest snapshot must be reachable, not just the mount.
  while (!existsSync(tool.latest(mnt, share))) await new Promise((r) => setTimeout(r, 10));
  return { child, seconds: (performance.now() - start) / 1000, output: () => stderr };
}

async function down(mnt: string, m: Running): Promise<number> {
  const rss = peakRss(m.child.pid!);
  m.child.kill('SIGINT');
  const deadline = Date.now() + 10_000;
  while (isMounted(mnt) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (isMounted(mnt)) spawnSync('umount', ['-l', mnt]);
  m.child.kill('SIGKILL');
  return rss;
}

/** Strata's counters (kill -USR2): calls that reached JS so far. */
async function jsCalls(m: Running): Promise<number> {
  const seen = m.output().split('fuse stats: ').length;
  m.child.kill('SIGUSR2');
  while (m.output().split('fuse stats: ').length === seen) await new Promise((r) => setTimeout(r, 10));
  const stats = JSON.parse(m.output().split('fuse stats: ').at(-1)!.split('\n')[0]) as { jsLoad: number; jsRead: number };
  return stats.jsLoad + stats.jsRead;
}

export async function mountBench(tool: MountTool, dir: string, share: string, corpusBytes: number, dropCaches: () => boolean): Promise<MountMeasure> {
  const mnt = path.join(dir, `mnt-${tool.name}`);
  await fs.mkdir(mnt, { recursive: true });
  const isStrata = tool.name === 'strata';
  dropCaches();
  let m = await up(tool, mnt, share);
  const latest = tool.latest(mnt, share);
  const before = isStrata ? await jsCalls(m) : 0;
  const lsCold = timedShell(`ls -lR '${latest}' > /dev/null`);
  const afterCold = isStrata ? await jsCalls(m) : 0;
  const lsWarm = timedShell(`ls -lR '${latest}' > /dev/null`);
  const afterWarm = isStrata ? await jsCalls(m) : 0;
  const firstByte = timedShell(`head -c1 '${latest}/archives/2024.tar' > /dev/null`);
  const rss = [await down(mnt, m)];
  const mountSeconds = m.seconds;

  dropCaches();
  m = await up(tool, mnt, share);
  const tarSeconds = timedShell(`tar -cf - -C '${latest}' . | cat > /dev/null`);
  rss.push(await down(mnt, m));

  // Large files with the repository in the page cache (what decryption and the mount cost, not the disk).
  timedShell(`find '${tool.repo}' -type f -exec cat {} + > /dev/null`);
  m = await up(tool, mnt, share);
  const large = LARGE_FILES.map((f) => path.join(latest, f));
  const largeBytes = large.reduce((n, f) => n + Number(execFileSync('stat', ['-c', '%s', f], { encoding: 'utf8' })), 0);
  const largeSeconds = timedShell(`cat ${large.map((f) => `'${f}'`).join(' ')} > /dev/null`);
  rss.push(await down(mnt, m));
  return {
    mountSeconds, lsCold, lsWarm, firstByte, tarSeconds, tarMBps: corpusBytes / 1e6 / tarSeconds, largeMBps: largeBytes / 1e6 / largeSeconds,
    rssMiB: Math.max(...rss), jsCalls: isStrata ? [afterCold - before, afterWarm - afterCold] : undefined,
  };
}

/** `smbclient -c 'recurse; ls'` of the share itself and of its newest snapshot in a Strata mount, both through smbd on loopback. */
export async function smbBench(tool: MountTool, dir: string, share: string, dropCaches: () => boolean): Promise<{ direct: number; mount: number } | undefined> {
  if (!hasSamba()) return undefined;
  const cleanups: (() => unknown)[] = [];
  const t = { teardown: (fn: () => unknown) => { cleanups.push(fn); } };
  const mnt = path.join(dir, 'mnt-smb');
  await fs.mkdir(mnt, { recursive: true });
  await fs.chmod(dir, 0o755);
  const m = await up(tool, mnt, share, ['--allow-other']);
  try {
    const lines = (p: string) => [`path = ${p}`, 'read only = yes', 'browseable = yes'];
    const samba = await startSamba(t, { direct: lines(share), snapshot: lines(tool.latest(mnt, share)) });
    const timed = (name: string): number => {
      dropCaches();
      const start = performance.now();
      const r = samba.client(name, 'recurse; ls');
      if (r.status !== 0) throw new Error(`smbclient ${name}: ${r.stderr}${r.stdout.slice(-500)}`);
      return (performance.now() - start) / 1000;
    };
    return { direct: timed('direct'), mount: timed('snapshot') };
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    await down(mnt, m);
  }
}

/**
 * A snapshot with ACLs and xattrs: `office/` of the corpus (20,000 files, 10,000 folders) with
 * a POSIX ACL on every tenth file and Samba's user.DOSATTRIB on every fifth, backed up into a
 * repository of its own; `ls -lR` of it on a fresh mount (caches dropped), and of the copy itself.
 */
export async function aclListing(tool: MountTool, strataBin: string[], dir: string, corpus: string, dropCaches: () => boolean): Promise<{ raw: number; mount: number }> {
  const share = path.join(dir, 'share-acl');
  await fs.rm(share, { recursive: true, force: true });
  execFileSync('cp', ['-a', path.join(corpus, 'office'), share]);
  execFileSync('sh', ['-c', `cd '${share}' && find . -type f -name 'doc-*0.txt' -print0 | xargs -0 setfacl -m u:1234:r && `
    + `find . -type f -name 'doc-*[05].txt' -print0 | xargs -0 -n 200 setfattr -n user.DOSATTRIB -v 0x20`]);
  const repo = path.join(dir, 'repo-acl');
  await fs.rm(repo, { recursive: true, force: true });
  const env = { ...tool.env, STRATA_REPOSITORY: repo, STRATA_CACHE_DIR: path.join(dir, 'cache-acl') };
  const acl: MountTool = { ...tool, env, repo };
  const strata = (args: string[]) => execFileSync(strataBin[0], [...strataBin.slice(1), ...args], { env: { ...process.env, ...env }, stdio: 'ignore' });
  strata(['init', '-q']);
  strata(['backup', '-q', share]);
  dropCaches();
  const raw = timedShell(`ls -lR '${share}' > /dev/null`);
  const mnt = path.join(dir, 'mnt-acl');
  await fs.mkdir(mnt, { recursive: true });
  dropCaches();
  const m = await up(acl, mnt, share);
  const mount = timedShell(`ls -lR '${acl.latest(mnt, share)}' > /dev/null`);
  await down(mnt, m);
  return { raw, mount };
}
