/**
 * Prune: space comes back, what snapshots need never goes, and backups never wait.
 * Deletion is two-phase: a schedule first, the packs only once the backups that were
 * running when it appeared are done and the grace period has passed.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { prune, type PruneOptions } from '../../src/store/prune.js';
import type { Repository } from '../../src/store/repository.js';
import { Repository as Repo } from '../../src/store/repository.js';
import { capture } from '../../src/sync/capture.js';
import { check } from '../../src/sync/check.js';
import { packBytes, packFiles } from '../kit/packs.js';
import { randomStream } from '../kit/random.js';
import { PASSWORD, newRepository } from '../kit/repo.js';
import { tempDir } from '../kit/tmp.js';
import { restoredDifferences } from '../kit/tree.js';

const packSizes = async (repo: string) => Promise.all((await packFiles(repo)).map(async (f) => (await fs.stat(f)).size));

const NOW: PruneOptions = { graceMs: 0, wait: true, pollMs: 20 };
const PACK_SIZE = 256 * 1024;

/** A share of `files` incompressible files of 40 KiB, seeded. */
async function writeShare(dir: string, seed: number, files = 24): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  for (let i = 0; i < files; i++) await fs.writeFile(path.join(dir, `f${i}.bin`), randomStream(seed * 1000 + i, 40 * 1024));
}

const backup = (repo: Repository, source: string, parent?: Awaited<ReturnType<typeof capture>>) =>
  capture(repo, { paths: [source], parent });

async function setup(t: Parameters<typeof tempDir>[0]) {
  const made = await newRepository(t, undefined, { packSize: PACK_SIZE, parityPercent: 0 }); // damage shows as damage: nothing heals
  const source = path.join(made.dir, 'share');
  return { ...made, source, repoDir: path.join(made.dir, 'repo') };
}

t.test('forgetting a snapshot and pruning frees its space; what is kept restores byte for byte and checks clean', async (t) => {
  const { repo, source, repoDir, dir } = await setup(t);
  await writeShare(source, 1);
  const first = await backup(repo, source);
  // Half the files replaced: the second snapshot shares the other half with the first.
  for (let i = 0; i < 12; i++) await fs.writeFile(path.join(source, `f${i}.bin`), randomStream(9000 + i, 40 * 1024));
  const second = await backup(repo, source, first);
  const reader = await Repo.open(repo.backend, { password: PASSWORD, cacheDir: path.join(dir, 'reader-cache'), readOnly: true });
  t.teardown(() => reader.close());
  const before = await packBytes(repoDir);

  const dry = await prune(repo, { ...NOW, dryRun: true });
  t.equal(dry.unusedBlobs, 0, 'nothing is unused while both snapshots exist');
  await repo.removeSnapshot(first.id);
  const planned = await prune(repo, { ...NOW, dryRun: true });
  t.equal(await packBytes(repoDir), before, 'a dry run deletes nothing');
  t.ok(planned.unusedBytes >= 12 * 40 * 1024, 'the 12 files only the forgotten snapshot held are unused');

  const result = await prune(repo, NOW);
  t.ok(result.deletedPacks > 0 && result.freedBytes > 0, `packs deleted (${result.deletedPacks}), bytes freed (${result.freedBytes})`);
  t.same(result.pending, [], 'no schedule is left standing');
  const after = await packBytes(repoDir);
  t.ok(after < before * 0.7, `the repository shrank from ${before} to ${after} bytes`);
  t.equal(await restoredDifferences(repo, second.snapshot.tree, source, path.join(dir, 'out')), '', 'the kept snapshot restores whole');
  t.same((await check(repo, { readData: true })).problems, [], 'check --read-data finds no problem');
  t.equal((await prune(repo, NOW)).scheduledPacks, 0, 'a second prune finds nothing to do');

  // A reader that opened before the prune learns of the deletions and reads the copies.
  await reader.refresh();
  t.equal(await restoredDifferences(reader, second.snapshot.tree, source, path.join(dir, 'out2')), '', 'a reader opened before the prune restores whole');
  const fresh = await Repo.open(repo.backend, { password: PASSWORD, cacheDir: path.join(dir, 'fresh-cache') });
  t.teardown(() => fresh.close());
  t.same((await check(fresh)).problems, [], 'an index rebuilt from the packs agrees');
});

t.test('deletion waits for the locks held when it was scheduled: backups keep running and keep their data', async (t) => {
  const { repo, source, dir } = await setup(t);
  await writeShare(source, 2);
  const first = await backup(repo, source);
  // Another process's backup: it opened and took its lock before the prune, so it knows nothing of the schedule.
  const other = await Repo.open(repo.backend, { password: PASSWORD, cacheDir: path.join(dir, 'other-cache') });
  t.teardown(() => other.close());
  const otherLock = await other.lock('backup');
  await repo.removeSnapshot(first.id);
  const scheduled = await prune(repo, { ...NOW, wait: false });
  t.ok(scheduled.scheduledPacks > 0, 'the forgotten snapshot\'s packs are scheduled');
  t.equal(scheduled.deletedPacks, 0, 'nothing is deleted at once');

  // That backup finishes with the same files: it refers to blobs in the condemned packs.
  const late = await capture(other, { paths: [source] });
  t.ok(late.snapshot.summary.bytesAdded < 40 * 1024, 'the running backup stored no file again (it deduplicated against what is condemned)');
  const waiting = await prune(repo, { ...NOW, wait: false });
  t.equal(waiting.deletedPacks, 0, 'while its lock is held, the schedule stands');
  await otherLock.release();

  const done = await prune(repo, { ...NOW, wait: false });
  t.ok(done.deletedPacks > 0, 'once it is released, the packs go');
  t.ok(done.rescuedBlobs >= 24, `the blobs that backup used were copied out first (${done.rescuedBlobs})`);
  t.equal(await restoredDifferences(repo, late.snapshot.tree, source, path.join(dir, 'out')), '', 'its snapshot restores whole');
  t.same((await check(repo, { readData: true })).problems, []);
});

