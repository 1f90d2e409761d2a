/**
 * Check finds what was done to a repository behind its back and says what it
 * costs: a replaced or swapped pack even without reading data, flipped bits with
 * --read-data, a lost snapshot record among the unreached trees; each problem
 * names the snapshots and files it affects. Rolling subsets read every pack once.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { LocalBackend } from '../../src/store/backend/local.js';
import { Repository } from '../../src/store/repository.js';
import { capture } from '../../src/sync/capture.js';
import { check, parseSubset, type CheckedRepository, type CheckResult } from '../../src/sync/check.js';
import { randomStream } from '../kit/random.js';
import { newRepository, PASSWORD } from '../kit/repo.js';

const PACK_SIZE = 128 * 1024;

/** Two snapshots of a share whose files (60 KiB, incompressible) fill packs of 128 KiB: several data packs. */
async function setup(t: Parameters<typeof newRepository>[0]) {
  const made = await newRepository(t, undefined, { packSize: PACK_SIZE, parityPercent: 0 }); // damage shows as damage: nothing heals
  const source = path.join(made.dir, 'share');
  await fs.mkdir(path.join(source, 'docs'), { recursive: true });
  for (let i = 0; i < 8; i++) await fs.writeFile(path.join(source, 'docs', `f${i}.bin`), randomStream(100 + i, 60 * 1024));
  const first = await capture(made.repo, { paths: [source] });
  await fs.writeFile(path.join(source, 'new.txt'), 'added later');
  const second = await capture(made.repo, { paths: [source], parent: first });
  await made.repo.flush();
  return { ...made, source, first, second, repoDir: path.join(made.dir, 'repo') };
}

/** The packs that hold only file chunks, found by their trailers, largest first. */
async function dataPacks(repo: Repository): Promise<string[]> {
  const packs: { id: string; size: number }[] = [];
  for await (const p of repo.listPacks()) if ((await repo.packTrailer(p.id)).every((b) => b.type === 'data')) packs.push(p);
  return packs.sort((a, b) => b.size - a.size).map((p) => p.id);
}

const objects = (r: CheckResult): string[] => r.problems.map((p) => p.object).sort();

t.test('an intact repository checks clean, plainly and reading every byte', async (t) => {
  const { repo } = await setup(t);
  const plain = await check(repo);
  t.same(plain.problems, []);
  t.equal(plain.snapshots, 2);
  t.equal(plain.packsRead, 0, 'a plain check reads no pack whole');
  const full = await check(repo, { readData: true });
  t.same(full.problems, []);
  t.equal(full.packsRead, full.packs);
  t.ok(full.blobsRead >= 8 * 2, 'every chunk was opened');
  t.same(full.unreached, { trees: 0, tops: 0, examples: [] }, 'every tree is reached');
});

t.test('two packs swapped: a plain check names both and the files they take from both snapshots', async (t) => {
  const { repo, repoDir } = await setup(t);
  const [a, b] = await dataPacks(repo);
  t.ok(a && b, 'two data packs to swap');
  const file = (id: string) => path.join(repoDir, 'packs', id.slice(0, 2), id);
  const [bytesA, bytesB] = [await fs.readFile(file(a)), await fs.readFile(file(b))];
  await fs.writeFile(file(a), bytesB);
  await fs.writeFile(file(b), bytesA);

  const result = await check(repo);
  t.same(objects(result), [`pack ${a}`, `pack ${b}`].sort());
  for (const p of result.problems) {
    t.match(p.message, /replaced or swapped/);
    t.equal(p.snapshots.length, 2, 'both snapshots hold the files');
    t.ok(p.filesAffected >= 2 && p.files.every((f) => /^[0-9a-f]{8}:.*\/docs\/f\d\.bin$/.test(f)), p.files.join(' '));
  }
  const read = await check(repo, { readData: true });
  t.same(objects(read), [`pack ${a}`, `pack ${b}`].sort(), 'reading the data names the same packs');
  t.match(read.problems[0].message, /no longer match its name/);
});

t.test('a flipped bit is found by --read-data, named by pack, with the file it damages', async (t) => {
  const { repo, repoDir } = await setup(t);
  const [victim] = await dataPacks(repo);
  const victimFile = path.join(repoDir, 'packs', victim.slice(0, 2), victim);
  const bytes = await fs.readFile(victimFile);
  bytes[100] ^= 0x01;
  await fs.writeFile(victimFile, bytes);
  t.same((await check(repo)).problems, [], 'a plain check does not read data (its trailer is intact)');
  const result = await check(repo, { readData: true });
  t.same(objects(result), [`pack ${victim}`]);
  const [p] = result.problems;
  t.match(p.message, /no longer match its name \(1 of \d+ blobs fail to open\)/);
  t.equal(p.filesAffected, 2, 'one file, in each of the two snapshots');
  t.equal(new Set(p.files.map((f) => f.slice(f.indexOf(':')))).size, 1, 'the same file both times');
});

