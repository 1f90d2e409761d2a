/** The browsable view without a mount: layout, byte-exact names, reads at any offset, history, damage, new snapshots. */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { decodeDirRef, decodeFileRef, encodeBatch, encodeDirRef } from '../../src/fs/batch.js';
import { Errno } from '../../src/fs/errno.js';
import { gmtName, repositoryViewSource, snapshotFolderName, SnapshotView, type ViewEntry } from '../../src/fs/vtree.js';
import { capture } from '../../src/sync/capture.js';
import { native } from '../../src/native.js';
import { largestPack } from '../kit/packs.js';
import { Random, randomStream } from '../kit/random.js';
import { newRepository } from '../kit/repo.js';
import { tempDir } from '../kit/tmp.js';
import { writeTree } from '../kit/tree.js';

const names = (list: Buffer[]): string[] => list.map((n) => n.toString('latin1'));

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
  const { repo } = await newRepository(t, undefined, { parityPercent: 0 }); // damage shows as damage: nothing heals
  let clock = Date.parse('2026-03-01T10:00:00Z');
  const warnings: string[] = [];
  /** A backup an hour after the previous one, or at `at` (ms since the epoch). */
  const backup = async (tags: string[] = [], at?: number) => {
    const parent = (await repo.listSnapshots()).at(-1);
    clock = at ?? clock + 3_600_000;
    return capture(repo, { paths: [source], tags, parent, host: 'nas1', now: () => new Date(clock) });
  };
  const view = new SnapshotView(repositoryViewSource(repo), { refreshMs: 0, onWarning: (m) => warnings.push(m) });
  return { dir, source, repo, backup, view, big, warnings };
}

t.test('layout: snapshots by time, latest, hosts, tags, @GMT names, all read-only folders', async (t) => {
  const { view, backup, source } = await setup(t);
  const first = await backup(['daily']);
  const second = await backup();
  const [n1, n2] = [first, second].map((s) => snapshotFolderName(s.snapshot.time));
  t.same(names(await view.readdir('/')), [gmtName(first.snapshot.time), gmtName(second.snapshot.time), 'history', 'hosts', 'snapshots', 'tags']);
  t.same(names(await view.readdir('/snapshots')), [n1, n2, 'latest']);
  t.equal((await view.readlink('/snapshots/latest')).toString(), n2);
  t.same(names(await view.readdir('/hosts')), ['nas1']);
  t.same(names(await view.readdir('/hosts/nas1')), [n1, n2]);
  t.same(names(await view.readdir('/tags/daily')), [n1]);
  t.match(gmtName(first.snapshot.time), /^@GMT-\d{4}\.\d\d\.\d\d-\d\d\.\d\d\.\d\d$/);
  t.notOk(names(await view.readdir('/snapshots')).some((n) => n.includes(':')), 'no ":" in names (SMB clients)');
  const share = `/snapshots/${n1}${source}`;
  t.same(names(await view.readdir(share)), ['big.bin', 'caf\xe9.txt', 'docs', 'link', 'notes.txt'], 'names are the stored bytes');
  t.equal((await view.readlink(`${share}/link`)).toString(), 'notes.txt');
  const attr = await view.getattr(`${share}/notes.txt`);
  t.equal(attr.mode & 0o170000, 0o100000);
  t.equal(attr.size, 10);
  t.same(attr.ino, (await view.getattr(`/${gmtName(first.snapshot.time)}${source}/notes.txt`)).ino, 'the same file has the same inode key in every place it is shown');
  t.notSame(attr.ino, (await view.getattr(`/snapshots/${n2}${source}/notes.txt`)).ino, 'but not in another snapshot');
  const stat = await fs.stat(source, { bigint: true });
  const folder = await view.getattr(`/snapshots/${n2}${source}`);
  t.same([folder.size, folder.nlink, folder.blocks], [Number(stat.size), Number(stat.nlink), Number(stat.blocks)], 'folders keep their size, link count and blocks');
  t.same(folder.mtime, [Number(stat.mtimeNs / 1_000_000_000n), Number(stat.mtimeNs % 1_000_000_000n)], 'with nanoseconds');
});

t.test('a name that is not UTF-8 is listed as its bytes and opens', async (t) => {
  const { view, backup, source } = await setup(t);
  const snap = await backup();
  const file = await view.open(Buffer.concat([Buffer.from(`/snapshots/${snapshotFolderName(snap.snapshot.time)}${source}/caf`), Buffer.from([0xe9]), Buffer.from('.txt')]));
  const buf = Buffer.alloc(100);
  t.equal(buf.subarray(0, await file.readInto(buf, 100, 0)).toString(), 'latin-1 name\n');
});

