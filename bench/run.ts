/**
 * `npm run bench`: Strata beside restic and Borg on the same corpus, in one run.
 *
 * For each tool: first backup, no-change backup, backup after a 2% mutation,
 * backup after moving a 120 MB folder, full restore, forgetting two of the four snapshots
 * and pruning, check reading every byte; wall time, MB/s, CPU seconds, peak RSS, repository size, and
 * Strata's ratio to each peer. Page caches are dropped before every step where
 * the machine allows it. Options: --dir DIR (default /var/tmp/strata-bench),
 * --tools strata,strata-zstd,strata-noparity,restic,borg (or none; strata-zstd is a repository made
 * with --compression zstd, strata-noparity one made with --parity 0, what parity costs: backup and restore
 * steps only), --index-10m (also measure a backup
 * against a synthetic index of 10 million chunks), --serve (continuous capture
 * on a share of 200,000 files, bench/serve.ts), --scale (capture's cost per
 * entry on a 50k and a 500k-entry tree, bench/scale.ts), --json.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fs, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCorpus, mutateCorpus } from './corpus.js';
import { scaleBench, scaleReport, type ScaleMeasure } from './scale.js';
import { aclListing, mountBench, rawListing, smbBench, type MountMeasure, type MountTool } from './mount.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const benchDir = option('--dir', '/var/tmp/strata-bench');
const tools = option('--tools', 'strata,strata-zstd,strata-noparity,restic,borg').split(',');
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

interface Tool extends MountTool {
  /** Only the backup and restore steps (a variant of another tool: its mount is the same code). */
  stepsOnly?: boolean;
  init(): string[];
  backup(source: string): string[];
  restore(target: string): string[];
  /** Forget all but the newest two snapshots, then free their space. */
  prune(): string[];
  /** Verify everything, every byte of data read. */
  check(): string[];
}

