/**
 * The real FUSE mount: every version of a generated NAS tree is the source as it was
 * (ls -lR line for line, diff -r, rsync -aHAX --checksum, byte-exact names), usual
 * tools work, writes are refused, metadata is answered without reaching JS once
 * known, a live mount sees new backups, damage is EIO for one file, and the mount
 * ends cleanly however it ends.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { mountView } from '../../src/fs/mount.js';
import { repositoryViewSource, SnapshotView } from '../../src/fs/vtree.js';
import { TreeBuilder } from '../../src/store/format/tree.js';
import { LocalBackend } from '../../src/store/backend/local.js';
import { MemoryBackend } from '../../src/store/backend/memory.js';
import { Repository } from '../../src/store/repository.js';
import { capture } from '../../src/sync/capture.js';
import { native } from '../../src/native.js';
import { strata, strataAsync } from '../kit/cli.js';
import { isMounted, mountRepository, unmountHelpers } from '../kit/mount.js';
import { damageBeyondParity, largestPack } from '../kit/packs.js';
import { Random } from '../kit/random.js';
import { mountSkip } from '../kit/real.js';
import { newRepository } from '../kit/repo.js';
import { tempDir } from '../kit/tmp.js';
import { nasTree, writeTree, type Node } from '../kit/tree.js';
import { until } from '../kit/wait.js';

const skip = mountSkip();

function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const env = { STRATA_REPOSITORY: path.join(dir, 'repo'), STRATA_PASSWORD: 'pw', STRATA_CACHE_DIR: path.join(dir, 'cache') };
  return { dir, env, source: path.join(dir, 'share') };
}

const run = (cmd: string, args: string[], cwd?: string) =>
  spawnSync(cmd, args, { encoding: 'latin1', maxBuffer: 1 << 28, cwd, env: { ...process.env, LC_ALL: 'C' } });

/** `ls -lR` of a folder as seen from inside it, with full times (nanoseconds). */
const lsLR = (dir: string): string => {
  const r = run('ls', ['-lR', '--time-style=full-iso', '.'], dir);
  if (r.status !== 0) throw new Error(`ls -lR ${dir}: ${r.stderr}`);
  return r.stdout;
};

/** A tree with folders of several sizes (a large folder outgrows one block) and the NAS edge cases. */
function versionTree(seed: number): Record<string, Node> {
  const many: Record<string, Node> = {};
  for (let i = 0; i < 400; i++) many[`entry-with-a-longish-name-${i}.txt`] = { type: 'file', content: Buffer.from(`${seed}:${i}`) };
  return { ...nasTree(seed), 'many': { type: 'dir', children: many }, 'few': { type: 'dir', children: { 'one': { type: 'dir', children: {} } } } };
}

