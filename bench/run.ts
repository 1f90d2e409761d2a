/**
 * `npm run bench`: Strata beside restic and Borg on the same corpus, in one run.
 *
 * For each tool: first backup, no-change backup, backup after a 2% mutation,
 * full restore; wall time, MB/s, CPU seconds, peak RSS, repository size, and
 * Strata's ratio to each peer. Page caches are dropped before every step where
 * the machine allows it. Options: --dir DIR (default /var/tmp/strata-bench),
 * --tools strata,restic,borg (or none), --index-10m (also measure a backup
 * against a synthetic index of 10 million chunks), --serve (continuous capture
 * on a share of 200,000 files, bench/serve.ts), --json.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, promises as fs, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCorpus, mutateCorpus } from './corpus.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const benchDir = option('--dir', '/var/tmp/strata-bench');
const tools = option('--tools', 'strata,restic,borg').split(',');
const PASSWORD = 'bench-password';

interface Measure { step: string; tool: string; seconds: number; cpu: number; rssMiB: number; mbps: number; repoBytes: number }

function ensurePackages(): void {
  const checks = [['command -v restic', 'restic'], ['command -v borg', 'borgbackup'], ['command -v /usr/bin/time', 'time'], ['/usr/bin/python3 -c "import llfuse"', 'python3-llfuse']];
  const need = checks.filter(([check]) => spawnSync('sh', ['-c', check], { stdio: 'ignore' }).status !== 0);
  if (need.length) {
    console.error(`bench: installing ${need.map(([, p]) => p).join(' ')}`);
    execFileSync('sh', ['-c', `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${need.map(([, p]) => p).join(' ')} >/dev/null`], { stdio: 'inherit' });
  }
}

function dropCaches(): boolean {
  try {
    execFileSync('sync');
    writeFileSync('/proc/sys/vm/drop_caches', '3');
    return true;
  } catch {
    return false;
  }
}

function du(dir: string): number {
  return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
}

/** Runs a command under GNU time; returns wall seconds, CPU seconds and peak RSS. */
function timed(cmd: string[], env: Record<string, string>): { seconds: number; cpu: number; rssMiB: number } {
  const out = path.join(benchDir, 'time.out');
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', '-o', out, ...cmd], { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0 && r.status !== 3) {
    throw new Error(`${cmd.join(' ')} failed (${r.status}):\n${r.stderr.slice(-2000)}`);
  }
  const [e, u, s, m] = readFileSync(out, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
  return { seconds: e, cpu: u + s, rssMiB: m / 1024 };
}

interface Tool {
  name: string;
  env: Record<string, string>;
  repo: string;
  init(): string[];
  backup(source: string): string[];
  restore(target: string): string[];
  /** Mounts the repository in the foreground (the newest snapshot/archive for Borg). */
  mount(mountpoint: string): string[];
  /** Where the share's root of the newest snapshot is inside the mount. */
  latest(mountpoint: string, share: string): string;
}

