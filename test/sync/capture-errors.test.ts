/** Capture under a changing share: vanishing files, files written while read, excludes, other filesystems. */
import { spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { capture } from '../../src/sync/capture.js';
import { estimateSize } from '../../src/sync/estimate.js';
import { resolvePath, walkTree } from '../../src/sync/tree-walk.js';
import { randomStream } from '../kit/random.js';
import { newRepository } from '../kit/repo.js';
import { tempDir } from '../kit/tmp.js';
import { mountSkip } from '../kit/real.js';

t.test('files that vanish between listing and reading are reported, the rest is saved', async (t) => {
  const source = path.join(tempDir(t), 'share');
  await fs.mkdir(source);
  for (let i = 0; i < 40; i++) await fs.writeFile(path.join(source, `f${String(i).padStart(2, '0')}`), `file ${i}`);
  const { repo } = await newRepository(t);
  let removed = false;
  const snap = await capture(repo, {
    paths: [source], // After the first file is read, the others are listed but mostly not opened yet (synchronous removal).
    onProgress: () => {
      if (removed) return;
      removed = true;
      for (let i = 0; i < 40; i++) rmSync(path.join(source, `f${String(i).padStart(2, '0')}`), { force: true });
    },
  });
  const errors = snap.snapshot.summary.errors;
  t.ok(errors.length > 0, `${errors.length} vanished files reported`);
  t.ok(errors.every((e) => /ENOENT/.test(e.message)), 'each with its cause');
  const saved: string[] = [];
  for await (const item of walkTree(repo, await resolvePath(repo, snap.snapshot.tree, source))) saved.push(item.path.toString());
  t.equal(saved.length + errors.length, 40, 'every file is either saved or reported');
  t.equal(snap.snapshot.summary.files, saved.length);
});


t.test('a file written while it is read is retried, then stored marked inconsistent and reported', async (t) => {
  const source = path.join(tempDir(t), 'share');
  await fs.mkdir(source);
  const file = path.join(source, 'growing.log');
  await fs.writeFile(file, randomStream(3, 30 * 1024 * 1024));
  const writer = spawn('sh', ['-c', `while true; do echo line >> '${file}'; done`]);
  t.teardown(() => { writer.kill('SIGKILL'); });
  await new Promise((r) => setTimeout(r, 100));
  const { repo } = await newRepository(t);
  const snap = await capture(repo, { paths: [source] });
  writer.kill('SIGKILL');
  t.match(snap.snapshot.summary.errors, [{ path: file, message: /changed while it was read/ }]);
  const entry = await resolvePath(repo, snap.snapshot.tree, file);
  t.equal(entry.inconsistent, true, 'the entry says its content may be torn');
});

t.test('excludes by name and by path', async (t) => {
  const source = path.join(tempDir(t), 'share');
  await fs.mkdir(path.join(source, 'cache', 'deep'), { recursive: true });
  await fs.mkdir(path.join(source, 'keep'));
  await fs.writeFile(path.join(source, 'keep', 'a.txt'), 'a');
  await fs.writeFile(path.join(source, 'keep', 'b.tmp'), 'b');
  await fs.writeFile(path.join(source, 'cache', 'deep', 'c.txt'), 'c');
  const { repo } = await newRepository(t);
  const snap = await capture(repo, { paths: [source], excludes: ['*.tmp', `${source}/cache`] });
  const saved: string[] = [];
  for await (const item of walkTree(repo, await resolvePath(repo, snap.snapshot.tree, source))) saved.push(item.path.toString());
  t.same(saved, ['keep', 'keep/a.txt']);
});

t.test('one-file-system keeps a mount point but not what is mounted on it', { skip: mountSkip() }, async (t) => {
  const source = path.join(tempDir(t), 'share');
  await fs.mkdir(path.join(source, 'mnt'), { recursive: true });
  await fs.writeFile(path.join(source, 'local.txt'), 'local');
  spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', path.join(source, 'mnt')]);
  t.teardown(() => { spawnSync('umount', ['-l', path.join(source, 'mnt')]); });
  await fs.writeFile(path.join(source, 'mnt', 'other-fs.txt'), 'elsewhere');
  const { repo } = await newRepository(t);
  const list = async (oneFileSystem: boolean) => {
    const snap = await capture(repo, { paths: [source], oneFileSystem });
    const saved: string[] = [];
    for await (const item of walkTree(repo, await resolvePath(repo, snap.snapshot.tree, source))) saved.push(item.path.toString());
    return saved;
  };
  t.same(await list(true), ['local.txt', 'mnt']);
  t.same(await list(false), ['local.txt', 'mnt', 'mnt/other-fs.txt']);
});

t.test('with a change journal, unchanged folders are reused unread and still counted', async (t) => {
  const source = path.join(tempDir(t), 'share');
  await fs.mkdir(path.join(source, 'quiet', 'deep'), { recursive: true });
  await fs.mkdir(path.join(source, 'busy'));
  await fs.writeFile(path.join(source, 'quiet', 'deep', 'a.txt'), 'aaaa');
  await fs.writeFile(path.join(source, 'busy', 'b.txt'), 'bb');
  const { repo } = await newRepository(t);
  const first = await capture(repo, { paths: [source] });
  // A change the journal did not report (quiet/) must not be seen; the reported one (busy/) must.
  await fs.writeFile(path.join(source, 'quiet', 'deep', 'a.txt'), 'changed unseen');
  await fs.writeFile(path.join(source, 'busy', 'new.txt'), 'new');
  const quiet = path.join(source, 'quiet');
  const second = await capture(repo, {
    paths: [source], parent: first,
    isUnchanged: (folder) => folder === quiet || folder.startsWith(`${quiet}/`),
  });
  t.equal(second.snapshot.summary.filesRead, 1, 'only the new file in the reported folder is read');
  const quietNow = await resolvePath(repo, second.snapshot.tree, quiet);
  const quietBefore = await resolvePath(repo, first.snapshot.tree, quiet);
  t.ok(quietNow.subtree!.equals(quietBefore.subtree!), 'the unchanged folder is the same tree');
  t.same([second.snapshot.summary.files, second.snapshot.summary.dirs, second.snapshot.summary.bytes], [3, 4, 4 + 2 + 3], 'counts include the reused folder');
});

t.test('the size estimate of a first backup counts every file once', async (t) => {
  const source = path.join(tempDir(t), 'share');
  await fs.mkdir(path.join(source, 'a', 'b'), { recursive: true });
  await fs.writeFile(path.join(source, 'one'), Buffer.alloc(1000));
  await fs.writeFile(path.join(source, 'a', 'two'), Buffer.alloc(20));
  await fs.writeFile(path.join(source, 'a', 'b', 'three'), Buffer.alloc(3));
  await fs.symlink('one', path.join(source, 'link'));
  const seen: number[] = [];
  t.equal(await estimateSize([source], (b) => seen.push(b)), 1023);
  t.equal(seen.at(-1), 1023, 'the last report is the total');
});
