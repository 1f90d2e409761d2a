/**
 * The `strata` command line. Parses arguments (commander), opens what a
 * command needs, calls the library and prints the result; no logic a library
 * caller would need lives here.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import { errors, exitCodes } from '../store/errors.js';
import { DATA_SHARDS } from '../store/parity.js';
import { backendAt } from '../store/backend/at.js';
import { throttledUploads } from '../store/backend/throttle.js';
import { parseObjectLock } from '../store/backend/s3.js';
import { defaultCacheDir, Repository } from '../store/repository.js';
import { selectSnapshot } from '../store/select.js';
import { backup } from '../sync/backup.js';
import { prune, type PruneResult } from '../store/prune.js';
import { check, parseSubset } from '../sync/check.js';
import { forget } from '../sync/forget.js';
import { isEmptyPolicy, type GroupKey, type RetentionPolicy } from '../sync/retention.js';
import { estimateSize } from '../sync/estimate.js';
import { displayPath } from '../sync/local-fs.js';
import { repairSnapshots } from '../sync/repair.js';
import { replicaStateFile, replicate } from '../sync/replicate.js';
import { restore } from '../sync/restore.js';
import { COMPRESSIONS, type Compression } from '../store/format/records.js';
import { rootEntry, type Entry } from '../store/format/tree.js';
import { diffTrees, fileChunks, resolvePath, walkTree } from '../sync/tree-walk.js';
import { mountView, type Mounted } from '../fs/mount.js';
import { smbConfig } from '../fs/smb.js';
import { repositoryViewSource, SnapshotView } from '../fs/vtree.js';
import { backendFor, openRepository, password, run, untilStopped, type GlobalOptions } from './context.js';
import { checkLines, problemLines, repairLines, verifyLines } from './check.js';
import { replicaLines, replicateLines } from './replicate.js';
import { forgetLines, parseCount, parseGrace, parsePercent, pruneLines, retentionLines } from './forget.js';
import { count, formatBytes, type Output } from './output.js';

const program = new Command('strata')
  .description('NAS backup: deduplicated, compressed, encrypted snapshots you can browse as folders')
  .option('-r, --repo <dir>', 'repository location (or STRATA_REPOSITORY)')
  .option('--password-file <file>', 'read the password from a file (or STRATA_PASSWORD_FILE; STRATA_PASSWORD holds it directly)')
  .option('--cache-dir <dir>', 'where the local index lives (or STRATA_CACHE_DIR; default ~/.cache/strata)')
  .option('--json', 'print results as JSON (one object, or JSON lines for listings)')
  .option('-q, --quiet', 'print only results and errors')
  .addHelpText('after', `\nExit codes:\n${exitCodes.map((c) => `  ${String(c.code).padStart(3)}  ${c.meaning}`).join('\n')}`)
  .showHelpAfterError();

const globals = (cmd: Command): GlobalOptions => cmd.optsWithGlobals() as GlobalOptions;
const collect = (value: string, previous: string[]): string[] => [...previous, value];
const shortId = (id: string): string => id.slice(0, 8);

/** Stops a long command cleanly on SIGINT/SIGTERM; a second signal exits at once. */
function interruptible(): AbortSignal {
  const controller = new AbortController();
  const stop = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write(`\n${signal}: stopping after the current step (again to quit at once)\n`);
    controller.abort();
  };
  process.on('SIGINT', () => stop('SIGINT')).on('SIGTERM', () => stop('SIGTERM'));
  return controller.signal;
}

async function withRepository<T>(opts: GlobalOptions, out: Output, readOnly: boolean, body: (repo: Repository) => Promise<T>): Promise<T> {
  const repo = await openRepository(opts, out, readOnly);
  try {
    return await body(repo);
  } finally {
    await repo.close();
  }
}

/** "<snapshot>[:<path>]" → the snapshot and the entry at path. */
async function resolveTarget(repo: Repository, spec: string, out: Output) {
  const colon = spec.indexOf(':');
  const ref = colon < 0 ? spec : spec.slice(0, colon);
  const sub = colon < 0 ? '' : spec.slice(colon + 1);
  const snap = selectSnapshot(await repo.listSnapshots((m) => out.warn(m)), ref);
  const entry = sub ? await resolvePath(repo, snap.snapshot.tree, sub) : rootEntry(snap.snapshot.tree);
  return { snap, entry, isRoot: !sub || sub.split('/').every((p) => p === '' || p === '.') };
}