function makeTools(): Tool[] {
  const strataBin = [process.execPath, path.join(root, 'bin/strata.js')];
  const all: Tool[] = [
    {
      name: 'strata', repo: path.join(benchDir, 'repo-strata'),
      env: { STRATA_REPOSITORY: path.join(benchDir, 'repo-strata'), STRATA_PASSWORD: PASSWORD, STRATA_CACHE_DIR: path.join(benchDir, 'cache-strata') },
      init: () => [...strataBin, 'init', '-q'],
      backup: (s) => [...strataBin, 'backup', '-q', s],
      restore: (t) => [...strataBin, 'restore', '-q', 'latest', '--target', t],
      mount: (m) => [...strataBin, 'mount', '-q', m],
      latest: (m, share) => path.join(m, 'snapshots/latest', share),
    },
    {
      name: 'restic', repo: path.join(benchDir, 'repo-restic'),
      env: { RESTIC_REPOSITORY: path.join(benchDir, 'repo-restic'), RESTIC_PASSWORD: PASSWORD, RESTIC_CACHE_DIR: path.join(benchDir, 'cache-restic') },
      init: () => ['restic', 'init', '-q'],
      backup: (s) => ['restic', 'backup', '-q', s],
      restore: (t) => ['restic', 'restore', '-q', 'latest', '--target', t],
      mount: (m) => ['restic', 'mount', '-q', m],
      latest: (m, share) => path.join(m, 'snapshots/latest', share),
    },
    {
      name: 'borg', repo: path.join(benchDir, 'repo-borg'),
      env: { BORG_REPO: path.join(benchDir, 'repo-borg'), BORG_PASSPHRASE: PASSWORD, BORG_BASE_DIR: path.join(benchDir, 'borg-base'), BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' },
      init: () => ['borg', 'init', '-e', 'repokey'],
      backup: (s) => ['borg', 'create', '--compression', 'lz4', `::b-{now:%Y%m%d%H%M%S%f}`, s],
      // borg extracts into the current directory: wrapped in sh -c with cd.
      restore: (t) => ['sh', '-c', `mkdir -p '${t}' && cd '${t}' && borg extract "::$(borg list --last 1 --format '{archive}')"`],
      mount: (m) => ['sh', '-c', `exec borg mount -f "::$(borg list --last 1 --format '{archive}')" '${m}'`],
      latest: (m, share) => path.join(m, share),
    },
  ];
  return all.filter((t) => tools.includes(t.name));
}

async function main(): Promise<void> {
  ensurePackages();
  execFileSync(process.execPath, [path.join(root, 'scripts/build.mjs')], { stdio: 'inherit' });
  await fs.mkdir(benchDir, { recursive: true });
  const base = path.join(benchDir, 'corpus');
  console.error('bench: building the corpus (cached between runs)');
  const corpusBytes = await buildCorpus(base);
  const files = Number(execFileSync('sh', ['-c', `find '${base}' -type f | wc -l`], { encoding: 'utf8' }).trim());
  const share = path.join(benchDir, 'share');
  const results: Measure[] = [];
  const mounts: ({ tool: string } & MountMeasure)[] = [];
  const caches = dropCaches();
  for (const tool of makeTools()) {
    console.error(`bench: ${tool.name}`);
    for (const d of [tool.repo, tool.env.STRATA_CACHE_DIR, tool.env.RESTIC_CACHE_DIR, tool.env.BORG_BASE_DIR, share].filter(Boolean)) {
      await fs.rm(d, { recursive: true, force: true });
    }
    if (tool.env.BORG_BASE_DIR) await fs.mkdir(tool.env.BORG_BASE_DIR, { recursive: true });
    execFileSync('cp', ['-a', base, share]);
    execFileSync(tool.init()[0], tool.init().slice(1), { env: { ...process.env, ...tool.env }, stdio: 'ignore' });
    const step = (name: string, cmd: string[], bytes: number) => {
      dropCaches();
      const m = timed(cmd, tool.env);
      const repoBytes = du(tool.repo);
      results.push({ step: name, tool: tool.name, ...m, mbps: bytes / 1e6 / m.seconds, repoBytes });
      console.error(`  ${name}: ${m.seconds.toFixed(2)} s, ${(bytes / 1e6 / m.seconds).toFixed(0)} MB/s, cpu ${m.cpu.toFixed(2)} s, rss ${m.rssMiB.toFixed(0)} MiB`);
    };
    step('first backup', tool.backup(share), corpusBytes);
    step('no-change backup', tool.backup(share), corpusBytes);
    await mutateCorpus(share, 1);
    step('backup after 2% change', tool.backup(share), corpusBytes);
    const target = path.join(benchDir, 'restore');
    await fs.rm(target, { recursive: true, force: true });
    step('full restore', tool.restore(target), corpusBytes);
    await fs.rm(target, { recursive: true, force: true });
    mounts.push({ tool: tool.name, ...(await mountBench(tool, share, corpusBytes)) });
  }
  const extra = args.includes('--index-10m') ? await indexBench() : undefined;
  const serve = args.includes('--serve') ? await (await import('./serve.js')).serveBench(benchDir, root) : undefined;
  report(results, mounts, { corpusBytes, files, caches, extra, serve });
}

async function indexBench(): Promise<{ rssMiB: number; seconds: number; chunks: number }> {
  const { synthIndex } = await import('./synthetic-index.js');
  return synthIndex(benchDir, path.join(benchDir, 'corpus/office'));
}

interface MountMeasure { mountSeconds: number; lsSeconds: number; tarSeconds: number; tarMBps: number; firstByteSeconds: number; rssMiB: number }

const isMounted = (m: string): boolean => readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === m);

