/**
 * Memory bounded by the work in flight, not by the snapshot: on a test-only
 * repository of two snapshots of 1,000,000 empty files each (1,000 folders of
 * 1,000; built straight from trees, no source on disk), restore, check, forget
 * and prune each stay under 256 MiB of peak RSS, measured by GNU time.
 */
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { TreeBuilder, type Entry } from '../../src/store/format/tree.js';
import { STRATA, testEnv } from '../kit/cli.js';
import { newRepository, PASSWORD } from '../kit/repo.js';

const FOLDERS = 1000;
const FILES = 1000;
const LIMIT_KIB = 256 * 1024;

const entry = (name: string, extra: Partial<Entry>): Entry => ({
  name: Buffer.from(name), type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0,
  mtime: [1700000000, 0], atime: [1700000000, 0], ctime: [1700000000, 0], inode: 0, device: 0, links: 1, chunks: [], ...extra,
});

/** Runs strata under GNU time: its exit code, output, and peak RSS in KiB. */
function measured(args: string[], env: Record<string, string>): { code: number | null; stdout: string; stderr: string; peakKib: number } {
  const r = spawnSync('/usr/bin/time', ['-f', 'peak-rss-kib=%M', process.execPath, STRATA, ...args], { env: testEnv(env), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const peak = /peak-rss-kib=(\d+)/.exec(r.stderr);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, peakKib: peak ? Number(peak[1]) : Infinity };
}

t.test(`restore, check, forget and prune of ${FOLDERS * FILES} files stay under 256 MiB`, async (t) => {
  const { repo, dir, cacheDir } = await newRepository(t);
  const folder = async (d: number): Promise<Entry> => {
    const tree = new TreeBuilder();
    for (let f = 0; f < FILES; f++) tree.add(entry(`file-${String(f).padStart(4, '0')}`, { inode: d * FILES + f + 1 }));
    const { id } = await repo.saveTree(tree);
    return entry(`dir-${String(d).padStart(4, '0')}`, { type: 'dir', mode: 0o755, chunks: undefined, subtree: id, tally: tree.tally });
  };
  const folders: Entry[] = [];
  for (let d = 0; d <= FOLDERS; d++) folders.push(await folder(d));
  const ids: string[] = [];
  // Two snapshots sharing 999 folders: forgetting the first leaves one folder's tree to prune.
  for (const part of [folders.slice(0, FOLDERS), folders.slice(1)]) {
    const top = TreeBuilder.of(part);
    const { id: tree } = await repo.saveTree(top);
    await repo.flush();
    ids.push(await repo.saveSnapshot({
      time: new Date(Date.now() + ids.length * 1000).toISOString(), host: 'test', user: 'root', paths: ['/share'], tags: [], excludes: [], tree,
      summary: { files: top.tally.files, dirs: top.tally.dirs, others: 0, bytes: 0, filesRead: 0, bytesRead: 0, blobsAdded: 0, bytesAdded: 0, errors: [], seconds: 0 },
    }));
  }
  await repo.close();
  const env = { STRATA_REPOSITORY: path.join(dir, 'repo'), STRATA_PASSWORD: PASSWORD, STRATA_CACHE_DIR: cacheDir };

  const peaks: string[] = [];
  const step = (name: string, args: string[]) => {
    const r = measured(args, env);
    t.equal(r.code, 0, `${name}: ${r.stderr.slice(-400)}`);
    t.ok(r.peakKib < LIMIT_KIB, `${name}: peak RSS ${Math.round(r.peakKib / 1024)} MiB`);
    peaks.push(`${name} ${Math.round(r.peakKib / 1024)} MiB`);
    return r;
  };
  const target = path.join(dir, 'out');
  step('restore', ['restore', ids[1], '--target', target]);
  let restored = 0;
  for (const d of await fs.readdir(target)) restored += (await fs.readdir(path.join(target, d))).length;
  t.equal(restored, FOLDERS * FILES, 'every file was restored');
  await fs.rm(target, { recursive: true });
  step('check', ['check']);
  step('forget', ['forget', ids[0]]);
  const pruned = step('prune', ['prune', '--grace', '0s', '--json']);
  t.ok(JSON.parse(pruned.stdout).deletedPacks + JSON.parse(pruned.stdout).repackedPacks > 0, 'prune had work: the forgotten folder\'s tree');
  t.comment(`peak RSS for ${FOLDERS * FILES} files: ${peaks.join(', ')}`);
});