program.command('init')
  .description('create a repository')
  .option('--insecure-no-encryption', 'store data unencrypted (integrity is still checked); no password')
  .addOption(new Option('--compression <kind>', 'how chunks are compressed, for good: lz4 (fast) or zstd (smaller, more CPU)').choices([...COMPRESSIONS]).default('lz4'))
  .option('--parity <percent>', 'Reed–Solomon parity of every pack, in percent of its size (0: none); heals bit rot and cut-off packs', '6')
  .action(async (cmdOpts, cmd: Command) => run(globals(cmd), async (out) => {
    const opts = globals(cmd);
    const encrypted = !cmdOpts.insecureNoEncryption;
    const pw = encrypted ? await password(opts, true) : undefined;
    if (encrypted && !pw) throw errors.usage('give a password: STRATA_PASSWORD, STRATA_PASSWORD_FILE or --password-file');
    const backend = backendFor(opts);
    const compression = cmdOpts.compression as Compression;
    const parityPercent = Number(cmdOpts.parity);
    if (!/^\d+(\.\d+)?$/.test(cmdOpts.parity) || parityPercent > 100) throw errors.usage(`--parity takes a percentage from 0 to 100, not "${cmdOpts.parity}"`);
    const config = await Repository.init(backend, { password: pw, encrypted, compression, parityPercent });
    out.result({ id: config.id, location: backend.location, encrypted, compression, parityPercent: ((config.parity ?? 0) / DATA_SHARDS) * 100 }, () =>
      `created ${encrypted ? 'an encrypted' : 'an UNENCRYPTED'} repository ${config.id.slice(0, 8)} at ${backend.location}${compression === 'lz4' ? '' : ` (${compression})`}`);
  }));

program.command('backup')
  .description('back up paths as a new snapshot (incremental against the last one of this host and paths)')
  .argument('<paths...>', 'files or folders to back up')
  .option('--tag <tag>', 'tag the snapshot (repeatable)', collect, [])
  .option('--host <name>', 'host name recorded in the snapshot')
  .option('-e, --exclude <pattern>', 'skip matching paths (repeatable; glob, "*.tmp" or "/srv/share/cache/**")', collect, [])
  .option('--exclude-file <file>', 'read exclude patterns from a file, one a line', collect, [])
  .option('-x, --one-file-system', 'do not cross into other filesystems')
  .addHelpText('after', '\nExit code 3: the snapshot was saved, but some files could not be read (they are listed).')
  .action(async (paths: string[], cmdOpts, cmd: Command) => run(globals(cmd), async (out) => {
    const opts = globals(cmd);
    const excludes: string[] = [...cmdOpts.exclude];
    for (const file of cmdOpts.excludeFile as string[]) {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        throw errors.usage(`cannot read exclude file ${file}: ${(e as Error).message}`);
      }
      excludes.push(...text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')));
    }
    const signal = interruptible();
    return withRepository(opts, out, false, async (repo) => {
      const sources = paths.map((p) => path.resolve(p));
      const progress = out.progress('backup');
      let totalBytes: number | undefined;
      // A first backup has no parent to go by: count the sources beside it for an ETA.
      const counting = new AbortController();
      let made;
      try {
        made = await backup(repo, {
          purpose: 'backup', paths: sources, host: cmdOpts.host ?? os.hostname(), tags: cmdOpts.tag, excludes, oneFileSystem: !!cmdOpts.oneFileSystem, signal,
          onParent: (parent) => {
            if (parent) out.info(`using parent snapshot ${shortId(parent.id)}`);
            totalBytes = parent?.snapshot.summary.bytes;
            if (progress.visible && totalBytes === undefined) void estimateSize(sources, (bytes) => { totalBytes = bytes; }, counting.signal).catch(() => {});
          },
          onProgress: (p) => progress.update({ files: p.files, bytes: p.bytes, totalBytes, current: p.current }),
          onError: (p, m) => out.warn(`${p}: ${m}`),
          onWarning: (m) => out.warn(m),
        });
      } finally {
        counting.abort();
        progress.stop();
      }
      const result = made.snapshot;
      const s = result.snapshot.summary;
      out.result({ id: result.id, ...result.snapshot, tree: result.snapshot.tree.toString('hex') }, () => [
        `snapshot ${shortId(result.id)} saved`,
        `  ${s.files} files, ${s.dirs} folders, ${s.others} others, ${formatBytes(s.bytes)}`,
        `  ${count(s.filesRead, 'file')} read (${formatBytes(s.bytesRead)}), ${s.files - s.filesRead - (s.linked ?? 0)} unchanged${
          s.linked ? `, ${count(s.linked, 'more name')} of hard-linked files` : ''}`,
        `  ${s.blobsAdded} new blobs, ${formatBytes(s.bytesAdded)} added to the repository in ${s.seconds.toFixed(1)} s`,
        ...(s.errors.length ? [`  ${s.errors.length} files could not be read (see warnings above)`] : []),
      ]);
      return s.errors.length ? 3 : 0;
    });
  }));