/** Mount time, `ls -lR` and `tar` of the newest snapshot on a fresh mount, first byte of a file, peak RSS of the mount process. */
async function mountBench(tool: Tool, share: string, corpusBytes: number): Promise<MountMeasure> {
  const mnt = path.join(benchDir, `mnt-${tool.name}`);
  await fs.mkdir(mnt, { recursive: true });
  const timedShell = (cmd: string): number => {
    const start = performance.now();
    execFileSync('sh', ['-c', cmd], { stdio: 'ignore', maxBuffer: 1 << 30 });
    return (performance.now() - start) / 1000;
  };
  const up = async () => {
    dropCaches();
    const start = performance.now();
    const [cmd, ...rest] = tool.mount(mnt);
    const child = spawn(cmd, rest, { env: { ...process.env, ...tool.env }, stdio: 'ignore' });
    while (!isMounted(mnt)) {
      if (child.exitCode !== null || performance.now() - start > 60_000) throw new Error(`${tool.name} mount did not come up`);
      await new Promise((r) => setTimeout(r, 10));
    }
    // The newest snapshot must be reachable, not just the mount.
    while (!existsSync(tool.latest(mnt, share))) await new Promise((r) => setTimeout(r, 10));
    return { child, seconds: (performance.now() - start) / 1000 };
  };
  const down = async (child: ReturnType<typeof spawn>) => {
    const rss = peakRss(child.pid!);
    child.kill('SIGINT');
    const deadline = Date.now() + 10_000;
    while (isMounted(mnt) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (isMounted(mnt)) spawnSync('umount', ['-l', mnt]);
    child.kill('SIGKILL');
    return rss;
  };
  let m = await up();
  const latest = tool.latest(mnt, share);
  const lsSeconds = timedShell(`ls -lR '${latest}' > /dev/null`);
  const firstByteSeconds = timedShell(`head -c1 '${latest}/archives/2024.tar' > /dev/null`);
  const rss1 = await down(m.child);
  m = await up();
  const tarSeconds = timedShell(`tar -cf - -C '${latest}' . | cat > /dev/null`);
  const rss2 = await down(m.child);
  return { mountSeconds: m.seconds, lsSeconds, tarSeconds, tarMBps: corpusBytes / 1e6 / tarSeconds, firstByteSeconds, rssMiB: Math.max(rss1, rss2) };
}

/** Peak RSS (MiB) of a process and its children (borg mount runs under sh -c exec, so the pid is borg's). */
function peakRss(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

function report(results: Measure[], mounts: ({ tool: string } & MountMeasure)[], info: {
  corpusBytes: number; files: number; caches: boolean; extra?: { rssMiB: number; seconds: number; chunks: number };
  serve?: import('./serve.js').ServeMeasure;
}): void {
  if (args.includes('--json')) {
    console.log(JSON.stringify({ ...info, results }, null, 2));
    return;
  }
  const steps = [...new Set(results.map((r) => r.step))];
  const names = [...new Set(results.map((r) => r.tool))];
  const lines = [
    `Corpus: ${(info.corpusBytes / 2 ** 30).toFixed(2)} GiB in ${info.files} files; page caches ${info.caches ? 'dropped before each step' : 'NOT dropped (not permitted here)'}.`,
    '',
    '| step | tool | wall s | MB/s | CPU s | peak RSS MiB | repo MiB | strata ÷ tool (time) |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const step of steps) {
    const ours = results.find((r) => r.step === step && r.tool === 'strata');
    for (const name of names) {
      const r = results.find((x) => x.step === step && x.tool === name);
      if (!r) continue;
      const ratio = ours && name !== 'strata' ? (ours.seconds / r.seconds).toFixed(2) : '';
      lines.push(`| ${step} | ${name} | ${r.seconds.toFixed(2)} | ${r.mbps.toFixed(0)} | ${r.cpu.toFixed(2)} | ${r.rssMiB.toFixed(0)} | ${(r.repoBytes / 2 ** 20).toFixed(0)} | ${ratio} |`);
    }
  }
  if (mounts.length) {
    lines.push('', '| mount | tool | mount s | ls -lR s | tar s | tar MB/s | first byte s | mount RSS MiB | strata ÷ tool (ls, tar time) |', '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    const ours = mounts.find((m) => m.tool === 'strata');
    for (const m of mounts) {
      const ratio = ours && m.tool !== 'strata' ? `${(ours.lsSeconds / m.lsSeconds).toFixed(2)}, ${(ours.tarSeconds / m.tarSeconds).toFixed(2)}` : '';
      lines.push(`| newest snapshot | ${m.tool} | ${m.mountSeconds.toFixed(2)} | ${m.lsSeconds.toFixed(2)} | ${m.tarSeconds.toFixed(2)} | ${m.tarMBps.toFixed(0)} | ${m.firstByteSeconds.toFixed(3)} | ${m.rssMiB.toFixed(0)} | ${ratio} |`);
    }
  }
  if (info.extra) {
    lines.push('', `Backup of the office/ tree against a synthetic index of ${info.extra.chunks.toLocaleString('en')} chunks: ${info.extra.seconds.toFixed(2)} s, peak RSS ${info.extra.rssMiB.toFixed(0)} MiB.`);
  }
  if (info.serve) {
    const s = info.serve;
    lines.push('', `Continuous capture, ${s.files.toLocaleString('en')} files, 10 files touched:`, '',
      '| | strata serve | restic backup | borg create |', '| --- | ---: | ---: | ---: |',
      `| change → browsable version (s) | ${s.changeToVersion.toFixed(2)} | | |`,
      `| capture of the change: wall s / CPU s | ${s.captureWall.toFixed(2)} / ${s.captureCpu.toFixed(2)} | ${s.restic.toFixed(2)} | ${s.borg.toFixed(2)} |`,
      `| service CPU from touch to browsable (incl. the mount answering the poll) | ${s.processCpu.toFixed(2)} | | |`);
  }
  console.log(lines.join('\n'));
}

await main();