t.test('a deleted pack and a deleted tree are named, the tree with its folder', async (t) => {
  const { repo, repoDir, dir } = await setup(t);
  const [lost] = await dataPacks(repo);
  await fs.rm(path.join(repoDir, 'packs', lost.slice(0, 2), lost));
  const result = await check(repo);
  t.same(objects(result), [`pack ${lost}`]);
  t.match(result.problems[0].message, /missing/);

  // Every tree pack gone (a fresh index, so nothing is known of them): each snapshot's top tree is named.
  for await (const { id } of repo.listPacks()) {
    if ((await repo.packTrailer(id)).some((b) => b.type === 'tree')) await fs.rm(path.join(repoDir, 'packs', id.slice(0, 2), id));
  }
  const fresh = await Repository.open(new LocalBackend(repoDir), { password: PASSWORD, cacheDir: path.join(dir, 'fresh-cache'), readOnly: true });
  t.teardown(() => fresh.close());
  const trees = await check(fresh);
  t.equal(trees.problems.length, 2, 'the two top trees');
  t.ok(trees.problems.every((p) => p.object.startsWith('tree ') && p.files.length === 1 && p.files[0].endsWith(':/')), JSON.stringify(trees.problems));
});

t.test('a deleted snapshot record shows as an unreached top tree, not as damage', async (t) => {
  const { repo, second, repoDir } = await setup(t);
  await fs.rm(path.join(repoDir, 'snapshots', second.id));
  const result = await check(repo);
  t.same(result.problems, []);
  t.equal(result.unreached.tops, 1, 'the lost snapshot\'s top tree');
  t.ok(result.unreached.trees >= 1);
  t.ok(result.unreached.examples[0].names.length > 0, `its names are shown: ${result.unreached.examples[0].names}`);
  t.equal(result.unreached.examples[0].tree, second.snapshot.tree.toString('hex'));
});

t.test('rolling subsets: parts 1/3, 2/3 and 3/3 read every pack exactly once; a share reads about that share', async (t) => {
  const { repo } = await setup(t);
  let read = 0;
  let packs = 0;
  for (let part = 1; part <= 3; part++) {
    const r = await check(repo, { readData: true, subset: { part, of: 3 } });
    read += r.packsRead;
    packs = r.packs;
  }
  t.equal(read, packs, `${packs} packs, each read once`);
  const half = await check(repo, { readData: true, subset: parseSubset('50%') });
  t.equal(half.packsRead, Math.ceil(packs / 2));
  t.same(parseSubset('2/5'), { part: 2, of: 5 });
  for (const bad of ['0/5', '6/5', '1/0', '0%', '101%', 'half']) t.throws(() => parseSubset(bad), { code: 'USAGE' }, bad);
});

t.test('a backup that lands while check runs: its packs are looked for again rather than called missing', async (t) => {
  const { repo, source, second, dir, repoDir } = await setup(t);
  const reader = await Repository.open(new LocalBackend(repoDir), { password: PASSWORD, cacheDir: path.join(dir, 'reader-cache'), readOnly: true });
  t.teardown(() => reader.close());
  await fs.writeFile(path.join(source, 'docs', 'later.bin'), randomStream(999, 200 * 1024));
  // The reader as check sees it, with the backup landing between the pack listing and the snapshots' walk.
  let landed = false;
  const between: CheckedRepository = {
    verifyHeaders: () => reader.verifyHeaders(), listPacks: () => reader.listPacks(), packTrailer: (id) => reader.packTrailer(id), verifyPack: (id) => reader.verifyPack(id),
    indexedBlobsOf: (p) => reader.indexedBlobsOf(p), locate: (id) => reader.locate(id), lostPackOf: (id) => reader.lostPackOf(id),
    indexedBlobs: () => reader.indexedBlobs(), loadTree: (id) => reader.loadTree(id), syncIndex: () => reader.syncIndex(),
    async listSnapshots(onWarning) {
      if (!landed) await capture(repo, { paths: [source], parent: second });
      landed = true;
      return reader.listSnapshots(onWarning);
    },
  };
  const result = await check(between);
  t.ok(landed);
  t.same(result.problems, []);
  t.equal(result.snapshots, 3, 'the new snapshot was checked too');
});

t.test('massive damage: every file counted, 1,000 named, memory bounded by what is named', async (t) => {
  const made = await newRepository(t, undefined, { parityPercent: 0 });
  const source = path.join(made.dir, 'share');
  for (let d = 0; d < 3; d++) {
    await fs.mkdir(path.join(source, `d${d}`, 'deeper'), { recursive: true });
    for (let i = 0; i < 500; i++) await fs.writeFile(path.join(source, `d${d}`, i % 2 ? 'deeper' : '', `f${i}`), `file ${d}/${i}`);
  }
  await capture(made.repo, { paths: [source] });
  await made.repo.flush();
  for (const pack of await dataPacks(made.repo)) await made.backend.remove(`packs/${pack.slice(0, 2)}/${pack}`);
  const result = await check(made.repo);
  t.equal(result.problems.length, 1, 'one problem: the lost data pack');
  t.equal(result.problems[0]!.filesAffected, 1500, 'every file it costs is counted');
  t.equal(result.problems[0]!.files.length, 1000, 'the first 1,000 are named');
  t.equal(new Set(result.problems[0]!.files).size, 1000, 'each once');
});
