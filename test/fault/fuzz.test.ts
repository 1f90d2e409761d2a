/**
 * Every record decoder fed random and mutated bytes: each input decodes or is
 * refused as damaged (CORRUPT, or UNSAFE_PATH for names), never a crash of
 * another kind, a hang, or an allocation sized by a hostile length field.
 * And restore never writes outside its target, whatever the target already
 * holds (symlinks planted where the snapshot has folders). Counts are printed.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { isStrataError } from '../../src/store/errors.js';
import { encode } from '../../src/store/format/codec.js';
import {
  decodeConfig, decodeDeletion, decodeKeyFile, decodeLock, decodeMasterKeys, decodeSnapshot, decodeTrailer,
  encodeConfig, encodeDeletion, encodeKeyFile, encodeLock, encodeMasterKeys, encodeSnapshot, encodeTrailer,
} from '../../src/store/format/records.js';
import { defaultChunkerParams } from '../../src/store/chunker.js';
import { decodeTree, encodeTree, TreeIndex, type Entry } from '../../src/store/format/tree.js';
import { capture } from '../../src/sync/capture.js';
import { restore } from '../../src/sync/restore.js';
import { resolvePath } from '../../src/sync/tree-walk.js';
import { Random } from '../kit/random.js';
import { newRepository } from '../kit/repo.js';

const MUTATIONS = 3000;
const RANDOM_INPUTS = 500;

const file = (name: string, extra: Partial<Entry> = {}): Entry => ({
  name: Buffer.from(name), type: 'file', mode: 0o644, uid: 1000, gid: 100, user: 'alice', group: 'users', size: 5,
  mtime: [1700000000, 1], atime: [1700000000, 1], ctime: [1700000000, 1], inode: 42, device: 2049, links: 1, chunks: [Buffer.alloc(32, 1)], ...extra,
});

/** A valid record of each kind, and how to decode it. */
const decoders: [string, Buffer, (b: Buffer) => unknown][] = [
  ['tree', encodeTree([file('a'), { ...file('d'), type: 'dir', chunks: undefined, subtree: Buffer.alloc(32, 2) }, { ...file('l'), type: 'symlink', chunks: undefined, target: Buffer.from('x') }]),
    (b) => decodeTree(b, 'tree')],
  ['tree looked up by name', encodeTree([file('a'), file('b')]), (b) => TreeIndex.decode(b, 'tree').get(Buffer.from('b'))],
  ['snapshot', encodeSnapshot({
    time: '2026-12-03T06:00:00.000Z', host: 'nas', user: 'root', paths: ['/srv/share'], tags: ['t'], excludes: [], tree: Buffer.alloc(32, 3),
    summary: { files: 1, dirs: 1, others: 0, bytes: 5, filesRead: 1, bytesRead: 5, blobsAdded: 1, bytesAdded: 50, seconds: 1, errors: [] },
  }), (b) => decodeSnapshot(b, 'snapshot')],
  ['pack trailer', encodeTrailer([{ type: 'data', id: Buffer.alloc(32, 4), offset: 0, length: 100, rawLength: 90, compressed: true }]), (b) => decodeTrailer(b, 'trailer')],
  ['key file', encodeKeyFile({ kdf: { N: 1024, r: 8, p: 1 }, salt: Buffer.alloc(16, 5), master: Buffer.alloc(80, 6), host: 'nas', created: '2026-12-03T06:00:00.000Z' }),
    (b) => decodeKeyFile(b, 'key')],
  ['master keys', encodeMasterKeys({ encryption: Buffer.alloc(32, 7), id: Buffer.alloc(32, 8) }), (b) => decodeMasterKeys(b)],
  ['config', encodeConfig({ id: 'ab'.repeat(16), encrypted: true, chunker: defaultChunkerParams(), packSize: 1 << 23, created: '2026-12-03T06:00:00.000Z' }),
    (b) => decodeConfig(b)],
  ['lock', encodeLock({ host: 'nas', pid: 1, time: '2026-12-03T06:00:00.000Z', since: '2026-12-03T06:00:00.000Z', exclusive: false, purpose: 'backup' }), (b) => decodeLock(b, 'lock')],
  ['deletion schedule', encodeDeletion({ time: '2026-12-03T06:00:00.000Z', host: 'nas', packs: ['cd'.repeat(32)] }), (b) => decodeDeletion(b, 'deletion')],
];