function makeTools(): Tool[] {
  // Run as users run it (npx strata, the systemd unit): the executable, with the Node flags of its first line.
  const strataBin = [path.join(root, 'bin/strata.js')];
  const strata = (name: string, initOptions: string[], stepsOnly?: boolean): Tool => ({
    name, repo: path.join(benchDir, `repo-${name}`),
    env: { STRATA_REPOSITORY: path.join(benchDir, `repo-${name}`), STRATA_PASSWORD: PASSWORD, STRATA_CACHE_DIR: path.join(benchDir, `cache-${name}`) },
    init: () => [...strataBin, 'init', '-q', ...initOptions],
    backup: (s) => [...strataBin, 'backup', '-q', s],
    restore: (t) => [...strataBin, 'restore', '-q', 'latest', '--target', t],
    prune: () => [...strataBin, 'forget', '-q', '--keep-last', '2', '--prune', '--grace', '0s'],
    check: () => [...strataBin, 'check', '-q', '--read-data'],
    mount: (m, extra = []) => [...strataBin, 'mount', '-q', ...extra, m],
    latest: (m, share) => path.join(m, 'snapshots/latest', share),
    ...(stepsOnly ? { stepsOnly } : {}),
  });
  const all: Tool[] = [
    strata('strata', []),
    // The same in a repository made with --compression zstd, and in one without parity (what parity costs): backup and restore steps only.
    strata('strata-zstd', ['--compression', 'zstd'], true),
    strata('strata-noparity', ['--parity', '0'], true),
    {
      name: 'restic', repo: path.join(benchDir, 'repo-restic'),
      env: { RESTIC_REPOSITORY: path.join(benchDir, 'repo-restic'), RESTIC_PASSWORD: PASSWORD, RESTIC_CACHE_DIR: path.join(benchDir, 'cache-restic') },
      init: () => ['restic', 'init', '-q'],
      backup: (s) => ['restic', 'backup', '-q', s],
      restore: (t) => ['restic', 'restore', '-q', 'latest', '--target', t],
      prune: () => ['restic', 'forget', '-q', '--keep-last', '2', '--prune'],
      check: () => ['restic', 'check', '-q', '--read-data'],
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
      // Borg frees space in a second command.
      prune: () => ['sh', '-c', 'borg prune --keep-last 2 && borg compact'],
      check: () => ['borg', 'check', '--verify-data'],
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
  await fs.rm(share, { recursive: true, force: true });
  execFileSync('cp', ['-a', base, share]);
  const raw = rawListing(share, dropCaches);
  let smb: { direct: number; mount: number } | undefined;
  let acl: { raw: number; mount: number } | undefined;
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
    // A folder of photos (about 120 MB) moved elsewhere in the share: nothing in it changed.
    await fs.rename(path.join(share, 'media/photos'), path.join(share, 'users/alice/photos'));
    step('backup after moving a folder', tool.backup(share), corpusBytes);
    const target = path.join(benchDir, 'restore');
    await fs.rm(target, { recursive: true, force: true });
    step('full restore', tool.restore(target), corpusBytes);
    await fs.rm(target, { recursive: true, force: true });
    step('forget 2 of 4 snapshots, prune', tool.prune(), corpusBytes);
    step('check, reading all data', tool.check(), du(tool.repo));
    if (tool.stepsOnly) continue;
    mounts.push({ tool: tool.name, ...(await mountBench(tool, benchDir, share, corpusBytes, dropCaches)) });
    if (tool.name === 'strata') {
      smb = await smbBench(tool, benchDir, share, dropCaches);
      acl = await aclListing(tool, [path.join(root, 'bin/strata.js')], benchDir, base, dropCaches);
    }
  }
  const extra = args.includes('--index-10m') ? await indexBench() : undefined;
  const serve = args.includes('--serve') ? await (await import('./serve.js')).serveBench(benchDir, root) : undefined;
  const scale = args.includes('--scale') ? await scaleBench(benchDir, [path.join(root, 'bin/strata.js')], timed, dropCaches) : undefined;
  report(results, mounts, { corpusBytes, files, caches, extra, serve, raw, smb, acl, scale });
}

async function indexBench(): Promise<{ rssMiB: number; seconds: number; chunks: number }> {
  const { synthIndex } = await import('./synthetic-index.js');
  return synthIndex(benchDir, path.join(benchDir, 'corpus/office'));
}

function report(results: Measure[], mounts: ({ tool: string } & MountMeasure)[], info: {
  corpusBytes: number; files: number; caches: boolean; extra?: { rssMiB: number; seconds: number; chunks: number };
  serve?: import('./serve.js').ServeMeasure; raw: { cold: number; warm: number }; smb?: { direct: number; mount: number };
  acl?: { raw: number; mount: number }; scale?: ScaleMeasure[];
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
    lines.push('', `The share on the raw disk: \`ls -lR\` ${info.raw.cold.toFixed(2)} s cold, ${info.raw.warm.toFixed(2)} s warm.`, '',
      '| mount of the newest snapshot | mount s | ls -lR cold s | ls -lR warm s | first byte s | tar s | tar MB/s | large files MB/s (repository cached) | peak RSS MiB | strata ÷ tool (ls cold, tar time) |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    const ours = mounts.find((m) => m.tool === 'strata');
    for (const m of mounts) {
      const ratio = ours && m.tool !== 'strata' ? `${(ours.lsCold / m.lsCold).toFixed(2)}, ${(ours.tarSeconds / m.tarSeconds).toFixed(2)}` : '';
      lines.push(`| ${m.tool} | ${m.mountSeconds.toFixed(2)} | ${m.lsCold.toFixed(2)} | ${m.lsWarm.toFixed(3)} | ${m.firstByte.toFixed(3)} | ${m.tarSeconds.toFixed(2)} | ${m.tarMBps.toFixed(0)} | ${m.largeMBps.toFixed(0)} | ${m.rssMiB.toFixed(0)} | ${ratio} |`);
    }
    if (ours?.jsCalls) lines.push('', `Strata: FUSE calls that reached JS: ${ours.jsCalls[0]} in the cold listing, ${ours.jsCalls[1]} in the warm one.`);
    if (info.acl) {
      lines.push(`A snapshot with ACLs and xattrs (office/: a POSIX ACL on every tenth file, user.DOSATTRIB on every fifth): \`ls -lR\` on a fresh mount ${info.acl.mount.toFixed(2)} s, of the copy on the raw disk ${info.acl.raw.toFixed(2)} s (both cold).`);
    }
    if (info.smb) {
      lines.push(`\`smbclient -c 'recurse; ls'\` through smbd: the share itself ${info.smb.direct.toFixed(2)} s, its newest snapshot in the Strata mount ${info.smb.mount.toFixed(2)} s (${(info.smb.mount / info.smb.direct).toFixed(2)}×).`);
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
      `| service CPU from touch to browsable (incl. the mount answering the poll) | ${s.processCpu.toFixed(2)} | | |`,
      `| change → browsable version while a prune repacks beside it (s) | ${s.duringPrune.changeToVersion.toFixed(2)}` +
        ` (prune ${s.duringPrune.pruneRunning ? 'still running' : 'had ended'}; it took ${s.duringPrune.pruneSeconds.toFixed(1)} s) | | |`);
  }
  if (info.scale) lines.push(...scaleReport(info.scale));
  console.log(lines.join('\n'));
}

await main();
