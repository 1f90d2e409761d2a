import t from 'tap';
import { BlobHasher } from '../../src/store/crypto.js';
import { decode, encode } from '../../src/store/format/codec.js';
import { decodeConfig, decodeSnapshot, decodeTrailer, encodeConfig, encodeTrailer } from '../../src/store/format/records.js';
import { decodeTree, encodeTree, nameProblem, TreeIndex, type Entry } from '../../src/store/format/tree.js';

const file = (name: string | Buffer, extra: Partial<Entry> = {}): Entry => ({
  name: typeof name === 'string' ? Buffer.from(name) : name, type: 'file', mode: 0o644, uid: 1000, gid: 100, user: 'alice', group: 'users',
  size: 5, mtime: [1700000000, 123456789], atime: [1700000001, 1], ctime: [1700000002, 2], inode: 42, device: 2049, links: 1,
  chunks: [Buffer.alloc(32, 1)], ...extra,
});

const sample = (): Entry[] => [
  file('b.txt'),
  file(Buffer.from([0x63, 0xe9, 0xff]), { xattrs: [['user.DOSATTRIB', Buffer.from('0x20')]] }),
  { ...file('dir'), type: 'dir', chunks: undefined, subtree: Buffer.alloc(32, 2), size: 0 },
  { ...file('link'), type: 'symlink', chunks: undefined, target: Buffer.from('../x') },
  file('a.txt', { sparse: true, links: 2 }),
];

t.test('a tree encodes to a pinned id: the format never changes silently', async (t) => {
  const id = new BlobHasher(Buffer.alloc(32, 9)).id(encodeTree(sample())).toString('hex');
  t.equal(id, 'c5381b5fbb7bafedb73d503c34fc941c53b5af2f601bf467ebd71785439b470b');
});

t.test('a tree built entry by entry is the same record at every size (each MessagePack array header form)', async (t) => {
  for (const n of [0, 1, 15, 16, 65_535, 65_536]) {
    const entries = Array.from({ length: n }, (_, i) => file(`f${String(n - i).padStart(6, '0')}`, { inode: i }));
    const data = encodeTree(entries);
    const decoded = decodeTree(data, 'tree');
    t.equal(decoded.length, n, `${n} entries come back`);
    if (n) t.same(decoded[0], entries[n - 1], 'sorted, the first is the smallest name');
    t.ok(encode(decode(data, 'tree')).equals(data), 'the very bytes MessagePack gives the whole record');
  }
});

t.test('trees round-trip, sorted by name bytes', async (t) => {
  const decoded = decodeTree(encodeTree(sample()), 'tree');
  t.same(decoded.map((e) => e.name.toString('latin1')), ['a.txt', 'b.txt', 'c\xe9\xff', 'dir', 'link']);
  t.same(decoded[0], sample()[4]);
  t.same(decoded[2].xattrs, [['user.DOSATTRIB', Buffer.from('0x20')]]);
});

t.test('a zstd repository\'s config is version 2, which a Strata that cannot read zstd refuses with "upgrade"', async (t) => {
  const base = { id: 'x', encrypted: true, chunker: { seed: Buffer.alloc(32), minSize: 1, normSize: 2, maxSize: 3, maskS: 1, maskL: 1 }, packSize: 8, created: '2026-12-02T00:00:00Z' };
  t.equal((decode(encodeConfig(base), 'c') as { v: number }).v, 1, 'LZ4 stays version 1');
  const zstd = encodeConfig({ ...base, compression: 'zstd' });
  t.equal((decode(zstd, 'c') as { v: number }).v, 2);
  t.equal(decodeConfig(zstd).compression, 'zstd');
  t.throws(() => decodeConfig(encode({ ...(decode(zstd, 'c') as object), v: 3 })), { code: 'CORRUPT', message: /upgrade Strata/ });
});

