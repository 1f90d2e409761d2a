import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { LocalBackend } from '../../src/store/backend/local.js';
import { MemoryBackend } from '../../src/store/backend/memory.js';
import { packObjectName } from '../../src/store/pack.js';
import { Repository } from '../../src/store/repository.js';
import { readSmallFile } from '../../src/sync/local-fs.js';
import { damageBeyondParity } from '../kit/packs.js';
import { Random } from '../kit/random.js';
import { CHEAP_KDF, newRepository, PASSWORD } from '../kit/repo.js';
import { tempDir } from '../kit/tmp.js';

async function storeSome(repo: Repository, seed: number, count: number, size: number): Promise<{ id: Buffer; data: Buffer }[]> {
  const rnd = new Random(seed);
  const blobs = [];
  for (let i = 0; i < count; i++) {
    const data = i % 2 ? rnd.bytes(size) : rnd.text(size);
    const id = repo.blobId(data);
    await repo.storeBlob('data', id, data);
    blobs.push({ id, data });
  }
  await repo.flush();
  return blobs;
}

async function onlyPack(backend: LocalBackend): Promise<string> {
  for await (const o of backend.list('packs/')) return path.join(backend.location, o.name);
  throw new Error('no pack');
}

t.test('opening: wrong password, no repository, second init', async (t) => {
  const { backend } = await newRepository(t);
  await t.rejects(Repository.open(backend, { password: 'wrong', cacheDir: tempDir(t) }), { code: 'WRONG_PASSWORD', message: /wrong password/ });
  await t.rejects(Repository.open(backend, { cacheDir: tempDir(t) }), { code: 'WRONG_PASSWORD' });
  await t.rejects(Repository.open(new LocalBackend(tempDir(t)), { password: PASSWORD }), { code: 'NOT_A_REPOSITORY', message: /strata init/ });
  await t.rejects(Repository.init(backend, { password: PASSWORD, kdf: CHEAP_KDF }), { code: 'ALREADY_EXISTS' });
});

