/**
 * The real FUSE mount: every snapshot of a generated NAS tree is identical to
 * the source as it was (diff -r, rsync -aHAX --checksum), usual tools work,
 * writes are refused, a live mount sees new backups, damage is EIO for one file.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { snapshotFolderName } from '../../src/fs/vtree.js';
import { strata } from '../kit/cli.js';
import { mountRepository } from '../kit/mount.js';
import { largestPack } from '../kit/packs.js';
import { Random } from '../kit/random.js';
import { canMount, tempDir } from '../kit/tmp.js';
import { nasTree, utf8Only, writeTree } from '../kit/tree.js';

const skip = canMount() ? false : 'mounting is not permitted here (needs root and /dev/fuse)';

function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const env = { STRATA_REPOSITORY: path.join(dir, 'repo'), STRATA_PASSWORD: 'pw', STRATA_CACHE_DIR: path.join(dir, 'cache') };
  return { dir, env, source: path.join(dir, 'share') };
}

const run = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'latin1', maxBuffer: 1 << 28 });

t.test('every snapshot in the mount is the source as it was', { skip }, async (t) => {
  const { dir, env, source } = setup(t);
  await fs.mkdir(source);
  await writeTree(source, utf8Only(nasTree(21)));
  t.equal(strata(['init'], env).code, 0);
  t.equal(strata(['backup', source], env).code, 0);
  const v1 = path.join(dir, 'v1');
  execFileSync('cp', ['-a', source, v1]);
  await fs.writeFile(path.join(source, 'docs', 'doc-2.txt'), 'second version\n');
  await fs.rm(path.join(source, 'docs', 'doc-5.txt'));
  t.equal(strata(['backup', source], env).code, 0);
  const snaps = JSON.parse(strata(['snapshots', '--json'], env).stdout);
  const { mountpoint } = await mountRepository(t, env);

  const listed = await fs.readdir(path.join(mountpoint, 'snapshots'));
  // Two snapshots in the same second are told apart by a short id.
  const folderOf = (s: { time: string; id: string }) => listed.find((n) => n === snapshotFolderName(s.time) || n === `${snapshotFolderName(s.time)}-${s.id.slice(0, 8)}`)!;
  for (const [snap, expected] of [[snaps[0], v1], [snaps[1], source]]) {
    const inMount = path.join(mountpoint, 'snapshots', folderOf(snap), source);
    const diff = run('diff', ['-r', '--no-dereference', expected, inMount]);
    // diff never compares special files; it says so even when both sides are the same kind.
    const differences = (diff.stdout + diff.stderr).split('\n').filter((l) => l && !/^File .* is a (.+) while file .* is a \1$/.test(l));
    t.same(differences, [], `diff -r finds nothing for ${snap.id.slice(0, 8)}`);
    const rsync = run('rsync', ['-aHAX', '--dry-run', '--itemize-changes', '--checksum', `${expected}/`, `${inMount}/`]);
    t.equal(rsync.stdout + rsync.stderr, '', `rsync -aHAX --checksum finds nothing for ${snap.id.slice(0, 8)}`);
  }

  const latest = path.join(mountpoint, 'snapshots', 'latest', source);
  const [a, b] = await Promise.all(['link-a', 'link-b'].map((n) => fs.stat(path.join(latest, n))));
  t.equal(a.ino, b.ino, 'hard links share an inode number');
  t.equal(a.nlink, 2);

  const copy = path.join(dir, 'copied');
  t.equal(run('cp', ['-a', latest, copy]).status, 0, 'cp -a copies a snapshot out');
  t.equal(run('rsync', ['-aHAX', '--dry-run', '--itemize-changes', '--checksum', `${source}/`, `${copy}/`]).stdout, '', 'the copy is exact');
  t.equal(run('tar', ['-cf', path.join(dir, 'snap.tar'), '-C', latest, '.']).status, 0, 'tar reads the snapshot');
  const found = run('find', [latest, '-name', 'leaf.txt']).stdout.trim();
  t.equal(found, path.join(latest, 'private/deep/deeper/leaf.txt'), 'find walks it');
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

t.test('concurrent readers get the right bytes; a live mount sees a later backup', { skip }, async (t) => {
  const { env, source } = setup(t);
  await fs.mkdir(source);
  const rnd = new Random(5);
  const content = Array.from({ length: 6 }, (_, i) => rnd.bytes(300_000 + i * 400_000));
  for (const [i, c] of content.entries()) await fs.writeFile(path.join(source, `f${i}.bin`), c);
  strata(['init'], env);
  strata(['backup', source], env);
  const { mountpoint } = await mountRepository(t, env);
  const base = path.join(mountpoint, 'snapshots', 'latest', source);
  const reads = await Promise.all(content.map((_, i) => fs.readFile(path.join(base, `f${i}.bin`))));
  t.ok(reads.every((r, i) => r.equals(content[i])), 'six files read at once are all right');

  await fs.writeFile(path.join(source, 'after-mount.txt'), 'new');
  t.equal(strata(['backup', source], env).code, 0, 'a backup while the repository is mounted');
  const deadline = Date.now() + 10_000;
  let seen = false;
  while (!seen && Date.now() < deadline) {
    const names = await fs.readdir(path.join(mountpoint, 'snapshots'));
    seen = names.length === 3;
    if (!seen) await new Promise((r) => setTimeout(r, 200));
  }
  t.ok(seen, 'the new snapshot appears in the running mount');
  const names = (await fs.readdir(path.join(mountpoint, 'snapshots'))).filter((n) => n !== 'latest').sort();
  t.equal(await fs.readFile(path.join(mountpoint, 'snapshots', names.at(-1)!, source, 'after-mount.txt'), 'utf8'), 'new');
});

t.test('a damaged chunk is EIO for that file only; unknown paths are ENOENT', { skip }, async (t) => {
  const { env, source } = setup(t);
  await fs.mkdir(source);
  await fs.writeFile(path.join(source, 'big.bin'), new Random(8).bytes(2_000_000));
  strata(['init'], env);
  strata(['backup', source], env);
  await fs.writeFile(path.join(source, 'small.txt'), 'fine');
  strata(['backup', source], env);
  const victim = await largestPack(env.STRATA_REPOSITORY);
  const bytes = await fs.readFile(victim);
  bytes[100] ^= 1;
  await fs.writeFile(victim, bytes);
  const { mountpoint, run: mount } = await mountRepository(t, env);
  const base = path.join(mountpoint, 'snapshots', 'latest', source);
  await t.rejects(fs.readFile(path.join(base, 'big.bin')), { code: 'EIO' });
  t.equal(await fs.readFile(path.join(base, 'small.txt'), 'utf8'), 'fine', 'other files read');
  await t.rejects(fs.stat(path.join(mountpoint, 'snapshots', '1999-01-01_00-00-00')), { code: 'ENOENT' });
  await new Promise((r) => setTimeout(r, 200));
  t.match(mount.output(), new RegExp(`big\\.bin: .*pack ${path.basename(victim)}`), 'the mount logs the path and the damaged pack');
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
  const { mountpoint } = await mountRepository(t, env);
  const file = path.join(mountpoint, 'snapshots', 'latest', source, 'f.bin');
  await fs.stat(file); // resolved while the repository is there
  await fs.rm(env.STRATA_REPOSITORY, { recursive: true });
  const started = Date.now();
  await t.rejects(fs.readFile(file), { code: 'EIO' }, 'its content is gone: EIO');
  t.ok(Date.now() - started < 5000, 'answered at once');
  await new Promise((r) => setTimeout(r, 2500)); // past the refresh window
  t.same(await fs.readdir(path.join(mountpoint, 'snapshots')), [], 'the snapshots are gone from the listing');
});