t.test('a backup that starts after a schedule stores condemned data again instead of referring to it', async (t) => {
  const { repo, source, dir } = await setup(t);
  await writeShare(source, 3);
  const first = await backup(repo, source);
  await repo.removeSnapshot(first.id);
  await prune(repo, { ...NOW, wait: false });
  const lock = await repo.lock('backup'); // as every backup does: learns of the schedule
  const again = await backup(repo, source);
  await lock.release();
  t.equal(again.snapshot.summary.filesRead, 24, 'the files are read again');
  t.ok(again.snapshot.summary.bytesAdded >= 24 * 40 * 1024, 'and stored again, in new packs');
  const done = await prune(repo, { ...NOW, wait: false });
  t.equal(done.rescuedBlobs, 0, 'nothing needed rescuing');
  t.ok(done.deletedPacks > 0);
  t.equal(await restoredDifferences(repo, again.snapshot.tree, source, path.join(dir, 'out')), '');
});

t.test('partly used packs are repacked past --max-unused; small packs are merged', async (t) => {
  const { repo, source, dir, repoDir } = await setup(t);
  await writeShare(source, 4, 60); // 2.4 MiB in ~10 packs of 256 KiB
  const first = await backup(repo, source);
  for (let i = 0; i < 60; i += 3) await fs.rm(path.join(source, `f${i}.bin`)); // a third of every pack unused
  const second = await backup(repo, source, first);
  await repo.removeSnapshot(first.id);
  const lenient = await prune(repo, { ...NOW, maxUnused: 0.5, dryRun: true });
  const result = await prune(repo, { ...NOW, maxUnused: 0.05 });
  t.ok(result.repackedPacks >= lenient.repackedPacks + 5, `packs a third unused are repacked (${result.repackedPacks}; ${lenient.repackedPacks} with 50% allowed)`);
  const sizes = (await packSizes(repoDir)).filter((size) => size < PACK_SIZE / 4);
  t.ok(sizes.length <= 2, `small packs were merged (${sizes.length} left: the last of each kind)`);
  t.ok(result.copiedBlobs >= 30, `their used blobs were copied (${result.copiedBlobs})`);
  t.equal(await restoredDifferences(repo, second.snapshot.tree, source, path.join(dir, 'out')), '');
  t.same((await check(repo, { readData: true })).problems, []);
});

t.test('one prune at a time; an unreadable tree stops prune before anything is deleted', async (t) => {
  const { repo, source, repoDir } = await setup(t);
  await writeShare(source, 5, 4);
  const first = await backup(repo, source);
  const lock = await repo.lock('prune', { alone: true });
  await t.rejects(prune(repo, NOW), { code: 'LOCKED', message: /locked by "prune"/ });
  await lock.release();

  // Damage the pack holding the snapshot's trees.
  const treePack = repo.locate(first.snapshot.tree)!.pack;
  const file = path.join(repoDir, 'packs', treePack.slice(0, 2), treePack);
  const bytes = await fs.readFile(file);
  bytes[repo.locate(first.snapshot.tree)!.offset + 20] ^= 0xff;
  await fs.writeFile(file, bytes);
  const before = await packBytes(repoDir);
  await t.rejects(prune(repo, NOW), { code: 'CORRUPT', message: /prune stopped, nothing was deleted/ });
  t.equal(await packBytes(repoDir), before);
});

t.test('two backups of the same data at once store it twice; prune gives back one copy', async (t) => {
  const { repo, source, repoDir, dir } = await setup(t);
  await writeShare(source, 3);
  const other = await Repo.open(repo.backend, { password: PASSWORD, cacheDir: path.join(dir, 'other-cache') });
  t.teardown(() => other.close());
  const [a, b] = await Promise.all([backup(repo, source), backup(other, source)]);
  const twice = await packBytes(repoDir);
  t.ok(twice > 2 * 24 * 40 * 1024, `both stored the 24 files (${twice} bytes)`);
  const result = await prune(repo, NOW);
  const once = await packBytes(repoDir);
  t.ok(once < 1.1 * 24 * 40 * 1024 + 64 * 1024, `one copy is left (${once} bytes, ${result.freedBytes} freed)`);
  t.equal(await restoredDifferences(repo, a.snapshot.tree, source, path.join(dir, 'out-a')), '');
  t.equal(await restoredDifferences(repo, b.snapshot.tree, source, path.join(dir, 'out-b')), '');
  t.same((await check(repo, { readData: true })).problems, []);
});