t.test('a tree looked up by name gives what decoding it whole gives, and refuses what decoding refuses', async (t) => {
  const data = encodeTree(sample());
  const index = TreeIndex.decode(data, 'tree T');
  for (const e of decodeTree(data, 'tree T')) t.same(index.get(e.name), e, e.name.toString('latin1'));
  t.equal(index.get(Buffer.from('absent')), undefined);
  // Laid out otherwise (keys in another order): decoded whole, then indexed alike.
  const other = encode({ entries: decodeTree(data, 'tree T').map((e) => ({ ...e, tally: undefined })), v: 1 });
  t.same(TreeIndex.decode(other, 'tree O').get(Buffer.from('a.txt')), sample()[4]);
  const unsorted = encode({ v: 1, entries: [file('b'), file('a')] });
  t.throws(() => TreeIndex.decode(unsorted, 'tree U'), { code: 'CORRUPT' }, 'entries out of order');
  t.throws(() => TreeIndex.decode(data.subarray(0, data.length - 3), 'tree S'), { code: 'CORRUPT' }, 'a record cut short');
  t.throws(() => TreeIndex.decode(Buffer.concat([data, Buffer.from([0])]), 'tree L'), { code: 'CORRUPT' }, 'bytes after the entries');
  const huge = Buffer.concat([encode({ v: 1, entries: [] }).subarray(0, -1), Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])]);
  t.throws(() => TreeIndex.decode(huge, 'tree H'), { code: 'CORRUPT' }, 'a count of 4 billion entries in a few bytes');
});

t.test('names that could escape a restore target are refused on decode', async (t) => {
  for (const bad of ['..', '.', 'a/b', 'nul\0byte', '', 'x'.repeat(256)]) {
    t.ok(nameProblem(Buffer.from(bad)), JSON.stringify(bad));
    const wire = encode({ v: 1, entries: [{ ...file('ok'), name: Buffer.from(bad) }] });
    t.throws(() => decodeTree(wire, 'tree T'), { code: 'UNSAFE_PATH' }, JSON.stringify(bad));
    t.throws(() => TreeIndex.decode(wire, 'tree T'), { code: 'UNSAFE_PATH' }, `${JSON.stringify(bad)}, looked up by name`);
  }
  t.notOk(nameProblem(Buffer.from('x'.repeat(255))));
});

t.test('damaged or malformed records are CORRUPT, naming the record', async (t) => {
  t.throws(() => decodeTree(Buffer.from([0xc1, 0x00]), 'tree 1234'), { code: 'CORRUPT', message: /tree 1234/ });
  t.throws(() => decodeTree(encode({ v: 1, entries: [{ name: Buffer.from('f'), type: 'file' }] }), 'tree 99'), { code: 'CORRUPT', message: /tree 99/ });
  t.throws(() => decodeTree(encode({ v: 99, entries: [] }), 'tree 5'), { code: 'CORRUPT', message: /upgrade/ });
  t.throws(() => decodeSnapshot(encode({ v: 1, time: 'x' }), 'snapshot s'), { code: 'CORRUPT' });
  const trailer = encodeTrailer([{ type: 'data', id: Buffer.alloc(32), offset: 0, length: 10, rawLength: 20, compressed: true }]);
  t.same(decodeTrailer(trailer, 'trailer')[0].rawLength, 20);
  t.throws(() => decodeTrailer(encode({ v: 1, blobs: [[0, Buffer.alloc(3), 0, 1, 1, false]] }), 'trailer of pack P'), { code: 'CORRUPT', message: /pack P/ });
});

t.test('allocation and the data ranges of sparse files round-trip; bad ranges are CORRUPT', async (t) => {
  const sparse = file('disk.img', { size: 1 << 30, blocks: 24, sparse: true, extents: [[4096, 8192], [1 << 20, (1 << 20) + 4096]] });
  t.same(decodeTree(encodeTree([sparse]), 'tree')[0], sparse);
  t.equal(new BlobHasher(Buffer.alloc(32, 9)).id(encodeTree(sample())).toString('hex'), 'c5381b5fbb7bafedb73d503c34fc941c53b5af2f601bf467ebd71785439b470b',
    'entries without them encode as before');
  for (const extents of [[10, 5], [0, 10, 5, 20], [0, 10, 20], [-1, 4]]) {
    const wire = encode({ v: 1, entries: [{ ...file('x'), extents }] });
    t.throws(() => decodeTree(wire, 'tree E'), { code: 'CORRUPT', message: /tree E.*extents/ }, JSON.stringify(extents));
  }
});