t.test('200 reads at odd offsets and sizes return the source bytes', async (t) => {
  const { view, backup, source, big } = await setup(t);
  const snap = await backup();
  const file = await view.open(`/snapshots/${snapshotFolderName(snap.snapshot.time)}${source}/big.bin`);
  const rnd = new Random(99);
  for (let i = 0; i < 200; i++) {
    const position = rnd.int(big.length + 1000);
    const length = 1 + rnd.int(i % 10 === 0 ? 3_000_000 : 70_000);
    const got = Buffer.concat(await file.read(position, length));
    if (!got.equals(big.subarray(position, position + length))) {
      t.fail(`read of ${length} at ${position} differs`);
      return;
    }
  }
  t.pass('all 200 reads match');
});

t.test('sparse files list the ranges that hold data', async (t) => {
  const { view, backup, source } = await setup(t);
  await writeTree(source, { 'disk.img': { type: 'sparse', size: 32 * 1024 * 1024, data: [[8192, Buffer.alloc(5000, 7)], [20 * 1024 * 1024, Buffer.alloc(70000, 9)]] } });
  const snap = await backup();
  const entry = await view.lookup(`/snapshots/${snapshotFolderName(snap.snapshot.time)}${source}/disk.img`);
  const st = await fs.stat(path.join(source, 'disk.img'));
  t.equal(entry.attr.blocks, st.blocks, 'its allocation, not its size');
  const fd = await fs.open(path.join(source, 'disk.img'));
  const expected: [number, number][] = [];
  for (let at = native.seekData(fd.fd, 0); at >= 0 && at < st.size; at = native.seekData(fd.fd, expected.at(-1)![1])) {
    expected.push([at, Math.min(native.seekHole(fd.fd, at), st.size)]);
  }
  await fd.close();
  t.same(entry.extents, expected, 'the data ranges are those of the source');
});

t.test('history shows each distinct version of a file and a folder', async (t) => {
  const { view, backup, source } = await setup(t);
  const first = await backup();
  // Only the access time changes (as when someone reads the file): not a new version of it or of its folder.
  const notes = path.join(source, 'notes.txt');
  const { mtimeNs } = await fs.stat(notes, { bigint: true });
  native.utimesNs(Buffer.from(notes), 1_800_000_000, 5, Number(mtimeNs / 1_000_000_000n), Number(mtimeNs % 1_000_000_000n));
  const second = await backup();
  t.notSame(second.snapshot.tree, first.snapshot.tree, 'the access time is stored');
  await fs.writeFile(notes, 'version 2\n');
  const third = await backup();
  const dir = `/history${source}`;
  const versions = names(await view.readdir(`${dir}/notes.txt`));
  t.same(versions, [`notes.${snapshotFolderName(first.snapshot.time)}.txt`, `notes.${snapshotFolderName(third.snapshot.time)}.txt`]);
  const latest = await view.open(`${dir}/notes.txt/${versions[1]}`);
  t.equal(Buffer.concat(await latest.read(0, 20)).toString(), 'version 2\n');
  const folderVersions = names(await view.readdir(dir)).filter((n) => n.startsWith('@'));
  t.same(folderVersions, [`@${snapshotFolderName(first.snapshot.time)}`, `@${snapshotFolderName(third.snapshot.time)}`],
    'a folder whose files were only read is not a new version');
});

t.test('history: versions in the same second, and real children named like versions, all stay visible', async (t) => {
  const { view, backup, source } = await setup(t);
  const at = Date.parse('2026-05-01T12:00:00.100Z');
  const stamp = snapshotFolderName(new Date(at).toISOString());
  await fs.mkdir(path.join(source, `@${stamp}`));
  await fs.writeFile(path.join(source, `@${stamp}`, 'inside.txt'), 'a real folder');
  const first = await backup([], at);
  await fs.writeFile(path.join(source, 'notes.txt'), 'same second\n');
  const second = await backup([], at + 500);
  const fileVersions = names(await view.readdir(`/history${source}/notes.txt`));
  t.equal(fileVersions.length, 2, 'two versions in one second are both listed');
  t.equal(new Set(fileVersions).size, 2);
  t.ok(fileVersions.every((n) => n.startsWith(`notes.${stamp}`) && n.endsWith('.txt')), 'each still opens with its application');
  const listing = names(await view.readdir(`/history${source}`));
  t.ok(listing.includes(`@${stamp}`), 'the real child keeps its name');
  t.equal((await view.lookup(`/history${source}/@${stamp}`)).volatile, true, 'and is the history of that child');
  const folderVersions = listing.filter((n) => n.startsWith(`@${stamp}-`));
  t.same(folderVersions, [`@${stamp}-${first.id.slice(0, 8)}`, `@${stamp}-${second.id.slice(0, 8)}`].sort(), 'the folder versions are told apart by id');
  const gmt = names(await view.readdir('/')).filter((n) => n.startsWith('@GMT-'));
  t.same(gmt, [gmtName(at), gmtName(at + 1000)], 'the second @GMT name moves on a second: Samba parses only times');
});