program.command('snapshots')
  .description('list snapshots')
  .option('--host <name>', 'only snapshots of this host')
  .option('--tag <tag>', 'only snapshots with this tag (repeatable)', collect, [])
  .action(async (cmdOpts, cmd: Command) => run(globals(cmd), async (out) => withRepository(globals(cmd), out, true, async (repo) => {
    const list = (await repo.listSnapshots((m) => out.warn(m))).filter((r) =>
      (!cmdOpts.host || r.snapshot.host === cmdOpts.host) && (cmdOpts.tag as string[]).every((t) => r.snapshot.tags.includes(t)));
    out.result(list.map((r) => ({ id: r.id, ...r.snapshot, tree: r.snapshot.tree.toString('hex') })), () => [
      `${'ID'.padEnd(8)}  ${'Time'.padEnd(19)}  ${'Host'.padEnd(12)}  ${'Tags'.padEnd(10)}  ${'Size'.padStart(10)}  Paths`,
      ...list.map(({ id, snapshot: s }) =>
        `${shortId(id)}  ${s.time.slice(0, 19).replace('T', ' ')}  ${s.host.padEnd(12)}  ${s.tags.join(',').padEnd(10)}  ${formatBytes(s.summary.bytes).padStart(10)}  ${s.paths.join(' ')}`),
      `${list.length} snapshots`,
    ]);
  })));

function describe(entry: Entry): Record<string, unknown> {
  return {
    name: displayPath(entry.name), type: entry.type, mode: entry.mode, uid: entry.uid, gid: entry.gid, user: entry.user, group: entry.group,
    size: entry.size, mtime: new Date(entry.mtime[0] * 1000 + entry.mtime[1] / 1e6).toISOString(),
    target: entry.target ? displayPath(entry.target) : undefined,
  };
}