t.test('every version in the mount is the source as it was', { skip }, async (t) => {
  const { dir, env, source } = setup(t);
  await fs.mkdir(source);
  await writeTree(source, versionTree(21));
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['backup', source], env).code, 0);
  const listings = [lsLR(source)];
  const v1 = path.join(dir, 'v1');
  execFileSync('cp', ['-a', source, v1]);
  await fs.writeFile(path.join(source, 'docs', 'doc-2.txt'), 'second version\n');
  await fs.rm(path.join(source, 'docs', 'doc-5.txt'));
  await fs.mkdir(path.join(source, 'few', 'two'));
  t.equal(strata(['backup', source], env).code, 0);
  listings.push(lsLR(source));
  const snaps = JSON.parse(strata(['snapshots', '--json'], env).stdout) as { id: string }[];
  const { mountpoint } = await mountRepository(t, env);

  // In the order the snapshots were made: folders are named by time, and by time and id when two share a second.
  const listed = (await fs.readdir(path.join(mountpoint, 'snapshots'))).filter((n) => n !== 'latest').sort();
  t.equal(listed.length, 2);
  const folders = snaps.map((s, i) => listed.find((n) => n.endsWith(s.id.slice(0, 8))) ?? listed[i]);
  for (const [i, expected] of [v1, source].entries()) {
    const inMount = path.join(mountpoint, 'snapshots', folders[i], source);
    t.equal(lsLR(inMount), listings[i], `ls -lR of version ${i + 1} is the source's, line for line (sizes, link counts, totals, ns times)`);
    const diff = run('diff', ['-r', '--no-dereference', expected, inMount]);
    // diff never compares special files; it says so even when both sides are the same kind.
    const differences = (diff.stdout + diff.stderr).split('\n').filter((l) => l && !/^File .* is a (.+) while file .* is a \1$/.test(l));
    t.same(differences, [], `diff -r finds nothing for ${snaps[i].id.slice(0, 8)}`);
    const rsync = run('rsync', ['-aHAX', '--dry-run', '--itemize-changes', '--checksum', `${expected}/`, `${inMount}/`]);
    t.equal(rsync.stdout + rsync.stderr, '', `rsync -aHAX --checksum finds nothing for ${snaps[i].id.slice(0, 8)}, non-UTF-8 names and link targets included`);
  }

  const latest = path.join(mountpoint, 'snapshots', 'latest', source);
  const [a, b] = await Promise.all(['link-a', 'link-b'].map((n) => fs.stat(path.join(latest, n))));
  t.equal(a.ino, b.ino, 'hard links share an inode number');
  t.equal(a.nlink, 2);
  const nanos = await fs.stat(path.join(latest, 'nanos'), { bigint: true });
  t.equal(nanos.mtimeNs, 1700000000123456789n, 'nanosecond mtimes');
  const inodes = run('find', [latest, '-printf', '%i %n\n']).stdout.trim().split('\n');
  const linked = inodes.filter((l) => !l.endsWith(' 1') && !l.endsWith(' 2')).length;
  t.ok(new Set(inodes.map((l) => l.split(' ')[0])).size >= inodes.length - 1 - linked, 'distinct inode numbers (but for the hard link)');
  t.equal(run('readlink', [path.join(latest, 'sym-bytes')]).stdout, 'caf\xe9\n', 'a link target that is not UTF-8 is its bytes');

  const copy = path.join(dir, 'copied');
  t.equal(run('cp', ['-a', latest, copy]).status, 0, 'cp -a copies a snapshot out');
  t.equal(run('rsync', ['-aHAX', '--dry-run', '--itemize-changes', '--checksum', `${source}/`, `${copy}/`]).stdout, '', 'the copy is exact');
  t.equal(run('tar', ['-cf', path.join(dir, 'snap.tar'), '-C', latest, '.']).status, 0, 'tar reads the snapshot');
  const found = run('find', [latest, '-name', 'leaf.txt']).stdout.trim();
  t.equal(found, path.join(latest, 'private/deep/deeper/leaf.txt'), 'find walks it');
});

t.test('sparse files: du is the allocation, holes answer SEEK_HOLE, cp --sparse=auto writes a sparse copy', { skip }, async (t) => {
  const { dir, env, source } = setup(t);
  await fs.mkdir(source);
  const size = 64 * 1024 * 1024;
  await writeTree(source, { 'disk.img': { type: 'sparse', size, data: [[4096, new Random(1).bytes(5000)], [40 * 1024 * 1024, new Random(2).bytes(70000)]] } });
  strata(['init'], env);
  strata(['backup', source], env);
  const { mountpoint } = await mountRepository(t, env);
  const file = path.join(mountpoint, 'snapshots', 'latest', source, 'disk.img');
  const du = (p: string) => Number(run('du', ['-k', p]).stdout.split('\t')[0]);
  t.equal(du(file), du(path.join(source, 'disk.img')), 'du shows the stored allocation');
  const handle = await fs.open(file);
  t.equal(native.seekData(handle.fd, 0), 4096, 'SEEK_DATA finds the first data');
  t.equal(native.seekHole(handle.fd, 4096), 12288, 'SEEK_HOLE the hole after it');
  t.equal(native.seekData(handle.fd, 12288), 40 * 1024 * 1024, 'and the next data');
  t.equal(native.seekHole(handle.fd, 40 * 1024 * 1024 + 10), 40 * 1024 * 1024 + 73728, 'the end of the last data');
  await handle.close();
  const copy = path.join(dir, 'copy.img');
  t.equal(run('cp', ['--sparse=auto', file, copy]).status, 0);
  t.ok(du(copy) < 1024, `the copy is sparse (${du(copy)} KiB allocated of ${size / 1024})`);
  t.ok((await fs.readFile(copy)).equals(await fs.readFile(path.join(source, 'disk.img'))), 'and holds the same bytes');
});