t.test('a lost or damaged config or key file is read from its copy and mended by a writer; init never writes over a repository', async (t) => {
  const { backend, dir } = await newRepository(t);
  const root = path.join(dir, 'repo');
  const [keyName] = await fs.readdir(path.join(root, 'keys'));
  const open = (readOnly: boolean, warnings: string[] = []) =>
    Repository.open(backend, { password: PASSWORD, cacheDir: tempDir(t), readOnly, onWarning: (m) => warnings.push(m) });
  const flip = async (file: string) => {
    const bytes = await fs.readFile(file);
    bytes[bytes.length >> 1] ^= 0x10;
    await fs.writeFile(file, bytes);
  };

  await fs.rm(path.join(root, 'config'));
  await t.rejects(Repository.init(backend, { password: PASSWORD, kdf: CHEAP_KDF }), { code: 'ALREADY_EXISTS', message: /holds a repository's objects \(keys\// },
    'init refuses a location whose config is gone but whose keys are there');
  let warnings: string[] = [];
  await (await open(true, warnings)).close();
  t.match(warnings, [/config is missing or damaged: its copy copies\/config was read/], 'a reader opens from the copy');
  await t.rejects(fs.stat(path.join(root, 'config')), { code: 'ENOENT' }, 'and writes nothing');
  await (await open(false)).close();
  t.ok((await fs.readFile(path.join(root, 'config'))).equals(await fs.readFile(path.join(root, 'copies', 'config'))), 'a writer puts the config back');

  await flip(path.join(root, 'config'));
  await (await open(false)).close();
  t.ok((await fs.readFile(path.join(root, 'config'))).equals(await fs.readFile(path.join(root, 'copies', 'config'))), 'a damaged config is mended');

  await flip(path.join(root, 'keys', keyName));
  warnings = [];
  await (await open(false, warnings)).close();
  t.match(warnings.join('\n'), /damaged key files .*keys\//, 'a damaged key file is named');
  t.match(warnings.join('\n'), /written again from its twin/);
  const [again] = await fs.readdir(path.join(root, 'keys'));
  t.equal(again, keyName);
  await (await open(true)).close();
  await flip(path.join(root, 'copies', 'keys', keyName));
  await (await open(false)).close();
  t.ok((await fs.readFile(path.join(root, 'copies', 'keys', keyName))).equals(await fs.readFile(path.join(root, 'keys', keyName))),
    'a damaged copy is found and mended while its original is intact');

  // An original that exists but cannot be read (a bad sector; here a folder in its place) is no worse than a missing one.
  for (const name of ['config', path.join('keys', keyName)]) {
    const file = path.join(root, name);
    const kept = await fs.readFile(file);
    await fs.rm(file);
    await fs.mkdir(file);
    warnings = [];
    await (await open(false, warnings)).close();
    t.match(warnings.join('\n'), new RegExp(`${name} cannot be read`), `an unreadable ${name} is named, its copy read`);
    const repo = await open(true);
    t.match(await repo.verifyHeaders(), [{ object: name, message: /cannot be read/ }], 'and check reports it');
    await repo.close();
    await fs.rmdir(file);
    await fs.writeFile(file, kept);
  }

  await flip(path.join(root, 'keys', keyName));
  await flip(path.join(root, 'copies', 'keys', keyName));
  await t.rejects(open(true), { code: 'CORRUPT', message: /are damaged \(with no intact twin\)/ }, 'both damaged: damage, not a wrong password');
  await fs.rm(path.join(root, 'config'));
  await fs.rm(path.join(root, 'copies', 'config'));
  await t.rejects(open(true), { code: 'CORRUPT', message: /lost its config and the config's copy/ }, 'not "no repository" while objects are there');
});

t.test('blobs round-trip, deduplicate, and survive a reopen', async (t) => {
  const { repo, reopen } = await newRepository(t, undefined, { packSize: 256 * 1024 });
  const blobs = await storeSome(repo, 1, 20, 50_000);
  t.equal(await repo.storeBlob('data', blobs[0].id, blobs[0].data), 0, 'a stored blob is not stored again');
  const again = await reopen();
  t.teardown(() => again.close());
  for (const b of blobs) t.ok((await again.loadBlob('data', b.id)).equals(b.data));
  t.ok(again.hasBlob(blobs[3].id));
});

for (const [encrypted, compression] of [[true, 'lz4'], [false, 'lz4'], [true, 'zstd'], [false, 'zstd']] as const) {
  t.test(`${encrypted ? 'encrypted' : 'unencrypted'}, ${compression}: text is stored compressed, random data as is, both read back`, async (t) => {
    const { repo, reopen } = await newRepository(t, undefined, { encrypted, compression });
    const rnd = new Random(2);
    const text = rnd.text(1_000_000);
    const random = rnd.bytes(1_000_000);
    const tiny = Buffer.from('x'.repeat(100)); // below the size worth compressing
    for (const data of [text, random, tiny]) await repo.storeBlob('data', repo.blobId(data), data);
    await repo.flush();
    const where = (data: Buffer) => repo.directReads()!.locate(repo.blobId(data))!;
    const overhead = encrypted ? 28 : 16;
    t.ok(where(text).compressed && where(text).length < 500_000, `1 MB of text takes ${where(text).length} bytes`);
    t.same([where(random).compressed, where(random).length], [false, 1_000_000 + overhead], 'random data: raw, plus the seal');
    t.same([where(tiny).compressed, where(tiny).length], [false, 100 + overhead]);
    for (const data of [text, random, tiny]) t.ok((await repo.loadBlob('data', repo.blobId(data))).equals(data));
    const again = await reopen();
    t.teardown(() => again.close());
    t.equal(again.config.compression ?? 'lz4', compression, 'the choice is the repository\'s, kept in its config');
    t.ok((await again.loadBlob('data', again.blobId(text))).equals(text), 'and read back after reopening');
  });
}

for (const compression of ['lz4', 'zstd'] as const) {
  t.test(`${compression}: a small file is read, hashed and sealed in one job, and stores as storeBlob would`, async (t) => {
    const { repo, dir } = await newRepository(t, undefined, { compression });
    const rnd = new Random(12);
    const buffer = Buffer.alloc(1024 * 1024 + 1);
    for (const [name, data, compressible] of [['text', rnd.text(20_000), true], ['random', rnd.bytes(20_000), false]] as const) {
      const file = path.join(dir, name);
      await fs.writeFile(file, data);
      const read = await readSmallFile(Buffer.from(file), buffer, repo.sealing);
      t.ok(read.blob, `${name}: sealed by the job that read it`);
      t.ok(read.blob!.id.equals(repo.blobId(data)), `${name}: its id is the repository's id of the content`);
      t.equal(read.blob!.compressed, compressible, `${name}: compressed only if that shrinks it`);
      t.ok(await repo.storeSealed('data', read.blob!.id, read.blob!.sealed, data.length, read.blob!.compressed) > 0);
    }
    await repo.flush();
    t.ok((await repo.loadBlob('data', repo.blobId(await fs.readFile(path.join(dir, 'text'))))).equals(await fs.readFile(path.join(dir, 'text'))), 'and reads back');
  });
}

t.test('zstd stores text smaller than LZ4 does', async (t) => {
  const text = new Random(3).text(2_000_000);
  const sizes: number[] = [];
  for (const compression of ['lz4', 'zstd'] as const) {
    const { repo } = await newRepository(t, undefined, { compression });
    await repo.storeBlob('data', repo.blobId(text), text);
    await repo.flush();
    sizes.push(repo.directReads()!.locate(repo.blobId(text))!.length);
  }
  t.ok(sizes[1] < sizes[0], `zstd ${sizes[1]} bytes against LZ4 ${sizes[0]}`);
});

t.test('blobs stored all at once still fill whole packs (no tiny ones from callers that waited for a save)', async (t) => {
  const packSize = 256 * 1024;
  const { repo, backend } = await newRepository(t, undefined, { packSize });
  const rnd = new Random(9);
  const blobs = Array.from({ length: 60 }, () => rnd.bytes(40_000));
  await Promise.all(blobs.map((b) => repo.storeBlob('data', repo.blobId(b), b)));
  await repo.flush();
  const sizes: number[] = [];
  for await (const o of backend.list('packs/')) sizes.push(o.size);
  t.ok(sizes.length <= Math.ceil((60 * 40_000) / packSize) + 1, `${sizes.length} packs: ${sizes.sort((a, b) => a - b).join(', ')}`);
  for (const b of blobs) t.ok((await repo.loadBlob('data', repo.blobId(b))).equals(b));
});

t.test('the index is a cache: deleted, it is rebuilt from pack trailers', async (t) => {
  const { repo, backend, cacheDir } = await newRepository(t, undefined, { packSize: 100_000 });
  const blobs = await storeSome(repo, 3, 10, 40_000);
  await repo.close();
  await fs.rm(cacheDir, { recursive: true });
  const again = await Repository.open(backend, { password: PASSWORD, cacheDir });
  t.teardown(() => again.close());
  for (const b of blobs) t.ok((await again.loadBlob('data', b.id)).equals(b.data));
  let packs = 0;
  for await (const _ of backend.list('packs/')) packs++;
  const rebuilt = await again.rebuildIndex();
  t.ok(packs > 1);
  t.equal(rebuilt.packs, packs, 'every pack is read again');
});

// 30 kB blobs are opened on the JS thread, 300 kB ones in a thread-pool job: both judge alike.
for (const size of [30_000, 300_000]) {
  t.test(`a flipped byte in a pack is detected and names the pack and blob (${size} bytes)`, async (t) => {
    const { repo, backend, reopen } = await newRepository(t);
    const [blob] = await storeSome(repo, 4, 1, size);
    const file = await onlyPack(backend as LocalBackend);
    await damageBeyondParity(file, 100);
    const again = await reopen();
    t.teardown(() => again.close());
    await t.rejects(again.loadBlob('data', blob.id), {
      code: 'CORRUPT', message: new RegExp(`data blob ${blob.id.toString('hex')} in pack [0-9a-f]{64} failed authentication.*; pack [0-9a-f]{64} cannot be healed: stripe 1 of \\d+ has more damaged shards than parity`),
    }, 'more damage than parity: named, with why it cannot be healed');
  });

  t.test(`a flipped byte in a pack is healed from its parity on read, and the pack written back whole (${size} bytes)`, async (t) => {
    const { repo, backend } = await newRepository(t);
    const [blob] = await storeSome(repo, 4, 1, size);
    const file = await onlyPack(backend as LocalBackend);
    const intact = await fs.readFile(file);
    const bytes = Buffer.from(intact);
    bytes[100] ^= 0x01;
    await fs.writeFile(file, bytes.subarray(0, bytes.length - 300)); // and its tail cut off
    const warnings: string[] = [];
    const again = await Repository.open(backend, { password: PASSWORD, cacheDir: tempDir(t), onWarning: (m) => warnings.push(m) });
    t.teardown(() => again.close());
    t.ok((await again.loadBlob('data', blob.id)).equals(blob.data), 'the blob reads right');
    t.match(warnings, [new RegExp(`pack ${path.basename(file)} healed from its parity \\(\\d+ of \\d+ shards rebuilt\\) and written back`)]);
    t.ok((await fs.readFile(file)).equals(intact), 'the pack on disk is whole again');
  });
}

t.test('a truncated pack is detected, never returns wrong bytes', async (t) => {
  const { repo, backend, cacheDir } = await newRepository(t);
  const [blob] = await storeSome(repo, 5, 1, 30_000);
  const file = await onlyPack(backend as LocalBackend);
  const packId = path.basename(file);
  await fs.truncate(file, 10_000); // far more than its parity rebuilds
  await t.rejects(repo.loadBlob('data', blob.id), { code: 'CORRUPT', message: /cut short: the pack is truncated/ });
  await repo.close();
  // Without the index, the damaged trailer is reported and the pack skipped.
  await fs.rm(cacheDir, { recursive: true });
  const warnings: string[] = [];
  const again = await Repository.open(backend, { password: PASSWORD, cacheDir, onWarning: (m) => warnings.push(m) });
  t.teardown(() => again.close());
  t.match(warnings.join('\n'), new RegExp(`pack ${packId}`));
  await t.rejects(again.loadBlob('data', blob.id), { code: 'CORRUPT', message: /missing/ });
});

t.test('an unencrypted repository needs no password and still detects damage (here without parity)', async (t) => {
  const backend = new MemoryBackend();
  await Repository.init(backend, { encrypted: false, parityPercent: 0 });
  const repo = await Repository.open(backend, { cacheDir: tempDir(t) });
  t.teardown(() => repo.close());
  t.notOk(repo.config.encrypted);
  const [blob] = await storeSome(repo, 6, 1, 5000);
  t.ok((await repo.loadBlob('data', blob.id)).equals(blob.data));
  for await (const o of backend.list('packs/')) {
    const data = await backend.load(o.name);
    data[10] ^= 0xff;
    await backend.save(o.name, data);
  }
  await t.rejects(repo.loadBlob('data', blob.id), { code: 'CORRUPT' });
});

t.test('a reader opens while a writer holds the index, and sees its durable packs', async (t) => {
  const { repo, backend, cacheDir } = await newRepository(t);
  const [blob] = await storeSome(repo, 7, 1, 5000);
  // A second writer on the same cache works on a copy and stores only what the repository lacks.
  const second = await Repository.open(backend, { password: PASSWORD, cacheDir });
  t.equal(await second.storeBlob('data', blob.id, blob.data), 0, 'the second writer knows the first one\'s blobs');
  await t.rejects(second.rebuildIndex(), { code: 'LOCKED', message: /held by another Strata process/ }, 'repair index refuses to rebuild a copy it would throw away');
  await second.close();
  const reader = await Repository.open(backend, { password: PASSWORD, cacheDir, readOnly: true });
  t.ok((await reader.loadBlob('data', blob.id)).equals(blob.data));
  const [later] = await storeSome(repo, 8, 1, 5000);
  await reader.close();
  const reader2 = await Repository.open(backend, { password: PASSWORD, cacheDir, readOnly: true });
  t.teardown(() => reader2.close());
  t.ok((await reader2.loadBlob('data', later.id)).equals(later.data));
});

t.test('every object in a local repository is written whole (checked against the pack name)', async (t) => {
  const { repo, backend } = await newRepository(t, undefined, { packSize: 50_000 });
  await storeSome(repo, 9, 6, 20_000);
  for await (const o of backend.list('packs/')) {
    const { createHash } = await import('node:crypto');
    t.equal(createHash('sha256').update(await backend.load(o.name)).digest('hex'), path.basename(o.name));
    t.equal(packObjectName(path.basename(o.name)), o.name);
  }
});