t.test('history: a snapshot with a damaged tree is skipped (and said once); the others show', async (t) => {
  const { view, backup, source, repo, warnings } = await setup(t);
  await backup();
  await fs.writeFile(path.join(source, 'notes.txt'), 'version 2\n');
  await backup();
  await fs.writeFile(path.join(source, 'notes.txt'), 'version 3\n');
  const last = await backup();
  // The last backup's changed trees sit in a pack of their own.
  const pack = repo.packOf(last.snapshot.tree)!;
  const victim = `packs/${pack.slice(0, 2)}/${pack}`;
  const bytes = await repo.backend.load(victim);
  bytes[20] ^= 1;
  await repo.backend.save(victim, bytes);
  t.equal((await view.readdir(`/history${source}/notes.txt`)).length, 2, 'the two readable versions');
  t.ok((await view.readdir(`/history${source}`)).length > 0, 'the folder history lists too');
  t.equal(warnings.filter((w) => w.includes(last.id.slice(0, 8))).length, 1, 'the damaged snapshot is named once');
});

t.test('new snapshots appear without a new view, and listeners hear of it; missing paths are ENOENT', async (t) => {
  const { view, backup } = await setup(t);
  let changes = 0;
  view.onSnapshotsChanged(() => changes++);
  t.same(await view.readdir('/snapshots'), []);
  await backup();
  t.equal((await view.readdir('/snapshots')).length, 2, 'the new snapshot and latest');
  t.equal(changes, 1);
  t.equal(await view.refresh(), false, 'nothing new');
  await t.rejects(view.getattr('/snapshots/1999-01-01_00-00-00'), { errno: Errno.ENOENT, message: /not found/ });
  await t.rejects(view.readdir('/nonexistent'), { errno: Errno.ENOENT, message: /not found/ });
});

t.test('a damaged chunk fails reads of that file only, with CORRUPT naming the pack', async (t) => {
  const { view, backup, source, repo } = await setup(t);
  const snap = await backup();
  const base = `/snapshots/${snapshotFolderName(snap.snapshot.time)}${source}`;
  const victim = await largestPack((repo.backend as { location: string }).location);
  const bytes = await fs.readFile(victim);
  bytes[1000] ^= 1;
  await fs.writeFile(victim, bytes);
  const big = await view.open(`${base}/big.bin`);
  await t.rejects(big.read(0, 10), { code: 'CORRUPT', message: /pack [0-9a-f]{64}/ });
  const docs = await view.open(`${base}/docs/a.txt`);
  t.equal(Buffer.concat(await docs.read(0, 1)).toString(), 'a', 'other files still read');
});

t.test('refs and batches: what C gets back names the same folder or file', async (t) => {
  const { view, backup, source } = await setup(t);
  const snap = await backup();
  const share = await view.lookup(`/snapshots/${snapshotFolderName(snap.snapshot.time)}${source}`);
  t.same(decodeDirRef(encodeDirRef(share.dir!)), share.dir);
  const virtual = { kind: 'virtual' as const, path: [Buffer.from('history'), Buffer.from([0xff, 0x41])] };
  t.same(decodeDirRef(encodeDirRef(virtual)), virtual);
  const children: ViewEntry[] = await view.list(share.dir!);
  const notes = children.findIndex((c) => c.name.toString() === 'notes.txt');
  t.same(decodeFileRef(encodeDirRef(share.dir!), notes), children[notes].file, 'a file in a stored folder: its folder and position');
  const batch = encodeBatch(children, share.dir);
  t.equal(batch.readUInt32LE(4), children.length);
  t.equal(batch.length, 16 + 152 * children.length + batch.readUInt32LE(12));
});