program.command('ls')
  .description('list the contents of a snapshot (recursively) below an optional path')
  .argument('<snapshot>', 'snapshot id prefix or "latest"')
  .argument('[path]', 'path inside the snapshot', '/')
  .option('-l, --long', 'show mode, owner, size and time')
  .action(async (ref: string, p: string, cmdOpts, cmd: Command) => run(globals(cmd), async (out) => withRepository(globals(cmd), out, true, async (repo) => {
    const { entry } = await resolveTarget(repo, `${ref}:${p}`, out);
    const base = p.replace(/\/+$/, '');
    const print = (rel: string, e: Entry): void => {
      const full = `${base}/${rel}`.replace(/^\/\//, '/');
      const human = cmdOpts.long
        ? `${e.type[0] === 'f' ? '-' : e.type[0]}${(e.mode & 0o7777).toString(8).padStart(4, '0')} ${String(e.user ?? e.uid).padEnd(8)} ${String(e.group ?? e.gid).padEnd(8)} ${String(e.size).padStart(12)} ${new Date(e.mtime[0] * 1000).toISOString().slice(0, 19)} ${full}`
        : full;
      out.line({ ...describe(e), path: full }, human);
    };
    if (entry.type !== 'dir') return print(displayPath(entry.name), entry);
    for await (const item of walkTree(repo, entry)) print(displayPath(item.path), item.entry);
  })));

program.command('dump')
  .description('write one file of a snapshot to standard output')
  .argument('<snapshot>', 'snapshot id prefix or "latest"')
  .argument('<file>', 'path of the file inside the snapshot')
  .action(async (ref: string, file: string, _o, cmd: Command) => run(globals(cmd), async (out) => withRepository(globals(cmd), out, true, async (repo) => {
    const { entry } = await resolveTarget(repo, `${ref}:${file}`, out);
    if (entry.type !== 'file') throw errors.usage(`${file} is a ${entry.type}, not a file: use restore for folders`);
    for await (const chunk of fileChunks(repo, entry)) {
      if (!process.stdout.write(chunk)) await new Promise((r) => process.stdout.once('drain', r));
    }
  })));

program.command('restore')
  .description('restore a snapshot, or a path in it, into a folder')
  .argument('<snapshot>', '"<id prefix|latest>[:<path inside the snapshot>]"')
  .requiredOption('-t, --target <dir>', 'folder to restore into (created if missing)')
  .option('-i, --include <pattern>', 'restore only matching paths (repeatable; relative to the restored path)', collect, [])
  .option('--no-lock', 'take no lock (a read-only repository; a prune running meanwhile may then remove what it reads)')
  .action(async (spec: string, cmdOpts, cmd: Command) => run(globals(cmd), async (out) => {
    const signal = interruptible();
    return withRepository(globals(cmd), out, true, async (repo) => {
      // A shared lock: a prune that schedules deletions meanwhile waits for this restore before deleting.
      const lock = cmdOpts.lock ? await repo.readLock('restore', (m) => out.warn(m)) : undefined;
      try {
        return await restoreLocked(repo, spec, cmdOpts, out, signal);
      } finally {
        await lock?.release();
      }
    });
  }));

/** The body of `restore`, under its lock. */
async function restoreLocked(repo: Repository, spec: string, cmdOpts: { target: string; include: string[] }, out: Output, signal: AbortSignal): Promise<number> {
  const { snap, entry, isRoot } = await resolveTarget(repo, spec, out);
  const progress = out.progress('restore');
  const totalBytes = isRoot ? snap.snapshot.summary.bytes : undefined;
  const result = await restore(repo, entry, cmdOpts.target, {
    includes: cmdOpts.include, signal, isRoot,
    onProgress: (p) => progress.update({ ...p, totalBytes }),
    onError: (p, m) => out.warn(`${p}: ${m}`),
  }).finally(() => progress.stop());
  out.result({ snapshot: snap.id, target: path.resolve(cmdOpts.target), ...result }, () =>
    `restored ${result.files} files (${formatBytes(result.bytes)}) of snapshot ${shortId(snap.id)} to ${path.resolve(cmdOpts.target)}` +
    (result.errors.length ? `; ${result.errors.length} errors` : ''));
  return result.errors.length ? 3 : 0;
}

program.command('diff')
  .description('show what changed between two snapshots (+ added, - removed, M modified, T type changed)')
  .argument('<a>', 'older snapshot')
  .argument('<b>', 'newer snapshot')
  .action(async (a: string, b: string, _o, cmd: Command) => run(globals(cmd), async (out) => withRepository(globals(cmd), out, true, async (repo) => {
    const all = await repo.listSnapshots((m) => out.warn(m));
    const [sa, sb] = [selectSnapshot(all, a), selectSnapshot(all, b)];
    for await (const d of diffTrees(repo, sa.snapshot.tree, sb.snapshot.tree)) {
      out.line({ change: d.change, path: d.path, type: d.entry.type }, `${d.change}  ${d.path}${d.entry.type === 'dir' ? '/' : ''}`);
    }
  })));

program.command('stats')
  .description('repository size and contents')
  .action(async (_o, cmd: Command) => run(globals(cmd), async (out) => withRepository(globals(cmd), out, true, async (repo) => {
    let packs = 0;
    let stored = 0;
    for await (const p of repo.backend.list('packs/')) {
      packs++;
      stored += p.size;
    }
    const snaps = await repo.listSnapshots((m) => out.warn(m));
    const latest = snaps.at(-1)?.snapshot.summary;
    const stats = { snapshots: snaps.length, packs, storedBytes: stored, latestFiles: latest?.files ?? 0, latestBytes: latest?.bytes ?? 0 };
    out.result(stats, () => [
      `${stats.snapshots} snapshots, ${packs} packs, ${formatBytes(stored)} stored`,
      `latest snapshot: ${stats.latestFiles} files, ${formatBytes(stats.latestBytes)}` +
        (stored ? ` (all snapshots together take ${formatBytes(stored)})` : ''),
    ]);
  })));

program.command('check')
  .description('verify the repository: packs against the index, every snapshot\'s trees and chunks; with --read-data, every byte (healing damaged packs from their parity)')
  .option('--read-data', 'read every pack whole: its bytes against its name, every blob authenticated')
  .option('--read-data-subset <n/m|p%>', 'read only part n of m of the packs (m runs read each once), or a random share such as 10%')
  .option('--no-lock', 'take no lock (a read-only repository; a prune running meanwhile may then be reported as damage)')
  .action(async (cmdOpts, cmd: Command) => run(globals(cmd), async (out) => withRepository(globals(cmd), out, true, async (repo) => {
    const subset = cmdOpts.readDataSubset === undefined ? undefined : parseSubset(cmdOpts.readDataSubset);
    const readData = !!cmdOpts.readData || !!subset;
    const lock = cmdOpts.lock ? await repo.readLock('check', (m) => out.warn(m)) : undefined;
    const progress = out.progress('check', 'packs');
    const result = await check(repo, {
      readData, subset, signal: interruptible(),
      onProgress: (p) => progress.update({ files: p.phase === 'packs' ? p.done : p.total, bytes: p.packBytesDone, totalBytes: p.packBytes, current: p.phase }),
    }).finally(async () => {
      progress.stop();
      await lock?.release();
    });
    for (const p of result.problems) out.warn(problemLines(p).join('\n'));
    out.result(result, () => checkLines(result, readData));
    if (result.problems.length) {
      throw errors.corrupt(`the repository has ${count(result.problems.length, 'problem')} (listed above): a backup of a source that still has ` +
        'the files stores their data again; `strata repair snapshots` saves what can still be read of the rest');
    }
  })));

program.command('replicate')
  .description('copy what another repository location lacks (a second disk or NAS, s3:…): packs, then snapshots; it then opens, checks and restores on its own with the same password')
  .requiredOption('--to <repository>', 'the copy: a folder, or s3:http://host:port/bucket/prefix (created on the first run)')
  .option('--verify', 'list the copy again instead of trusting what an earlier run left there')
  .option('--limit-upload <KiB/s>', 'at most this many KiB per second to the copy')
  .option('--mirror-deletions', 'also remove from the copy what the source forgot and pruned (by default the copy keeps everything it was sent)')
  .option('--append-only', 'never remove or replace anything on the copy')
  .option('--object-lock <mode:days>', 'S3 Object Lock on every object of the copy (governance:30, compliance:365); a new bucket is made with it')
  .action(async (cmdOpts, cmd: Command) => run(globals(cmd), async (out) => withRepository(globals(cmd), out, true, async (repo) => {
    const limit = cmdOpts.limitUpload === undefined ? undefined : Number(cmdOpts.limitUpload);
    if (limit !== undefined && !(limit > 0)) throw errors.usage(`--limit-upload takes KiB per second, not "${cmdOpts.limitUpload}"`);
    const objectLock = cmdOpts.objectLock === undefined ? undefined : parseObjectLock(cmdOpts.objectLock);
    if (cmdOpts.mirrorDeletions && (cmdOpts.appendOnly || objectLock)) throw errors.usage('--mirror-deletions removes from the copy, which --append-only and --object-lock forbid');
    const copy = backendAt(cmdOpts.to, { appendOnly: !!cmdOpts.appendOnly, objectLock });
    const target = limit ? throttledUploads(copy, limit * 1024) : copy;
    const stateFile = replicaStateFile(process.env.STRATA_CACHE_DIR ?? defaultCacheDir(), repo.config.id, target.location);
    const progress = out.progress('replicate', 'objects');
    const result = await replicate(repo, target, {
      stateFile, verify: !!cmdOpts.verify, mirrorDeletions: !!cmdOpts.mirrorDeletions, signal: interruptible(),
      onProgress: (p) => progress.update({ files: p.objects, bytes: p.bytes, totalBytes: p.totalBytes }),
    }).finally(async () => {
      progress.stop();
      await copy.close();
    });
    out.result({ to: target.location, ...result }, () => replicateLines(target.location, result).join('\n'));
  })));

const repair = program.command('repair').description('repair parts of the repository: index, snapshots');

repair.command('index')
  .description('rebuild the local index from the pack trailers')
  .action(async (_o, cmd: Command) => run(globals(cmd), async (out) => withRepository(globals(cmd), out, false, async (repo) => {
    const lock = await repo.lock('repair index', { exclusive: true });
    const result = await repo.rebuildIndex((m) => out.warn(m)).finally(() => lock.release());
    out.result(result, () => `index rebuilt from ${result.packs} packs` + (result.damaged.length ? `; ${result.damaged.length} damaged packs skipped` : ''));
  })));

repair.command('snapshots')
  .description('write new snapshots without the files and folders that cannot be read (tagged "repaired"); the originals stay unless --forget')
  .argument('[snapshots...]', 'ids or id prefixes (default: every snapshot)')
  .option('--read-data', 'also read every chunk, leaving out files with damaged data (not only missing data)')
  .option('-n, --dry-run', 'show what would be left out; write nothing')
  .option('--forget', 'remove each damaged original once its repaired snapshot is saved')
  .action(async (refs: string[], cmdOpts, cmd: Command) => run(globals(cmd), async (out) => withRepository(globals(cmd), out, !!cmdOpts.dryRun, async (repo) => {
    const all = await repo.listSnapshots((m) => out.warn(m));
    const ids = refs.length ? refs.map((r) => selectSnapshot(all, r).id) : undefined;
    const outcomes = await repairSnapshots(repo, { ids, readData: !!cmdOpts.readData, dryRun: !!cmdOpts.dryRun, forget: !!cmdOpts.forget });
    out.result({ dryRun: !!cmdOpts.dryRun, snapshots: outcomes }, () => repairLines(outcomes, !!cmdOpts.dryRun, !!cmdOpts.forget));
    const lost = outcomes.filter((o) => o.state === 'lost').length;
    if (lost) throw errors.corrupt(`${count(lost, 'snapshot')} cannot be repaired: ${lost === 1 ? 'its top tree' : 'their top trees'} cannot be read`);
  })));

/** The options prune takes, on `prune` and on `forget --prune`. */
const withPruneOptions = (cmd: Command): Command => cmd
  .option('--max-unused <percent>', 'repack packs with more than this share of unused bytes', '5%')
  .option('--grace <duration>', 'how long scheduled deletions stand before packs are deleted (readers move off them meanwhile)', '60s')
  .option('--no-wait', 'schedule deletions and return; the next prune carries them out');

function runPrune(repo: Repository, cmdOpts: Record<string, unknown>, out: Output, signal: AbortSignal): Promise<PruneResult> {
  return prune(repo, {
    maxUnused: parsePercent(String(cmdOpts.maxUnused)),
    graceMs: parseGrace(String(cmdOpts.grace)),
    wait: cmdOpts.wait !== false,
    dryRun: !!cmdOpts.dryRun,
    onProgress: (m) => out.info(m),
    onWarning: (m) => out.warn(m),
    signal,
  });
}

program.command('forget')
  .description('remove snapshots that a retention policy does not keep (or the ones named); --prune also frees their space')
  .argument('[snapshots...]', 'ids or id prefixes to forget instead of applying a policy')
  .option('--keep-last <n>', 'keep the newest n snapshots', parseCount)
  .option('--keep-hourly <n>', 'keep the newest snapshot of each of the last n hours that have one ("unlimited": all)', parseCount)
  .option('--keep-daily <n>', 'the same per day', parseCount)
  .option('--keep-weekly <n>', 'the same per ISO week', parseCount)
  .option('--keep-monthly <n>', 'the same per month', parseCount)
  .option('--keep-yearly <n>', 'the same per year', parseCount)
  .option('--keep-within <duration>', 'keep every snapshot newer than this before the newest one (such as 7d, 2w, 1y6m)')
  .option('--keep-tag <tag>', 'keep every snapshot with this tag (repeatable)', collect, [])
  .option('--group-by <keys>', 'apply the policy per group of these (host, paths, tags; "" for one group)', 'host,paths')
  .option('--host <name>', 'only consider snapshots of this host')
  .option('--tag <tag>', 'only consider snapshots with this tag (repeatable)', collect, [])
  .option('--path <path>', 'only consider snapshots of exactly these paths (repeatable)', collect, [])
  .option('-n, --dry-run', 'show what would be kept and removed, and why; change nothing')
  .option('--prune', 'then prune: free the space the forgotten snapshots held');
withPruneOptions(program.commands.at(-1)!)
  .action(async (ids: string[], cmdOpts, cmd: Command) => run(globals(cmd), async (out) => withRepository(globals(cmd), out, false, async (repo) => {
    const signal = interruptible();
    const policy: RetentionPolicy = {
      last: cmdOpts.keepLast, hourly: cmdOpts.keepHourly, daily: cmdOpts.keepDaily, weekly: cmdOpts.keepWeekly,
      monthly: cmdOpts.keepMonthly, yearly: cmdOpts.keepYearly, within: cmdOpts.keepWithin, tags: cmdOpts.keepTag,
    };
    if (ids.length && !isEmptyPolicy(policy)) throw errors.usage('give snapshots to forget or a policy, not both');
    if (!ids.length && isEmptyPolicy(policy)) {
      throw errors.usage('no policy given: say what to keep (--keep-last, --keep-daily, --keep-within, …) or which snapshots to forget');
    }
    const groupBy = String(cmdOpts.groupBy).split(',').filter(Boolean) as GroupKey[];
    for (const key of groupBy) if (!['host', 'paths', 'tags'].includes(key)) throw errors.usage(`--group-by takes host, paths and tags, not "${key}"`);
    const filter = { host: cmdOpts.host, tags: cmdOpts.tag.length ? cmdOpts.tag : undefined, paths: cmdOpts.path.length ? cmdOpts.path.map((p: string) => path.resolve(p)) : undefined };
    const groups = await forget(repo, {
      ...(ids.length ? { ids } : { policy, groupBy, filter }), dryRun: !!cmdOpts.dryRun, onWarning: (m) => out.warn(m),
    });
    const pruned = cmdOpts.prune ? await runPrune(repo, cmdOpts, out, signal) : undefined;
    out.result({ dryRun: !!cmdOpts.dryRun, groups: groups.map((g) => ({
      host: g.host, paths: g.paths, tags: g.tags,
      keep: g.decisions.filter((d) => d.keep).map((d) => ({ id: d.ref.id, time: d.ref.snapshot.time, reasons: d.reasons })),
      remove: g.decisions.filter((d) => !d.keep).map((d) => ({ id: d.ref.id, time: d.ref.snapshot.time })),
    })), ...(pruned ? { prune: pruned } : {}) }, () => [...forgetLines(groups, !!cmdOpts.dryRun), ...(pruned ? pruneLines(pruned) : [])]);
  })));

withPruneOptions(program.command('prune')
  .description('free the space of data no snapshot uses: repack partly used packs, then delete unused ones (backups keep running)')
  .option('-n, --dry-run', 'show what would be freed; change nothing'))
  .action(async (cmdOpts, cmd: Command) => run(globals(cmd), async (out) => withRepository(globals(cmd), out, false, async (repo) => {
    const result = await runPrune(repo, cmdOpts, out, interruptible());
    out.result(result, () => pruneLines(result));
  })));

program.command('mount')
  .description('show every snapshot as a read-only folder tree (FUSE), until interrupted')
  .argument('<mountpoint>', 'an empty folder')
  .option('--allow-other', 'let other users and Samba in; the kernel enforces the stored modes and owners (default_permissions)')
  .action(async (mountpoint: string, cmdOpts, cmd: Command) => run(globals(cmd), async (out) => {
    // Signals are ours before the mount appears: a stop or a stats request that comes at once must not kill the process.
    const stopped = untilStopped().then(() => false);
    let mounted: Mounted | undefined;
    // kill -USR2 <pid>: counters of FUSE calls, and of those that reached JS, on stderr.
    process.on('SIGUSR2', () => {
      const { rss, heapUsed, external } = process.memoryUsage();
      process.stderr.write(`fuse stats: ${JSON.stringify({ ...mounted?.stats(), memory: { rss, heapUsed, external } })}\n`);
    });
    const repo = await openRepository(globals(cmd), out, true);
    const view = new SnapshotView(repositoryViewSource(repo, (m) => out.warn(m)));
    mounted = await mountView(view, path.resolve(mountpoint), {
      allowOther: !!cmdOpts.allowOther,
      onError: (p, m) => out.warn(`${p}: ${m}`),
    }).catch(async (e) => {
      await repo.close();
      throw e;
    });
    out.info(`mounted ${repo.backend.location} at ${path.resolve(mountpoint)}; Ctrl-C (SIGINT) or SIGTERM unmounts`);
    const outside = await Promise.race([stopped, mounted.closed.then(() => true)]);
    if (!outside) await mounted.unmount();
    await repo.close();
    out.info(outside ? 'unmounted from outside' : 'unmounted');
    // Something still inside the detached mount keeps the session open: exiting closes it.
    if (mounted.stats()) process.exit(0);
  }));

/**
 * The service's modules (the watcher, pino, zod) load only for the commands that need them:
 * every other command (strata mount above all) starts faster and holds ~30 MiB less.
 */
async function service() {
  const [serving, config, status] = await Promise.all([import('./serve.js'), import('../sync/service-config.js'), import('../sync/service.js')]);
  return { ...serving, ...config, readStatus: status.readStatus };
}

program.command('serve')
  .description('capture sources continuously (change journal), optionally mounted; runs until SIGINT/SIGTERM')
  .option('-c, --config <file>', 'service config (JSON); without it, the embedded demo default')
  .option('--print-default-config', 'print the embedded default config and exit')
  .action(async (cmdOpts, cmd: Command) => run(globals(cmd), async (out) => {
    const { defaultConfig, prepareDemo, readConfig, serve } = await service();
    if (cmdOpts.printDefaultConfig) {
      out.result(defaultConfig(), () => JSON.stringify(defaultConfig(), null, 2));
      return;
    }
    const config = cmdOpts.config ? readConfig(cmdOpts.config) : await prepareDemo(defaultConfig());
    await serve(config, globals(cmd), out);
  }));

program.command('status')
  .description('what `strata serve` is doing: last snapshot and its age, pending changes, last error per source ("running": false when it stopped)')
  .option('-c, --config <file>', 'the service config (to find its status file)')
  .action(async (cmdOpts, cmd: Command) => run(globals(cmd), async (out) => {
    const { defaultConfig, isAlive, readConfig, readStatus, statusFileOf } = await service();
    const config = cmdOpts.config ? readConfig(cmdOpts.config) : defaultConfig();
    const file = statusFileOf(config, globals(cmd));
    const status = await readStatus(file);
    if (!status) throw errors.notFound(`no service status at ${file}: is \`strata serve\` running with this config?`);
    const alive = isAlive(status.pid);
    out.result({ ...status, running: alive }, () => [
      `strata serve (pid ${status.pid}) ${alive ? 'running' : 'NOT running'} since ${status.started}, repository ${status.repository}`,
      ...status.sources.map((s) => {
        const age = s.lastSnapshot ? `${Math.round((Date.now() - Date.parse(s.lastSnapshot.time)) / 1000)} s ago` : 'none yet';
        return [
          `  ${s.path}: ${s.watching ? 'watching' : 'not watched (periodic walks)'}${s.capturing ? ', capturing now' : ''}`,
          `    last snapshot: ${s.lastSnapshot ? `${s.lastSnapshot.id.slice(0, 8)}, ${age}` : age}; pending: ${s.pending === 'full walk' ? 'a full walk' : `${s.pending} changed folders`}`,
          ...(s.lastError ? [`    last error (${s.lastError.time}): ${s.lastError.message}`] : []),
        ].join('\n');
      }),
      ...(status.retention ? retentionLines(status.retention) : ['  retention: off (every snapshot is kept)']),
      ...(status.verify ? verifyLines(status.verify) : ['  verification: off (stored data is not read back)']),
      ...replicaLines(status.replicas),
    ]);
  }));

program.command('smb-config')
  .description('print Samba share definitions: one for a Strata mount, one adding Previous Versions to a live share')
  .argument('<mountpoint>', 'where `strata mount` runs')
  .option('--share <path>', 'the live share whose snapshots Strata takes (for the Previous Versions definition)')
  .option('--name <name>', 'share name', 'strata')
  .action(async (mountpoint: string, cmdOpts, cmd: Command) => run(globals(cmd), async (out) => {
    const text = smbConfig({ mountpoint: path.resolve(mountpoint), share: cmdOpts.share && path.resolve(cmdOpts.share), name: cmdOpts.name });
    out.result({ config: text }, () => text.trimEnd());
  }));

program.command('unlock')
  .description('remove stale locks (all locks with --remove-all)')
  .addOption(new Option('--remove-all', 'also remove locks of processes that may still run'))
  .action(async (cmdOpts, cmd: Command) => run(globals(cmd), async (out) => withRepository(globals(cmd), out, true, async (repo) => {
    const removed = await repo.removeLocks(!!cmdOpts.removeAll);
    out.result({ removed }, () => `removed ${removed} locks`);
  })));

// `strata ls … | head` closes the pipe early: that is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

program.exitOverride();
try {
  await program.parseAsync(process.argv);
} catch (e) {
  const code = (e as { code?: string; exitCode?: number }).code;
  if (code !== 'commander.helpDisplayed' && code !== 'commander.version' && code !== 'commander.help') {
    process.exitCode = (e as { exitCode?: number }).exitCode === 0 ? 0 : 1;
  }
}
