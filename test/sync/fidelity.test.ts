/**
 * What a NAS holds comes back exactly: a generated tree with every edge case is
 * backed up and restored, and rsync (-aHAX --checksum: content, modes,
 * owners, times, hard links, ACLs, xattrs, devices) finds no difference.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { capture } from '../../src/sync/capture.js';
import { restore } from '../../src/sync/restore.js';
import { resolvePath } from '../../src/sync/tree-walk.js';
import { newRepository } from '../kit/repo.js';
import { tempDir } from '../kit/tmp.js';
import { nasTree, restoredDifferences, rsyncDifferences, writeTree } from '../kit/tree.js';

t.test('backup then restore reproduces the tree exactly (rsync -aHAX --checksum sees nothing)', async (t) => {
  const dir = tempDir(t);
  const source = path.join(dir, 'share');
  await fs.mkdir(source);
  await writeTree(source, nasTree(11));
  const { repo } = await newRepository(t);
  const snap = await capture(repo, { paths: [source] });
  t.same(snap.snapshot.summary.errors, [], 'no read errors');
  const target = path.join(dir, 'restored');
  const result = await restore(repo, await resolvePath(repo, snap.snapshot.tree, source), target);
  t.same(result.errors, []);
  t.equal(rsyncDifferences(source, target), '', 'rsync finds no difference');

  const sparse = await fs.stat(path.join(target, 'sparse.img'));
  t.ok(sparse.blocks * 512 < 1024 * 1024, `the 64 MiB sparse file stays sparse (${sparse.blocks * 512} bytes allocated)`);
  const [a, b] = await Promise.all(['link-a', 'link-b'].map((n) => fs.stat(path.join(target, n))));
  t.equal(a.ino, b.ino, 'hard links share an inode again');
  const ns = await fs.stat(path.join(target, 'nanos'), { bigint: true });
  t.equal(ns.mtimeNs, 1700000000123456789n, 'mtime keeps its nanoseconds');
});

t.test('in a repository compressed with zstd, the tree restores exactly too', async (t) => {
  const dir = tempDir(t);
  const source = path.join(dir, 'share');
  await fs.mkdir(source);
  await writeTree(source, nasTree(13));
  const { repo } = await newRepository(t, undefined, { compression: 'zstd' });
  const snap = await capture(repo, { paths: [source] });
  t.equal(await restoredDifferences(repo, snap.snapshot.tree, source, path.join(dir, 'restored')), '', 'rsync finds no difference');
});

t.test('an incremental backup reads only what changed and restores each version', async (t) => {
  const dir = tempDir(t);
  const source = path.join(dir, 'share');
  await fs.mkdir(source);
  await writeTree(source, nasTree(12));
  const { repo } = await newRepository(t);
  const first = await capture(repo, { paths: [source] });
  const v1 = path.join(dir, 'v1');
  execFileSync('cp', ['-a', source, v1]);

  await fs.writeFile(path.join(source, 'docs', 'doc-3.txt'), 'changed content\n');
  await fs.writeFile(path.join(source, 'added.txt'), 'new file\n');
  await fs.rm(path.join(source, 'docs', 'doc-4.txt'));
  const second = await capture(repo, { paths: [source], parent: first });
  t.equal(second.snapshot.summary.filesRead, 2, 'only the changed and the added file are read');
  t.ok(second.snapshot.summary.bytesAdded < 20_000, `${second.snapshot.summary.bytesAdded} bytes added`);

  for (const [snap, expected] of [[first, v1], [second, source]] as const) {
    const target = path.join(dir, `restore-${snap.id.slice(0, 6)}`);
    t.equal(await restoredDifferences(repo, snap.snapshot.tree, source, target, expected), '', `snapshot ${snap.id.slice(0, 8)} restores as it was`);
  }
});
