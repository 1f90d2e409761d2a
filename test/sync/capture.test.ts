/**
 * Capture's promises beyond fidelity: a backup with no change stores nothing,
 * even of a tree that was never read before; hard-linked files are read once
 * and counted as such; the walk's backpressure hands each freed place to one
 * waiting folder, so its cost per file does not grow with the tree.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { capture } from '../../src/sync/capture.js';
import { Room } from '../../src/sync/room.js';
import { resolvePath } from '../../src/sync/tree-walk.js';
import { newRepository } from '../kit/repo.js';
import { tempDir } from '../kit/tmp.js';
import { nasTree, restoredDifferences, writeTree } from '../kit/tree.js';

const OLD = '@978307200'; // 2001-01-01: an access time that any read would move

t.test('a no-change backup of a tree never read before stores nothing', async (t) => {
  const dir = tempDir(t);
  const source = path.join(dir, 'share');
  await fs.mkdir(source);
  await writeTree(source, nasTree(21));
  // As after a copy with `cp -a`: old access times on everything, which the first backup's reads would update.
  execFileSync('find', [source, '-exec', 'touch', '-h', '-a', '-d', OLD, '{}', '+']);
  const probe = path.join(dir, 'probe');
  await fs.symlink('target', probe);
  execFileSync('touch', ['-h', '-a', '-d', OLD, probe]);
  await fs.readlink(probe);
  const moved = (await fs.lstat(probe)).atimeMs > Date.parse('2001-01-02');
  t.ok(moved, 'precondition: this filesystem updates access times on reading (else the test proves nothing)');

  const { repo } = await newRepository(t);
  const first = await capture(repo, { paths: [source] });
  const second = await capture(repo, { paths: [source], parent: first });
  // The share's own tree, not the root's: the folders above it (the temp dir's parent) may change meanwhile.
  const [before, after] = await Promise.all([first, second].map((s) => resolvePath(repo, s.snapshot.tree, source)));
  t.ok(after.subtree!.equals(before.subtree!), 'the share is the same tree: nothing in it was stored again');
  t.equal(second.snapshot.summary.filesRead, 0, 'no file read');
});

t.test('a first backup reads a hard-linked file once and counts its other names as linked', async (t) => {
  const dir = tempDir(t);
  const source = path.join(dir, 'share');
  await fs.mkdir(source);
  await fs.writeFile(path.join(source, 'a'), 'shared content\n');
  await fs.link(path.join(source, 'a'), path.join(source, 'b'));
  await fs.link(path.join(source, 'a'), path.join(source, 'c'));
  await fs.writeFile(path.join(source, 'alone'), 'other content\n');
  const { repo } = await newRepository(t);
  const first = await capture(repo, { paths: [source] });
  const s = first.snapshot.summary;
  t.same({ files: s.files, filesRead: s.filesRead, linked: s.linked }, { files: 4, filesRead: 2, linked: 2 });
  const target = path.join(dir, 'restored');
  t.equal(await restoredDifferences(repo, first.snapshot.tree, source, target), '', 'every name restores with its content, linked again (rsync -H)');
  const second = await capture(repo, { paths: [source], parent: first });
  t.same({ filesRead: second.snapshot.summary.filesRead, linked: second.snapshot.summary.linked }, { filesRead: 0, linked: undefined },
    'in the next backup every name is unchanged');
});

t.test('a renamed or moved folder is not read again, and a folder replaced by another is compared with its own past', async (t) => {
  const dir = tempDir(t);
  const source = path.join(dir, 'share');
  const alpha = path.join(source, 'projects', 'alpha');
  await fs.mkdir(alpha, { recursive: true });
  await writeTree(alpha, nasTree(31));
  await fs.mkdir(path.join(source, 'archive'));
  await fs.mkdir(path.join(source, 'inbox'));
  await fs.writeFile(path.join(source, 'inbox', 'note.txt'), 'first\n');
  const { repo } = await newRepository(t);
  const opts = { paths: [source] };
  const first = await capture(repo, opts);
  await fs.rename(path.join(source, 'projects', 'alpha'), path.join(source, 'projects', 'alpha-2026'));
  const renamed = await capture(repo, { ...opts, parent: first });
  t.equal(renamed.snapshot.summary.bytesRead, 0, 'a rename reads nothing');
  await fs.rename(path.join(source, 'projects', 'alpha-2026'), path.join(source, 'archive', 'alpha'));
  const moved = await capture(repo, { ...opts, parent: renamed });
  t.equal(moved.snapshot.summary.bytesRead, 0, 'a move to another folder reads nothing');
  t.equal(moved.snapshot.summary.filesRead, 0);
  // The old name now holds another folder: it is the new one's past that counts, not the name's.
  await fs.rename(path.join(source, 'inbox'), path.join(source, 'projects', 'alpha'));
  await fs.writeFile(path.join(source, 'projects', 'alpha', 'added.txt'), 'new\n');
  const replaced = await capture(repo, { ...opts, parent: moved });
  t.equal(replaced.snapshot.summary.filesRead, 1, 'only the added file is read');

  const target = path.join(dir, 'restored');
  t.equal(await restoredDifferences(repo, replaced.snapshot.tree, source, target), '', 'and the snapshot restores exactly');
});

t.test('below a folder compared with its remembered tree, a change journal is not taken at its word', async (t) => {
  const dir = tempDir(t);
  const source = path.join(dir, 'share');
  await fs.mkdir(path.join(source, 'A', 'sub'), { recursive: true });
  await fs.writeFile(path.join(source, 'A', 'sub', 'f'), 'old');
  const { repo } = await newRepository(t);
  const first = await capture(repo, { paths: [source] });
  // Moved away and back under another name, edited meanwhile: a journal that only saw the
  // last move knows nothing of the edit and calls B/sub unchanged.
  await fs.rename(path.join(source, 'A'), path.join(source, 'B'));
  await fs.writeFile(path.join(source, 'B', 'sub', 'f'), 'edited');
  const second = await capture(repo, {
    paths: [source], parent: first, isUnchanged: (folder) => folder === path.join(source, 'B', 'sub'),
  });
  const f = await resolvePath(repo, second.snapshot.tree, path.join(source, 'B', 'sub', 'f'));
  t.equal((await repo.loadBlob('data', f.chunks![0])).toString(), 'edited', 'the edited content is stored');
});

t.test('Room: at most its places are taken, and each release admits exactly the longest waiter', async (t) => {
  const room = new Room(2);
  const admitted: number[] = [];
  t.equal(room.take(), undefined, 'a free place is taken at once');
  t.equal(room.take(), undefined);
  const waiting = [1, 2, 3].map((n) => room.take()!.then(() => { admitted.push(n); }));
  await Promise.resolve();
  t.same(admitted, [], 'nobody is admitted while the room is full');
  room.release();
  await waiting[0];
  await Promise.resolve();
  t.same(admitted, [1], 'one release admits one waiter, the first');
  room.release();
  room.release();
  await Promise.all(waiting);
  t.same(admitted, [1, 2, 3], 'in the order they came');
  room.release();
  room.release();
  t.equal(room.take(), undefined, 'places given back with nobody waiting are free again');
  t.equal(room.take(), undefined);
  t.not(room.take(), undefined, 'and still only two');
});

t.test('Room: a turn waits behind the full room without keeping a place', async (t) => {
  const room = new Room(1);
  room.take();
  let turned = false;
  const turn = room.turn().then(() => { turned = true; });
  await Promise.resolve();
  t.equal(turned, false, 'waits while the only place is taken');
  room.release();
  await turn;
  t.equal(room.take(), undefined, 'the place is free after the turn');
});