t.test('the mount is read-only everywhere', { skip }, async (t) => {
  const { env, source } = setup(t);
  await fs.mkdir(source);
  await fs.writeFile(path.join(source, 'f.txt'), 'x');
  strata(['init'], env);
  strata(['backup', source], env);
  const { mountpoint } = await mountRepository(t, env);
  const file = path.join(mountpoint, 'snapshots', 'latest', source, 'f.txt');
  for (const [what, action] of [
    ['write', () => fs.writeFile(file, 'y')],
    ['create', () => fs.writeFile(path.join(path.dirname(file), 'new.txt'), 'y')],
    ['unlink', () => fs.unlink(file)],
    ['rename', () => fs.rename(file, `${file}.2`)],
    ['chmod', () => fs.chmod(file, 0o777)],
    ['mkdir', () => fs.mkdir(path.join(mountpoint, 'snapshots', 'x'))],
    ['setxattr', async () => { execFileSync('setfattr', ['-n', 'user.x', '-v', '1', file], { stdio: 'pipe' }); }],
  ] as const) {
    await t.rejects(action(), { message: /EROFS|Read-only file system/ }, what);
  }
  t.equal(await fs.readFile(file, 'utf8'), 'x', 'reading still works');
});

t.test('a repository compressed with zstd reads back through the mount (the C data path)', { skip }, async (t) => {
  const { env, source } = setup(t);
  await fs.mkdir(source);
  const rnd = new Random(8);
  const files = { 'small.txt': rnd.text(20_000), 'large.log': rnd.text(6_000_000) };
  for (const [name, c] of Object.entries(files)) await fs.writeFile(path.join(source, name), c);
  t.equal(strata(['init', '--compression', 'zstd'], env).code, 0);
  t.equal(strata(['backup', source], env).code, 0);
  const { mountpoint } = await mountRepository(t, env);
  for (const [name, c] of Object.entries(files)) {
    t.ok((await fs.readFile(path.join(mountpoint, 'snapshots', 'latest', source, name))).equals(c), `${name} reads back`);
  }
});

t.test('16 readers at random offsets get the right bytes; a live mount sees a later backup at once', { skip }, async (t) => {
  const { env, source } = setup(t);
  await fs.mkdir(source);
  const rnd = new Random(5);
  const content = Array.from({ length: 6 }, (_, i) => rnd.bytes(300_000 + i * 900_000));
  for (const [i, c] of content.entries()) await fs.writeFile(path.join(source, `f${i}.bin`), c);
  strata(['init'], env);
  strata(['backup', source], env);
  const { mountpoint } = await mountRepository(t, env);
  const base = path.join(mountpoint, 'snapshots', 'latest', source);
  const wrong: string[] = [];
  await Promise.all(Array.from({ length: 16 }, async (_, reader) => {
    const pick = new Random(100 + reader);
    for (let n = 0; n < 40; n++) {
      const i = pick.int(content.length);
      const handle = await fs.open(path.join(base, `f${i}.bin`));
      const position = pick.int(content[i].length);
      const length = 1 + pick.int(300_000);
      const buf = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buf, 0, length, position);
      await handle.close();
      if (!buf.subarray(0, bytesRead).equals(content[i].subarray(position, position + length))) wrong.push(`f${i} at ${position}`);
    }
  }));
  t.same(wrong, [], '640 reads at random offsets are all right');

  t.equal((await fs.readdir(path.join(mountpoint, 'snapshots'))).length, 2, 'one snapshot and latest, listed (and cached by the kernel)');
  await fs.writeFile(path.join(source, 'after-mount.txt'), 'new');
  t.equal(strata(['backup', source], env).code, 0, 'a backup while the repository is mounted');
  t.ok(await until(async () => (await fs.readdir(path.join(mountpoint, 'snapshots'))).length === 3, 10_000), 'the new snapshot appears in the running mount');
  t.equal(await fs.readFile(path.join(mountpoint, 'snapshots', 'latest', source, 'after-mount.txt'), 'utf8'), 'new', 'latest moved to it');
  const roots = (await fs.readdir(mountpoint)).filter((n) => n.startsWith('@GMT-'));
  t.equal(roots.length, 2, 'and so did the @GMT folders');
});

