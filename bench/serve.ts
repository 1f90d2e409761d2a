/**
 * Continuous capture on a share of 200,000 files: the time from touching 10
 * files to the snapshot being browsable in the mount, and the CPU time that
 * snapshot cost, beside a restic and a Borg backup run of the same share after
 * the same kind of change; then the same while a prune repacks the repository
 * beside the service (the recovery point during a prune).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { Random } from '../test/kit/random.js';
import { text } from './corpus.js';

const FILES = 200_000;
const PER_DIR = 100;

async function buildShare(dir: string): Promise<void> {
  const marker = path.join(dir, '.strata-bench-200k');
  if (existsSync(marker)) return;
  await fs.rm(dir, { recursive: true, force: true });
  const rnd = new Random(200);
  for (let d = 0; d < FILES / PER_DIR; d++) {
    const folder = path.join(dir, `team-${d % 20}`, `project-${Math.floor(d / 20)}`);
    await fs.mkdir(folder, { recursive: true });
    await Promise.all(Array.from({ length: PER_DIR }, (_, i) => fs.writeFile(path.join(folder, `f${i}.txt`), text(rnd, 200 + rnd.int(1800)))));
  }
  await fs.writeFile(marker, 'done');
}

/** Ten files spread over the share, changed by appending a line. */
function touched(dir: string, round: number): string[] {
  return Array.from({ length: 10 }, (_, i) => path.join(dir, `team-${(i * 7 + round) % 20}`, `project-${(i * 13 + round) % 100}`, `f${(i * 31 + round) % PER_DIR}.txt`));
}

const touch = async (files: string[], tag: string) => { for (const f of files) await fs.appendFile(f, `${tag}\n`); };

const cpuTicks = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks
};

function timedRun(cmd: string[], env: NodeJS.ProcessEnv): number {
  const start = performance.now();
  const r = spawnSync(cmd[0], cmd.slice(1), { env, stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed`);
  return (performance.now() - start) / 1000;
}

export interface ServeMeasure {
  changeToVersion: number;
  /** CPU and wall seconds of the capture itself (from the service's status). */
  captureCpu: number;
  captureWall: number;
  /** CPU of the whole service from the touch until browsable, including the mount answering the poll. */
  processCpu: number;
  restic: number;
  borg: number;
  files: number;
  /** Change → browsable while `forget --prune --max-unused 0%` runs beside the service, and whether it was still running then. */
  duringPrune: { changeToVersion: number; pruneRunning: boolean; pruneSeconds: number };
}

export async function serveBench(benchDir: string, root: string): Promise<ServeMeasure> {
  const share = path.join(benchDir, 'share-200k');
  console.error('bench: building the 200k-file share (cached between runs)');
  await buildShare(share);
  const base = path.join(benchDir, 'serve');
  await fs.rm(base, { recursive: true, force: true });
  await fs.mkdir(base, { recursive: true });
  const env = { ...process.env, STRATA_PASSWORD: 'bench', STRATA_REPOSITORY: path.join(base, 'repo'), STRATA_CACHE_DIR: path.join(base, 'cache') };
  const mnt = path.join(base, 'mnt');
  const config = path.join(base, 'strata.json');
  await fs.writeFile(config, JSON.stringify({ repository: env.STRATA_REPOSITORY, cacheDir: env.STRATA_CACHE_DIR, sources: [{ path: share }], mount: mnt }));
  execFileSync(process.execPath, [path.join(root, 'bin/strata.js'), 'init', '-q'], { env });
  console.error('bench: strata serve, first capture of 200k files');
  const serve = spawn(process.execPath, [path.join(root, 'bin/strata.js'), 'serve', '--config', config], { env, stdio: 'ignore' });
  try {
    const latest = path.join(mnt, 'snapshots', 'latest', share);
    const wait = async (cond: () => boolean, ms: number) => {
      const deadline = Date.now() + ms;
      while (!cond()) {
        if (Date.now() > deadline) throw new Error('timed out');
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const files = touched(share, 1);
    await wait(() => existsSync(files[0].replace(share, latest)), 600_000);
    await new Promise((r) => setTimeout(r, 12_000)); // past the minimum interval, as a share that was quiet
    /** Touches the files and waits until the mount shows every change: seconds. */
    const changeToBrowsable = async (round: number): Promise<number> => {
      const start = performance.now();
      const line = `strata ${Date.now()}`; // unique: the share is reused between runs
      await touch(touched(share, round), line);
      await wait(() => touched(share, round).every((f) => { try { return readFileSync(f.replace(share, latest), 'utf8').endsWith(`${line}\n`); } catch { return false; } }), 60_000);
      return (performance.now() - start) / 1000;
    };
    const cpuBefore = cpuTicks(serve.pid!);
    const changeToVersion = await changeToBrowsable(1);
    const status = JSON.parse(readFileSync(path.join(env.STRATA_CACHE_DIR, 'serve-status.json'), 'utf8'));
    const processCpu = (cpuTicks(serve.pid!) - cpuBefore) / 100;
    const captureWall = status.sources[0].lastCapture?.seconds ?? NaN;
    const captureCpu = status.sources[0].lastCapture?.cpuSeconds ?? NaN;

    // The same while a prune repacks everything (the first snapshot forgotten, 0 % unused allowed) beside the service.
    await new Promise((r) => setTimeout(r, 12_000));
    const strataCmd = [process.execPath, path.join(root, 'bin/strata.js')];
    const [firstSnapshot] = JSON.parse(execFileSync(strataCmd[0], [...strataCmd.slice(1), 'snapshots', '--json'], { env, encoding: 'utf8' }));
    const pruneStart = performance.now();
    const prune = spawn(strataCmd[0], [...strataCmd.slice(1), 'forget', firstSnapshot.id, '--prune', '--max-unused', '0%', '--grace', '5s', '-q'], { env, stdio: 'ignore' });
    const pruned = new Promise<number>((resolve) => prune.once('exit', () => resolve((performance.now() - pruneStart) / 1000)));
    await new Promise((r) => setTimeout(r, 1000)); // under way: marking and repacking
    const duringPruneSeconds = await changeToBrowsable(3);
    const pruneRunning = prune.exitCode === null;
    const duringPrune = { changeToVersion: duringPruneSeconds, pruneRunning, pruneSeconds: await pruned };

    const resticEnv = { ...process.env, RESTIC_REPOSITORY: path.join(base, 'restic'), RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: path.join(base, 'restic-cache') };
    const borgEnv = { ...process.env, BORG_REPO: path.join(base, 'borg'), BORG_PASSPHRASE: 'bench', BORG_BASE_DIR: path.join(base, 'borg-base') };
    console.error('bench: restic and borg, first backups of 200k files');
    timedRun(['restic', 'init', '-q'], resticEnv);
    timedRun(['restic', 'backup', '-q', share], resticEnv);
    timedRun(['borg', 'init', '-e', 'repokey'], borgEnv);
    timedRun(['borg', 'create', '--compression', 'lz4', '::a', share], borgEnv);
    await touch(touched(share, 2), 'peers');
    const restic = timedRun(['restic', 'backup', '-q', share], resticEnv);
    const borg = timedRun(['borg', 'create', '--compression', 'lz4', '::b', share], borgEnv);
    return { changeToVersion, captureCpu, captureWall, processCpu, restic, borg, files: FILES, duringPrune };
  } finally {
    serve.kill('SIGTERM');
    await new Promise((r) => serve.once('exit', r));
    if (readFileSync('/proc/self/mounts', 'utf8').includes(mnt)) spawnSync('umount', ['-l', mnt]);
  }
}
