/** The browsable view without a mount: layout, names, reads at any offset, damage, new snapshots. */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Errno } from '../../src/fs/errno.js';
import { gmtName, repositoryViewSource, snapshotFolderName, SnapshotView } from '../../src/fs/vtree.js';
import { capture } from '../../src/sync/capture.js';
import { Random, randomStream } from '../kit/random.js';
import { newRepository } from '../kit/repo.js';
import { tempDir } from '../kit/tmp.js';
import { writeTree } from '../kit/tree.js';

async function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const source = path.join(dir, 'share');
  await fs.mkdir(source);
  const big = randomStream(5, 5 * 1024 * 1024 + 777);
  await writeTree(source, {
    'big.bin': { type: 'file', content: big },
    'notes.txt': { type: 'file', content: Buffer.from('version 1\n') },
    'caf\\xE9.txt': { type: 'file', content: Buffer.from('latin-1 name\n') },
    'docs': { type: 'dir', children: { 'a.txt': { type: 'file', content: Buffer.from('a') } } },
    'link': { type: 'symlink', target: 'notes.txt' },
  });
  const { repo } = await newRepository(t);
  let clock = Date.parse('2026-03-01T10:00:00Z');
  const backup = async (tags: string[] = []) => {
    const parent = (await repo.listSnapshots()).at(-1);
    clock += 3_600_000;
    return capture(repo, { paths: [source], chunker: repo.config.chunker, tags, parent, host: 'nas1', now: () => new Date(clock) });
  };
  const view = new SnapshotView(repositoryViewSource(repo), { refreshMs: 0 });
  return { dir, source, repo, backup, view, big };
}

t.test('layout: snapshots by time, latest, hosts, tags, @GMT names, all read-only folders', async (t) => {
  const { view, backup, source } = await setup(t);
  const first = await backup(['daily']);
  const second = await backup();
  const [n1, n2] = [first, second].map((s) => snapshotFolderName(s.snapshot.time));
  t.same((await view.readdir('/')).sort(), [gmtName(first.snapshot.time), gmtName(second.snapshot.time), 'history', 'hosts', 'snapshots', 'tags'].sort());
  t.same(await view.readdir('/snapshots'), [n1, n2, 'latest']);
  t.equal(await view.readlink('/snapshots/latest'), n2);
  t.same(await view.readdir('/hosts'), ['nas1']);
  t.same(await view.readdir('/hosts/nas1'), [n1, n2]);
  t.same(await view.readdir('/tags/daily'), [n1]);
  t.match(gmtName(first.snapshot.time), /^@GMT-\d{4}\.\d\d\.\d\d-\d\d\.\d\d\.\d\d$/);
  t.notOk((await view.readdir('/snapshots')).some((n) => n.includes(':')), 'no ":" in names (SMB clients)');
  const share = `/snapshots/${n1}${source}`;
  t.same((await view.readdir(share)).sort(), ['big.bin', 'caf\\xE9.txt', 'docs', 'link', 'notes.txt']);
  t.equal(await view.readlink(`${share}/link`), 'notes.txt');
  const attr = await view.getattr(`${share}/notes.txt`);
  t.equal(attr.mode & 0o170000, 0o100000);
  t.equal(attr.size, 10);
  t.equal(attr.ino, (await view.getattr(`${share}/notes.txt`)).ino, 'inode numbers are stable');
  t.equal((await view.getattr(`/${gmtName(first.snapshot.time)}${source}/notes.txt`)).size, 10);
});

t.test('a name that is not UTF-8 is shown escaped and still opens', async (t) => {
  const { view, backup, source } = await setup(t);
  const snap = await backup();
  const file = await view.openFile(`/snapshots/${snapshotFolderName(snap.snapshot.time)}${source}/caf\\xE9.txt`);
  const buf = Buffer.alloc(100);
  t.equal(buf.subarray(0, await file.read(buf, 100, 0)).toString(), 'latin-1 name\n');
});

t.test('200 reads at odd offsets and sizes return the source bytes', async (t) => {
  const { view, backup, source, big } = await setup(t);
  const snap = await backup();
  const file = await view.openFile(`/snapshots/${snapshotFolderName(snap.snapshot.time)}${source}/big.bin`);
  const rnd = new Random(99);
  for (let i = 0; i < 200; i++) {
    const position = rnd.int(big.length + 1000);
    const length = 1 + rnd.int(i % 10 === 0 ? 3_000_000 : 70_000);
    const buf = Buffer.alloc(length);
    const n = await file.read(buf, length, position);
    const expected = big.subarray(position, position + length);
    if (n !== expected.length || !buf.subarray(0, n).equals(expected)) {
      t.fail(`read of ${length} at ${position} differs`);
      return;
    }
  }
  t.pass('all 200 reads match');
});

t.test('history shows each distinct version of a file and a folder', async (t) => {
  const { view, backup, source } = await setup(t);
  const first = await backup();
  await backup(); // unchanged: no new version
  await fs.writeFile(path.join(source, 'notes.txt'), 'version 2\n');
  const third = await backup();
  const dir = `/history${source}`;
  const versions = (await view.readdir(`${dir}/notes.txt`)).sort();
  t.same(versions, [`notes.${snapshotFolderName(first.snapshot.time)}.txt`, `notes.${snapshotFolderName(third.snapshot.time)}.txt`]);
  const latest = await view.openFile(`${dir}/notes.txt/${versions[1]}`);
  const buf = Buffer.alloc(20);
  t.equal(buf.subarray(0, await latest.read(buf, 20, 0)).toString(), 'version 2\n');
  t.ok((await view.readdir(dir)).some((n) => n.startsWith('@')), 'folder versions are listed as @<time>');
});

t.test('new snapshots appear without a new view; missing paths are ENOENT', async (t) => {
  const { view, backup } = await setup(t);
  t.same(await view.readdir('/snapshots'), []);
  await backup();
  t.equal((await view.readdir('/snapshots')).length, 2, 'the new snapshot and latest');
  await t.rejects(view.getattr('/snapshots/1999-01-01_00-00-00'), { errno: Errno.ENOENT, message: /not found/ });
  await t.rejects(view.readdir('/nonexistent'), { errno: Errno.ENOENT, message: /not found/ });
});

t.test('a damaged chunk fails reads of that file only, with CORRUPT naming the pack', async (t) => {
  const { view, backup, source, repo } = await setup(t);
  const snap = await backup();
  const base = `/snapshots/${snapshotFolderName(snap.snapshot.time)}${source}`;
  // Damage the data pack holding big.bin's chunks (the largest pack).
  const packs: { name: string; size: number }[] = [];
  for await (const o of repo.backend.list('packs/')) packs.push(o);
  const victim = packs.sort((a, b) => b.size - a.size)[0];
  const bytes = await repo.backend.load(victim.name);
  bytes[1000] ^= 1;
  await repo.backend.save(victim.name, bytes);
  const big = await view.openFile(`${base}/big.bin`);
  await t.rejects(big.read(Buffer.alloc(10), 10, 0), { code: 'CORRUPT', message: /pack [0-9a-f]{64}/ });
  const docs = await view.openFile(`${base}/docs/a.txt`);
  const buf = Buffer.alloc(1);
  t.equal(await docs.read(buf, 1, 0), 1, 'other files still read');
});