t.test('a prune under a live mount: the forgotten snapshot goes (ENOENT), an open file never reads wrong bytes, the kept one reads right', { skip }, async (t) => {
  const { env, source } = setup(t);
  await fs.mkdir(source);
  const old = new Random(8).bytes(3_000_000);
  const kept = new Random(9).bytes(2_000_000);
  await fs.writeFile(path.join(source, 'old.bin'), old);
  await fs.writeFile(path.join(source, 'kept.bin'), kept);
  strata(['init'], env);
  const first = JSON.parse(strata(['backup', source, '--json'], env).stdout);
  await fs.rm(path.join(source, 'old.bin'));
  await fs.writeFile(path.join(source, 'new.txt'), 'new');
  t.equal(strata(['backup', source], env).code, 0);
  const { mountpoint } = await mountRepository(t, env);
  // The one that still holds old.bin (named by time, both may be of the same second).
  const firstDir = (await fs.readdir(path.join(mountpoint, 'snapshots'))).find((n) => n !== 'latest' && existsSync(path.join(mountpoint, 'snapshots', n, source, 'old.bin')))!;
  const handle = await fs.open(path.join(mountpoint, 'snapshots', firstDir, source, 'old.bin'));
  t.teardown(() => handle.close().catch(() => {}));
  const head = Buffer.alloc(1000);
  await handle.read(head, 0, head.length, 0);
  t.ok(head.equals(old.subarray(0, 1000)), 'an open file of the snapshot about to go reads right');

  // Repack everything (0% unused allowed), so the kept snapshot's data moves to new packs too.
  const pruned = strata(['forget', first.id, '--prune', '--grace', '2s', '--max-unused', '0%', '--json'], env);
  t.equal(pruned.code, 0, pruned.stderr);
  t.ok(JSON.parse(pruned.stdout).prune.deletedPacks > 0, 'prune deleted packs');
  t.ok(await until(async () => {
    try {
      await fs.stat(path.join(mountpoint, 'snapshots', firstDir));
      return false;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ENOENT';
    }
  }, 10_000), 'the forgotten snapshot is ENOENT in the running mount');
  const rest = Buffer.alloc(old.length - 1000);
  const read = await handle.read(rest, 0, rest.length, 1000).then(({ bytesRead }) => rest.subarray(0, bytesRead), (e: NodeJS.ErrnoException) => e.code);
  t.ok(read === 'EIO' || (Buffer.isBuffer(read) && read.equals(old.subarray(1000, 1000 + read.length))),
    `the open file reads right or fails, never wrong bytes (${Buffer.isBuffer(read) ? `${read.length} bytes` : read})`);
  const latest = path.join(mountpoint, 'snapshots', 'latest', source);
  t.ok((await fs.readFile(path.join(latest, 'kept.bin'))).equals(kept), 'the kept snapshot reads right from its new packs');
  t.equal(await fs.readFile(path.join(latest, 'new.txt'), 'utf8'), 'new');
});

t.test('metadata is answered in C: a second ls -lR reaches JS zero times, a first at most once per folder', { skip }, async (t) => {
  const { env, source } = setup(t);
  await fs.mkdir(source);
  // Folders of several sizes, user xattrs (Samba's), no ACLs: the common NAS share.
  const rnd = new Random(3);
  const tree: Record<string, Node> = {};
  for (let d = 0; d < 30; d++) {
    const files: Record<string, Node> = {};
    for (let f = 0; f < d * 7; f++) files[`file-${f}.txt`] = { type: 'file', content: rnd.text(rnd.int(3000)), xattrs: f % 3 ? {} : { 'user.DOSATTRIB': '0x20' } };
    tree[`folder-${d}`] = { type: 'dir', children: { ...files, 'sub': { type: 'dir', children: { 'leaf.txt': { type: 'file', content: Buffer.from('x') } } } } };
  }
  await writeTree(source, tree);
  strata(['init'], env);
  strata(['backup', source], env);
  const folders = Number(run('sh', ['-c', `find '${source}' -type d | wc -l`]).stdout.trim());
  const mount = await mountRepository(t, env);
  const base = path.join(mount.mountpoint, 'snapshots', 'latest', source);
  const before = await mount.stats();
  lsLR(base);
  const first = await mount.stats();
  // The folders above the share (/, snapshots, tmp, …) count as folders too.
  const above = source.split('/').length + 2;
  t.ok(first.jsLoad - before.jsLoad <= folders + above, `a first listing loads each folder once (${first.jsLoad - before.jsLoad} loads, ${folders + above} folders)`);
  t.equal(first.lookup - before.lookup <= above + 1, true, `no lookup per entry (${first.lookup - before.lookup} lookups)`);
  t.ok(first.getxattr - before.getxattr <= 4, `xattr calls no snapshot needs answer "not supported" once (${first.getxattr - before.getxattr})`);
  lsLR(base);
  const second = await mount.stats();
  t.equal(second.jsLoad + second.jsRead, first.jsLoad + first.jsRead, 'a second listing reaches JS zero times');
  t.equal(second.readdirplus, first.readdirplus, 'and the kernel lists from its cache');
});