/** One seeded mutation of a valid record: flipped bits, bytes cut, inserted, overwritten, or a length field pumped up. */
function mutate(rnd: Random, valid: Buffer): Buffer {
  const b = Buffer.from(valid);
  switch (rnd.int(6)) {
    case 0: for (let i = 1 + rnd.int(4); i > 0; i--) b[rnd.int(b.length)] ^= 1 << rnd.int(8); return b;
    case 1: return b.subarray(0, rnd.int(b.length));
    case 2: { const at = rnd.int(b.length); return Buffer.concat([b.subarray(0, at), rnd.bytes(1 + rnd.int(16)), b.subarray(at)]); }
    case 3: { const at = rnd.int(b.length); rnd.bytes(Math.min(8, b.length - at)).copy(b, at); return b; }
    case 4: {
      // A MessagePack length prefix claiming up to 4 GiB (array32, map32, str32, bin32) where one was.
      const at = rnd.int(b.length);
      return Buffer.concat([b.subarray(0, at), Buffer.from([[0xdd, 0xdf, 0xdb, 0xc6][rnd.int(4)], 0xff, 0xff, 0xff, rnd.int(256)]), b.subarray(at + 1)]);
    }
    default: return rnd.bytes(rnd.int(2 * b.length));
  }
}

t.test(`every decoder: ${MUTATIONS} mutated and ${RANDOM_INPUTS} random inputs each decode or are refused as damaged`, async (t) => {
  const crashes: string[] = [];
  let refused = 0;
  let decoded = 0;
  const rssBefore = process.memoryUsage().rss;
  for (const [kind, valid, decodeIt] of decoders) {
    decodeIt(valid); // the valid record itself decodes
    for (let i = 0; i < MUTATIONS + RANDOM_INPUTS; i++) {
      const rnd = new Random(i * 31 + kind.length);
      const input = i < MUTATIONS ? mutate(rnd, valid) : rnd.bytes(rnd.int(400));
      try {
        decodeIt(input);
        decoded++;
      } catch (e) {
        if (isStrataError(e, 'CORRUPT') || isStrataError(e, 'UNSAFE_PATH')) refused++;
        else if (crashes.length < 20) crashes.push(`${kind}, input ${i} (${input.toString('hex').slice(0, 80)}): ${(e as Error).stack?.split('\n').slice(0, 2).join(' ')}`);
      }
    }
  }
  const grown = process.memoryUsage().rss - rssBefore;
  t.comment(`fault suite, fuzzing: ${decoders.length} decoders, ${decoded + refused + crashes.length} inputs, ${refused} refused as damaged, ${decoded} decoded, ${crashes.length} crashes; RSS grew ${Math.round(grown / 1048576)} MiB`);
  t.same(crashes, [], 'no decoder throws anything but a damage error');
  t.ok(grown < 256 * 1024 * 1024, 'no input made a decoder allocate by a hostile length');
});

t.test('restore writes only below its target, whatever symlinks the target already holds', async (t) => {
  const { repo, dir } = await newRepository(t);
  const source = path.join(dir, 'share');
  const outside = path.join(dir, 'outside');
  await fs.mkdir(path.join(source, 'docs', 'deep'), { recursive: true });
  await fs.mkdir(outside);
  await fs.writeFile(path.join(source, 'docs', 'deep', 'file.txt'), 'inside');
  await fs.writeFile(path.join(source, 'top.txt'), 'top');
  await fs.symlink('/etc/passwd', path.join(source, 'abs-link'));
  await fs.symlink('../../outside', path.join(source, 'docs', 'up-link'));
  const snap = await capture(repo, { paths: [source] });
  const entry = await resolvePath(repo, snap.snapshot.tree, source);

  const target = path.join(dir, 'target');
  await fs.mkdir(target);
  // Planted where the snapshot has a folder, a file and a link: each leads outside.
  await fs.symlink(outside, path.join(target, 'docs'));
  await fs.symlink(path.join(outside, 'top.txt'), path.join(target, 'top.txt'));
  await fs.symlink(outside, path.join(target, 'abs-link'));
  const result = await restore(repo, entry, target);
  t.same(result.errors, []);
  t.same(await fs.readdir(outside), [], 'nothing was written outside the target');
  t.ok((await fs.lstat(path.join(target, 'docs'))).isDirectory(), 'the planted link was replaced by the folder');
  t.equal(await fs.readFile(path.join(target, 'docs', 'deep', 'file.txt'), 'utf8'), 'inside');
  t.ok((await fs.lstat(path.join(target, 'top.txt'))).isFile(), 'a file replaces a planted link, not writes through it');
  t.equal(await fs.readlink(path.join(target, 'abs-link')), '/etc/passwd', 'links are restored as links, never followed');
  t.equal(await fs.readlink(path.join(target, 'docs', 'up-link')), '../../outside');
});

t.test('a snapshot holding names that would escape its target cannot be restored at all', async (t) => {
  for (const name of ['..', 'a/b', '/etc', 'nul\0']) {
    const wire = encode({ v: 1, entries: [{ ...file('ok'), name: Buffer.from(name) }] });
    t.throws(() => decodeTree(wire, 'tree T'), { code: 'UNSAFE_PATH' }, JSON.stringify(name));
  }
});