t.test('a chunk damaged beyond its parity is EIO for that file only; unknown paths are ENOENT', { skip }, async (t) => {
  const { env, source } = setup(t);
  await fs.mkdir(source);
  await fs.writeFile(path.join(source, 'big.bin'), new Random(8).bytes(2_000_000));
  strata(['init'], env);
  strata(['backup', source], env);
  await fs.writeFile(path.join(source, 'small.txt'), 'fine');
  strata(['backup', source], env);
  const victim = await largestPack(env.STRATA_REPOSITORY);
  await damageBeyondParity(victim, 100);
  const { mountpoint, run: mount } = await mountRepository(t, env);
  const base = path.join(mountpoint, 'snapshots', 'latest', source);
  await t.rejects(fs.readFile(path.join(base, 'big.bin')), { code: 'EIO' });
  t.equal(await fs.readFile(path.join(base, 'small.txt'), 'utf8'), 'fine', 'other files read');
  await t.rejects(fs.stat(path.join(mountpoint, 'snapshots', '1999-01-01_00-00-00')), { code: 'ENOENT' });
  const logged = new RegExp(`big\\.bin: .*pack ${path.basename(victim)}`);
  t.ok(await until(() => logged.test(mount.output())), 'the mount logs the path and the damaged pack');
});

t.test('bit rot under a mount heals: the read gets the right bytes, the pack is written back, the mount says so', { skip }, async (t) => {
  const { env, source } = setup(t);
  await fs.mkdir(source);
  const content = new Random(9).bytes(2_000_000);
  await fs.writeFile(path.join(source, 'big.bin'), content);
  strata(['init'], env);
  strata(['backup', source], env);
  const victim = await largestPack(env.STRATA_REPOSITORY);
  const intact = await fs.readFile(victim);
  const rotten = Buffer.from(intact);
  rotten[1_500_000] ^= 0x08;
  await fs.writeFile(victim, rotten);
  const { mountpoint, run: mount } = await mountRepository(t, env);
  const file = path.join(mountpoint, 'snapshots', 'latest', source, 'big.bin');
  t.ok((await fs.readFile(file)).equals(content), 'the file reads right: the damaged chunk was healed');
  t.ok(await until(() => /pack [0-9a-f]{64} healed from its parity \(1 of \d+ shards rebuilt\) and written back/.test(mount.output())), 'the mount says what it healed');
  t.ok((await fs.readFile(victim)).equals(intact), 'and the pack is whole again on disk');
  spawnSync('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
  t.ok((await fs.readFile(file)).equals(content), 'read again (the pack opened anew)');
  t.equal(mount.output().match(/healed from its parity/g)?.length, 1, 'healed once');
});

t.test('a hostile repository cannot crash the mount or show anything outside a snapshot', { skip }, async (t) => {
  const { dir, env } = setup(t);
  strata(['init'], env);
  const repo = await Repository.open(new LocalBackend(env.STRATA_REPOSITORY), { password: 'pw', cacheDir: path.join(dir, 'cache-writer') });
  const base = { mode: 0o755, uid: 0, gid: 0, size: 0, mtime: [1, 0], atime: [1, 0], ctime: [1, 0], inode: 1, device: 1, links: 1 } as const;
  const chunk = repo.blobId(Buffer.from('x'));
  await repo.storeBlob('data', chunk, Buffer.from('x'));
  const hostile = await repo.saveTree(TreeBuilder.of([{ ...base, name: Buffer.from('a/b'), type: 'file', chunks: [chunk] }]));
  const odd = await repo.saveTree(TreeBuilder.of([
    { ...base, name: Buffer.from('huge'), type: 'file', size: 2 ** 50, chunks: [chunk], inode: 2 },
    { ...base, name: Buffer.from('missing'), type: 'dir', subtree: Buffer.alloc(32, 7), inode: 3 },
    { ...base, name: Buffer.from('nul-link'), type: 'symlink', target: Buffer.from('a\0b'), inode: 4 },
    { ...base, name: Buffer.from('ok.txt'), type: 'file', size: 1, chunks: [chunk], inode: 5 },
  ]));
  const root = await repo.saveTree(TreeBuilder.of([
    { ...base, name: Buffer.from('hostile'), type: 'dir', subtree: hostile.id, inode: 6 },
    { ...base, name: Buffer.from('odd'), type: 'dir', subtree: odd.id, inode: 7 },
  ]));
  await repo.flush();
  await repo.saveSnapshot({
    time: new Date().toISOString(), host: 'evil', user: 'x', paths: ['/'], tags: [], excludes: [], tree: root.id,
    summary: { files: 0, dirs: 0, others: 0, bytes: 0, filesRead: 0, bytesRead: 0, blobsAdded: 0, bytesAdded: 0, errors: [], seconds: 0 },
  });
  await repo.close();
  const { mountpoint, run: mount } = await mountRepository(t, env);
  const snap = path.join(mountpoint, 'snapshots', 'latest');
  await t.rejects(fs.readdir(path.join(snap, 'hostile')), { code: 'EIO' }, 'a tree with a name holding "/" is refused whole');
  t.equal((await fs.stat(path.join(snap, 'odd', 'huge'))).size, 2 ** 50, 'a huge size is shown as stored');
  const huge = await fs.open(path.join(snap, 'odd', 'huge'));
  await t.rejects(huge.read(Buffer.alloc(10), 0, 10, 0), { code: 'EIO' }, 'but its content does not add up: EIO');
  await huge.close();
  await t.rejects(fs.readdir(path.join(snap, 'odd', 'missing')), { code: 'EIO' }, 'a missing tree is EIO for that folder');
  await t.rejects(fs.readlink(path.join(snap, 'odd', 'nul-link')), { code: 'EIO' }, 'a link target with NUL is refused, never shown cut');
  t.equal(await fs.readFile(path.join(snap, 'odd', 'ok.txt'), 'utf8'), 'x', 'the rest reads');
  t.equal(mount.child.exitCode, null, 'the mount is still running');
});

t.test('the mount ends cleanly: SIGTERM, unmount from outside, kill -9', { skip }, async (t) => {
  const { env, source } = setup(t);
  await fs.mkdir(source);
  await fs.writeFile(path.join(source, 'f.txt'), 'x');
  strata(['init'], env);
  strata(['backup', source], env);
  const first = await mountRepository(t, env);
  first.run.child.kill('SIGTERM');
  t.equal((await first.run.done).code, 0, 'SIGTERM: exit code 0');
  t.notOk(isMounted(first.mountpoint), 'and unmounted');

  const second = await mountRepository(t, env);
  await fs.readdir(path.join(second.mountpoint, 'snapshots', 'latest', source));
  const started = Date.now();
  t.equal(run('fusermount3', ['-u', second.mountpoint]).status, 0, 'fusermount3 -u from outside');
  const ended = await Promise.race([second.run.done, new Promise<undefined>((r) => setTimeout(r, 2000))]);
  t.ok(ended && Date.now() - started < 2000, 'ends the process within 2 s');
  t.match(second.run.output(), /unmounted from outside/);

  const third = strataAsync(['mount', second.mountpoint], env);
  t.ok(await until(() => isMounted(second.mountpoint)), 'mounts again on the same folder');
  third.child.kill('SIGKILL');
  await third.done;
  t.ok(await until(() => !isMounted(second.mountpoint)), 'kill -9: the auto-unmount helper unmounts it');

  // The helper of a killed mount runs late (stopped here): the next mount must neither fail nor be unmounted by it.
  const mountsAt = async (run: ReturnType<typeof strataAsync>): Promise<boolean> => run.child.exitCode === null && /^mounted .* at /m.test(run.output())
    && (await fs.readdir(path.join(second.mountpoint, 'snapshots')).catch(() => [])).length === 2;
  const fourth = strataAsync(['mount', second.mountpoint], env);
  t.teardown(() => { fourth.child.kill('SIGKILL'); });
  t.ok(await until(() => mountsAt(fourth)), 'mounts once more');
  const [helper] = unmountHelpers(second.mountpoint);
  t.ok(helper, 'with an auto-unmount helper');
  process.kill(helper, 'SIGSTOP');
  fourth.child.kill('SIGKILL');
  await fourth.done;
  t.teardown(() => { try { process.kill(helper, 'SIGKILL'); } catch { /* ended by the next mount */ } });
  const fifth = strataAsync(['mount', second.mountpoint], env);
  t.teardown(() => { fifth.child.kill('SIGKILL'); });
  t.ok(await until(() => mountsAt(fifth)), 'the next mount recovers the stale mount point', { output: fifth.output() });
  t.ok(await until(() => !unmountHelpers(second.mountpoint).includes(helper)), 'and ends the late helper, which would unmount it');
  t.ok(await mountsAt(fifth), 'the new mount stays');
  fifth.child.kill('SIGINT');
  const last = await fifth.done;
  t.equal(last.code, 0, 'SIGINT: exit code 0');
});

t.test('mount point problems get clear errors', { skip }, async (t) => {
  const { env, dir, source } = setup(t);
  await fs.mkdir(source);
  strata(['init'], env);
  const missing = strata(['mount', path.join(dir, 'nope')], env);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /does not exist/);
  const busy = path.join(dir, 'busy');
  await fs.mkdir(busy);
  await fs.writeFile(path.join(busy, 'x'), 'x');
  const notEmpty = strata(['mount', busy], env);
  t.equal(notEmpty.code, 1);
  t.match(notEmpty.stderr, /not empty/);
});

t.test('a repository that disappears under a live mount gives errors, not a hang', { skip }, async (t) => {
  const { env, source } = setup(t);
  await fs.mkdir(source);
  await fs.writeFile(path.join(source, 'f.bin'), new Random(9).bytes(100_000));
  strata(['init'], env);
  strata(['backup', source], env);
  const { mountpoint, run: mount } = await mountRepository(t, env);
  const file = path.join(mountpoint, 'snapshots', 'latest', source, 'f.bin');
  await fs.stat(file); // resolved while the repository is there
  await fs.rm(env.STRATA_REPOSITORY, { recursive: true });
  const started = Date.now();
  await t.rejects(fs.readFile(file), { code: 'EIO' }, 'its content is gone: EIO');
  t.ok(Date.now() - started < 5000, 'answered at once');
  t.ok(await until(async () => (await fs.readdir(path.join(mountpoint, 'snapshots'))).length === 0, 10_000), 'the snapshots are gone from the listing');
  mount.child.kill('SIGTERM');
  t.equal((await mount.done).code, 0, 'and the mount still stops cleanly');
});

t.test('a repository not on a local disk: file data comes through JS, pushed ahead for a reader of a folder', { skip }, async (t) => {
  const { dir } = setup(t);
  const { repo } = await newRepository(t, new MemoryBackend());
  const source = path.join(dir, 'share');
  await fs.mkdir(source);
  const rnd = new Random(12);
  const files = Array.from({ length: 30 }, (_, i) => rnd.bytes(1000 + i * 5000));
  for (const [i, data] of files.entries()) await fs.writeFile(path.join(source, `f${String(i).padStart(2, '0')}.bin`), data);
  await fs.writeFile(path.join(source, 'big.bin'), rnd.bytes(6_000_000));
  await capture(repo, { paths: [source] });
  const mountpoint = path.join(dir, 'mnt');
  await fs.mkdir(mountpoint);
  // In this process: every call below is asynchronous, so the JS thread stays free to answer.
  const mounted = await mountView(new SnapshotView(repositoryViewSource(repo)), mountpoint);
  t.teardown(() => mounted.unmount());
  const base = path.join(mountpoint, 'snapshots', 'latest', source);
  t.equal((await fs.readdir(base)).length, files.length + 1, 'listed first, as a walker does');
  for (const [i, data] of files.entries()) {
    if (!(await fs.readFile(path.join(base, `f${String(i).padStart(2, '0')}.bin`))).equals(data)) t.fail(`f${i} differs`);
  }
  const stats = mounted.stats()!;
  t.equal(stats.opened, 0, 'nothing was opened in C');
  t.ok(stats.pushed >= files.length - 1, `the files after the first were pushed ahead (${stats.pushed})`);
  t.ok(stats.jsRead > 0 && stats.jsRead <= 3, `so only the first needed read calls (${stats.jsRead})`);
  t.ok((await fs.readFile(path.join(base, 'big.bin'))).equals(await fs.readFile(path.join(source, 'big.bin'))), 'a large file reads right');
  await mounted.unmount();
  t.notOk(isMounted(mountpoint), 'unmounted');
});
